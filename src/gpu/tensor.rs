//! Tensors that live on the GPU between calls.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Pending, Result, TensorRole};
use crate::gpu::GpuContext;
use crate::problem::element_count;

/// Whether a tensor's contents exist yet: the id of the recorder that will write it (until that
/// is submitted), [`READY`], or [`ABANDONED`].
#[derive(Debug)]
pub(crate) struct Readiness(AtomicU64);

const READY: u64 = 0;
const ABANDONED: u64 = u64::MAX;

impl Readiness {
    pub(crate) fn ready() -> Arc<Self> {
        Arc::new(Readiness(AtomicU64::new(READY)))
    }

    pub(crate) fn pending(recorder: u64) -> Arc<Self> {
        Arc::new(Readiness(AtomicU64::new(recorder)))
    }

    pub(crate) fn set_ready(&self) {
        self.0.store(READY, Ordering::Release);
    }

    pub(crate) fn set_abandoned(&self) {
        self.0.store(ABANDONED, Ordering::Release);
    }

    /// Checks the tensor can be read by `recorder` (`None`: by the host, after all work).
    pub(crate) fn check(&self, role: TensorRole, recorder: Option<u64>) -> Result<()> {
        match self.0.load(Ordering::Acquire) {
            READY => Ok(()),
            ABANDONED => Err(Error::TensorNotReady {
                role,
                pending: Pending::Abandoned,
            }),
            id if Some(id) == recorder => Ok(()),
            _ => Err(Error::TensorNotReady {
                role,
                pending: Pending::Unsubmitted,
            }),
        }
    }
}

/// An f32 tensor in a GPU storage buffer, row-major (C order) with the given shape.
///
/// Made by [`GpuContext::upload`], returned by an op, or a view of a caller's buffer
/// ([`GpuTensor::from_buffer`]); read back with [`GpuContext::read`].
#[derive(Debug)]
pub struct GpuTensor {
    /// Dropped in `Drop`, under the context's serialising lock where it has one.
    pub(crate) buffer: ManuallyDrop<wgpu::Buffer>,
    /// Whether the buffer's device serialises calls (GL; see `context::GL_SERIAL`).
    serial: bool,
    pub(crate) offset: u64,
    shape: Vec<usize>,
    len: usize,
    context_id: u64,
    pub(crate) readiness: Arc<Readiness>,
}

impl GpuTensor {
    pub(crate) fn new(
        ctx: &GpuContext,
        buffer: wgpu::Buffer,
        shape: Vec<usize>,
        len: usize,
        readiness: Arc<Readiness>,
    ) -> Self {
        GpuTensor {
            buffer: ManuallyDrop::new(buffer),
            serial: ctx.serial,
            offset: 0,
            shape,
            len,
            context_id: ctx.id,
            readiness,
        }
    }

    /// A tensor of `shape` over `buffer` from byte `offset`: the caller's own buffer, read and
    /// written in place. Checked here: the buffer has STORAGE usage (COPY_SRC too, to be read
    /// back with [`GpuContext::read`]), the range fits in it, `offset` is a multiple of the
    /// device's `min_storage_buffer_offset_alignment`, and the buffer belongs to `ctx`'s device
    /// (a buffer of another device of the same wgpu instance is an error; wgpu's API cannot tell
    /// a buffer of another instance, so the buffer must come from the instance of `ctx`'s device:
    /// [`crate::gpu::instance`] for gpuconv's own contexts, the caller's for
    /// [`GpuContext::from_device`]).
    pub fn from_buffer(
        ctx: &GpuContext,
        buffer: &wgpu::Buffer,
        offset: u64,
        shape: &[usize],
    ) -> Result<Self> {
        let role = TensorRole::Input;
        let bad = |reason: String| Error::BadBuffer { role, reason };
        let len = element_count(role, shape)?;
        let bytes = len as u128 * 4;
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(bad(format!("usage {:?} lacks STORAGE", buffer.usage())));
        }
        let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment);
        if !offset.is_multiple_of(align) {
            return Err(bad(format!(
                "offset {offset} is not a multiple of min_storage_buffer_offset_alignment = {align}"
            )));
        }
        if u128::from(offset) + bytes > u128::from(buffer.size()) {
            return Err(bad(format!(
                "{bytes} bytes of shape {shape:?} from offset {offset} do not fit its {} bytes",
                buffer.size()
            )));
        }
        ctx.check_own_buffer(buffer)?;
        Ok(GpuTensor {
            buffer: ManuallyDrop::new(buffer.clone()),
            serial: ctx.serial,
            offset,
            shape: shape.to_vec(),
            len,
            context_id: ctx.id,
            readiness: Readiness::ready(),
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying buffer, for use with your own wgpu work; the tensor starts at
    /// [`GpuTensor::offset`].
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The tensor's first byte in [`GpuTensor::buffer`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.len as u64 * 4
    }

    /// Checks the tensor belongs to `ctx` and can be used by `recorder` (`None`: read by the
    /// host).
    pub(crate) fn check_usable(
        &self,
        ctx: &GpuContext,
        role: TensorRole,
        recorder: Option<u64>,
    ) -> Result<()> {
        if self.context_id != ctx.id {
            return Err(Error::ForeignTensor);
        }
        self.readiness.check(role, recorder)
    }
}

impl Drop for GpuTensor {
    fn drop(&mut self) {
        let _serial = crate::gpu::context::serial_guard(self.serial);
        // SAFETY: `buffer` is dropped only here, once, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.buffer) }
    }
}

impl GpuContext {
    /// Copies `data` to a new GPU tensor of `shape`.
    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<GpuTensor> {
        self.upload_as(TensorRole::Input, data, shape)
    }

    /// [`GpuContext::upload`] for tensor `role`, which errors name.
    pub(crate) fn upload_as(
        &self,
        role: TensorRole,
        data: &[f32],
        shape: &[usize],
    ) -> Result<GpuTensor> {
        let expected = element_count(role, shape)?;
        if data.len() != expected {
            return Err(Error::UploadLength {
                got: data.len(),
                expected: expected as u128,
                shape: shape.to_vec(),
            });
        }
        let buffer = self.buffer_from(role, data)?;
        Ok(GpuTensor::new(
            self,
            buffer,
            shape.to_vec(),
            expected,
            Readiness::ready(),
        ))
    }

    /// Reads a tensor back to the host, waiting for all work that writes it.
    pub async fn read_async(&self, tensor: &GpuTensor) -> Result<Vec<f32>> {
        tensor.check_usable(self, TensorRole::Output, None)?;
        let bytes = self
            .read_bytes(&tensor.buffer, tensor.offset, tensor.bytes())
            .await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Blocking form of [`GpuContext::read_async`].
    pub fn read(&self, tensor: &GpuTensor) -> Result<Vec<f32>> {
        pollster::block_on(self.read_async(tensor))
    }
}
