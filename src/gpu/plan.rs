//! Which kernel, tile and split each op runs with on a problem: one place for the heuristics,
//! used by the ops, the benchmark's plan column and the tests that check each path is taken.
//!
//! Tiles start from the adapter class's [`TileProfile`] and shrink to the problem. On lavapipe
//! (one invocation per SIMD lane, a per-lane loop for every gathered load) big per-invocation
//! tiles with workgroup-uniform operand loads win; on real GPUs (registers per thread are
//! scarce, many threads hide latency) small tiles over wide workgroups and the workgroup-memory
//! core do. The tests check the GPU profile (and the block core in every pass) on lavapipe; it
//! was timed once, on an NVIDIA H200 (benches/NOTES.md, "H200").

use crate::error::{Error, Result};
use crate::gpu::kernels::{BlockSpec, Spec, TileSpec, WindowSpec};
use crate::gpu::uniform::{ConvUniform, DepthwiseUniform};
use crate::problem::{ConvProblem, Op};

/// The largest tiles of each kernel family for one class of adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileProfile {
    /// The implicit-GEMM register kernels: forward, input gradient (per stride phase) and
    /// weight gradient.
    pub gemm: TileSpec,
    /// The vec4 pointwise GEMM (`lane_tile` counts pixel quads).
    pub pointwise: TileSpec,
    /// Invocations per workgroup of the direct depthwise kernels.
    pub depthwise_lanes: u32,
    /// The lane count a shrinking GEMM tile stops at.
    pub min_lanes: u32,
    /// The largest tile of the workgroup-memory GEMM core (`None`: the register-tile kernels
    /// run every pass).
    pub block: Option<BlockSpec>,
    /// The dense passes the block core runs when `block` is set.
    pub block_passes: BlockPasses,
}

/// Which dense passes run on the workgroup-memory core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPasses {
    /// Forward.
    pub forward: bool,
    /// Input gradient.
    pub input_grad: bool,
    /// Weight gradient.
    pub weight_grad: bool,
}

impl BlockPasses {
    /// Every pass.
    pub const ALL: BlockPasses = BlockPasses {
        forward: true,
        input_grad: true,
        weight_grad: true,
    };
    /// None.
    pub const NONE: BlockPasses = BlockPasses {
        forward: false,
        input_grad: false,
        weight_grad: false,
    };
}

