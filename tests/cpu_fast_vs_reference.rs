//! The fast CPU path (im2col + GEMM, direct depthwise) against the f64 reference, over the same
//! problems as the GPU sweep.

mod common;

use common::*;
use gpuconv::cpu::{fast, reference};
use gpuconv::ConvProblem;

fn check(case: &Case, rng: &mut SplitMix64) {
    let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
    let what = |op: &str| {
        format!(
            "fast {op} on {} x={:?} w={:?} {:?}",
            case.label, case.x, case.w, case.params
        )
    };
    let (x, w, b, dy) = (
        rng.tensor(pb.x_len()),
        rng.tensor(pb.w_len()),
        rng.tensor(pb.k),
        rng.tensor(pb.y_len()),
    );
    assert_close(
        &what("forward"),
        &fast::forward(&pb, &x, &w, Some(&b)).unwrap(),
        &reference::forward(&pb, &x, &w, Some(&b)).unwrap(),
    );
    assert_close(
        &what("input-grad"),
        &fast::input_grad(&pb, &dy, &w).unwrap(),
        &reference::input_grad(&pb, &dy, &w).unwrap(),
    );
    assert_close(
        &what("weight-grad"),
        &fast::weight_grad(&pb, &dy, &x).unwrap(),
        &reference::weight_grad(&pb, &dy, &x).unwrap(),
    );
}

#[test]
fn named_cases_match_reference() {
    let mut rng = SplitMix64::new(0xfa57_0001);
    for case in named_cases() {
        check(&case, &mut rng);
    }
}

#[test]
fn random_sweep_matches_reference() {
    let mut rng = SplitMix64::new(0xfa57_0002);
    for i in 0..220 {
        let case = random_case(&mut rng, i);
        check(&case, &mut rng);
    }
}

#[test]
fn pointwise_and_depthwise_paths_match_reference() {
    let mut rng = SplitMix64::new(0xfa57_0003);
    let p = gpuconv::ConvParams::default;
    for case in [
        case("pointwise", [2, 16, 9, 7], [8, 16, 1, 1], p()),
        case(
            "pointwise groups",
            [2, 8, 5, 5],
            [6, 4, 1, 1],
            p().groups(2),
        ),
        case(
            "depthwise",
            [2, 6, 9, 9],
            [6, 1, 3, 3],
            p().groups(6).padding(1, 1),
        ),
        case(
            "depthwise x2 strided dilated",
            [1, 4, 11, 10],
            [8, 1, 3, 3],
            p().groups(4).stride(2, 3).dilation(2, 1).padding(2, 1),
        ),
    ] {
        check(&case, &mut rng);
    }
}

/// The image-parallel and the all-threads-per-image schedules both match, whatever the
/// machine's core count: the same problems under pools of 1, 2 and 3 threads (batch 1–6, so
/// batches that split evenly, unevenly and not at all).
#[test]
fn every_thread_schedule_matches_reference() {
    let mut rng = SplitMix64::new(0xfa57_0004);
    let p = gpuconv::ConvParams::default;
    let cases: Vec<Case> = (1..=6)
        .flat_map(|n| {
            [
                case("3x3", [n, 5, 7, 6], [4, 5, 3, 3], p().padding(1, 1)),
                case("1x1", [n, 6, 4, 5], [3, 6, 1, 1], p()),
                case(
                    "strided groups",
                    [n, 4, 9, 8],
                    [6, 2, 3, 2],
                    p().groups(2).stride(2, 1).padding(1, 0),
                ),
            ]
        })
        .collect();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for c in &cases {
                check(c, &mut rng);
            }
        });
    }
}
