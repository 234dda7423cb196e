//! Which kernel, tile and split each op runs with on a problem: one place for the heuristics,
//! used by the ops, the benchmark's plan column and the tests that check each path is taken.
//!
//! Tiles start from the adapter class's [`TileProfile`] and shrink to the problem. On lavapipe
//! (one invocation per SIMD lane, a per-lane loop for every gathered load) big per-invocation
//! tiles with workgroup-uniform operand loads win; on real GPUs (registers per thread are
//! scarce, many threads hide latency) small tiles over wide workgroups do. The GPU profile is
//! checked for correctness on lavapipe by the tests but has not been timed on a GPU yet.

use crate::error::{Error, Result};
use crate::gpu::kernels::{Spec, TileSpec, WindowSpec};
use crate::gpu::uniform::{ConvUniform, DepthwiseUniform};
use crate::problem::{ConvProblem, Op};

/// The largest tiles of each kernel family for one class of adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileProfile {
    /// Implicit-GEMM forward and weight gradient.
    pub gemm: TileSpec,
    /// Implicit-GEMM input gradient (one GEMM per stride phase).
    pub input_grad: TileSpec,
    /// The vec4 pointwise GEMM (`lane_tile` counts pixel quads).
    pub pointwise: TileSpec,
    /// Invocations per workgroup of the direct depthwise kernels.
    pub depthwise_lanes: u32,
    /// The lane count a shrinking GEMM tile stops at.
    pub min_lanes: u32,
}

impl TileProfile {
    /// Software adapters that run one invocation per SIMD lane (lavapipe/llvmpipe).
    pub const SIMD_CPU: TileProfile = TileProfile {
        gemm: DEFAULT_TILE,
        input_grad: INPUT_GRAD_TILE,
        pointwise: POINTWISE_TILE,
        depthwise_lanes: 8,
        min_lanes: 8,
    };
    /// Hardware GPUs: 4×8 outputs per thread, 64-thread workgroups (coalesced gathers across
    /// the workgroup, broadcast uniform loads).
    pub const GPU: TileProfile = TileProfile {
        gemm: TileSpec {
            lane_tile: 4,
            uniform_tile: 8,
            lanes: 64,
        },
        input_grad: TileSpec {
            lane_tile: 4,
            uniform_tile: 8,
            lanes: 64,
        },
        pointwise: TileSpec {
            lane_tile: 2,
            uniform_tile: 8,
            lanes: 64,
        },
        depthwise_lanes: 64,
        min_lanes: 32,
    };

    /// The profile for an adapter of `device_type`.
    pub fn for_device_type(device_type: wgpu::DeviceType) -> TileProfile {
        match device_type {
            wgpu::DeviceType::Cpu => TileProfile::SIMD_CPU,
            _ => TileProfile::GPU,
        }
    }
}

/// The largest implicit-GEMM tile: 16 lane items × 32 uniform items per invocation, 8 lanes (one
/// 256-bit SIMD vector on lavapipe). Lavapipe runs one invocation per SIMD lane and pays a
/// per-lane loop for every gathered load, so it rewards many FMAs per gathered value
/// (tile sweep in benches/NOTES.md).
pub const DEFAULT_TILE: TileSpec = TileSpec {
    lane_tile: 16,
    uniform_tile: 32,
    lanes: 8,
};

/// The input gradient's largest tile on lavapipe: 32 pixels × 32 channels per invocation. Its
/// inner loop loads one dY value per pixel and one weight per channel like the forward's, but
/// with fewer index tests per tap (a stride phase has no holes), so the taller tile pays: two
/// alternating A/B rounds over the six dense 3×3 shapes gave geomeans 16.6 / 15.5 GFLOP/s against
/// 14.8 / 12.6 for the 16×32 tile (benches/NOTES.md).
pub const INPUT_GRAD_TILE: TileSpec = TileSpec {
    lane_tile: 32,
    uniform_tile: 32,
    lanes: 8,
};

