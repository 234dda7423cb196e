//! The fast CPU path (direct AVX-512 kernels, im2col + GEMM, direct depthwise) against the f64
//! reference, over the same problems as the GPU sweep. Every op runs through both kernel
//! families whatever the default choice (on a CPU without AVX-512 both run the portable one).

mod common;

use common::*;
use gpuconv::cpu::fast::{self, CpuKernel};
use gpuconv::cpu::reference;
use gpuconv::{ConvParams, ConvProblem, Op};

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
    let y = reference::forward(&pb, &x, &w, Some(&b)).unwrap();
    let dw = reference::weight_grad(&pb, &dy, &x).unwrap();
    for kernel in [CpuKernel::Direct, CpuKernel::Portable] {
        assert_close(
            &what(&format!("forward ({kernel:?})")),
            &fast::forward_with(kernel, &pb, &x, &w, Some(&b)).unwrap(),
            &y,
        );
        assert_close(
            &what(&format!("weight-grad ({kernel:?})")),
            &fast::weight_grad_with(kernel, &pb, &dy, &x).unwrap(),
            &dw,
        );
    }
    assert_close(
        &what("forward"),
        &fast::forward(&pb, &x, &w, Some(&b)).unwrap(),
        &y,
    );
    let dx = reference::input_grad(&pb, &dy, &w).unwrap();
    for kernel in [CpuKernel::Direct, CpuKernel::Portable] {
        assert_close(
            &what(&format!("input-grad ({kernel:?})")),
            &fast::input_grad_with(kernel, &pb, &dy, &w).unwrap(),
            &dx,
        );
    }
    assert_close(
        &what("input-grad"),
        &fast::input_grad(&pb, &dy, &w).unwrap(),
        &dx,
    );
    assert_close(
        &what("weight-grad"),
        &fast::weight_grad(&pb, &dy, &x).unwrap(),
        &dw,
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

/// The direct kernels' tails and blocking: output channels not a multiple of the 6- and 4-row
/// tiles, (c, tap) columns not a multiple of 6, flat planes not a multiple of 64 or 16, every
/// stride phase with dilation and uneven padding, groups, a plane longer than one reduction
/// block (72-wide rows × 70), many small images per block, and the input gradient's mirrored
/// padding.
#[test]
fn direct_kernel_tails_and_blocks_match_reference() {
    let mut rng = SplitMix64::new(0xfa57_0005);
    let p = ConvParams::default;
    for case in [
        case("k=7 tails", [2, 5, 13, 11], [7, 5, 3, 3], p().padding(1, 1)),
        case("k=1", [1, 3, 9, 9], [1, 3, 2, 2], p()),
        case(
            "phases",
            [2, 3, 17, 15],
            [5, 3, 5, 4],
            p().stride(3, 2).dilation(2, 3).padding_tlbr(4, 0, 1, 3),
        ),
        case(
            "groups",
            [2, 12, 10, 9],
            [9, 4, 3, 3],
            p().groups(3).padding(1, 1),
        ),
        case(
            "long plane",
            [1, 2, 70, 70],
            [5, 2, 3, 3],
            p().padding(1, 1),
        ),
        case("many images", [9, 3, 4, 4], [5, 3, 3, 3], p().padding(1, 1)),
        // Input gradient as a forward: mirrored asymmetric padding with dilation, and a padding
        // past the kernel's reach (no mirrored form: the portable kernel runs).
        case(
            "mirrored padding",
            [2, 4, 15, 13],
            [5, 4, 3, 3],
            p().dilation(2, 1).padding_tlbr(3, 0, 1, 2),
        ),
        case(
            "padding past reach",
            [1, 3, 8, 8],
            [4, 3, 3, 3],
            p().padding(3, 0),
        ),
        case(
            "stem-like",
            [1, 3, 40, 40],
            [10, 3, 7, 7],
            p().stride(2, 2).padding(3, 3),
        ),
    ] {
        check(&case, &mut rng);
    }
}

/// The direct depthwise kernels' masks, row groups and stride phases: rows wider than one
/// 16-lane vector and not a multiple of it, row counts not a multiple of 4, K = 2C, dilation,
/// padding larger than the kernel reach (whole output columns read only padding), asymmetric
/// padding, 1×1 outputs, strides 2 and 3×2.
#[test]
fn direct_depthwise_edges_match_reference() {
    let mut rng = SplitMix64::new(0xfa57_0007);
    let p = ConvParams::default;
    for case in [
        case(
            "wide rows",
            [2, 3, 7, 37],
            [3, 1, 3, 3],
            p().groups(3).padding(1, 1),
        ),
        case(
            "k=2c dilated",
            [1, 4, 13, 18],
            [8, 1, 3, 3],
            p().groups(4).padding(2, 2).dilation(2, 2),
        ),
        case(
            "big padding",
            [1, 2, 5, 5],
            [2, 1, 3, 3],
            p().groups(2).padding(4, 5),
        ),
        case(
            "asymmetric 5x5",
            [2, 3, 9, 20],
            [6, 1, 5, 4],
            p().groups(3).padding_tlbr(0, 3, 2, 1),
        ),
        case("1x1 output", [1, 5, 3, 3], [5, 1, 3, 3], p().groups(5)),
        // Column groups (forward, input and weight gradients): 2-row planes (every window
        // crosses the edge), groups of 4 rows, and 7 rows of taps (past the longest group, so
        // the per-tap loops).
        case(
            "4-row groups",
            [2, 2, 11, 17],
            [2, 1, 4, 2],
            p().groups(2).padding_tlbr(2, 0, 1, 1),
        ),
        case(
            "2-row plane",
            [2, 3, 2, 40],
            [3, 1, 3, 2],
            p().groups(3).padding(1, 1),
        ),
        case(
            "7x7 per-tap",
            [1, 2, 12, 19],
            [2, 1, 7, 7],
            p().groups(2).padding(3, 3),
        ),
        // Stride phases: uneven phase sizes, taps of one phase only (1×1 stride 2), phases
        // with no taps, K = 2C, dilation, padding on one side.
        case(
            "5x5 s2",
            [2, 3, 23, 37],
            [3, 1, 5, 5],
            p().groups(3).stride(2, 2).padding(2, 2),
        ),
        case(
            "1x1 s2",
            [1, 4, 9, 8],
            [4, 1, 1, 1],
            p().groups(4).stride(2, 2),
        ),
        case(
            "s3x2 dilated x2",
            [2, 2, 17, 20],
            [4, 1, 3, 3],
            p().groups(2)
                .stride(3, 2)
                .dilation(2, 1)
                .padding_tlbr(1, 0, 2, 3),
        ),
    ] {
        check(&case, &mut rng);
    }
}

/// Small planes (P·Q < 256) reduce the portable weight gradient over runs of images side by
/// side: 40 images of a 14×14 plane with 64·3·3 columns need two runs (about 37 fit 16 MiB),
/// the second shorter and accumulated onto the first; with groups too.
#[test]
fn batched_small_plane_weight_grad_matches_reference() {
    let mut rng = SplitMix64::new(0xfa57_0008);
    let p = ConvParams::default;
    for case in [
        case(
            "two runs",
            [40, 64, 14, 14],
            [4, 64, 3, 3],
            p().padding(1, 1),
        ),
        case(
            "groups",
            [3, 6, 7, 7],
            [4, 3, 3, 3],
            p().groups(2).padding(1, 1),
        ),
    ] {
        let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
        let (dy, x) = (rng.tensor(pb.y_len()), rng.tensor(pb.x_len()));
        assert_close(
            &format!("batched weight-grad {}", case.label),
            &fast::weight_grad_with(CpuKernel::Portable, &pb, &dy, &x).unwrap(),
            &reference::weight_grad(&pb, &dy, &x).unwrap(),
        );
    }
}

/// Large planes take the direct kernels where the CPU has them (AVX-512: every pass; AVX2 and
/// FMA: the forward and the stride-1 input gradient), and the direct weight gradient is
/// bit-identical under 1 and 3 threads.
#[test]
fn direct_kernels_chosen_for_large_planes_and_deterministic() {
    let pb = ConvProblem::new(
        &[3, 16, 40, 40],
        &[12, 16, 3, 3],
        ConvParams::default().padding(1, 1),
    )
    .unwrap();
    #[cfg(target_arch = "x86_64")]
    let (avx512, avx2) = (
        std::arch::is_x86_feature_detected!("avx512f"),
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (avx512, avx2) = (false, false);
    for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
        let want = if avx512 || (avx2 && op != Op::WeightGrad) {
            CpuKernel::Direct
        } else {
            CpuKernel::Portable
        };
        assert_eq!(CpuKernel::for_problem(&pb, op), want, "{op:?}");
    }
    // Depthwise takes the direct kernels in all three passes at any stride; small dense planes
    // and the strided dense input gradient stay portable.
    let dw = ConvProblem::new(
        &[2, 8, 12, 12],
        &[8, 1, 3, 3],
        ConvParams::default().groups(8),
    )
    .unwrap();
    let dw2 = ConvProblem::new(
        &[2, 8, 12, 12],
        &[8, 1, 3, 3],
        ConvParams::default().groups(8).stride(2, 2),
    )
    .unwrap();
    for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
        let want = if avx512 {
            CpuKernel::Direct
        } else {
            CpuKernel::Portable
        };
        assert_eq!(CpuKernel::for_problem(&dw, op), want, "depthwise {op:?}");
        assert_eq!(
            CpuKernel::for_problem(&dw2, op),
            want,
            "strided depthwise {op:?}"
        );
    }
    let small = ConvProblem::new(
        &[4, 64, 7, 7],
        &[64, 64, 3, 3],
        ConvParams::default().padding(1, 1),
    )
    .unwrap();
    assert_eq!(
        CpuKernel::for_problem(&small, Op::Forward),
        CpuKernel::Portable
    );
    let strided = ConvProblem::new(
        &[3, 16, 80, 80],
        &[12, 16, 3, 3],
        ConvParams::default().padding(1, 1).stride(2, 2),
    )
    .unwrap();
    assert_eq!(
        CpuKernel::for_problem(&strided, Op::InputGrad),
        CpuKernel::Portable
    );

    let mut rng = SplitMix64::new(0xfa57_0006);
    let (dy, x) = (rng.tensor(pb.y_len()), rng.tensor(pb.x_len()));
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| fast::weight_grad_with(CpuKernel::Direct, &pb, &dy, &x).unwrap())
    };
    let (one, three) = (run(1), run(3));
    assert!(
        one.iter()
            .zip(&three)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "direct weight gradient differs between 1 and 3 threads"
    );
}
