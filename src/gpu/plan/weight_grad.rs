//! The weight gradient: dW\[k,c,r,s\] = Σ_{n,p,q} dY\[n,k,p,q\]·X\[n,c,…\].
//!
//! In order of preference: the direct depthwise kernel, the workgroup-memory core, and the
//! register core (on vec4 quads for 1×1 problems). The GEMM paths split the reduction over
//! N·P·Q (split-K) so enough workgroups run; the slices are added by reduce_splits in a fixed
//! order, so every result repeats bit for bit. PERFORMANCE.md, [#split-k].

use crate::error::Result;
use crate::gpu::kernels::{BlockSpec, Kernel, Spec, TileSpec};
use crate::gpu::plan::profile::{
    block_passes, block_tile, gemm_tile, reduce_spec, BLOCK_TARGET_WORKGROUPS,
};
use crate::gpu::plan::{
    depthwise, dispatch, f32_bytes, mul, u32_of, BufferRef, OpPlan, Operand, Path, Planner,
    ScratchBuffer,
};
use crate::gpu::uniform::{ConvUniform, PointwiseWeightGradUniform, ReduceUniform, UniformValue};
use crate::problem::{ConvProblem, Op};

/// Split-K aims for at least this many workgroups on the register core...
const SPLIT_K_TARGET_WORKGROUPS: usize = 128;
/// ...but never splits the reduction into chunks shorter than this.
const SPLIT_K_MIN_CHUNK: usize = 256;
/// The block core splits its reduction into chunks no shorter than this.
const BLOCK_MIN_SPLIT: usize = 512;

/// How the weight gradient's reduction over N·P·Q is split across workgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SplitK {
    /// Number of partial sums.
    pub splits: usize,
    /// Reduction indices per split (the last may be shorter, none is empty).
    pub split_len: usize,
}

impl SplitK {
    /// The split for a reduction of `red_len` over a grid of `tiles` workgroups.
    pub fn choose(red_len: usize, tiles: usize) -> SplitK {
        let wanted = SPLIT_K_TARGET_WORKGROUPS.div_ceil(tiles.max(1));
        let most = red_len.div_ceil(SPLIT_K_MIN_CHUNK).max(1);
        SplitK::with_splits(red_len, wanted.clamp(1, most))
    }

    /// Up to `splits` chunks of equal length (the last shorter), none empty.
    pub fn with_splits(red_len: usize, splits: usize) -> SplitK {
        let split_len = red_len.div_ceil(splits.clamp(1, red_len.max(1))).max(1);
        SplitK {
            splits: red_len.div_ceil(split_len).max(1),
            split_len,
        }
    }
}

/// Whether the weight gradient runs on pointwise_weight_grad.wgsl: a pointwise problem whose
/// planes are whole vec4 quads (its reduction then counts quads, not pixels).
fn vec4(problem: &ConvProblem) -> bool {
    problem.is_pointwise() && (problem.h * problem.w).is_multiple_of(4)
}

/// The block tile and split, or `None` for the register core.
fn block(planner: &Planner, problem: &ConvProblem) -> Option<(BlockSpec, SplitK)> {
    let crs = problem.c_per_group() * problem.r * problem.s;
    let red_len = problem.n * problem.p * problem.q;
    let kg = problem.k_per_group();
    let groups = problem.params.groups;
    let enabled = block_passes(&planner.profile, &planner.overrides).weight_grad;
    let b = block_tile(planner, enabled, crs, kg, red_len, groups, false)?;
    let tiles = crs
        .div_ceil(b.bm as usize)
        .saturating_mul(kg.div_ceil(b.bn as usize))
        .saturating_mul(groups);
    let wanted = BLOCK_TARGET_WORKGROUPS.div_ceil(tiles.max(1));
    let most = red_len.div_ceil(BLOCK_MIN_SPLIT).max(1);
    Some((b, SplitK::with_splits(red_len, wanted.clamp(1, most))))
}