/// Below this many workgroups a pass shrinks its lane tile so every core has work.
const MIN_WORKGROUPS: usize = 32;

/// The tile, starting from `max`, for a GEMM pass with `lane_extent` items along the lane
/// dimension, `uniform_extent` along the uniform one, and `parallel` independent copies of that grid
/// (groups × splits). The uniform tile is the smallest power of two covering `uniform_extent`
/// (so depthwise, with one channel per group, wastes nothing), capped at the default; the lane
/// tile then halves (lanes first, down to `min_lanes`) while it is more than twice the
/// lane extent or the grid has too few workgroups.
pub fn gemm_tile(
    max: TileSpec,
    min_lanes: u32,
    lane_extent: usize,
    uniform_extent: usize,
    parallel: usize,
) -> TileSpec {
    if let Some(spec) = tile_override() {
        return spec;
    }
    let mut spec = max;
    spec.uniform_tile = (uniform_extent.max(1).next_power_of_two() as u32).min(spec.uniform_tile);
    let workgroups = |t: TileSpec| {
        lane_extent.div_ceil(t.lane_items_per_workgroup() as usize)
            * uniform_extent.div_ceil(t.uniform_tile as usize)
            * parallel
    };
    // Halve while half the lane items would still cover the whole extent, or the grid is short.
    while (spec.lane_items_per_workgroup() as usize / 2 >= lane_extent.max(1))
        || workgroups(spec) < MIN_WORKGROUPS
    {
        if spec.lanes > min_lanes {
            spec.lanes /= 2;
        } else if spec.lane_tile > 1 {
            spec.lane_tile /= 2;
        } else {
            break;
        }
    }
    spec
}

/// `GPUCONV_TILE=lane_tile,uniform_tile,lanes` forces one tile on every GEMM pass (implicit and
/// pointwise), for tile sweeps (benches/NOTES.md); malformed values are ignored.
fn tile_override() -> Option<TileSpec> {
    let text = std::env::var("GPUCONV_TILE").ok()?;
    let v: Vec<u32> = text
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    match v[..] {
        [lane_tile, uniform_tile, lanes] if lane_tile * uniform_tile * lanes > 0 => {
            Some(TileSpec {
                lane_tile,
                uniform_tile,
                lanes,
            })
        }
        _ => None,
    }
}

/// The tile each pass uses on `problem`.
pub(crate) fn forward_tile(profile: &TileProfile, problem: &ConvProblem) -> TileSpec {
    gemm_tile(
        profile.gemm,
        profile.min_lanes,
        problem.n * problem.p * problem.q,
        problem.k_per_group(),
        problem.params.groups,
    )
}

pub(crate) fn input_grad_tile(profile: &TileProfile, problem: &ConvProblem) -> TileSpec {
    let [sh, sw] = problem.params.stride;
    let phase_pixels = problem.n * problem.h.div_ceil(sh) * problem.w.div_ceil(sw);
    gemm_tile(
        profile.input_grad,
        profile.min_lanes,
        phase_pixels,
        problem.c_per_group(),
        problem.params.groups,
    )
}

pub(crate) fn weight_grad_tile(
    profile: &TileProfile,
    problem: &ConvProblem,
    split: SplitK,
) -> TileSpec {
    let crs = problem.c_per_group() * problem.r * problem.s;
    let max = if pointwise_weight_grad(problem) {
        profile.pointwise
    } else {
        profile.gemm
    };
    gemm_tile(
        max,
        profile.min_lanes,
        crs,
        problem.k_per_group(),
        problem.params.groups * split.splits,
    )
}

/// Whether the weight gradient runs on pointwise_weight_grad.wgsl: a pointwise problem whose
/// planes are whole vec4 quads (its reduction then counts quads, not pixels).
pub(crate) fn pointwise_weight_grad(problem: &ConvProblem) -> bool {
    problem.is_pointwise() && (problem.h * problem.w).is_multiple_of(4)
}

