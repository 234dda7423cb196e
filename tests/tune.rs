//! The tuner: its candidates are distinct plans and each one is correct on its own; tuning
//! picks the fastest, the context then runs it (bit for bit repeatable for the weight
//! gradient); the cache file is human-readable, reloads into a new context, keeps other
//! adapters' lines, names a malformed line, and is written without following a symlink. The
//! CPU tuner's candidates each match the reference and its choices share the cache file.

mod common;

use std::time::Duration;

use common::*;
use gpuconv::cpu::fast::{self, CpuChoice};
use gpuconv::cpu::reference;
use gpuconv::cpu::tune::CpuTuner;
use gpuconv::gpu::plan::Operand;
use gpuconv::gpu::tune::{candidates, Choice};
use gpuconv::gpu::{ContextOptions, TuneBudget};
use gpuconv::{ConvParams, ConvProblem, Error, GpuContext, Op};

fn problems() -> Vec<ConvProblem> {
    vec![
        ConvProblem::new(
            &[2, 8, 12, 10],
            &[12, 8, 3, 3],
            ConvParams::default().padding(1, 1),
        )
        .unwrap(),
        ConvProblem::new(
            &[2, 6, 13, 11],
            &[8, 3, 3, 2],
            ConvParams::default()
                .stride(2, 2)
                .padding_tlbr(1, 0, 0, 1)
                .groups(2),
        )
        .unwrap(),
        ConvProblem::new(&[1, 16, 8, 8], &[8, 16, 1, 1], ConvParams::default()).unwrap(),
    ]
}

fn run(
    ctx: &GpuContext,
    plan: &gpuconv::gpu::OpPlan,
    op: Op,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    pb: &ConvProblem,
) -> Vec<f32> {
    let xt = ctx.upload(x, &pb.x_shape()).unwrap();
    let wt = ctx.upload(w, &pb.w_shape()).unwrap();
    let dyt = ctx.upload(dy, &pb.y_shape()).unwrap();
    let operands = match op {
        Op::Forward => vec![(Operand::X, &xt), (Operand::W, &wt)],
        Op::InputGrad => vec![(Operand::Dy, &dyt), (Operand::W, &wt)],
        _ => vec![(Operand::Dy, &dyt), (Operand::X, &xt)],
    };
    let out = ctx.run_plan(plan, &operands).unwrap();
    ctx.read(&out).unwrap()
}