impl TileProfile {
    /// Software adapters that run one invocation per SIMD lane (lavapipe/llvmpipe).
    pub const SIMD_CPU: TileProfile = TileProfile {
        gemm: DEFAULT_TILE,
        pointwise: POINTWISE_TILE,
        depthwise_lanes: 8,
        min_lanes: 8,
        block: None,
        block_passes: BlockPasses::NONE,
    };
    /// Hardware GPUs: the workgroup-memory core (up to 128×128 per workgroup, 8×8 per thread)
    /// for the forward and weight gradient; the register kernels, 4×8 outputs per thread over
    /// 64-thread workgroups, for the input gradient. That split is what one H200 round measured
    /// (benches/NOTES.md, "H200"): the block core ran the forward 1.07× and the weight gradient
    /// 1.22× the register kernels (geomeans over the dense shapes), the input gradient 0.72×.
    pub const GPU: TileProfile = TileProfile {
        gemm: TileSpec {
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
        block: Some(BlockSpec {
            bm: 128,
            bn: 128,
            bk: 8,
            tm: 8,
            tn: 8,
        }),
        block_passes: BlockPasses {
            forward: true,
            input_grad: false,
            weight_grad: true,
        },
    };

    /// The profile for an adapter of `device_type`.
    pub fn for_device_type(device_type: wgpu::DeviceType) -> TileProfile {
        match device_type {
            wgpu::DeviceType::Cpu => TileProfile::SIMD_CPU,
            _ => TileProfile::GPU,
        }
    }
}

/// The largest implicit-GEMM tile on lavapipe, every dense pass: 32 lane items × 32 uniform
/// items per invocation, 8 lanes (one 256-bit SIMD vector). Lavapipe runs one invocation per SIMD
/// lane and pays a per-lane loop for every gathered load, so it rewards many FMAs per gathered
/// value. The input gradient took the 32-tall tile first (geomeans 16.6 / 15.5 GFLOP/s against
/// 14.8 / 12.6 for 16×32); once lane tiles were evened out over their tiles, the forward and
/// weight gradient gained from it too: 7–18 % on each of seven dense shapes, best of three
/// alternating runs each (48 and 64 tall were slower; benches/NOTES.md).
pub const DEFAULT_TILE: TileSpec = TileSpec {
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
/// lane extent or the grid has too few workgroups, and finally shrinks to the smallest that
/// still covers the lane extent with the same number of tiles (any integer, not only powers of
/// two: on lavapipe 14×14 and 7×7 planes ran 19–36 % faster, benches/NOTES.md).
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
    // Spread the lane extent evenly over the tiles that grid needs: same workgroup count, but
    // the last tile no longer pads up to a power of two (784 pixels on 4 tiles of 256 ran a
    // quarter of the FMAs on padding; 4 tiles of 196 run none).
    let tiles = lane_extent
        .max(1)
        .div_ceil(spec.lane_items_per_workgroup() as usize);
    spec.lane_tile =
        (lane_extent.max(1).div_ceil(tiles * spec.lanes as usize) as u32).min(spec.lane_tile);
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

/// The block core wants at least this many workgroups: two per multiprocessor of a 132-SM
/// H100/H200, so every SM has a second workgroup to switch to while one waits at a barrier.
/// Short grids shrink the block's rows; the weight gradient splits its reduction instead.
const BLOCK_TARGET_WORKGROUPS: usize = 264;
/// The core decodes reduction indices through an f32 reciprocal (`div_small`), exact below this.
const BLOCK_MAX_REDUCTION: usize = 1 << 22;
/// The weight gradient on the block core splits its reduction into chunks no shorter than this.
const BLOCK_MIN_SPLIT: usize = 512;

/// The block tile, starting from the profile's, for a GEMM of `rows` × `cols` with reduction
/// length `red_len` and `parallel` copies of the grid; `None` sends the pass to the register
/// kernels (profile without a block or not `enabled` for this pass, reduction too long, or
/// `GPUCONV_BLOCK=off`). The columns narrow to the smallest of bn, bn/2, bn/4 that covers
/// `cols` (keeping the thread count), then, with `shrink_rows`, the rows halve (down to 32)
/// while the grid is short.
pub(crate) fn block_tile(
    profile: &TileProfile,
    enabled: bool,
    rows: usize,
    cols: usize,
    red_len: usize,
    parallel: usize,
    shrink_rows: bool,
) -> Option<BlockSpec> {
    if red_len > BLOCK_MAX_REDUCTION {
        return None;
    }
    if let Some(forced) = block_override() {
        return forced;
    }
    let max = profile.block.filter(|_| enabled)?;
    let mut b = max;
    while b.bn > 32 && cols <= (b.bn / 2) as usize {
        b.bn /= 2;
        if b.tn > 4 {
            b.tn /= 2;
        } else if b.tm > 4 {
            b.tm /= 2;
        }
    }
    let workgroups =
        |b: BlockSpec| rows.div_ceil(b.bm as usize) * cols.div_ceil(b.bn as usize) * parallel;
    while shrink_rows && b.bm > 32 && workgroups(b) < BLOCK_TARGET_WORKGROUPS {
        b.bm /= 2;
    }
    Some(if b.is_valid() { b } else { max })
}

/// `GPUCONV_BLOCK=off` keeps every pass on the register kernels; `GPUCONV_BLOCK=bm,bn,bk,tm,tn`
/// forces that block tile on every dense pass whatever the adapter (tile sweeps, and A/Bs
/// against the register kernels in one run; benches/NOTES.md). Invalid values are ignored.
fn block_override() -> Option<Option<BlockSpec>> {
    let text = std::env::var("GPUCONV_BLOCK").ok()?;
    if text.trim() == "off" {
        return Some(None);
    }
    let v: Vec<u32> = text
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    match v[..] {
        [bm, bn, bk, tm, tn] => {
            let b = BlockSpec { bm, bn, bk, tm, tn };
            b.is_valid().then_some(Some(b))
        }
        _ => None,
    }
}

/// The forward pass on the block core.
pub(crate) fn forward_block(profile: &TileProfile, problem: &ConvProblem) -> Option<BlockSpec> {
    block_tile(
        profile,
        profile.block_passes.forward,
        problem.n * problem.p * problem.q,
        problem.k_per_group(),
        problem.c_per_group() * problem.r * problem.s,
        problem.params.groups,
        true,
    )
}

/// The input gradient on the block core (one dispatch per stride phase; sized by the largest).
pub(crate) fn input_grad_block(profile: &TileProfile, problem: &ConvProblem) -> Option<BlockSpec> {
    let [sh, sw] = problem.params.stride;
    block_tile(
        profile,
        profile.block_passes.input_grad,
        problem.n * problem.h.div_ceil(sh) * problem.w.div_ceil(sw),
        problem.c_per_group(),
        problem.k_per_group() * problem.r * problem.s,
        problem.params.groups,
        true,
    )
}

/// The weight gradient on the block core and its split-K, unless it runs the direct depthwise
/// kernel or the register kernels.
pub(crate) fn weight_grad_block(
    profile: &TileProfile,
    problem: &ConvProblem,
) -> Option<(BlockSpec, SplitK)> {
    if depthwise_weight_grad_window(profile, problem).is_some() {
        return None;
    }
    let crs = problem.c_per_group() * problem.r * problem.s;
    let red_len = problem.n * problem.p * problem.q;
    let kg = problem.k_per_group();
    let groups = problem.params.groups;
    let enabled = profile.block_passes.weight_grad;
    let b = block_tile(profile, enabled, crs, kg, red_len, groups, false)?;
    let tiles = crs.div_ceil(b.bm as usize) * kg.div_ceil(b.bn as usize) * groups;
    let wanted = BLOCK_TARGET_WORKGROUPS.div_ceil(tiles);
    let most = red_len.div_ceil(BLOCK_MIN_SPLIT).max(1);
    Some((b, SplitK::with_splits(red_len, wanted.clamp(1, most))))
}

/// The kernel rows (or columns) that meet whole output positions for input pixels of stride
/// phase `phase`: (first, step, count) of the arithmetic progression of taps t in 0..taps with
/// (phase + pad − t·dil) ≡ 0 (mod stride); count 0 when none does.
pub(crate) fn phase_taps(
    phase: usize,
    pad: usize,
    taps: usize,
    dil: usize,
    stride: usize,
) -> (usize, usize, usize) {
    let in_phase = |t: usize| {
        (phase + pad + stride * (t * dil).div_ceil(stride) - t * dil).is_multiple_of(stride)
    };
    let mut hits = (0..taps).filter(|&t| in_phase(t));
    let Some(first) = hits.next() else {
        return (0, 1, 0);
    };
    // Solutions of a linear congruence are evenly spaced: the second hit gives the step.
    match hits.next() {
        Some(second) => {
            let step = second - first;
            (first, step, (taps - first).div_ceil(step))
        }
        None => (first, 1, 1),
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
        profile.gemm,
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

/// The largest pointwise tile on lavapipe: 16 pixel quads (64 floats) × 32 channels per
/// invocation, 8 lanes (one SIMD vector per workgroup, like the implicit GEMM's). Against the
/// earlier 8 quads × 16 channels over 32 lanes, best of alternating runs on lavapipe: the
/// suite's pointwise layer forward 23–25 → 15.3 ms, input gradient 21.7 → 18.0, weight gradient
/// 20.2 → 17.7; two unseen 1×1 layers (28×28 expand, grouped 14×14) 8–42 % faster per op
/// (benches/NOTES.md).
pub const POINTWISE_TILE: TileSpec = TileSpec {
    lane_tile: 16,
    uniform_tile: 32,
    lanes: 8,
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
    if let Some((_, split)) = weight_grad_block(profile, problem) {
        return split;
    }
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
    Block(BlockSpec),
    Pointwise(PointwisePlan),
    ImplicitGemm(TileSpec),
}

pub(crate) fn forward_path(profile: &TileProfile, problem: &ConvProblem) -> Result<ForwardPath> {
    if let Some(plan) = depthwise_plan(profile, problem, PointwisePass::Forward)? {
        return Ok(ForwardPath::Depthwise(plan));
    }
    if let Some(spec) = forward_block(profile, problem) {
        return Ok(ForwardPath::Block(spec));
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
    /// One block-core GEMM per stride phase.
    PhaseBlock(BlockSpec),
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
    if let Some(spec) = input_grad_block(profile, problem) {
        return Ok(InputGradPath::PhaseBlock(spec));
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
            ForwardPath::Block(spec) => format!("implicit GEMM, {spec}"),
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
            InputGradPath::PhaseBlock(spec) => format!(
                "implicit GEMM x {} stride phases, {spec}",
                sh.min(problem.h) * sw.min(problem.w)
            ),
        }),
        Op::WeightGrad => Ok(match depthwise_weight_grad_window(profile, problem) {
            Some(spec) => format!("direct depthwise + split reduce, {}", Spec::from(spec)),
            None => match weight_grad_block(profile, problem) {
                Some((spec, split)) => {
                    format!("GEMM split-K {}x{}, {spec}", split.splits, split.split_len)
                }
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
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The tap progression lists exactly the taps whose (phase + pad − t·dil) is a multiple of
    /// the stride, for every small stride, dilation, padding and kernel size.
    #[test]
    fn phase_taps_match_brute_force() {
        for stride in 1..=5 {
            for dil in 1..=4 {
                for taps in 1..=7 {
                    for pad in 0..=6 {
                        for phase in 0..stride {
                            let want: Vec<usize> = (0..taps)
                                .filter(|&t| {
                                    ((phase + pad) as i64 - (t * dil) as i64)
                                        .rem_euclid(stride as i64)
                                        == 0
                                })
                                .collect();
                            let (first, step, count) = phase_taps(phase, pad, taps, dil, stride);
                            let got: Vec<usize> = (0..count).map(|i| first + i * step).collect();
                            assert_eq!(
                                got, want,
                                "phase {phase} pad {pad} taps {taps} dil {dil} stride {stride}"
                            );
                        }
                    }
                }
            }
        }
    }
}
