//! # gpuconv: 2D convolution and its gradients as WGSL compute shaders on wgpu
//!
//! Layout: every tensor is f32, row-major (C order). Input X is NCHW (N, C, H, W); weights W are
//! (K, C/groups, R, S); output Y is (N, K, P, Q) with
//! P = ⌊(H + pad_top + pad_bottom − dh·(R−1) − 1)/sh⌋ + 1 and Q likewise.
//!
//! The three passes of training:
//! - forward: Y\[n,k,p,q\] = Σ_{c,r,s} X\[n,c,p·sh−top+r·dh, q·sw−left+s·dw\]·W\[k,c,r,s\] (+ b\[k\]);
//! - input gradient: dX\[n,c,h,w\] collects dY\[n,k,p,q\]·W\[k,c,r,s\] from every output whose window
//!   covered (h, w): a "full" convolution of dY with the flipped kernel, with stride holes;
//! - weight gradient: dW\[k,c,r,s\] = Σ_{n,p,q} dY\[n,k,p,q\]·X\[n,c,…\], one term per output
//!   position where the shared weight was used; bias gradient db\[k\] = Σ dY\[n,k,·,·\].
//!
//! [`ConvProblem`] validates shapes and parameters once for every path. [`cpu::reference`] is the
//! f64 oracle; [`GpuContext`] runs the same ops on the GPU with tensors ([`GpuTensor`]) that stay
//! resident between calls. See the README's "Why the gradient is a convolution" section and
//! `gpuconv explain` for the worked derivation.
//!
//! ```no_run
//! use gpuconv::{ConvParams, GpuContext};
//! # fn main() -> gpuconv::Result<()> {
//! let ctx = GpuContext::new()?;
//! let params = ConvParams::default().padding(1, 1);
//! let x = ctx.upload(&vec![1.0; 1 * 3 * 8 * 8], &[1, 3, 8, 8])?;
//! let w = ctx.upload(&vec![0.5; 4 * 3 * 3 * 3], &[4, 3, 3, 3])?;
//! let y = ctx.forward(&x, &w, None, params)?; // stays on the GPU
//! let dx = ctx.input_grad(&y, &w, &[1, 3, 8, 8], params)?; // chained without a copy
//! println!("{:?}", &ctx.read(&dx)?[..4]);
//!
//! // Several ops in one submission, recorded explicitly:
//! let mut rec = ctx.recorder();
//! let y = rec.forward(&x, &w, None, params)?;
//! let dw = rec.weight_grad(&y, &x, &[4, 3, 3, 3], params)?;
//! rec.submit()?;
//! println!("{:?}", &ctx.read(&dw)?[..4]);
//! # Ok(()) }
//! ```
//!
//! Features: `cli` (on by default) builds the `gpuconv` command line and what only it needs
//! (argument parsing, JSON shape suites, safe output files); `default-features = false` builds
//! the library alone.
#![warn(missing_docs)]

pub mod cpu;
pub mod epilogue;
pub mod error;
pub mod explain;
pub mod gpu;
pub mod metrics;
pub mod npy;
pub mod problem;
pub mod rng;
#[cfg(feature = "cli")]
pub mod suite;
pub mod transposed;
mod tune_cache;

pub use epilogue::{Activation, Epilogue, Saved};
pub use error::{Error, Result, TensorRole};
pub use gpu::{GpuContext, GpuTensor, Recorder};
pub use problem::{ConvParams, ConvProblem, Op};
/// The wgpu this crate is built against, for callers that create their own device.
pub use wgpu;