/// The weight gradient's reduction length: N·P·Q pixels, or N·P·Q/4 quads on the vec4 path.
pub(crate) fn weight_grad_reduction(problem: &ConvProblem) -> usize {
    let pixels = problem.n * problem.p * problem.q;
    if pointwise_weight_grad(problem) {
        pixels / 4
    } else {
        pixels
    }
}

/// Split-K aims for at least this many workgroups in the weight gradient...
const SPLIT_K_TARGET_WORKGROUPS: usize = 128;
/// ...but never splits the reduction into chunks shorter than this.
const SPLIT_K_MIN_CHUNK: usize = 256;

/// How the weight gradient's reduction over N·P·Q is split across workgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitK {
    /// Number of partial sums.
    pub splits: usize,
    /// Reduction indices per split (the last may be shorter).
    pub split_len: usize,
}

impl SplitK {
    /// The split for a reduction of `red_len` over a grid of `tiles` workgroups.
    pub fn choose(red_len: usize, tiles: usize) -> SplitK {
        let wanted = SPLIT_K_TARGET_WORKGROUPS.div_ceil(tiles.max(1));
        let most = red_len.div_ceil(SPLIT_K_MIN_CHUNK).max(1);
        SplitK::with_splits(red_len, wanted.clamp(1, most))
    }

    /// Exactly `splits` chunks of equal length (the last shorter), none empty.
    pub fn with_splits(red_len: usize, splits: usize) -> SplitK {
        let split_len = red_len.div_ceil(splits.clamp(1, red_len.max(1)));
        SplitK {
            splits: red_len.div_ceil(split_len),
            split_len,
        }
    }
}

pub(crate) fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: v as u128,
        limit: u32::MAX as u128,
    })
}

/// Which pass a pointwise GEMM computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PointwisePass {
    Forward,
    InputGrad,
}

/// A planned dispatch: its uniform, kernel specialisation and workgroup count.
pub(crate) struct Plan<U, S> {
    pub uniform: U,
    pub spec: S,
    pub workgroups: usize,
}

/// A pointwise (plain GEMM) dispatch.
pub(crate) type PointwisePlan = Plan<ConvUniform, TileSpec>;
/// A direct depthwise dispatch for the forward pass or the stride-1 input gradient.
pub(crate) type DepthwisePlan = Plan<DepthwiseUniform, WindowSpec>;

impl PointwisePlan {
    /// The plan with the bias flag set.
    pub fn with_bias(mut self, has_bias: bool) -> Self {
        self.uniform.has_bias = has_bias as u32;
        self
    }
}

impl DepthwisePlan {
    /// The plan with the bias flag set.
    pub fn with_bias(mut self, has_bias: bool) -> Self {
        self.uniform.has_bias = has_bias as u32;
        self
    }
}

/// The largest pointwise tile: 8 pixel quads (32 floats) × 16 channels per invocation, 32 lanes.
pub const POINTWISE_TILE: TileSpec = TileSpec {
    lane_tile: 8,
    uniform_tile: 16,
    lanes: 32,
};

/// The plain-GEMM plan for a 1×1 stride-1 unpadded problem whose planes hold whole vec4 quads;
/// `None` sends the problem to the implicit GEMM.
pub(crate) fn pointwise_plan(
    profile: &TileProfile,
    problem: &ConvProblem,
    pass: PointwisePass,
) -> Option<PointwisePlan> {
    if !problem.is_pointwise() {
        return None;
    }
    let (cg, kg) = (problem.c_per_group(), problem.k_per_group());
    let gemm = match pass {
        PointwisePass::Forward => PlainGemm {
            src_c: problem.c,
            dst_c: problem.k,
            red_g: cg,
            out_g: kg,
            stride_out: cg,
            stride_red: 1,
        },
        PointwisePass::InputGrad => PlainGemm {
            src_c: problem.k,
            dst_c: problem.c,
            red_g: kg,
            out_g: cg,
            stride_out: 1,
            stride_red: cg,
        },
    };
    plain_gemm_plan(profile, problem, problem.h * problem.w, gemm)
}

