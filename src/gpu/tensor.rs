//! Tensors that live on the GPU between calls.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// An f32 tensor in a GPU storage buffer, row-major (C order) with the given shape.
///
/// Made by [`GpuContext::upload`] or returned by an op; read back with [`GpuContext::read`].
#[derive(Debug)]
pub struct GpuTensor {
    pub(crate) buffer: wgpu::Buffer,
    shape: Vec<usize>,
    context_id: u64,
}

impl GpuTensor {
    pub(crate) fn new(ctx: &GpuContext, buffer: wgpu::Buffer, shape: Vec<usize>) -> Self {
        GpuTensor {
            buffer,
            shape,
            context_id: ctx.id,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The underlying buffer (STORAGE | COPY_SRC | COPY_DST), for use with your own wgpu work.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    pub(crate) fn check_context(&self, ctx: &GpuContext) -> Result<()> {
        if self.context_id != ctx.id {
            return Err(Error::ForeignTensor);
        }
        Ok(())
    }
}

impl GpuContext {
    /// Copies `data` to a new GPU tensor of `shape`.
    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<GpuTensor> {
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(Error::Invalid(format!(
                "upload: {} elements given for shape {shape:?}, which needs {expected}",
                data.len()
            )));
        }
        let buffer = self.storage_buffer_from("gpuconv tensor", data)?;
        Ok(GpuTensor::new(self, buffer, shape.to_vec()))
    }

    /// Reads a tensor back to the host, waiting for all work that writes it.
    pub async fn read_async(&self, tensor: &GpuTensor) -> Result<Vec<f32>> {
        tensor.check_context(self)?;
        self.read_buffer(&tensor.buffer, tensor.len()).await
    }

    /// Blocking form of [`GpuContext::read_async`].
    pub fn read(&self, tensor: &GpuTensor) -> Result<Vec<f32>> {
        pollster::block_on(self.read_async(tensor))
    }
}
