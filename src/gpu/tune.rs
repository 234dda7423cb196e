//! The tuner: choose an op's plan by measurement, per adapter, and remember the choice.
//!
//! For an (op, problem) the tuner enumerates [`Choice`]s — the knobs the planner takes besides
//! its heuristics: a register tile, the workgroup-memory core off or at a tile, a weight-gradient
//! split-K count — builds each one's plan, drops those that fail or repeat another's plan, times
//! the rest on the device after a warm-up run (timestamp queries where the device has them,
//! else submit-and-wait), and keeps the fastest within a time budget. Every candidate is a plan
//! the planner could build anyway, tested against the reference like every path, so a choice
//! changes speed only; the weight gradient repeats bit for bit under one choice.
//!
//! Choices live in the context ([`GpuContext::plan`] uses them) and, when
//! [`ContextOptions::tune_cache`](crate::gpu::ContextOptions) names a file, on disk: one
//! human-readable line per choice, keyed by adapter name, driver and crate version, so a cache
//! written on another machine or by another version is ignored.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::gpu::config::BlockOverride;
use crate::gpu::kernels::{BlockSpec, TileSpec};
use crate::gpu::plan::{OpPlan, Operand, Planner};
use crate::gpu::GpuContext;
use crate::problem::{ConvProblem, Op};
use crate::rng::SplitMix64;
use crate::tune_cache::{self, Choices};

/// The knobs of one candidate plan; `None` leaves the planner's heuristic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Choice {
    /// One register tile for the register-core GEMM passes.
    pub tile: Option<TileSpec>,
    /// The workgroup-memory core off, or at one tile for every dense pass.
    pub block: Option<BlockOverride>,
    /// The weight gradient's split-K count.
    pub splits: Option<usize>,
    /// The input gradient as a column GEMM + col2im (on) or the implicit GEMM (off).
    pub columns: Option<bool>,
}

impl Choice {
    /// The planner's own heuristic plan.
    pub const HEURISTIC: Choice = Choice {
        tile: None,
        block: None,
        splits: None,
        columns: None,
    };

    /// `base` with this choice's tile and block core forced.
    pub fn planner(&self, base: &Planner) -> Planner {
        let mut p = base.clone();
        if self.tile.is_some() {
            p.overrides.tile = self.tile;
        }
        if self.block.is_some() {
            p.overrides.block = self.block;
        }
        if self.columns.is_some() {
            p.overrides.column_input_grad = self.columns;
        }
        p
    }

    /// The plan of `op` on `problem` under this choice.
    pub fn plan(
        &self,
        base: &Planner,
        op: Op,
        problem: &ConvProblem,
        bias: bool,
    ) -> Result<OpPlan> {
        let planner = self.planner(base);
        match (op, self.splits) {
            (Op::WeightGrad, Some(s)) => planner.plan_weight_grad_with_splits(problem, s),
            _ => planner.plan(op, problem, bias),
        }
    }
}

impl fmt::Display for Choice {
    /// `heuristic`, or the forced knobs: `tile=L,U,N block=off|bm,bn,bk,tm,tn splits=S
    /// columns=on|off`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Choice::HEURISTIC {
            return f.write_str("heuristic");
        }
        let mut parts = Vec::new();
        if let Some(t) = self.tile {
            parts.push(format!(
                "tile={},{},{}",
                t.lane_tile, t.uniform_tile, t.lanes
            ));
        }
        match self.block {
            Some(BlockOverride::Off) => parts.push("block=off".into()),
            Some(BlockOverride::Tile(b)) => parts.push(format!(
                "block={},{},{},{},{}",
                b.bm, b.bn, b.bk, b.tm, b.tn
            )),
            None => {}
        }
        if let Some(s) = self.splits {
            parts.push(format!("splits={s}"));
        }
        if let Some(c) = self.columns {
            parts.push(format!("columns={}", if c { "on" } else { "off" }));
        }
        f.write_str(&parts.join(" "))
    }
}

impl FromStr for Choice {
    type Err = Error;

