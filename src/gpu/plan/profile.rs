//! Tile profiles and the tile heuristics every pass shares.
//!
//! Tiles start from the adapter class's [`TileProfile`] and shrink to the problem. On lavapipe
//! (one invocation per SIMD lane, a per-lane loop for every gathered load) big per-invocation
//! tiles with workgroup-uniform operand loads win; on real GPUs (registers per thread are
//! scarce, many threads hide latency) small tiles over wide workgroups and the workgroup-memory
//! core do. The tests check the GPU profile (and the block core in every pass) on lavapipe; it
//! was timed on an NVIDIA H200 (PERFORMANCE.md, [#hardware-gpu-profile]).

use crate::gpu::config::{BlockOverride, Overrides};
use crate::gpu::kernels::{BlockSpec, Spec, TileSpec};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// 64-thread workgroups, for the input gradient. PERFORMANCE.md, [#hardware-gpu-profile].
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
/// items per invocation, 8 lanes (one 256-bit SIMD vector). PERFORMANCE.md, [#lavapipe-tile].
pub const DEFAULT_TILE: TileSpec = TileSpec {
    lane_tile: 32,
    uniform_tile: 32,
    lanes: 8,
};

/// The largest pointwise tile on lavapipe: 16 pixel quads (64 floats) × 32 channels per
/// invocation, 8 lanes. PERFORMANCE.md, [#pointwise-tile].
pub const POINTWISE_TILE: TileSpec = TileSpec {
    lane_tile: 16,
    uniform_tile: 32,
    lanes: 8,
};

/// Below this many workgroups a pass shrinks its lane tile so every core has work.
const MIN_WORKGROUPS: usize = 32;

/// The tile, starting from `max`, for a GEMM pass with `lane_extent` items along the lane
/// dimension, `uniform_extent` along the uniform one, and `parallel` independent copies of that
/// grid (groups × splits); a forced tile in `overrides` wins. The uniform tile is the smallest
/// power of two covering `uniform_extent` (so depthwise, with one channel per group, wastes
/// nothing), capped at the default; the lane tile then halves (lanes first, down to
/// `min_lanes`) while it is more than twice the lane extent or the grid has too few
/// workgroups, and finally shrinks to the smallest that still covers the lane extent with the
/// same number of tiles. PERFORMANCE.md, [#lane-tile-evening].
pub fn gemm_tile(
    overrides: &Overrides,
    max: TileSpec,
    min_lanes: u32,
    lane_extent: usize,
    uniform_extent: usize,
    parallel: usize,
) -> TileSpec {
    if let Some(spec) = overrides.tile {
        return spec;
    }
    let mut spec = max;
    let covering = uniform_extent
        .max(1)
        .checked_next_power_of_two()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(u32::MAX);
    spec.uniform_tile = covering.min(spec.uniform_tile);
    let items = |t: TileSpec| t.lane_items_per_workgroup() as usize;
    let workgroups = |t: TileSpec| {
        lane_extent
            .div_ceil(items(t))
            .saturating_mul(uniform_extent.div_ceil(t.uniform_tile as usize))
            .saturating_mul(parallel)
    };
    // Halve while half the lane items would still cover the whole extent, or the grid is short.
    while (items(spec) / 2 >= lane_extent.max(1)) || workgroups(spec) < MIN_WORKGROUPS {
        if spec.lanes > min_lanes {
            spec.lanes /= 2;
        } else if spec.lane_tile > 1 {
            spec.lane_tile /= 2;
        } else {
            break;
        }
    }
    // Spread the lane extent evenly over the tiles that grid needs: same workgroup count, but
    // the last tile no longer pads up to a power of two.
    let tiles = lane_extent.max(1).div_ceil(items(spec));
    let even = lane_extent
        .max(1)
        .div_ceil(tiles.saturating_mul(spec.lanes as usize));
    spec.lane_tile = u32::try_from(even).unwrap_or(u32::MAX).min(spec.lane_tile);
    spec
}

/// The block core wants at least this many workgroups: two per multiprocessor of a 132-SM
/// H100/H200, so every SM has a second workgroup to switch to while one waits at a barrier.
/// Short grids shrink the block's rows; the weight gradient splits its reduction instead.
pub(crate) const BLOCK_TARGET_WORKGROUPS: usize = 264;
/// The core decodes reduction indices through an f32 reciprocal (`div_small`), exact below this.
const BLOCK_MAX_REDUCTION: usize = 1 << 22;

/// The block tile, starting from the profile's, for a GEMM of `rows` × `cols` with reduction
/// length `red_len` and `parallel` copies of the grid; `None` sends the pass to the register
/// kernels (profile without a block or not `enabled` for this pass, reduction too long, the
/// block core switched off in `overrides`, or a tile past the device's workgroup limits). The columns narrow to the smallest of bn, bn/2,
/// bn/4 that covers `cols` (keeping the thread count), then, with `shrink_rows`, the rows
/// halve (down to 32) while the grid is short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn block_tile(
    planner: &super::Planner,
    enabled: bool,
    rows: usize,
    cols: usize,
    red_len: usize,
    parallel: usize,
    shrink_rows: bool,
) -> Option<BlockSpec> {
    let (profile, overrides) = (&planner.profile, &planner.overrides);
    if red_len > BLOCK_MAX_REDUCTION {
        return None;
    }
    let passes_enabled = match overrides.block {
        Some(BlockOverride::Off) => return None,
        Some(BlockOverride::Tile(forced)) => return Some(forced),
        None => enabled,
    };
    let max = profile.block.filter(|_| passes_enabled)?;
    let mut b = max;
    while b.bn > 32 && cols <= (b.bn / 2) as usize {
        b.bn /= 2;
        if b.tn > 4 {
            b.tn /= 2;
        } else if b.tm > 4 {
            b.tm /= 2;
        }
    }
    let workgroups = |b: BlockSpec| {
        rows.div_ceil(b.bm as usize)
            .saturating_mul(cols.div_ceil(b.bn as usize))
            .saturating_mul(parallel)
    };
    while shrink_rows && b.bm > 32 && workgroups(b) < BLOCK_TARGET_WORKGROUPS {
        b.bm /= 2;
    }
    let b = if b.is_valid() { b } else { max };
    // A tile past the device's workgroup limits leaves the pass to the register kernels.
    planner.workgroup_fits(Spec::Block(b)).then_some(b)
}

/// The passes the block core runs: the profile's, unless the overrides say otherwise.
pub(crate) fn block_passes(profile: &TileProfile, overrides: &Overrides) -> BlockPasses {
    overrides.block_passes.unwrap_or(profile.block_passes)
}

/// The 1D kernels (split reduction, col2im) use no register tile.
pub(crate) fn reduce_spec() -> TileSpec {
    TileSpec {
        lane_tile: 1,
        uniform_tile: 1,
        lanes: 64,
    }
}
