//! The GPU path: WGSL kernels run through wgpu.

mod context;
pub mod kernels;
mod ops;
pub mod sgemm;
mod tensor;
pub mod uniform;

pub use context::{
    enumerate_adapters, instance, pick_adapter, AdapterSummary, ContextOptions, GpuContext,
};
pub use ops::{describe_plan, weight_grad_split, SplitK, DEFAULT_TILE};
pub use tensor::GpuTensor;
