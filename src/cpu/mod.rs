//! CPU implementations: the f64 reference (the oracle every other path is tested against) and the
//! fast path that the benchmark calls "CPU": direct AVX-512 or AVX2 kernels for dense layers
//! with large planes (`direct`, x86-64), im2col + GEMM for the rest, direct loops for depthwise.

pub mod alloc;
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod direct;
#[cfg(target_arch = "x86_64")]
mod direct_depthwise;
pub mod fast;
pub mod isa;
mod output;
mod phases;
pub mod reference;
mod scratch;
mod simd;
pub mod tune;

pub use scratch::release as release_scratch;