    /// The [`Display`](fmt::Display) form.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::InvalidSetting {
            name: "tuning choice",
            value: text.to_string(),
            expected:
                "heuristic, or tile=L,U,N / block=off|bm,bn,bk,tm,tn / splits=S / columns=on|off",
        };
        let mut c = Choice::HEURISTIC;
        if text.trim() == "heuristic" {
            return Ok(c);
        }
        for part in text.split_whitespace() {
            match part.split_once('=') {
                Some(("tile", v)) => c.tile = Some(v.parse()?),
                Some(("block", v)) => c.block = Some(v.parse()?),
                Some(("splits", v)) => {
                    c.splits = Some(v.parse().ok().filter(|&s| s > 0).ok_or_else(bad)?)
                }
                Some(("columns", "on")) => c.columns = Some(true),
                Some(("columns", "off")) => c.columns = Some(false),
                _ => return Err(bad()),
            }
        }
        if c == Choice::HEURISTIC {
            return Err(bad());
        }
        Ok(c)
    }
}

/// Register tiles the tuner tries besides the heuristic's.
const TILES: [TileSpec; 6] = [
    TileSpec {
        lane_tile: 8,
        uniform_tile: 16,
        lanes: 16,
    },
    TileSpec {
        lane_tile: 16,
        uniform_tile: 16,
        lanes: 8,
    },
    TileSpec {
        lane_tile: 16,
        uniform_tile: 32,
        lanes: 8,
    },
    TileSpec {
        lane_tile: 32,
        uniform_tile: 16,
        lanes: 8,
    },
    TileSpec {
        lane_tile: 4,
        uniform_tile: 32,
        lanes: 32,
    },
    TileSpec {
        lane_tile: 4,
        uniform_tile: 8,
        lanes: 64,
    },
];

/// Workgroup-memory tiles the tuner tries.
const BLOCKS: [BlockSpec; 3] = [
    BlockSpec {
        bm: 64,
        bn: 64,
        bk: 8,
        tm: 4,
        tn: 4,
    },
    BlockSpec {
        bm: 128,
        bn: 64,
        bk: 8,
        tm: 8,
        tn: 4,
    },
    BlockSpec {
        bm: 32,
        bn: 64,
        bk: 16,
        tm: 4,
        tn: 4,
    },
];

/// Split-K counts the tuner tries for the weight gradient.
const SPLITS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// The distinct plans of `op` on `problem` the tuner times, the heuristic's first: each
/// [`Choice`] whose plan builds and differs from every earlier one's.
pub fn candidates(base: &Planner, op: Op, problem: &ConvProblem) -> Vec<(Choice, OpPlan)> {
    let mut choices = vec![Choice::HEURISTIC];
    // The split-K count first for the weight gradient: it moves that pass most (PERFORMANCE.md,
    // [#split-k]) and costs no new pipeline.
    if op == Op::WeightGrad {
        for s in SPLITS {
            choices.push(Choice {
                splits: Some(s),
                ..Choice::HEURISTIC
            });
        }
    }
    // The input gradient as Wᵀ·dY columns + col2im, the formulation of Burn's transposed
    // convolution (PERFORMANCE.md, [#tuning]), at the heuristic tile and the 8-lane tiles, timed
    // first as the other formulation; and the implicit GEMM where the heuristic takes the
    // columns (the tiles below then time the columns).
    if op == Op::InputGrad {
        choices.push(Choice {
            columns: Some(false),
            ..Choice::HEURISTIC
        });
        choices.push(Choice {
            columns: Some(true),
            ..Choice::HEURISTIC
        });
        for tile in TILES.into_iter().filter(|t| t.lanes == 8) {
            choices.push(Choice {
                tile: Some(tile),
                block: Some(BlockOverride::Off),
                columns: Some(true),
                ..Choice::HEURISTIC
            });
        }
    }
    if op != Op::BiasGrad {
        for tile in TILES {
            choices.push(Choice {
                tile: Some(tile),
                block: Some(BlockOverride::Off),
                ..Choice::HEURISTIC
            });
        }
        choices.push(Choice {
            block: Some(BlockOverride::Off),
            ..Choice::HEURISTIC
        });
        for b in BLOCKS {
            choices.push(Choice {
                block: Some(BlockOverride::Tile(b)),
                ..Choice::HEURISTIC
            });
        }
    }
    let mut out: Vec<(Choice, OpPlan)> = Vec::new();
    for c in choices {
        if let Ok(plan) = c.plan(base, op, problem, false) {
            if !out.iter().any(|(_, p)| *p == plan) {
                out.push((c, plan));
            }
        }
    }
    out
}

/// One timed candidate (GPU plans by default; [`crate::cpu::tune`] times [`CpuChoice`]s).
///
/// [`CpuChoice`]: crate::cpu::fast::CpuChoice
#[derive(Debug, Clone)]
pub struct Timed<C = Choice> {
    /// The knobs.
    pub choice: C,
    /// The plan's one-line description.
    pub plan: String,
    /// Median milliseconds per run (`None`: not timed, the budget ran out).
    pub ms: Option<f64>,
}