/// The register tile and split: the split is counted with the full-size tile first (splitting
/// keeps the tile big; shrinking it to fill the machine would cost more than the split's extra
/// reduction pass), then the tile shrinks to the split grid.
fn register(planner: &Planner, problem: &ConvProblem, splits: Option<usize>) -> (TileSpec, SplitK) {
    let profile = &planner.profile;
    let max = if vec4(problem) {
        profile.pointwise
    } else {
        profile.gemm
    };
    let red_len = reduction(problem);
    let crs = problem.c_per_group() * problem.r * problem.s;
    let kg = problem.k_per_group();
    let split = match splits {
        Some(s) => SplitK::with_splits(red_len, s),
        None => {
            let uniform_tile = kg
                .checked_next_power_of_two()
                .map_or(max.uniform_tile as usize, |v| {
                    v.min(max.uniform_tile as usize)
                });
            let tiles = crs
                .div_ceil(max.lane_items_per_workgroup() as usize)
                .saturating_mul(kg.div_ceil(uniform_tile))
                .saturating_mul(problem.params.groups);
            SplitK::choose(red_len, tiles)
        }
    };
    let tile = gemm_tile(
        &planner.overrides,
        max,
        profile.min_lanes,
        crs,
        kg,
        problem.params.groups.saturating_mul(split.splits),
    );
    (tile, split)
}

/// The reduction length of the register core: N·P·Q pixels, or N·P·Q/4 quads on the vec4 path.
fn reduction(problem: &ConvProblem) -> usize {
    let pixels = problem.n * problem.p * problem.q;
    if vec4(problem) {
        pixels / 4
    } else {
        pixels
    }
}

