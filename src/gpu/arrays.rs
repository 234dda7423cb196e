//! `ndarray` arrays in and out (feature `ndarray`): what Rust numeric code holds.

use ndarray::{ArrayBase, ArrayD, Data, DataMut, Dimension, IxDyn};

use crate::error::{Error, Result, TensorRole};
use crate::gpu::{GpuContext, GpuTensor};

impl GpuContext {
    /// Copies an array of any dimension and layout to a new GPU tensor of its shape: a standard
    /// (C-order) array is uploaded as it is, any other view (transposed, sliced with steps,
    /// Fortran order) is first copied into C order.
    pub fn upload_array<S, D>(&self, array: &ArrayBase<S, D>) -> Result<GpuTensor>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        match array.as_slice() {
            Some(data) => self.upload(data, array.shape()),
            None => {
                let owned = array.as_standard_layout();
                let data = owned.as_slice().ok_or_else(|| {
                    Error::Internal("a standard-layout array has no contiguous slice".into())
                })?;
                self.upload(data, array.shape())
            }
        }
    }

    /// Reads a tensor back into a new array of its shape.
    pub fn read_array(&self, tensor: &GpuTensor) -> Result<ArrayD<f32>> {
        let data = self.read(tensor)?;
        ArrayD::from_shape_vec(IxDyn(tensor.shape()), data)
            .map_err(|e| Error::Internal(format!("array of shape {:?}: {e}", tensor.shape())))
    }

    /// Reads a tensor back into `out`, an array or mutable view of the tensor's shape in any
    /// layout (elements are written in the tensor's C order, wherever `out` keeps them).
    pub fn read_into_array<S, D>(&self, tensor: &GpuTensor, out: &mut ArrayBase<S, D>) -> Result<()>
    where
        S: DataMut<Elem = f32>,
        D: Dimension,
    {
        if out.shape() != tensor.shape() {
            return Err(Error::ShapeMismatch {
                role: TensorRole::Output,
                got: out.shape().to_vec(),
                expected: tensor.shape().to_vec(),
            });
        }
        let data = self.read(tensor)?;
        // `iter_mut` walks in logical (C) order whatever the strides.
        for (o, v) in out.iter_mut().zip(data) {
            *o = v;
        }
        Ok(())
    }
}
