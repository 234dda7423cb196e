//! The GPU path: WGSL kernels run through wgpu.

mod context;
pub mod kernels;
mod ops;
pub mod plan;
pub mod sgemm;
mod tensor;
mod timer;
pub mod uniform;

pub use context::{
    enumerate_adapters, instance, pick_adapter, AdapterSummary, ContextOptions, GpuContext,
};
pub use plan::{describe_plan, weight_grad_split, BlockPasses, SplitK, TileProfile, DEFAULT_TILE};
pub use tensor::GpuTensor;