/// The plan of the weight gradient; `splits` forces the split-K count of the GEMM paths.
pub(crate) fn plan(
    planner: &Planner,
    problem: &ConvProblem,
    splits: Option<usize>,
) -> Result<OpPlan> {
    if let Some(plan) = depthwise::weight_grad(planner, problem)? {
        return Ok(plan);
    }
    let crs = problem.c_per_group() * problem.r * problem.s;
    let kg = problem.k_per_group();
    let groups = problem.params.groups;
    let out_len = problem.w_len();
    // Both cores tile (c, r, s) along tiles_m and k along tiles_n.
    let (kernel, spec, path, split, [crs_tile, kg_tile]) = match block(planner, problem) {
        Some((b, chosen)) => {
            let red_len = problem.n * problem.p * problem.q;
            let split = splits.map_or(chosen, |s| SplitK::with_splits(red_len, s));
            (
                Kernel::BlockWeightGrad,
                Spec::from(b),
                Path::WeightGradBlock { block: b, split },
                split,
                b.workgroup_items(),
            )
        }
        None => {
            let (tile, split) = register(planner, problem, splits);
            let vec4 = vec4(problem);
            let kernel = if vec4 {
                Kernel::PointwiseWeightGrad
            } else {
                Kernel::WeightGrad
            };
            (
                kernel,
                Spec::from(tile),
                Path::WeightGradGemm { tile, split, vec4 },
                split,
                tile.workgroup_items(),
            )
        }
    };
    // The partial sums (splits × dW) must fit one binding.
    let most = usize::try_from(
        planner.limits.max_storage_buffer_binding_size / f32_bytes("weight count", out_len)?.max(4),
    )
    .unwrap_or(usize::MAX)
    .max(1);
    let red_len = match kernel {
        Kernel::PointwiseWeightGrad => reduction(problem),
        _ => problem.n * problem.p * problem.q,
    };
    let split = if split.splits > most {
        SplitK::with_splits(red_len, most)
    } else {
        split
    };
    // No split may run longer than the driver's loop budget; past `most` splits the tiler
    // shortens the reduction instead.
    let longest = match spec {
        Spec::Block(b) => {
            let bk = u64::from(b.bk);
            planner.max_loop_trips.saturating_sub(1) / (bk + 2) * bk
        }
        _ => planner.max_loop_trips.saturating_sub(4),
    };
    let longest = usize::try_from(longest).unwrap_or(usize::MAX).max(1);
    let split = if splits.is_none() && split.split_len > longest {
        SplitK::with_splits(red_len, red_len.div_ceil(longest).min(most))
    } else {
        split
    };
    let path = match path {
        Path::WeightGradGemm { tile, vec4, .. } => Path::WeightGradGemm { tile, split, vec4 },
        Path::WeightGradBlock { block, .. } => Path::WeightGradBlock { block, split },
        other => other,
    };
    let tiles_m = crs.div_ceil(crs_tile);
    let tiles_n = kg.div_ceil(kg_tile);
    let workgroups = mul(
        "weight-gradient workgroups",
        mul("weight-gradient workgroups", tiles_m * tiles_n, groups)?,
        split.splits,
    )?;
    let red_len = match kernel {
        Kernel::PointwiseWeightGrad => reduction(problem),
        _ => problem.n * problem.p * problem.q,
    };
    let uniform = match kernel {
        Kernel::PointwiseWeightGrad => {
            UniformValue::PointwiseWeightGrad(PointwiseWeightGradUniform {
                quads: u32_of("pointwise quads", problem.h * problem.w / 4)?,
                c: u32_of("channels", problem.c)?,
                k: u32_of("channels", problem.k)?,
                cg: u32_of("channels", problem.c_per_group())?,
                kg: u32_of("channels", kg)?,
                groups: u32_of("groups", groups)?,
                tiles_m: u32_of("weight-gradient tiles", tiles_m)?,
                tiles_n: u32_of("weight-gradient tiles", tiles_n)?,
                tiles_total: u32_of("weight-gradient workgroups", workgroups)?,
                splits: u32_of("splits", split.splits)?,
                split_len: u32_of("split length", split.split_len)?,
                red_len: u32_of("weight-gradient reduction", red_len)?,
                out_len: u32_of("weight count", out_len)?,
            })
        }
        _ => {
            // The block core's GEMM rows are (c, r, s), the register core's lane items too.
            UniformValue::Conv(ConvUniform {
                rows: u32_of("weight-gradient rows", crs)?,
                cols: u32_of("weight-gradient columns", kg)?,
                tiles_m: u32_of("weight-gradient tiles", tiles_m)?,
                tiles_n: u32_of("weight-gradient tiles", tiles_n)?,
                tiles_total: u32_of("weight-gradient workgroups", workgroups)?,
                splits: u32_of("splits", split.splits)?,
                split_len: u32_of("split length", split.split_len)?,
                red_len: u32_of("weight-gradient reduction N·P·Q", red_len)?,
                out_len: u32_of("weight count", out_len)?,
                ..ConvUniform::from_problem(problem)
            })
        }
    };
    let target = if split.splits > 1 {
        BufferRef::Scratch(0)
    } else {
        BufferRef::Output
    };
    let mut steps = vec![dispatch(
        planner,
        kernel,
        spec,
        uniform,
        &[
            ("dy", BufferRef::Operand(Operand::Dy)),
            ("x", BufferRef::Operand(Operand::X)),
            ("partial", target),
        ],
        workgroups,
    )?];
    let mut scratch = Vec::new();
    if split.splits > 1 {
        let partial_len = mul("split-K partial sums", out_len, split.splits)?;
        scratch.push(ScratchBuffer {
            what: "split-K partial sums",
            bytes: f32_bytes("split-K partial sums", partial_len)?,
        });
        let reduce = reduce_spec();
        steps.push(dispatch(
            planner,
            Kernel::ReduceSplits,
            reduce,
            UniformValue::Reduce(ReduceUniform {
                splits: u32_of("splits", split.splits)?,
                out_len: u32_of("weight count", out_len)?,
                accumulate: 0,
                out_offset: 0,
            }),
            &[
                ("partial", BufferRef::Scratch(0)),
                ("out", BufferRef::Output),
            ],
            out_len.div_ceil(reduce.lanes as usize),
        )?);
    }
    Ok(OpPlan {
        path,
        inputs: super::inputs(Op::WeightGrad, problem, false),
        output_shape: problem.w_shape().to_vec(),
        output_what: "weight gradient dw",
        scratch,
        steps,
    })
}
