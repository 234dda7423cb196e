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
//! profiles and the tile heuristics; [`epilogue`] fuses a forward epilogue into a forward plan
//! (or appends it as its own pass) and plans its backward.

pub mod bias_grad;
pub mod depthwise;
pub mod epilogue;
pub mod forward;
pub mod input_grad;
pub mod pointwise;
pub mod profile;
pub mod tiling;
pub mod weight_grad;

use std::fmt;

use crate::error::{Error, Result};
use crate::gpu::config::Overrides;
use crate::gpu::interface::Elem;
use crate::gpu::kernels::{BlockSpec, EpilogueSpec, Kernel, Spec, TileSpec, WindowSpec};
use crate::gpu::uniform::UniformValue;
use crate::problem::{ConvProblem, Op};

pub use epilogue::FusedForward;
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
    /// Loop iterations one invocation may run in total, all loops counted: llvmpipe (lavapipe,
    /// and Mesa's GL on it) ends any loop once a shader has run [`LLVMPIPE_LOOP_LIMIT`] of
    /// them, silently; `u64::MAX` elsewhere. PERFORMANCE.md, [#loop-limit].
    pub max_loop_trips: u64,
}

/// The iterations after which llvmpipe's gallivm stops every loop of a shader
/// (`LP_MAX_TGSI_LOOP_ITERATIONS`, one counter per invocation).
pub const LLVMPIPE_LOOP_LIMIT: u64 = 65_535;

/// The loop budget of a driver: [`LLVMPIPE_LOOP_LIMIT`] less a margin for llvmpipe, none
/// elsewhere.
pub fn loop_budget(info: &wgpu::AdapterInfo) -> u64 {
    let llvmpipe = info.driver.to_lowercase().contains("llvmpipe")
        || info.name.to_lowercase().contains("llvmpipe");
    if llvmpipe {
        LLVMPIPE_LOOP_LIMIT - 64
    } else {
        u64::MAX
    }
}

impl Planner {
    /// A planner for `profile` and `limits` without overrides.
    pub fn new(profile: TileProfile, limits: wgpu::Limits) -> Self {
        Planner {
            profile,
            overrides: Overrides::default(),
            limits,
            max_loop_trips: u64::MAX,
        }
    }

    /// The plan of `op` on `problem`; `bias` says whether the forward adds one.
    pub fn plan(&self, op: Op, problem: &ConvProblem, bias: bool) -> Result<OpPlan> {
        let whole = self.plan_whole(op, problem, bias)?;
        let plan = if tiling::fits(&whole, self) {
            whole
        } else {
            match tiling::plan(self, op, problem, bias) {
                Ok(tiled) => tiled,
                // A kernel loop past the driver's budget that no tile shortens is the error
                // to report, not the split that failed.
                Err(e) => return self.check_loops(&whole).and(Err(e)),
            }
        };
        self.check(&plan)?;
        Ok(plan)
    }

    /// The plan of the bias gradient of a dY of shape `dy_shape` (N, K, P, Q).
    pub fn plan_bias_grad(&self, dy_shape: [usize; 4]) -> Result<OpPlan> {
        let whole = bias_grad::plan(self, dy_shape)?;
        let plan = if tiling::fits(&whole, self) {
            whole
        } else {
            tiling::plan_bias_grad(self, dy_shape)?
        };
        self.check(&plan)?;
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
        self.check(&plan)?;
        Ok(plan)
    }

    /// Checks `plan` against the device's limits and the driver's loop budget.
    fn check(&self, plan: &OpPlan) -> Result<()> {
        plan.check(&self.limits)?;
        self.check_workgroups(plan)?;
        self.check_loops(plan)
    }

    /// Whether a workgroup of `spec` fits the device: its invocations (in x) and its
    /// workgroup memory.
    pub fn workgroup_fits(&self, spec: Spec) -> bool {
        self.workgroup_excess(spec).is_none()
    }

    /// The first workgroup limit `spec` exceeds: (limit name, limit, needed).
    fn workgroup_excess(&self, spec: Spec) -> Option<(&'static str, u64, u64)> {
        let l = &self.limits;
        let lanes = u64::from(spec.lanes());
        [
            (
                "max_compute_invocations_per_workgroup",
                u64::from(l.max_compute_invocations_per_workgroup),
                lanes,
            ),
            (
                "max_compute_workgroup_size_x",
                u64::from(l.max_compute_workgroup_size_x),
                lanes,
            ),
            (
                "max_compute_workgroup_storage_size",
                u64::from(l.max_compute_workgroup_storage_size),
                u64::from(spec.workgroup_bytes()),
            ),
        ]
        .into_iter()
        .find(|&(_, limit, needed)| needed > limit)
    }