/// Groups with fewer input channels than this run the input gradient as a column GEMM plus
/// col2im: the implicit GEMM's uniform tile would hold only C/g channels, one gathered dY value
/// feeding that few FMAs (the 3-channel stem ran at 5 GFLOP/s on lavapipe).
const COLUMN_INPUT_GRAD_BELOW_CHANNELS: usize = 8;
/// The column buffer (N·C·R·S·P·Q floats) stays under 256 MiB, else the implicit GEMM runs.
const COLUMN_MAX_ELEMENTS: usize = 64 << 20;

/// The column GEMM of the input gradient for few-channel groups: col[n, g·crs + (c, r, s), p, q]
/// = Σ_k W[g·kg + k, c, r, s]·dY[n, g·kg + k, p, q] on the pointwise kernel (W read as a
/// kg × crs matrix per group); col2im.wgsl then sums it into dX. `None` when the problem does
/// not qualify.
pub(crate) fn column_input_grad_plan(
    profile: &TileProfile,
    problem: &ConvProblem,
) -> Option<PointwisePlan> {
    let pq = problem.p * problem.q;
    let crs = problem.c_per_group() * problem.r * problem.s;
    if problem.is_pointwise()
        || problem.is_depthwise()
        || problem.c_per_group() >= COLUMN_INPUT_GRAD_BELOW_CHANNELS
        || problem.n * problem.params.groups * crs * pq > COLUMN_MAX_ELEMENTS
    {
        return None;
    }
    let gemm = PlainGemm {
        src_c: problem.k,
        dst_c: problem.params.groups * crs,
        red_g: problem.k_per_group(),
        out_g: crs,
        stride_out: 1,
        stride_red: crs,
    };
    plain_gemm_plan(profile, problem, pq, gemm)
}

/// One pointwise-kernel GEMM per group: dst[n, g·out_g + u, pix] = Σ_t A(g, u, t)·src[n,
/// g·red_g + t, pix], A(g, u, t) = W[g·out_g·red_g + u·stride_out + t·stride_red].
struct PlainGemm {
    src_c: usize,
    dst_c: usize,
    red_g: usize,
    out_g: usize,
    stride_out: usize,
    stride_red: usize,
}

/// The dispatch of `gemm` over planes of `plane` pixels, which must be whole vec4 quads.
fn plain_gemm_plan(
    profile: &TileProfile,
    problem: &ConvProblem,
    plane: usize,
    gemm: PlainGemm,
) -> Option<PointwisePlan> {
    if !plane.is_multiple_of(4) {
        return None;
    }
    let rows = problem.n * plane / 4;
    let groups = problem.params.groups;
    let spec = gemm_tile(
        profile.pointwise,
        profile.min_lanes,
        rows,
        gemm.out_g,
        groups,
    );
    let tiles_m = rows.div_ceil(spec.lane_items_per_workgroup() as usize);
    let tiles_n = gemm.out_g.div_ceil(spec.uniform_tile as usize);
    let workgroups = tiles_m * tiles_n * groups;
    let small = |v: usize| u32::try_from(v).ok();
    let uniform = ConvUniform {
        // The kernel only uses h·w, the pixels per plane.
        h: small(plane)?,
        w: 1,
        c: small(gemm.src_c)?,
        k: small(gemm.dst_c)?,
        cg: small(gemm.red_g)?,
        kg: small(gemm.out_g)?,
        a_stride_out: small(gemm.stride_out)?,
        a_stride_red: small(gemm.stride_red)?,
        rows: small(rows)?,
        tiles_m: small(tiles_m)?,
        tiles_n: small(tiles_n)?,
        tiles_total: small(workgroups)?,
        ..ConvUniform::from_problem(problem)
    };
    Some(PointwisePlan {
        uniform,
        spec,
        workgroups,
    })
}

