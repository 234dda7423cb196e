//! The GPU path: WGSL kernels run through wgpu.
//!
//! - [`GpuContext`] owns (or borrows) a device and caches pipelines; [`GpuTensor`]s live on it.
//! - [`plan`] decides what an op dispatches, as a value ([`plan::OpPlan`]) built without a GPU.
//! - [`Recorder`] is the one executor: it records plans into a command encoder that is submitted
//!   as one unit ([`Submission`]).
//! - [`kernels`], [`interface`] and [`uniform`] describe the WGSL side: sources and
//!   specialisations, bindings, and uniform layouts (checked against the WGSL by reflection).

mod adapter;
#[cfg(feature = "ndarray")]
mod arrays;
pub mod config;
mod context;
pub mod interface;
pub mod kernels;
mod ops;
pub mod plan;
mod record;
pub mod sgemm;
mod tensor;
pub mod tune;
pub mod uniform;

pub use adapter::{enumerate_adapters, instance, pick_adapter, AdapterSummary};
pub use config::{BlockOverride, Overrides, ShaderChecks};
pub use context::{ContextOptions, GpuContext, LimitsChoice};
pub use plan::{BlockPasses, OpPlan, Planner, SplitK, TileProfile, DEFAULT_TILE};
pub use record::{Recorder, Submission};
pub use tensor::GpuTensor;
pub use tune::{Choice, TuneBudget, Tuning};