    /// Checks every kernel of `plan` against the device's workgroup limits and storage buffers
    /// per stage.
    fn check_workgroups(&self, plan: &OpPlan) -> Result<()> {
        for d in plan.dispatches() {
            let storage = d.kernel.interface().storage.len() as u64;
            let per_stage = u64::from(self.limits.max_storage_buffers_per_shader_stage);
            let excess = self
                .workgroup_excess(d.spec)
                .or((storage > per_stage).then_some((
                    "max_storage_buffers_per_shader_stage",
                    per_stage,
                    storage,
                )));
            if let Some((limit_name, limit, needed)) = excess {
                return Err(Error::LimitTooSmall {
                    what: format!("{} at {}", d.kernel.file_name(), d.spec),
                    limit_name,
                    limit,
                    needed,
                });
            }
        }
        Ok(())
    }

    /// Checks every kernel of `plan` against the driver's loop budget.
    fn check_loops(&self, plan: &OpPlan) -> Result<()> {
        if let Some(d) = plan
            .dispatches()
            .find(|d| d.loop_trips() > self.max_loop_trips)
        {
            return Err(Error::LimitTooSmall {
                what: format!("{} ({} loop iterations per invocation)", d.kernel.file_name(), d.loop_trips()),
                limit_name: "the driver's loop limit (llvmpipe ends every loop of a shader after 65535 iterations)",
                limit: self.max_loop_trips,
                needed: d.loop_trips(),
            });
        }
        Ok(())
    }

    /// The plan of `op` on `problem` when its tensors fit one storage binding each; the tiler
    /// ([`tiling`]) splits the problem otherwise.
    pub(crate) fn plan_whole(&self, op: Op, problem: &ConvProblem, bias: bool) -> Result<OpPlan> {
        match op {
            Op::Forward => forward::plan(self, problem, bias),
            Op::InputGrad => input_grad::plan(self, problem),
            Op::WeightGrad => weight_grad::plan(self, problem, None),
            Op::BiasGrad => bias_grad::plan(self, problem.y_shape()),
        }
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// Direct depthwise kernel (forward, input gradient).
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
    /// A problem too large for one binding per tensor, run as `tiles` sub-problems, split along
    /// `split`, each on `inner`'s kind of path.
    Tiled {
        /// How the problem is split.
        split: TileSplit,
        /// Sub-problems.
        tiles: usize,
        /// The first sub-problem's path.
        inner: Box<Path>,
    },
    /// The plain SGEMM ceiling benchmark.
    Sgemm(TileSpec),
    /// An elementwise pass (the epilogue's own pass, its backward).
    Elementwise(TileSpec),
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
            Path::Tiled {
                split,
                tiles,
                inner,
            } => write!(f, "{inner} in {tiles} {split}"),
            Path::Sgemm(t) => write!(f, "plain SGEMM, {t}"),
            Path::Elementwise(t) => write!(f, "elementwise, {t}"),
        }
    }
}

/// How a tiled problem is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileSplit {
    /// Runs of whole images.
    Batch,
    /// Bands of output rows (input-gradient rows for the input gradient), one image at a time.
    Rows,
    /// Runs of channels, one image at a time (bias gradient).
    Channels,
    /// Spans of one channel plane (bias gradient).
    Spans,
}

impl fmt::Display for TileSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TileSplit::Batch => "batch chunks",
            TileSplit::Rows => "row bands",
            TileSplit::Channels => "channel chunks",
            TileSplit::Spans => "plane spans",
        })
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
    /// The residual z of a fused epilogue.
    Residual,
    /// The pre-activation a fused forward writes (an operand the caller provides).
    Pre,
    /// The tensor the epilogue's backward takes act′ from (the output or the pre-activation).
    Saved,
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
    /// Its epilogue's compile-time part (no fused epilogue unless the plan fuses one).
    pub epilogue: EpilogueSpec,
    /// The uniform it reads.
    pub uniform: UniformValue,
    /// Its storage bindings, by name.
    pub binds: Vec<Bind>,
    /// Workgroups that do work.
    pub workgroups: usize,
    /// The (x, y, z) grid those are folded into.
    pub grid: [u32; 3],
}

