//! Typed configuration of the planner and the pipeline builder: forced tiles for sweeps and
//! A/Bs, and the shader-check mode. The library reads no environment variable; the CLI parses the
//! `GPUCONV_*` variables once with the [`std::str::FromStr`] impls here and rejects a malformed
//! value naming it.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::gpu::kernels::{BlockSpec, TileSpec};
use crate::gpu::plan::BlockPasses;

/// Forced choices that replace the planner's heuristics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Overrides {
    /// One register tile for every register-core GEMM pass (implicit and pointwise).
    pub tile: Option<TileSpec>,
    /// The workgroup-memory core: off for every pass, or one block tile for every dense pass.
    pub block: Option<BlockOverride>,
    /// Which dense passes run on the block core where the profile has one.
    pub block_passes: Option<BlockPasses>,
    /// The input gradient as a column GEMM + col2im (Wᵀ·dY per image, then summed into dX):
    /// `Some(true)` for every dense problem whose columns fit, `Some(false)` never, `None` for
    /// few-channel groups only (the heuristic, PERFORMANCE.md, [#column-input-grad]).
    pub column_input_grad: Option<bool>,
    /// The checks wgpu injects into the shaders.
    pub shader_checks: ShaderChecks,
}

/// A forced choice for the workgroup-memory core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockOverride {
    /// Every pass runs the register kernels.
    Off,
    /// Every dense pass runs the block core at this tile, whatever the adapter.
    Tile(BlockSpec),
}

/// The runtime checks wgpu injects into every shader module. Turning them off is an
/// experiment switch (PERFORMANCE.md, [#shader-checks]): every loop in gpuconv's kernels is
/// counted, every divisor is a problem size that `ConvProblem` keeps non-zero, and every index
/// is clamped in the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ShaderChecks {
    /// Every check stays on.
    #[default]
    All,
    /// No loop bounding.
    NoLoopBound,
    /// No guarded integer division.
    NoDiv,
    /// Neither loop bounding nor division guards.
    Trusted,
    /// Those and no bounds checks.
    None,
}

impl ShaderChecks {
    /// wgpu's checks for this mode; `None` for [`ShaderChecks::All`] (the checked default).
    pub fn runtime_checks(self) -> Option<wgpu::ShaderRuntimeChecks> {
        let mut checks = wgpu::ShaderRuntimeChecks::checked();
        match self {
            ShaderChecks::All => return None,
            ShaderChecks::NoLoopBound => checks.force_loop_bounding = false,
            ShaderChecks::NoDiv => checks.int_div_checks = false,
            ShaderChecks::Trusted => {
                checks.force_loop_bounding = false;
                checks.int_div_checks = false;
            }
            ShaderChecks::None => {
                checks.force_loop_bounding = false;
                checks.int_div_checks = false;
                checks.bounds_checks = false;
            }
        }
        Some(checks)
    }
}

fn numbers<const N: usize>(
    name: &'static str,
    text: &str,
    expected: &'static str,
) -> Result<[u32; N]> {
    let bad = || Error::InvalidSetting {
        name,
        value: text.to_string(),
        expected,
    };
    let v: Vec<u32> = text
        .split(',')
        .map(|t| t.trim().parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    v.try_into().map_err(|_| bad())
}

impl FromStr for TileSpec {
    type Err = Error;

    /// `lane_tile,uniform_tile,lanes`, each at least 1, lanes at most 1024.
    fn from_str(text: &str) -> Result<Self> {
        const EXPECTED: &str = "lane_tile,uniform_tile,lanes (three integers ≥ 1, lanes ≤ 1024)";
        let [lane_tile, uniform_tile, lanes] = numbers("GPUCONV_TILE", text, EXPECTED)?;
        let spec = TileSpec {
            lane_tile,
            uniform_tile,
            lanes,
        };
        if lane_tile == 0 || uniform_tile == 0 || !(1..=1024).contains(&lanes) {
            return Err(Error::InvalidSetting {
                name: "GPUCONV_TILE",
                value: text.to_string(),
                expected: EXPECTED,
            });
        }
        Ok(spec)
    }
}

impl FromStr for BlockOverride {
    type Err = Error;

    /// `off`, or `bm,bn,bk,tm,tn` forming a valid block tile.
    fn from_str(text: &str) -> Result<Self> {
        const EXPECTED: &str =
            "off, or bm,bn,bk,tm,tn (tm and tn multiples of 4 dividing bm and bn, at most 1024 threads)";
        if text.trim() == "off" {
            return Ok(BlockOverride::Off);
        }
        let [bm, bn, bk, tm, tn] = numbers("GPUCONV_BLOCK", text, EXPECTED)?;
        let b = BlockSpec { bm, bn, bk, tm, tn };
        if !b.is_valid() {
            return Err(Error::InvalidSetting {
                name: "GPUCONV_BLOCK",
                value: text.to_string(),
                expected: EXPECTED,
            });
        }
        Ok(BlockOverride::Tile(b))
    }
}

impl FromStr for BlockPasses {
    type Err = Error;

    /// A comma-separated subset of `forward`, `input-grad`, `weight-grad`, or `none`.
    fn from_str(text: &str) -> Result<Self> {
        let mut passes = BlockPasses::NONE;
        if text.trim() == "none" {
            return Ok(passes);
        }
        for part in text.split(',') {
            match part.trim() {
                "forward" => passes.forward = true,
                "input-grad" => passes.input_grad = true,
                "weight-grad" => passes.weight_grad = true,
                _ => {
                    return Err(Error::InvalidSetting {
                        name: "GPUCONV_BLOCK_PASSES",
                        value: text.to_string(),
                        expected:
                            "none, or a comma-separated subset of forward, input-grad, weight-grad",
                    })
                }
            }
        }
        Ok(passes)
    }
}

impl FromStr for ShaderChecks {
    type Err = Error;

    /// `all`, `no-loop-bound`, `no-div`, `trusted` or `none`.
    fn from_str(text: &str) -> Result<Self> {
        Ok(match text.trim() {
            "all" => ShaderChecks::All,
            "no-loop-bound" => ShaderChecks::NoLoopBound,
            "no-div" => ShaderChecks::NoDiv,
            "trusted" => ShaderChecks::Trusted,
            "none" => ShaderChecks::None,
            _ => {
                return Err(Error::InvalidSetting {
                    name: "GPUCONV_SHADER_CHECKS",
                    value: text.to_string(),
                    expected: "all, no-loop-bound, no-div, trusted or none",
                })
            }
        })
    }
}

impl Overrides {
    /// Overrides from `GPUCONV_TILE`, `GPUCONV_BLOCK`, `GPUCONV_BLOCK_PASSES` and
    /// `GPUCONV_SHADER_CHECKS` as `lookup` gives them (the CLI passes the process environment);
    /// an unset variable leaves its default, a malformed one is an error naming it.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut o = Overrides::default();
        if let Some(v) = lookup("GPUCONV_TILE") {
            o.tile = Some(v.parse()?);
        }
        if let Some(v) = lookup("GPUCONV_BLOCK") {
            o.block = Some(v.parse()?);
        }
        if let Some(v) = lookup("GPUCONV_BLOCK_PASSES") {
            o.block_passes = Some(v.parse()?);
        }
        if let Some(v) = lookup("GPUCONV_SHADER_CHECKS") {
            o.shader_checks = v.parse()?;
        }
        Ok(o)
    }
}