/// Largest kernel (R·S taps) the direct depthwise kernels unroll; bigger ones take the GEMM path.
const DEPTHWISE_MAX_TAPS: usize = 49;
/// Input values one depthwise invocation keeps in registers: blocks shrink until the window fits.
const DEPTHWISE_MAX_WINDOW: u32 = 64;
/// Windows above this (large dilations even at one output per invocation) take the GEMM path.
const DEPTHWISE_WINDOW_LIMIT: u32 = 256;
/// Depthwise weight gradient: partial sums per channel (added by reduce_splits).
pub(crate) const DEPTHWISE_SPLITS: usize = 32;

/// The direct-kernel block for a depthwise pass producing `out` planes at `stride`, or `None`
/// when the problem is not depthwise or its kernel is too large to unroll.
pub(crate) fn depthwise_window(
    profile: &TileProfile,
    problem: &ConvProblem,
    out: [usize; 2],
    stride: [usize; 2],
) -> Option<WindowSpec> {
    if !problem.is_depthwise() || problem.r * problem.s > DEPTHWISE_MAX_TAPS {
        return None;
    }
    let [dh, dw] = problem.params.dilation;
    let small = |v: usize| u32::try_from(v).ok();
    let mut spec = WindowSpec {
        rows: out[0].clamp(1, 4) as u32,
        cols: out[1].clamp(1, 4) as u32,
        kernel: [problem.r as u32, problem.s as u32],
        stride: [small(stride[0])?, small(stride[1])?],
        dilation: [small(dh)?, small(dw)?],
        lanes: profile.depthwise_lanes,
    };
    let area = |w: WindowSpec| w.window().iter().map(|&v| v as u64).product::<u64>();
    while area(spec) > DEPTHWISE_MAX_WINDOW as u64 && (spec.rows > 1 || spec.cols > 1) {
        if spec.rows >= spec.cols {
            spec.rows /= 2;
        } else {
            spec.cols /= 2;
        }
    }
    (area(spec) <= DEPTHWISE_WINDOW_LIMIT as u64).then_some(spec)
}

/// The depthwise uniform's geometry for the forward direction (X → Y), shared by the forward
/// pass and the weight gradient; dispatch fields are left zero.
pub(crate) fn depthwise_forward_geometry(problem: &ConvProblem) -> DepthwiseUniform {
    // ConvProblem::new bounds every size below u32::MAX and the padding below i32::MAX.
    let [pad_top, pad_left, _, _] = problem.params.padding;
    DepthwiseUniform {
        in_c: problem.c as u32,
        out_c: problem.k as u32,
        terms: 1,
        in_h: problem.h as u32,
        in_w: problem.w as u32,
        out_h: problem.p as u32,
        out_w: problem.q as u32,
        off_h: -(pad_top as i64) as i32,
        off_w: -(pad_left as i64) as i32,
        flip: 0,
        chan_div: problem.k_per_group() as u32,
        chan_mult: 1,
        ..Default::default()
    }
}