impl Dispatch {
    /// Loop iterations one invocation runs, all loops counted (an upper bound, read from the
    /// uniform): what a driver's loop limit ([`Planner::max_loop_trips`]) is checked against.
    /// A loop entered once and run `i` times counts `i + 1`: its last test is a trip too.
    pub fn loop_trips(&self) -> u64 {
        let w = u64::from;
        let bk = match self.spec {
            Spec::Block(b) => w(b.bk),
            _ => 1,
        };
        // A block core walks its reduction in BK-deep slices, each one loop of BK.
        let block = |len: u64| {
            let slices = len.div_ceil(bk);
            slices + 1 + slices * (bk + 1)
        };
        // `outer` entries of a loop of `inner` iterations, inside a loop of `outer`.
        let nested = |outer: u64, inner: u64| outer + 1 + outer * (inner + 1);
        match (self.kernel, &self.uniform) {
            (Kernel::Forward, UniformValue::Conv(c)) => nested(w(c.r) * w(c.s), w(c.cg)),
            (Kernel::InputGrad, UniformValue::Conv(c)) => {
                nested(w(c.tap_rn) * w(c.tap_sn), w(c.kg))
            }
            (Kernel::WeightGrad, UniformValue::Conv(c)) => nested(1, w(c.split_len.min(c.red_len))),
            (Kernel::BlockForward, UniformValue::Conv(c)) => block(w(c.cg) * w(c.r) * w(c.s)),
            (Kernel::BlockInputGrad, UniformValue::Conv(c)) => {
                block(w(c.kg) * w(c.tap_rn) * w(c.tap_sn))
            }
            (Kernel::BlockWeightGrad, UniformValue::Conv(c)) => {
                block(w(c.split_len.min(c.red_len)))
            }
            (Kernel::Col2im, UniformValue::Conv(c)) => nested(w(c.r), w(c.s)),
            (_, UniformValue::Pointwise(p)) => nested(1, w(p.red_g)),
            (_, UniformValue::PointwiseWeightGrad(p)) => nested(1, w(p.split_len.min(p.red_len))),
            (Kernel::DepthwiseWeightGrad, UniformValue::Depthwise(d)) => {
                (w(d.n) * w(d.blocks_h) * w(d.blocks_w)).div_ceil(w(d.splits).max(1)) + 1
            }
            (_, UniformValue::Depthwise(d)) => w(d.terms) + 1,
            (_, UniformValue::Reduce(r)) => w(r.splits) + 1,
            (_, UniformValue::Border(b)) => {
                w(b.kg) + 1 + w(b.kg) * (w(b.r) + 1) + w(b.kg) * w(b.r) * (w(b.s) + 1)
            }
            (_, UniformValue::BiasGrad(b)) => {
                // Per image: runs of 64 of the invocation's strided terms; then an 8-level tree.
                let steps = w(b.plane).div_ceil(256);
                let runs = steps.div_ceil(64);
                w(b.n) + 1 + w(b.n) * (runs + 1 + steps + runs) + 9
            }
            (_, UniformValue::Sgemm(g)) => nested(1, w(g.k)),
            _ => 1,
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A compute dispatch.
    Dispatch(Box<Dispatch>),
    /// Fill a byte range with zeros.
    Clear(BufferSlice),
    /// Copy `bytes` bytes between buffers (offsets and size multiples of 4).
    Copy {
        /// Where from.
        src: BufferSlice,
        /// Where to.
        dst: BufferSlice,
        /// How much.
        bytes: u64,
    },
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
    /// The tensors it reads and the shape each must have.
    pub inputs: Vec<(Operand, Vec<usize>)>,
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

    /// Bytes of the output.
    pub fn output_bytes(&self) -> u64 {
        self.output_len() as u64 * 4
    }

    /// Bytes of input `op` (0 when the plan reads no such input).
    pub fn input_bytes(&self, op: Operand) -> u64 {
        self.inputs
            .iter()
            .find(|(o, _)| *o == op)
            .map_or(0, |(_, shape)| shape.iter().product::<usize>() as u64 * 4)
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
        if self
            .dispatches()
            .any(|d| d.epilogue.fused && d.kernel != Kernel::Epilogue)
        {
            f.write_str(", epilogue fused")?;
        } else if self.path != Path::Elementwise(epilogue::ELEMENTWISE_TILE)
            && self.dispatches().any(|d| d.kernel == Kernel::Epilogue)
        {
            f.write_str(", then the epilogue's own pass")?;
        }
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
                    Step::Clear(slice) => write!(f, "\n  clear {:?}", slice.buffer)?,
                    Step::Copy { src, dst, bytes } => write!(
                        f,
                        "\n  copy {bytes} bytes {:?}+{} -> {:?}+{}",
                        src.buffer, src.offset, dst.buffer, dst.offset
                    )?,
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
        epilogue: EpilogueSpec::default(),
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

/// The tensors `op` reads on `problem` and their shapes.
pub(crate) fn inputs(op: Op, problem: &ConvProblem, bias: bool) -> Vec<(Operand, Vec<usize>)> {
    let x = (Operand::X, problem.x_shape().to_vec());
    let w = (Operand::W, problem.w_shape().to_vec());
    let dy = (Operand::Dy, problem.y_shape().to_vec());
    match op {
        Op::Forward if bias => vec![x, w, (Operand::Bias, vec![problem.k])],
        Op::Forward => vec![x, w],
        Op::InputGrad => vec![dy, w],
        Op::WeightGrad => vec![dy, x],
        Op::BiasGrad => vec![dy],
    }
}

/// A plan with one output and no scratch.
pub(crate) fn single(
    path: Path,
    inputs: Vec<(Operand, Vec<usize>)>,
    output_shape: Vec<usize>,
    output_what: &'static str,
    steps: Vec<Step>,
) -> OpPlan {
    OpPlan {
        path,
        inputs,
        output_shape,
        output_what,
        scratch: Vec::new(),
        steps,
    }
}