/// Every candidate of every dense op is a distinct plan, the heuristic's first, and each
/// matches the reference (on the adapter's profile and on the hardware-GPU profile, whose
/// candidates include the block core).
#[test]
fn every_candidate_is_distinct_and_correct() {
    let mut rng = SplitMix64::new(0x70e);
    // The adapter's profile on every problem (dense, grouped and strided, 1×1 on vec4 quads);
    // the hardware-GPU profile (block-core candidates) on the first.
    let cases = problems()
        .into_iter()
        .map(|pb| (gpu().unwrap(), pb))
        .chain([(gpu_with_gpu_tiles().unwrap(), problems().remove(0))]);
    for (ctx, pb) in cases {
        {
            let (x, w, dy) = (
                rng.tensor(pb.x_len()),
                rng.tensor(pb.w_len()),
                rng.tensor(pb.y_len()),
            );
            for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
                let cands = candidates(ctx.planner(), op, &pb);
                assert_eq!(cands[0].0, Choice::HEURISTIC);
                assert_eq!(cands[0].1, ctx.planner().plan(op, &pb, false).unwrap());
                assert!(
                    cands.len() >= 3,
                    "{op:?} {pb:?}: {} candidates",
                    cands.len()
                );
                for (i, (_, a)) in cands.iter().enumerate() {
                    assert!(cands[..i].iter().all(|(_, b)| b != a), "duplicate plan {a}");
                }
                let want = match op {
                    Op::Forward => reference::forward(&pb, &x, &w, None),
                    Op::InputGrad => reference::input_grad(&pb, &dy, &w),
                    _ => reference::weight_grad(&pb, &dy, &x),
                }
                .unwrap();
                for (choice, plan) in &cands {
                    let got = run(ctx, plan, op, &x, &w, &dy, &pb);
                    assert_close(&format!("{op:?} {choice} ({plan}) on {pb:?}"), &got, &want);
                }
            }
        }
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gpuconv-tune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn context_with_cache(path: &std::path::Path) -> gpuconv::Result<GpuContext> {
    GpuContext::with_options(ContextOptions {
        poison_outputs: true,
        tune_cache: Some(path.to_path_buf()),
        ..Default::default()
    })
}

#[test]
fn tuning_picks_the_fastest_and_the_cache_file_brings_it_back() {
    let dir = temp_dir("cache");
    let path = dir.join("tune.tsv");
    // Another adapter's line, which must survive this adapter's writes.
    let foreign = "Some Other GPU | driver 1 | gpuconv 0.0.1\tforward\t1,1,4,4/1,1,3,3/1,1/0,0,0,0/1,1/1\ttile=4,8,64\t0.5";
    std::fs::write(&path, format!("{foreign}\n")).unwrap();
    let ctx = context_with_cache(&path).unwrap();
    let pb = problems().remove(0);
    let budget = TuneBudget {
        total: Duration::from_secs(30),
        runs: 2,
        min_time: Duration::from_millis(5),
    };
    let t = ctx.tune(Op::WeightGrad, &pb, budget).unwrap();
    let best = t
        .candidates
        .iter()
        .filter_map(|c| c.ms.map(|ms| (c.choice, ms)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(t.pick, best.0);
    assert!(t.candidates.len() >= 3 && t.speedup().unwrap() >= 1.0);
    assert_eq!(ctx.tuned_choice(Op::WeightGrad, &pb), Some(t.pick));
    let picked_plan = t
        .pick
        .plan(ctx.planner(), Op::WeightGrad, &pb, false)
        .unwrap();
    assert_eq!(ctx.plan(Op::WeightGrad, &pb, false).unwrap(), picked_plan);

    // The tuned weight gradient repeats bit for bit and matches the reference.
    let mut rng = SplitMix64::new(0x70f);
    let (x, dy) = (rng.tensor(pb.x_len()), rng.tensor(pb.y_len()));
    let ys = pb.y_shape();
    let a = ctx
        .conv2d_weight_grad(&dy, &ys, &x, &pb.x_shape(), &pb.w_shape(), pb.params)
        .unwrap();
    let b = ctx
        .conv2d_weight_grad(&dy, &ys, &x, &pb.x_shape(), &pb.w_shape(), pb.params)
        .unwrap();
    assert_eq!(a, b);
    assert_close(
        "tuned weight gradient",
        &a,
        &reference::weight_grad(&pb, &dy, &x).unwrap(),
    );

    // The file: a header, the other adapter's line kept, this adapter's choice readable.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# gpuconv tuning cache"), "{text}");
    assert!(text.contains(foreign), "{text}");
    let mine = text
        .lines()
        .find(|l| l.starts_with(&ctx.tune_key()))
        .unwrap_or_else(|| panic!("no line for {}: {text}", ctx.tune_key()));
    assert!(
        mine.contains("\tweight-grad\t") && mine.contains(&t.pick.to_string()),
        "{mine}"
    );

    // A new context on the same file starts with the choice, without tuning.
    let again = context_with_cache(&path).unwrap();
    assert_eq!(again.tuned_choice(Op::WeightGrad, &pb), Some(t.pick));
    assert_eq!(again.plan(Op::WeightGrad, &pb, false).unwrap(), picked_plan);
    assert_eq!(again.tuned_choice(Op::Forward, &pb), None);

    // A malformed line of this adapter is an error naming the file and line.
    std::fs::write(
        &path,
        format!(
            "{}\tforward\tnot-a-problem\theuristic\t1.0\n",
            ctx.tune_key()
        ),
    )
    .unwrap();
    let e = context_with_cache(&path).unwrap_err();
    assert!(matches!(e, Error::InvalidSetting { .. }), "{e}");
    assert!(e.to_string().contains("tune.tsv:1"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cache path is a symlink to a file elsewhere: tuning replaces the link with a regular
/// file and leaves the link's target as it was; a directory at the path is refused.
#[cfg(unix)]
#[test]
fn the_cache_file_is_never_written_through_a_symlink() {
    let dir = temp_dir("symlink");
    let target = dir.join("target.txt");
    std::fs::write(&target, "# keep\n").unwrap();
    let path = dir.join("tune.tsv");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let ctx = context_with_cache(&path).unwrap();
    let pb = ConvProblem::new(&[1, 4, 6, 6], &[4, 4, 3, 3], ConvParams::default()).unwrap();
    let budget = TuneBudget {
        total: Duration::from_secs(5),
        runs: 1,
        min_time: Duration::ZERO,
    };
    ctx.tune(Op::Forward, &pb, budget).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "# keep\n");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file(), "the link was not replaced by a file");
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("\tforward\t"));

    let as_dir = dir.join("a-directory");
    std::fs::create_dir(&as_dir).unwrap();
    let e = context_with_cache(&as_dir).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every CPU candidate (kernel family, images across threads or inside each GEMM, images side
/// by side, column matrix or per-tap GEMMs for the forward and the weight gradient, input
/// gradient as a forward or col2im) against the
/// reference, over the named problems and a random sweep; each one's
/// weight gradient repeats bit for bit.
#[test]
fn every_cpu_candidate_matches_the_reference() {
    let mut rng = SplitMix64::new(0xc9_0070);
    let mut cases = named_cases();
    cases.extend((0..24).map(|i| random_case(&mut rng, i)));
    // Small planes and a batch: every knob has two settings here.
    cases.push(case(
        "batch of 8x8 planes",
        [8, 6, 8, 8],
        [10, 6, 3, 3],
        ConvParams::default().padding(1, 1),
    ));
    let mut seen = std::collections::HashSet::new();
    for case in &cases {
        let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
        let (x, w, dy) = (
            rng.tensor(pb.x_len()),
            rng.tensor(pb.w_len()),
            rng.tensor(pb.y_len()),
        );
        for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
            let want = match op {
                Op::Forward => reference::forward(&pb, &x, &w, None),
                Op::InputGrad => reference::input_grad(&pb, &dy, &w),
                _ => reference::weight_grad(&pb, &dy, &x),
            }
            .unwrap();
            for c in CpuTuner::candidates(op, &pb) {
                let run = || {
                    match op {
                        Op::Forward => fast::forward_choice(&c, &pb, &x, &w, None),
                        Op::InputGrad => fast::input_grad_choice(&c, &pb, &dy, &w),
                        _ => fast::weight_grad_choice(&c, &pb, &dy, &x),
                    }
                    .unwrap()
                };
                let got = run();
                assert_close(&format!("CPU {op:?} {c} on {}", case.label), &got, &want);
                if op == Op::WeightGrad {
                    assert_eq!(got, run(), "CPU weight gradient {c} on {}", case.label);
                }
                seen.insert(c.to_string());
                if op == Op::WeightGrad && c.columns == Some(false) {
                    seen.insert("weight gradient per tap".into());
                }
            }
        }
    }
    // The sweep reached the knobs, not only the heuristic.
    for knob in [
        "columns=yes",
        "columns=no",
        "as-forward=yes",
        "as-forward=no",
        "weight gradient per tap",
    ] {
        assert!(seen.iter().any(|c| c.contains(knob)), "{knob}: {seen:?}");
    }
    if rayon::current_num_threads() > 1 {
        for knob in [
            "images=parallel",
            "images=serial",
            "batched=yes",
            "batched=no",
        ] {
            assert!(seen.iter().any(|c| c.contains(knob)), "{knob}: {seen:?}");
        }
    }
}

/// CPU tuning picks its fastest candidate, the tuner then runs it, and the choice goes into the
/// cache file beside the GPU's lines (kept), from which a new tuner starts.
#[test]
fn cpu_tuning_shares_the_cache_file() {
    let dir = temp_dir("cpu-cache");
    let path = dir.join("tune.tsv");
    let foreign = "Some Other GPU | driver 1 | gpuconv 0.0.1\tforward\t1,1,4,4/1,1,3,3/1,1/0,0,0,0/1,1/1\ttile=4,8,64\t0.5";
    std::fs::write(&path, format!("{foreign}\n")).unwrap();
    let tuner = CpuTuner::new(Some(&path)).unwrap();
    let pb = ConvProblem::new(
        &[8, 16, 8, 8],
        &[24, 16, 3, 3],
        ConvParams::default().padding(1, 1),
    )
    .unwrap();
    let budget = TuneBudget {
        total: Duration::from_secs(20),
        runs: 3,
        min_time: Duration::from_millis(5),
    };
    let t = tuner.tune(Op::WeightGrad, &pb, budget).unwrap();
    let best = t
        .candidates
        .iter()
        .filter_map(|c| c.ms.map(|ms| (c.choice, ms)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(t.pick, best.0);
    assert_eq!(
        t.candidates[0].choice,
        CpuChoice::HEURISTIC.resolve(Op::WeightGrad, &pb)
    );
    assert!(t.speedup().unwrap() >= 1.0);
    assert_eq!(tuner.choice(Op::WeightGrad, &pb), t.pick);
    assert_eq!(tuner.choice(Op::Forward, &pb), CpuChoice::HEURISTIC);
    let mut rng = SplitMix64::new(0x7c);
    let (x, dy) = (rng.tensor(pb.x_len()), rng.tensor(pb.y_len()));
    assert_close(
        "tuned CPU weight gradient",
        &tuner.weight_grad(&pb, &dy, &x).unwrap(),
        &reference::weight_grad(&pb, &dy, &x).unwrap(),
    );

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(foreign), "{text}");
    let mine = text
        .lines()
        .find(|l| l.starts_with(&CpuTuner::key()))
        .unwrap_or_else(|| panic!("no line for {}: {text}", CpuTuner::key()));
    assert!(
        mine.contains("\tweight-grad\t") && mine.contains(&t.pick.to_string()),
        "{mine}"
    );
    let again = CpuTuner::new(Some(&path)).unwrap();
    assert_eq!(again.choice(Op::WeightGrad, &pb), t.pick);

    // A malformed CPU line is an error naming the file and line.
    std::fs::write(
        &path,
        format!(
            "{}\tforward\t1,1,4,4/1,1,3,3/1,1/0,0,0,0/1,1/1\tkernel=fast\t1.0\n",
            CpuTuner::key()
        ),
    )
    .unwrap();
    let e = CpuTuner::new(Some(&path)).unwrap_err();
    assert!(matches!(e, Error::InvalidSetting { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