pub(crate) fn depthwise_plan(
    profile: &TileProfile,
    problem: &ConvProblem,
    pass: PointwisePass,
) -> Result<Option<DepthwisePlan>> {
    let [pad_top, pad_left, _, _] = problem.params.padding;
    let [dh, dw] = problem.params.dilation;
    let kg = problem.k_per_group();
    let (spec, uniform) = match pass {
        PointwisePass::Forward => {
            let Some(spec) = depthwise_window(
                profile,
                problem,
                [problem.p, problem.q],
                problem.params.stride,
            ) else {
                return Ok(None);
            };
            (spec, depthwise_forward_geometry(problem))
        }
        PointwisePass::InputGrad => {
            // Stride 1 only: then dX is a correlation of dY with the flipped taps. Strided
            // depthwise input gradients take the phase-split GEMM.
            if problem.params.stride != [1, 1] {
                return Ok(None);
            }
            let Some(spec) = depthwise_window(profile, problem, [problem.h, problem.w], [1, 1])
            else {
                return Ok(None);
            };
            let offset =
                |pad: usize, taps: usize, dil: usize| pad as i64 - ((taps - 1) * dil) as i64;
            let off_h = offset(pad_top, problem.r, dh);
            let off_w = offset(pad_left, problem.s, dw);
            let uniform = DepthwiseUniform {
                in_c: problem.k as u32,
                out_c: problem.c as u32,
                terms: kg as u32,
                in_h: problem.p as u32,
                in_w: problem.q as u32,
                out_h: problem.h as u32,
                out_w: problem.w as u32,
                off_h: i32::try_from(off_h)
                    .map_err(|_| too_large("input-gradient offset", off_h))?,
                off_w: i32::try_from(off_w)
                    .map_err(|_| too_large("input-gradient offset", off_w))?,
                flip: 1,
                chan_div: 1,
                chan_mult: kg as u32,
                ..Default::default()
            };
            (spec, uniform)
        }
    };
    let blocks_h = (uniform.out_h as usize).div_ceil(spec.rows as usize);
    let blocks_w = (uniform.out_w as usize).div_ceil(spec.cols as usize);
    let chunks = (blocks_h * blocks_w).div_ceil(spec.lanes as usize);
    let workgroups = problem.n * uniform.out_c as usize * chunks;
    let uniform = DepthwiseUniform {
        n: problem.n as u32,
        blocks_h: u32_of("depthwise blocks", blocks_h)?,
        blocks_w: u32_of("depthwise blocks", blocks_w)?,
        chunks: u32_of("depthwise workgroups per plane", chunks)?,
        tiles_total: u32_of("depthwise workgroups", workgroups)?,
        ..uniform
    };
    Ok(Some(DepthwisePlan {
        uniform,
        spec,
        workgroups,
    }))
}

pub(crate) fn too_large(what: &str, v: i64) -> Error {
    Error::TooLarge {
        what: what.to_string(),
        value: v.unsigned_abs() as u128,
        limit: i32::MAX as u128,
    }
}

/// The split-K the weight gradient uses for `problem`.
pub fn weight_grad_split(profile: &TileProfile, problem: &ConvProblem) -> SplitK {
    // Counted with the full-size tile: splitting first keeps the tile big (shrinking it to fill
    // the machine would cost more than the split's extra reduction pass).
    let max = if pointwise_weight_grad(problem) {
        profile.pointwise
    } else {
        profile.gemm
    };
    let kg = problem.k_per_group();
    let uniform_tile = (kg.next_power_of_two() as u32).min(max.uniform_tile);
    let crs = problem.c_per_group() * problem.r * problem.s;
    let tiles_m = crs.div_ceil(max.lane_items_per_workgroup() as usize);
    let tiles_n = kg.div_ceil(uniform_tile as usize);
    let tiles = tiles_m * tiles_n * problem.params.groups;
    SplitK::choose(weight_grad_reduction(problem), tiles)
}

/// The forward pass's kernel path. [`forward_path`] is the one place that picks it, for the op
/// and for [`describe_plan`] alike.
pub(crate) enum ForwardPath {
    Depthwise(DepthwisePlan),
    Pointwise(PointwisePlan),
    ImplicitGemm(TileSpec),
}

pub(crate) fn forward_path(profile: &TileProfile, problem: &ConvProblem) -> Result<ForwardPath> {
    if let Some(plan) = depthwise_plan(profile, problem, PointwisePass::Forward)? {
        return Ok(ForwardPath::Depthwise(plan));
    }
    if let Some(plan) = pointwise_plan(profile, problem, PointwisePass::Forward) {
        return Ok(ForwardPath::Pointwise(plan));
    }
    Ok(ForwardPath::ImplicitGemm(forward_tile(profile, problem)))
}

