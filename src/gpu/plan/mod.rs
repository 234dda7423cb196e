//! Plans: what an op dispatches, decided before anything is recorded.
//!
//! [`Planner::plan`] turns (profile, overrides, device limits, validated problem) into an
//! [`OpPlan`]: the scratch buffers it needs and the ordered steps (dispatches: kernel,
//! specialisation, uniform value, named bindings, workgroup grid; and buffer copies). Building a
//! plan touches no wgpu object, so the tests check plans for hundreds of problems with no adapter
//! at all; the one executor (`gpu::record`) records any plan. `Display` prints the one-line
//! summary `gpuconv bench` shows; `{:#}` lists every step.
//!
//! One module per pass: [`forward`], [`input_grad`], [`weight_grad`], [`bias_grad`], and the
//! [`depthwise`] and [`pointwise`] families they hand problems to; [`profile`] holds the tile
//! profiles and the tile heuristics.

pub mod bias_grad;
pub mod depthwise;
pub mod forward;
pub mod input_grad;
pub mod pointwise;
pub mod profile;
pub mod weight_grad;

use std::fmt;

use crate::error::{Error, Result};
use crate::gpu::config::Overrides;
use crate::gpu::interface::Elem;
use crate::gpu::kernels::{BlockSpec, Kernel, Spec, TileSpec, WindowSpec};
use crate::gpu::uniform::UniformValue;
use crate::problem::{ConvProblem, Op};

pub use profile::{BlockPasses, TileProfile, DEFAULT_TILE, POINTWISE_TILE};
pub use weight_grad::SplitK;

/// The planner's inputs besides the problem: the adapter class's tile profile, the caller's
/// overrides and the device's limits. A plain value: planning needs no GPU.
#[derive(Debug, Clone)]
pub struct Planner {
    /// The largest tiles of each kernel family.
    pub profile: TileProfile,
    /// Forced tiles and switches (see [`Overrides`]).
    pub overrides: Overrides,
    /// The device's limits (the planner keeps every binding and grid within them).
    pub limits: wgpu::Limits,
}

impl Planner {
    /// A planner for `profile` and `limits` without overrides.
    pub fn new(profile: TileProfile, limits: wgpu::Limits) -> Self {
        Planner {
            profile,
            overrides: Overrides::default(),
            limits,
        }
    }

    /// The plan of `op` on `problem`; `bias` says whether the forward adds one.
    pub fn plan(&self, op: Op, problem: &ConvProblem, bias: bool) -> Result<OpPlan> {
        let plan = match op {
            Op::Forward => forward::plan(self, problem, bias)?,
            Op::InputGrad => input_grad::plan(self, problem)?,
            Op::WeightGrad => weight_grad::plan(self, problem, None)?,
            Op::BiasGrad => bias_grad::plan(self, problem.y_shape())?,
        };
        plan.check(&self.limits)?;
        Ok(plan)
    }

    /// The plan of the bias gradient of a dY of shape `dy_shape` (N, K, P, Q).
    pub fn plan_bias_grad(&self, dy_shape: [usize; 4]) -> Result<OpPlan> {
        let plan = bias_grad::plan(self, dy_shape)?;
        plan.check(&self.limits)?;
        Ok(plan)
    }

    /// The weight gradient with an explicit split-K count (tests and tuning); the count is
    /// clamped so that no split is empty.
    pub fn plan_weight_grad_with_splits(
        &self,
        problem: &ConvProblem,
        splits: usize,
    ) -> Result<OpPlan> {
        let plan = weight_grad::plan(self, problem, Some(splits))?;
        plan.check(&self.limits)?;
        Ok(plan)
    }

    /// Folds `total` workgroups into an (x, y, z) grid within the per-dimension limit; kernels
    /// recover the linear index and skip the excess.
    pub fn grid(&self, total: usize) -> Result<[u32; 3]> {
        let max = usize::try_from(self.limits.max_compute_workgroups_per_dimension)
            .unwrap_or(usize::MAX)
            .max(1);
        let x = total.clamp(1, max);
        let y = total.div_ceil(x).clamp(1, max);
        let z = total.div_ceil(x.saturating_mul(y)).max(1);
        if z > max {
            return Err(Error::TooLarge {
                what: "workgroup count of one dispatch".into(),
                value: total as u128,
                limit: (max as u128).pow(3),
            });
        }
        Ok([u32_of("grid", x)?, u32_of("grid", y)?, u32_of("grid", z)?])
    }
}

