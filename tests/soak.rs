//! A long randomized soak: GPU against the f64 reference on many random problems, all four
//! ops, a quarter of them through the tiled paths, printing the count and the worst errors. `cargo test --release --test soak -- --ignored
//! --nocapture` (about half an hour on lavapipe); `GPUCONV_SOAK_PROBLEMS` changes the count.

mod common;

use common::*;
use gpuconv::cpu::reference;
use gpuconv::metrics::compare;
use gpuconv::{ConvProblem, Op};

#[test]
#[ignore = "long: run explicitly"]
fn gpu_matches_the_reference_on_ten_thousand_random_problems() {
    let whole = gpu().expect("GPU context");
    // Every fourth problem runs with 4 KiB storage bindings, through the tiled paths.
    let limits = whole.limits().clone();
    let tiled = gpuconv::GpuContext::with_options(gpuconv::gpu::ContextOptions {
        poison_outputs: true,
        limits: gpuconv::gpu::LimitsChoice::Custom(Box::new(gpuconv::wgpu::Limits {
            max_storage_buffer_binding_size: 4096,
            ..limits
        })),
        ..Default::default()
    })
    .unwrap();
    let count: usize = std::env::var("GPUCONV_SOAK_PROBLEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut rng = SplitMix64::new(0x50a6);
    let mut worst: [(f64, f64, String); 4] = Default::default();
    let ops = ["forward", "input-grad", "weight-grad", "bias-grad"];
    let start = std::time::Instant::now();
    let mut cancelling = 0usize;
    for i in 0..count {
        let case = random_case(&mut rng, i);
        let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
        let ctx = if i % 4 == 3 {
            let plans = [Op::Forward, Op::InputGrad, Op::WeightGrad]
                .map(|op| tiled.planner().plan(op, &pb, true));
            // Weights past 4 KiB cannot be split: such problems stay whole.
            if plans.iter().all(|p| p.is_ok()) {
                &tiled
            } else {
                whole
            }
        } else {
            whole
        };
        let x = rng.tensor(pb.x_len());
        let w = rng.tensor(pb.w_len());
        let b = rng.tensor(pb.k);
        let dy = rng.tensor(pb.y_len());
        let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());
        let p = case.params;
        let results = [
            (
                ctx.conv2d_forward(&x, &xs, &w, &ws, Some(&b), p).unwrap(),
                reference::forward(&pb, &x, &w, Some(&b)).unwrap(),
            ),
            (
                ctx.conv2d_input_grad(&dy, &ys, &w, &ws, &xs, p).unwrap(),
                reference::input_grad(&pb, &dy, &w).unwrap(),
            ),
            (
                ctx.conv2d_weight_grad(&dy, &ys, &x, &xs, &ws, p).unwrap(),
                reference::weight_grad(&pb, &dy, &x).unwrap(),
            ),
            (
                ctx.conv2d_bias_grad(&dy, &ys).unwrap(),
                reference::bias_grad(&ys, &dy).unwrap(),
            ),
        ];
        for (o, (got, want)) in results.iter().enumerate() {
            let e = compare(got, want);
            let label = format!("{} x={:?} w={:?} {:?}", case.label, case.x, case.w, p);
            if !e.within_tolerance() {
                // A result that nearly cancels (a single bias-gradient sum, say) has a relative
                // error no f32 sum can meet; then each element must be within the f32 summation
                // bound instead: REL_L2_TOL of the same sum over the terms' magnitudes.
                let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<f32>>();
                let magnitude = match o {
                    0 => reference::forward(&pb, &abs(&x), &abs(&w), Some(&abs(&b))),
                    1 => reference::input_grad(&pb, &abs(&dy), &abs(&w)),
                    2 => reference::weight_grad(&pb, &abs(&dy), &abs(&x)),
                    _ => reference::bias_grad(&ys, &abs(&dy)),
                }
                .unwrap();
                let bounded = got
                    .iter()
                    .zip(want.iter())
                    .zip(&magnitude)
                    .all(|((g, w), m)| {
                        (f64::from(*g) - f64::from(*w)).abs() <= REL_L2_TOL * f64::from(*m)
                    });
                assert!(bounded, "{} {label}: {e:?}", ops[o]);
                cancelling += 1;
            }
            if e.within_tolerance() && e.rel_l2 > worst[o].0 {
                worst[o].0 = e.rel_l2;
                worst[o].2 = label;
            }
            worst[o].1 = worst[o].1.max(e.scaled_max);
        }
        if (i + 1) % 1000 == 0 {
            eprintln!("{} problems, {:.0} s", i + 1, start.elapsed().as_secs_f64());
        }
    }
    eprintln!(
        "{count} problems × 4 ops on {} in {:.0} s",
        whole.adapter(),
        start.elapsed().as_secs_f64()
    );
    eprintln!("{cancelling} results nearly cancelled and were checked against the summation bound");
    for (o, (rel, max, label)) in worst.iter().enumerate() {
        eprintln!(
            "{:<12} worst rel L2 {rel:.2e} ({label}), worst scaled max {max:.2e}",
            ops[o]
        );
    }
}