/// What tuning one (op, problem) found.
#[derive(Debug, Clone)]
pub struct Tuning<C = Choice> {
    /// Every candidate, in the order tried (the heuristic first).
    pub candidates: Vec<Timed<C>>,
    /// The fastest.
    pub pick: C,
    /// Whether the times are device time (timestamp queries) or submit-and-wait wall time.
    pub device_time: bool,
    /// How long tuning took.
    pub took: Duration,
}

impl<C: PartialEq> Tuning<C> {
    /// The heuristic's median time (the first candidate's) over the pick's (`None` when
    /// either was not timed).
    pub fn speedup(&self) -> Option<f64> {
        let heuristic = self.candidates.first()?.ms?;
        let pick = self.candidates.iter().find(|t| t.choice == self.pick)?.ms?;
        Some(heuristic / pick)
    }
}

/// How long and how often tuning times each candidate.
#[derive(Debug, Clone, Copy)]
pub struct TuneBudget {
    /// Tuning one (op, problem) stops timing new candidates after this long.
    pub total: Duration,
    /// Timed runs per candidate, at least (after one untimed warm-up run).
    pub runs: usize,
    /// Timed runs continue until they add up to this.
    pub min_time: Duration,
}

impl Default for TuneBudget {
    fn default() -> Self {
        TuneBudget {
            total: Duration::from_secs(30),
            runs: 3,
            min_time: Duration::from_millis(30),
        }
    }
}

impl TuneBudget {
    /// The median of `run_once`'s milliseconds over at least `runs` runs lasting at least
    /// `min_time` (at most 1000), after one untimed warm-up run.
    pub(crate) fn median_ms(&self, mut run_once: impl FnMut() -> Result<f64>) -> Result<f64> {
        run_once()?;
        let mut runs = Vec::new();
        let mut spent = Duration::ZERO;
        while runs.len() < self.runs.max(1) || spent < self.min_time {
            let t = Instant::now();
            runs.push(run_once()?);
            spent += t.elapsed();
            if runs.len() >= 1000 {
                break;
            }
        }
        runs.sort_by(f64::total_cmp);
        Ok(runs[runs.len() / 2])
    }
}

