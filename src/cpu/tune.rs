//! The CPU tuner: choose how the fast path runs each (op, problem) by measurement, per CPU, and
//! remember the choice, as the GPU tuner ([`crate::gpu::tune`]) does for plans.
//!
//! The candidates are [`CpuChoice`]s: the direct kernels (AVX-512 or AVX2, where the CPU has
//! them and they cover the problem) or the portable ones, and for the portable GEMM paths images
//! across threads or threads inside each GEMM, a column matrix or one GEMM per tap (forward and
//! weight gradient), the stride-1 input gradient as a forward or through col2im, and for the
//! weight gradient images side by side in one GEMM or one GEMM per image. Choices that would
//! run the same code are timed once
//! ([`CpuChoice::resolve`]). Every candidate computes the same terms and is tested against the
//! reference, so a choice changes speed only; each one's weight gradient sums in a fixed order,
//! so it repeats bit for bit under one choice.
//!
//! The cache file is the GPU tuner's ([`crate::gpu::ContextOptions::tune_cache`], the CLI's
//! `--tune-cache`), keyed by [`CpuTuner::key`]: the CPU model, the direct kernels' instruction
//! set, the thread count and gpuconv's version.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::cpu::fast::{self, CpuChoice, CpuKernel};
use crate::error::Result;
use crate::gpu::tune::{fastest, Timed, TuneBudget, Tuning};
use crate::problem::{ConvProblem, Op};
use crate::rng::SplitMix64;
use crate::tune_cache::{self, Choices};

/// The fast CPU path with tuned choices: in memory, and in a cache file when one is named.
#[derive(Debug)]
pub struct CpuTuner {
    cache: Option<PathBuf>,
    choices: Mutex<Choices<CpuChoice>>,
}

impl CpuTuner {
    /// A tuner with this CPU's choices from `cache` (when named; a missing file is empty).
    pub fn new(cache: Option<&Path>) -> Result<CpuTuner> {
        let choices = match cache {
            Some(path) => tune_cache::read(path, &Self::key())?.1,
            None => Choices::new(),
        };
        Ok(CpuTuner {
            cache: cache.map(Path::to_path_buf),
            choices: Mutex::new(choices),
        })
    }