/// The kernel family an op runs, with its typed parameters: what the tests assert on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Direct depthwise kernel (forward, stride-1 input gradient).
    Depthwise(WindowSpec),
    /// Direct depthwise weight gradient with `splits` partial sums per channel, then reduced.
    DepthwiseWeightGrad {
        /// The window.
        window: WindowSpec,
        /// Partial sums per channel.
        splits: usize,
    },
    /// Plain GEMM on vec4 pixel quads (1×1 stride-1 forward and input gradient).
    Pointwise(TileSpec),
    /// Input gradient as a column GEMM on the pointwise kernel, then col2im.
    Column(TileSpec),
    /// Implicit GEMM on the register core, with `phases` stride-phase dispatches (1 for the
    /// forward).
    ImplicitGemm {
        /// The register tile.
        tile: TileSpec,
        /// Dispatches, one per stride phase with pixels.
        phases: usize,
    },
    /// Implicit GEMM on the workgroup-memory core.
    Block {
        /// The block tile.
        block: BlockSpec,
        /// Dispatches, one per stride phase with pixels.
        phases: usize,
    },
    /// Weight gradient on the register core (vec4 quads for 1×1 problems), split-K.
    WeightGradGemm {
        /// The register tile.
        tile: TileSpec,
        /// The split.
        split: SplitK,
        /// Whether it runs the vec4 pointwise kernel.
        vec4: bool,
    },
    /// Weight gradient on the workgroup-memory core, split-K.
    WeightGradBlock {
        /// The block tile.
        block: BlockSpec,
        /// The split.
        split: SplitK,
    },
    /// Bias gradient: one workgroup tree per channel.
    BiasGradTree,
    /// The plain SGEMM ceiling benchmark.
    Sgemm(TileSpec),
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Depthwise(w) => write!(f, "direct depthwise, {}", Spec::from(*w)),
            Path::DepthwiseWeightGrad { window, .. } => {
                write!(
                    f,
                    "direct depthwise + split reduce, {}",
                    Spec::from(*window)
                )
            }
            Path::Pointwise(t) => write!(f, "pointwise GEMM on vec4 pixels, {t}"),
            Path::Column(t) => write!(f, "column GEMM (vec4) + col2im, {t}"),
            Path::ImplicitGemm { tile, phases } => match phases {
                1 => write!(f, "implicit GEMM, {tile}"),
                _ => write!(f, "implicit GEMM x {phases} stride phases, {tile}"),
            },
            Path::Block { block, phases } => match phases {
                1 => write!(f, "implicit GEMM, {block}"),
                _ => write!(f, "implicit GEMM x {phases} stride phases, {block}"),
            },
            Path::WeightGradGemm { tile, split, vec4 } => {
                let kind = if *vec4 {
                    "pointwise GEMM on vec4 quads, split-K"
                } else {
                    "GEMM split-K"
                };
                write!(f, "{kind} {}x{}, {tile}", split.splits, split.split_len)
            }
            Path::WeightGradBlock { block, split } => {
                write!(
                    f,
                    "GEMM split-K {}x{}, {block}",
                    split.splits, split.split_len
                )
            }
            Path::BiasGradTree => f.write_str("workgroup tree reduction"),
            Path::Sgemm(t) => write!(f, "plain SGEMM, {t}"),
        }
    }
}

/// A tensor an op reads, by its role in the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The input X.
    X,
    /// The weights W.
    W,
    /// The bias b.
    Bias,
    /// The output gradient dY.
    Dy,
    /// SGEMM's left matrix.
    A,
    /// SGEMM's right matrix.
    B,
}

/// A buffer a planned step uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferRef {
    /// An input tensor of the op.
    Operand(Operand),
    /// The op's output tensor.
    Output,
    /// Scratch buffer `i` of [`OpPlan::scratch`].
    Scratch(usize),
    /// A small buffer of zeros bound where a kernel needs a buffer it never reads (no bias).
    Zeros,
}

/// A byte range of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSlice {
    /// The buffer.
    pub buffer: BufferRef,
    /// First byte.
    pub offset: u64,
    /// Length in bytes (`None`: to the end of the buffer).
    pub size: Option<u64>,
}

impl BufferSlice {
    /// The whole of `buffer`.
    pub fn whole(buffer: BufferRef) -> Self {
        BufferSlice {
            buffer,
            offset: 0,
            size: None,
        }
    }
}

/// One binding of a dispatch, by the kernel's variable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind {
    /// The WGSL variable (see `Kernel::interface`).
    pub name: &'static str,
    /// What is bound there.
    pub slice: BufferSlice,
}

/// One compute dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// The kernel.
    pub kernel: Kernel,
    /// Its specialisation.
    pub spec: Spec,
    /// The uniform it reads.
    pub uniform: UniformValue,
    /// Its storage bindings, by name.
    pub binds: Vec<Bind>,
    /// Workgroups that do work.
    pub workgroups: usize,
    /// The (x, y, z) grid those are folded into.
    pub grid: [u32; 3],
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A compute dispatch.
    Dispatch(Box<Dispatch>),
    /// Fill a buffer with zeros.
    Clear(BufferRef),
}