/// The fastest timed candidate and its median ms.
pub(crate) fn fastest<C: Copy>(timed: &[Timed<C>]) -> Result<(C, f64)> {
    timed
        .iter()
        .filter_map(|t| t.ms.map(|ms| (t.choice, ms)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| Error::Internal("no candidate was timed".into()))
}

/// The tuned choices of a context.
#[derive(Debug, Default)]
pub(crate) struct TuneCache {
    choices: Choices<Choice>,
}

impl TuneCache {
    pub(crate) fn get(&self, op: Op, problem: &ConvProblem) -> Option<Choice> {
        self.choices.get(&(op, *problem)).map(|e| e.0)
    }
}

impl GpuContext {
    /// The key of this context's adapter in a tuning cache: adapter name, driver, driver info
    /// and gpuconv's version.
    pub fn tune_key(&self) -> String {
        let i = &self.adapter_info;
        format!(
            "{} | {} {} | gpuconv {}",
            i.name,
            i.driver,
            i.driver_info,
            env!("CARGO_PKG_VERSION")
        )
        .replace(['\t', '\n'], " ")
    }

    /// Loads this adapter's choices from the options' cache file, if one is named (called when
    /// the context is built).
    pub(crate) fn load_tune_cache(&self) -> Result<()> {
        if let Some(path) = &self.options.tune_cache {
            let (_, choices) = tune_cache::read(path, &self.tune_key())?;
            *crate::gpu::context::lock(&self.tuned) = TuneCache { choices };
        }
        Ok(())
    }

    /// The tuned choice for `op` on `problem`, if tuning (here or in the cache file) made one.
    pub fn tuned_choice(&self, op: Op, problem: &ConvProblem) -> Option<Choice> {
        crate::gpu::context::lock(&self.tuned).get(op, problem)
    }

    /// The planner `op` on `problem` runs with: the context's, with the tuned choice's knobs.
    pub fn planner_for(&self, op: Op, problem: &ConvProblem) -> Planner {
        match self.tuned_choice(op, problem) {
            Some(c) => c.planner(&self.planner),
            None => self.planner.clone(),
        }
    }

    /// The plan `op` on `problem` runs: the tuned choice's where there is one, else the
    /// heuristic's ([`Planner::plan`]).
    pub fn plan(&self, op: Op, problem: &ConvProblem, bias: bool) -> Result<OpPlan> {
        match self.tuned_choice(op, problem) {
            Some(c) => c.plan(&self.planner, op, problem, bias),
            None => self.planner.plan(op, problem, bias),
        }
    }

    /// Times every candidate plan of `op` on `problem` (random inputs, after a warm-up run
    /// each) within `budget`, keeps the fastest as this context's choice and, when the options
    /// name a cache file, writes it there.
    pub fn tune(&self, op: Op, problem: &ConvProblem, budget: TuneBudget) -> Result<Tuning> {
        let start = Instant::now();
        let cands = candidates(&self.planner, op, problem);
        let mut rng = SplitMix64::new(0x7e57);
        let x = self.upload(&rng.tensor(problem.x_len()), &problem.x_shape())?;
        let w = self.upload(&rng.tensor(problem.w_len()), &problem.w_shape())?;
        let dy = self.upload(&rng.tensor(problem.y_len()), &problem.y_shape())?;
        let operands: Vec<(Operand, &crate::gpu::GpuTensor)> = match op {
            Op::Forward => vec![(Operand::X, &x), (Operand::W, &w)],
            Op::InputGrad => vec![(Operand::Dy, &dy), (Operand::W, &w)],
            Op::WeightGrad => vec![(Operand::Dy, &dy), (Operand::X, &x)],
            Op::BiasGrad => vec![(Operand::Dy, &dy)],
        };
        let device_time = self.has_device_timing();
        let run_once = |plan: &OpPlan| -> Result<f64> {
            let t = Instant::now();
            let mut rec = if device_time {
                self.timed_recorder()
            } else {
                self.recorder()
            };
            rec.record(plan, &operands)?;
            let sub = rec.submit()?;
            let ms = if device_time {
                sub.device_time_ms()?
            } else {
                sub.wait()?;
                None
            };
            Ok(ms.unwrap_or_else(|| t.elapsed().as_secs_f64() * 1e3))
        };
        let mut timed = Vec::new();
        for (choice, plan) in &cands {
            let mut ms = None;
            // The heuristic is always timed: there is a pick to compare against.
            if timed.is_empty() || start.elapsed() < budget.total {
                ms = Some(budget.median_ms(|| run_once(plan))?);
            }
            timed.push(Timed {
                choice: *choice,
                plan: plan.to_string(),
                ms,
            });
        }
        let (pick, best) = fastest(&timed)?;
        crate::gpu::context::lock(&self.tuned)
            .choices
            .insert((op, *problem), (pick, best));
        self.save_tune_cache()?;
        Ok(Tuning {
            candidates: timed,
            pick,
            device_time,
            took: start.elapsed(),
        })
    }

    /// Writes this adapter's choices to the options' cache file (if any), keeping the lines of
    /// other adapters and versions as they were.
    fn save_tune_cache(&self) -> Result<()> {
        let Some(path) = &self.options.tune_cache else {
            return Ok(());
        };
        let choices = crate::gpu::context::lock(&self.tuned).choices.clone();
        tune_cache::save(path, &self.tune_key(), &choices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ConvParams;

    #[test]
    fn choices_and_problems_round_trip_through_their_text() {
        let pb = ConvProblem::new(
            &[2, 6, 9, 7],
            &[4, 3, 3, 2],
            ConvParams::default()
                .padding_tlbr(1, 0, 2, 1)
                .stride(2, 1)
                .groups(2),
        )
        .unwrap();
        assert_eq!(
            tune_cache::parse_problem(&tune_cache::problem_key(&pb)),
            Some(pb)
        );
        for c in [
            Choice::HEURISTIC,
            Choice {
                tile: Some(TILES[2]),
                block: Some(BlockOverride::Off),
                splits: None,
                columns: Some(false),
            },
            Choice {
                block: Some(BlockOverride::Tile(BLOCKS[0])),
                splits: Some(8),
                ..Choice::HEURISTIC
            },
            Choice {
                tile: Some(TILES[0]),
                columns: Some(true),
                ..Choice::HEURISTIC
            },
        ] {
            assert_eq!(c.to_string().parse::<Choice>().unwrap(), c);
        }
        for bad in ["", "tile=1,2", "splits=0", "block=3,3,3,3,3", "fast"] {
            assert!(bad.parse::<Choice>().is_err(), "{bad:?}");
        }
    }
}