    /// This CPU's key in a tuning cache: model, the direct kernels' instruction set, rayon
    /// threads, gpuconv's version.
    pub fn key() -> String {
        format!(
            "cpu {} | direct {} | {} threads | gpuconv {}",
            cpu_model(),
            fast::direct_isa(),
            rayon::current_num_threads(),
            env!("CARGO_PKG_VERSION")
        )
        .replace(['\t', '\n'], " ")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Choices<CpuChoice>> {
        // The map stays consistent whatever panicked while holding it (inserts are whole).
        self.choices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The choice `op` on `problem` runs with: the tuned one, else the heuristics'.
    pub fn choice(&self, op: Op, problem: &ConvProblem) -> CpuChoice {
        self.lock()
            .get(&(op, *problem))
            .map_or(CpuChoice::HEURISTIC, |e| e.0)
    }

    /// The distinct ways to run `op` on `problem`, resolved ([`CpuChoice::resolve`]), the
    /// heuristics' first.
    pub fn candidates(op: Op, problem: &ConvProblem) -> Vec<CpuChoice> {
        let mut out = vec![CpuChoice::HEURISTIC.resolve(op, problem)];
        for kernel in [CpuKernel::Direct, CpuKernel::Portable] {
            for images in [Some(true), Some(false)] {
                for batched in [Some(true), Some(false)] {
                    for columns in [Some(true), Some(false)] {
                        for as_forward in [Some(true), Some(false)] {
                            let c = CpuChoice {
                                kernel: Some(kernel),
                                images_in_parallel: images,
                                side_by_side: batched,
                                columns,
                                as_forward,
                            }
                            .resolve(op, problem);
                            if !out.contains(&c) {
                                out.push(c);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Y = conv(X, W) (+ b) with the tuned choice.
    pub fn forward(
        &self,
        pb: &ConvProblem,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        fast::forward_choice(&self.choice(Op::Forward, pb), pb, x, w, bias)
    }

    /// dX with the tuned choice.
    pub fn input_grad(&self, pb: &ConvProblem, dy: &[f32], w: &[f32]) -> Result<Vec<f32>> {
        fast::input_grad_choice(&self.choice(Op::InputGrad, pb), pb, dy, w)
    }

    /// dW with the tuned choice.
    pub fn weight_grad(&self, pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
        fast::weight_grad_choice(&self.choice(Op::WeightGrad, pb), pb, dy, x)
    }

    /// Times every candidate of `op` on `problem` (random inputs, one untimed run each first)
    /// within `budget` (the heuristics' is always timed), keeps the fastest as this tuner's
    /// choice and, when a cache file is named, writes it there. The candidates are timed in up
    /// to [`ROUNDS`] rounds, one after another in each, and each keeps its best round's median:
    /// a slow spell of the machine then meets every candidate of a round instead of deciding
    /// between two of them.
    pub fn tune(
        &self,
        op: Op,
        problem: &ConvProblem,
        budget: TuneBudget,
    ) -> Result<Tuning<CpuChoice>> {
        let start = Instant::now();
        let mut rng = SplitMix64::new(0x7e57);
        let x = rng.tensor(problem.x_len());
        let w = rng.tensor(problem.w_len());
        let dy = rng.tensor(problem.y_len());
        let run_once = |c: &CpuChoice| -> Result<f64> {
            let t = Instant::now();
            let out = match op {
                Op::Forward => fast::forward_choice(c, problem, &x, &w, None)?,
                Op::InputGrad => fast::input_grad_choice(c, problem, &dy, &w)?,
                Op::WeightGrad => fast::weight_grad_choice(c, problem, &dy, &x)?,
                Op::BiasGrad => fast::bias_grad(&problem.y_shape(), &dy)?,
            };
            let ms = t.elapsed().as_secs_f64() * 1e3;
            drop(out);
            Ok(ms)
        };
        let candidates = Self::candidates(op, problem);
        let mut best: Vec<Option<f64>> = vec![None; candidates.len()];
        for round in 0..ROUNDS {
            // A round starts only within the budget and then times all of its candidates, so
            // every timed candidate has as many rounds as the others.
            if round > 0 && start.elapsed() >= budget.total {
                break;
            }
            for (i, choice) in candidates.iter().enumerate() {
                // The first round admits candidates while the budget lasts (always the
                // heuristic's); later rounds time the admitted ones again.
                let admitted = if round == 0 {
                    i == 0 || start.elapsed() < budget.total
                } else {
                    best[i].is_some()
                };
                if admitted {
                    let ms = budget.median_ms(|| run_once(choice))?;
                    best[i] = Some(best[i].map_or(ms, |b: f64| b.min(ms)));
                }
            }
        }
        let timed: Vec<_> = candidates
            .iter()
            .zip(best)
            .map(|(&choice, ms)| Timed {
                choice,
                plan: choice.describe(op, problem),
                ms,
            })
            .collect();
        let (pick, best) = fastest(&timed)?;
        self.lock().insert((op, *problem), (pick, best));
        if let Some(path) = &self.cache {
            let mine = self.lock().clone();
            tune_cache::save(path, &Self::key(), &mine)?;
        }
        Ok(Tuning {
            candidates: timed,
            pick,
            device_time: false,
            took: start.elapsed(),
        })
    }
}

/// Rounds of timing over a problem's CPU candidates. CPU candidates take milliseconds, so three
/// rounds cost seconds per suite; with one round, picks within 1.1× of each other were inside
/// the drift of a machine whose speed moves by up to 2× over minutes (PERFORMANCE.md, Method
/// and #cpu-tuner-rounds).
pub const ROUNDS: usize = 3;

/// The CPU's model name (Linux: /proc/cpuinfo), else the architecture.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ConvParams;

    #[test]
    fn choices_round_trip_through_their_text() {
        for c in [
            CpuChoice::HEURISTIC,
            CpuChoice {
                kernel: Some(CpuKernel::Portable),
                images_in_parallel: Some(false),
                side_by_side: Some(true),
                columns: Some(false),
                as_forward: Some(true),
            },
            CpuChoice {
                kernel: Some(CpuKernel::Direct),
                ..CpuChoice::HEURISTIC
            },
        ] {
            assert_eq!(c.to_string().parse::<CpuChoice>().unwrap(), c);
        }
        for bad in [
            "",
            "kernel=fast",
            "images=2",
            "batched",
            "columns=maybe",
            "as-forward=1",
            "heuristic kernel=direct",
        ] {
            assert!(bad.parse::<CpuChoice>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn candidates_are_distinct_and_start_with_the_heuristic() {
        let pb = ConvProblem::new(&[8, 16, 8, 8], &[32, 16, 3, 3], ConvParams::default()).unwrap();
        for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
            let c = CpuTuner::candidates(op, &pb);
            assert_eq!(c[0], CpuChoice::HEURISTIC.resolve(op, &pb));
            for (i, a) in c.iter().enumerate() {
                assert!(!c[i + 1..].contains(a), "{op:?}: {a} twice");
                assert_eq!(a.resolve(op, &pb), *a, "{op:?}: {a} not resolved");
            }
            // The portable GEMM has at least the image-spreading knob here (8 images).
            assert!(
                c.len() >= 2 || rayon::current_num_threads() == 1,
                "{op:?}: {c:?}"
            );
        }
    }
}