/// A scratch buffer a plan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScratchBuffer {
    /// What it holds.
    pub what: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What an op will do: its kernel path, scratch buffers and steps, and the output it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct OpPlan {
    /// The kernel family and its parameters.
    pub path: Path,
    /// The output's shape.
    pub output_shape: Vec<usize>,
    /// What the output is, for messages.
    pub output_what: &'static str,
    /// Scratch buffers, indexed by [`BufferRef::Scratch`].
    pub scratch: Vec<ScratchBuffer>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl OpPlan {
    /// The dispatches, in order.
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.steps.iter().filter_map(|s| match s {
            Step::Dispatch(d) => Some(&**d),
            _ => None,
        })
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }

    /// Checks the plan against `limits` and the kernels' interfaces: every dispatch binds exactly
    /// its kernel's storage variables, every vec4 binding is whole quads, every grid fits, and
    /// every scratch buffer fits one binding.
    pub fn check(&self, limits: &wgpu::Limits) -> Result<()> {
        let internal = |msg: String| Err(Error::Internal(msg));
        for s in &self.scratch {
            if s.bytes > limits.max_storage_buffer_binding_size {
                return Err(Error::BufferTooLarge {
                    what: s.what.to_string(),
                    bytes: s.bytes.into(),
                    limit: limits.max_storage_buffer_binding_size,
                    limit_name: "storage binding (max_storage_buffer_binding_size)",
                    adapter: String::from("this device"),
                });
            }
        }
        for d in self.dispatches() {
            let iface = d.kernel.interface();
            if d.binds.len() != iface.storage.len() {
                return internal(format!(
                    "{} binds {} buffers, its interface has {}",
                    d.kernel.file_name(),
                    d.binds.len(),
                    iface.storage.len()
                ));
            }
            for b in &d.binds {
                let Some(slot) = iface.binding(b.name) else {
                    return internal(format!(
                        "{} has no binding named {}",
                        d.kernel.file_name(),
                        b.name
                    ));
                };
                if slot.elem == Elem::Vec4F32 && b.slice.size.is_some_and(|s| s % 16 != 0) {
                    return internal(format!(
                        "{}: {} is not whole vec4s",
                        d.kernel.file_name(),
                        b.name
                    ));
                }
            }
            if d.uniform.layout() != iface.uniform {
                return internal(format!(
                    "{} takes a {} uniform, the plan gives a {}",
                    d.kernel.file_name(),
                    iface.uniform.wgsl_name,
                    d.uniform.layout().wgsl_name
                ));
            }
            let max = limits.max_compute_workgroups_per_dimension;
            if d.grid.iter().any(|&g| g > max || g == 0) {
                return internal(format!(
                    "{} grid {:?} exceeds {max}",
                    d.kernel.file_name(),
                    d.grid
                ));
            }
            let covered = d.grid.iter().map(|&g| g as u128).product::<u128>();
            if covered < d.workgroups as u128 {
                return internal(format!(
                    "{} grid {:?} covers fewer than {} workgroups",
                    d.kernel.file_name(),
                    d.grid,
                    d.workgroups
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for OpPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if f.alternate() {
            for s in &self.scratch {
                write!(f, "\n  scratch {}: {} bytes", s.what, s.bytes)?;
            }
            for step in &self.steps {
                match step {
                    Step::Dispatch(d) => {
                        write!(
                            f,
                            "\n  dispatch {} at {} over {} workgroups {:?}:",
                            d.kernel.file_name(),
                            d.spec,
                            d.workgroups,
                            d.grid
                        )?;
                        for b in &d.binds {
                            write!(f, " {}={:?}", b.name, b.slice.buffer)?;
                        }
                    }
                    Step::Clear(buffer) => write!(f, "\n  clear {buffer:?}")?,
                }
            }
        }
        Ok(())
    }
}

/// `v` as a u32 uniform field, or why it does not fit.
pub(crate) fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: v as u128,
        limit: u32::MAX.into(),
    })
}

/// a·b, or why it overflows.
pub(crate) fn mul(what: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::TooLarge {
        what: what.to_string(),
        value: a as u128 * b as u128,
        limit: usize::MAX as u128,
    })
}

/// Bytes of `len` f32s.
pub(crate) fn f32_bytes(what: &str, len: usize) -> Result<u64> {
    let bytes = mul(what, len, 4)?;
    u64::try_from(bytes).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: bytes as u128,
        limit: u64::MAX.into(),
    })
}

/// Builds a dispatch of `kernel` with its grid folded for `planner`.
pub(crate) fn dispatch(
    planner: &Planner,
    kernel: Kernel,
    spec: impl Into<Spec>,
    uniform: UniformValue,
    binds: &[(&'static str, BufferRef)],
    workgroups: usize,
) -> Result<Step> {
    Ok(Step::Dispatch(Box::new(Dispatch {
        kernel,
        spec: spec.into(),
        uniform,
        binds: binds
            .iter()
            .map(|&(name, buffer)| Bind {
                name,
                slice: BufferSlice::whole(buffer),
            })
            .collect(),
        workgroups,
        grid: planner.grid(workgroups)?,
    })))
}

/// A plan with one output and no scratch.
pub(crate) fn single(
    path: Path,
    output_shape: Vec<usize>,
    output_what: &'static str,
    steps: Vec<Step>,
) -> OpPlan {
    OpPlan {
        path,
        output_shape,
        output_what,
        scratch: Vec::new(),
        steps,
    }
}