/// The input gradient's kernel path, picked by [`input_grad_path`].
pub(crate) enum InputGradPath {
    Depthwise(DepthwisePlan),
    /// Column GEMM on the pointwise kernel, then col2im.
    Column(PointwisePlan),
    Pointwise(PointwisePlan),
    /// One implicit GEMM per stride phase.
    PhaseGemm(TileSpec),
}

pub(crate) fn input_grad_path(
    profile: &TileProfile,
    problem: &ConvProblem,
) -> Result<InputGradPath> {
    if let Some(plan) = depthwise_plan(profile, problem, PointwisePass::InputGrad)? {
        return Ok(InputGradPath::Depthwise(plan));
    }
    if let Some(plan) = column_input_grad_plan(profile, problem) {
        return Ok(InputGradPath::Column(plan));
    }
    if let Some(plan) = pointwise_plan(profile, problem, PointwisePass::InputGrad) {
        return Ok(InputGradPath::Pointwise(plan));
    }
    Ok(InputGradPath::PhaseGemm(input_grad_tile(profile, problem)))
}

/// The direct depthwise block of the weight gradient, or `None` for the split-K GEMM (whose
/// kernel [`pointwise_weight_grad`] picks).
pub(crate) fn depthwise_weight_grad_window(
    profile: &TileProfile,
    problem: &ConvProblem,
) -> Option<WindowSpec> {
    depthwise_window(
        profile,
        problem,
        [problem.p, problem.q],
        problem.params.stride,
    )
}

/// Which kernel and tile an op runs with on `problem`, for reports and `--verbose`.
pub fn describe_plan(profile: &TileProfile, op: Op, problem: &ConvProblem) -> String {
    let [sh, sw] = problem.params.stride;
    let described = match op {
        Op::Forward => forward_path(profile, problem).map(|path| match path {
            ForwardPath::Depthwise(plan) => format!("direct depthwise, {}", Spec::from(plan.spec)),
            ForwardPath::Pointwise(plan) => format!("pointwise GEMM on vec4 pixels, {}", plan.spec),
            ForwardPath::ImplicitGemm(spec) => format!("implicit GEMM, {spec}"),
        }),
        Op::InputGrad => input_grad_path(profile, problem).map(|path| match path {
            InputGradPath::Depthwise(plan) => {
                format!("direct depthwise, {}", Spec::from(plan.spec))
            }
            InputGradPath::Column(plan) => format!("column GEMM (vec4) + col2im, {}", plan.spec),
            InputGradPath::Pointwise(plan) => {
                format!("pointwise GEMM on vec4 pixels, {}", plan.spec)
            }
            InputGradPath::PhaseGemm(spec) => format!(
                "implicit GEMM x {} stride phases, {spec}",
                sh.min(problem.h) * sw.min(problem.w)
            ),
        }),
        Op::WeightGrad => Ok(match depthwise_weight_grad_window(profile, problem) {
            Some(spec) => format!("direct depthwise + split reduce, {}", Spec::from(spec)),
            None => {
                let split = weight_grad_split(profile, problem);
                let kind = if pointwise_weight_grad(problem) {
                    "pointwise GEMM on vec4 quads, split-K"
                } else {
                    "GEMM split-K"
                };
                format!(
                    "{kind} {}x{}, {}",
                    split.splits,
                    split.split_len,
                    weight_grad_tile(profile, problem, split)
                )
            }
        }),
        Op::BiasGrad => Ok("workgroup tree reduction".to_string()),
    };
    described.unwrap_or_else(|e| format!("not runnable: {e}"))
}

/// The 1D kernels (split reduction, bias gradient) use no register tile.
pub(crate) fn reduce_spec() -> TileSpec {
    TileSpec {
        lane_tile: 1,
        uniform_tile: 1,
        lanes: 64,
    }
}
