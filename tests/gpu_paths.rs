//! Each specialised GPU path is chosen where it should be and matches the f64 reference,
//! including its tails: the vec4 pointwise GEMM (lane and channel tails, groups), the direct
//! depthwise kernels (K = C and K = 2C, strides, dilations, asymmetric and oversized padding,
//! windows that shrink, tiny planes) and the cases that must fall back to the implicit GEMM.

mod common;

use common::*;
use gpuconv::{ConvParams, ConvProblem, Op};

/// A case and the plan each of forward, input-grad and weight-grad must report.
fn check_path(case: Case, plans: [&str; 3], rng: &mut SplitMix64) {
    let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
    for (op, want) in [Op::Forward, Op::InputGrad, Op::WeightGrad]
        .iter()
        .zip(plans)
    {
        let plan = plan_text(gpu().expect("GPU context"), *op, &pb);
        assert!(
            plan.starts_with(want),
            "{} {}: plan {plan:?}, expected it to start with {want:?}",
            case.label,
            op.name()
        );
    }
    check_all_ops(&case, rng);
}

const POINTWISE: &str = "pointwise GEMM";
const DEPTHWISE: &str = "direct depthwise";
const GEMM: &str = "implicit GEMM";
const SPLIT_GEMM: &str = "GEMM split-K";
const COLUMN: &str = "column GEMM";

#[test]
fn pointwise_gemm_with_tails_and_groups() {
    let mut rng = SplitMix64::new(0x9a7_0001);
    let p = ConvParams::default;
    let pw = [POINTWISE, POINTWISE, POINTWISE];
    check_path(
        case("pointwise", [2, 8, 4, 6], [12, 8, 1, 1], p()),
        pw,
        &mut rng,
    );
    check_path(
        case(
            "pointwise groups 2",
            [2, 8, 4, 4],
            [6, 4, 1, 1],
            p().groups(2),
        ),
        pw,
        &mut rng,
    );
    check_path(
        case("pointwise channel tail", [1, 20, 8, 8], [37, 20, 1, 1], p()),
        pw,
        &mut rng,
    );
    check_path(
        case("pointwise lane tail", [3, 5, 6, 10], [7, 5, 1, 1], p()),
        pw,
        &mut rng,
    );
    // Planes that are not whole vec4 quads, strides and padding take the implicit GEMM.
    let gemm = [GEMM, GEMM, SPLIT_GEMM];
    check_path(
        case("1x1 odd plane", [2, 8, 5, 7], [12, 8, 1, 1], p()),
        gemm,
        &mut rng,
    );
    check_path(
        case(
            "1x1 stride 2",
            [2, 8, 8, 8],
            [12, 8, 1, 1],
            p().stride(2, 2),
        ),
        gemm,
        &mut rng,
    );
}

#[test]
fn direct_depthwise_in_all_three_passes() {
    let mut rng = SplitMix64::new(0x9a7_0002);
    let p = ConvParams::default;
    let direct = [DEPTHWISE, DEPTHWISE, DEPTHWISE];
    check_path(
        case(
            "depthwise K=C",
            [2, 6, 9, 11],
            [6, 1, 3, 3],
            p().groups(6).padding(1, 1),
        ),
        direct,
        &mut rng,
    );
    check_path(
        case(
            "depthwise K=2C dilation 2 asymmetric padding",
            [1, 3, 15, 12],
            [6, 1, 5, 5],
            p().groups(3).dilation(2, 2).padding_tlbr(4, 1, 2, 3),
        ),
        direct,
        &mut rng,
    );
    check_path(
        case(
            "depthwise padding beyond the kernel",
            [1, 2, 4, 4],
            [2, 1, 3, 3],
            p().groups(2).padding(4, 4),
        ),
        direct,
        &mut rng,
    );
    check_path(
        case(
            "depthwise 1x1 output",
            [2, 3, 1, 1],
            [3, 1, 3, 3],
            p().groups(3).padding(1, 1),
        ),
        direct,
        &mut rng,
    );
    // Strided: all three passes direct too (7×7/2 shrinks its block); the input gradient reads
    // dY on its stride-upsampled grid.
    let strided = [DEPTHWISE, DEPTHWISE, DEPTHWISE];
    check_path(
        case(
            "depthwise K=2C stride 2",
            [2, 4, 13, 10],
            [8, 1, 3, 3],
            p().groups(4).stride(2, 2).padding(1, 1),
        ),
        strided,
        &mut rng,
    );
    check_path(
        case(
            "depthwise 7x7 stride 2",
            [2, 2, 20, 19],
            [4, 1, 7, 7],
            p().groups(2).stride(2, 2).padding(3, 3),
        ),
        strided,
        &mut rng,
    );
    // Kernels too large to unroll take the GEMM path.
    check_path(
        case(
            "depthwise 9x9",
            [1, 2, 10, 10],
            [2, 1, 9, 9],
            p().groups(2).padding(4, 4),
        ),
        [GEMM, GEMM, SPLIT_GEMM],
        &mut rng,
    );
}

#[test]
fn column_input_gradient_for_few_channel_groups() {
    let mut rng = SplitMix64::new(0x9a7_0006);
    let p = ConvParams::default;
    let column = [GEMM, COLUMN, SPLIT_GEMM];
    check_path(
        case(
            "stem-like 7x7/2",
            [2, 3, 16, 16],
            [8, 3, 7, 7],
            p().stride(2, 2).padding(3, 3),
        ),
        column,
        &mut rng,
    );
    check_path(
        case(
            "groups 2, 3 channels each, strided and dilated",
            [1, 6, 9, 12],
            [4, 3, 3, 3],
            p().groups(2)
                .stride(2, 1)
                .dilation(1, 2)
                .padding_tlbr(1, 2, 0, 2),
        ),
        column,
        &mut rng,
    );
    // Output planes that are not whole vec4 quads keep the stride-phase GEMM.
    check_path(
        case(
            "3 channels, odd plane",
            [1, 3, 9, 9],
            [4, 3, 3, 3],
            p().padding(1, 1),
        ),
        [GEMM, GEMM, SPLIT_GEMM],
        &mut rng,
    );
}

#[test]
fn implicit_gemm_channel_tails_past_the_uniform_tile() {
    let mut rng = SplitMix64::new(0x9a7_0003);
    let p = ConvParams::default;
    // K = 33 and C = 33: one full 32-wide uniform tile plus a tail of one.
    check_path(
        case("K=33", [1, 9, 6, 6], [33, 9, 3, 3], p().padding(1, 1)),
        [GEMM, GEMM, SPLIT_GEMM],
        &mut rng,
    );
    check_path(
        case(
            "C=33",
            [1, 33, 5, 7],
            [3, 33, 3, 3],
            p().padding(1, 1).stride(2, 2),
        ),
        [GEMM, GEMM, SPLIT_GEMM],
        &mut rng,
    );
}

/// Every dense pass at its full-size lavapipe tile (32 lane items × 32 uniform items × 8 lanes;
/// the pointwise GEMM 16 quads × 32 channels × 8 lanes) with tails on both axes.
/// - Forward and input gradient: 2·45·47 = 4230 pixels (not a multiple of 256; enough workgroups
///   that the tile does not shrink, and 17 tiles of 8·31 would not cover them, so the evened-out
///   lane tile stays 32), K = C = 40 (one uniform tile and 8 over).
/// - A strided input gradient whose phases have uneven sizes (the largest 2·46·47 = 4324
///   pixels, again past 17·8·31).
/// - Weight gradient: C·R·S = 56·9 = 504 columns (2 tiles of 256, and 2 tiles of 8·31 = 248 would
///   not cover them), K = 40, split-K over 4230 pixels.
/// - Pointwise forward and input gradient: 4·44·44/4 = 1936 quads on 16 tiles (8·15 per tile
///   would not cover them), K = C = 40.
#[test]
fn full_lavapipe_tile_with_tails() {
    let mut rng = SplitMix64::new(0x9a7_0007);
    let p = ConvParams::default;
    let ctx = gpu().expect("GPU context");
    let all = [Op::Forward, Op::InputGrad, Op::WeightGrad];
    for (c, full_tile_ops, paths) in [
        (
            case(
                "fwd/igrad 32x32",
                [2, 40, 45, 47],
                [40, 40, 3, 3],
                p().padding(1, 1),
            ),
            &all[..2],
            [GEMM, GEMM, SPLIT_GEMM],
        ),
        (
            case(
                "igrad 32x32 strided",
                [2, 40, 91, 93],
                [24, 40, 3, 3],
                p().padding(1, 1).stride(2, 2),
            ),
            &all[1..2],
            [GEMM, GEMM, SPLIT_GEMM],
        ),
        (
            case(
                "wgrad 32x32",
                [2, 56, 45, 47],
                [40, 56, 3, 3],
                p().padding(1, 1),
            ),
            &all[2..],
            [GEMM, GEMM, SPLIT_GEMM],
        ),
        (
            case("pointwise 16x32", [4, 40, 44, 44], [40, 40, 1, 1], p()),
            &all[..2],
            [POINTWISE, POINTWISE, POINTWISE],
        ),
    ] {
        let pb = ConvProblem::new(&c.x, &c.w, c.params).unwrap();
        let full = if paths[0] == POINTWISE {
            "tile 16x32"
        } else {
            "tile 32x32"
        };
        if *ctx.tile_profile() == gpuconv::gpu::TileProfile::SIMD_CPU {
            for &op in full_tile_ops {
                let plan = plan_text(ctx, op, &pb);
                assert!(plan.contains(full), "{} {op:?}: plan {plan:?}", c.label);
            }
        }
        check_path(c, paths, &mut rng);
    }
}

#[test]
fn depthwise_grid_beyond_65535_workgroups() {
    let mut rng = SplitMix64::new(0x9a7_0004);
    let c = 70_000;
    check_path(
        case(
            "depthwise 70000 channels",
            [1, c, 1, 1],
            [c, 1, 3, 3],
            ConvParams::default().groups(c).padding(1, 1),
        ),
        [DEPTHWISE, DEPTHWISE, DEPTHWISE],
        &mut rng,
    );
}

/// The hardware-GPU tile profile (small register tiles, 64-wide workgroups) is what real GPUs
/// run; lavapipe runs it here so its index arithmetic and tails are checked too.
#[test]
fn hardware_gpu_tile_profile_matches_reference() {
    let ctx = gpu_with_gpu_tiles().expect("GPU context");
    let mut rng = SplitMix64::new(0x9a7_0005);
    for case in named_cases() {
        check_all_ops_on(ctx, &case, &mut rng);
    }
    for i in 0..60 {
        let case = random_case(&mut rng, i);
        check_all_ops_on(ctx, &case, &mut rng);
    }
}

/// The vec4 pointwise weight gradient with every split count, even ones that leave a short
/// last split, matches the reference and repeats bit for bit.
#[test]
fn pointwise_weight_grad_split_k() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(0x9a7_0007);
    let params = ConvParams::default().groups(2);
    let pb = ConvProblem::new(&[3, 10, 6, 6], &[6, 5, 1, 1], params).unwrap();
    let quads = pb.n * pb.p * pb.q / 4; // 27
    let (x, dy) = (rng.tensor(pb.x_len()), rng.tensor(pb.y_len()));
    let want = gpuconv::cpu::reference::weight_grad(&pb, &dy, &x).unwrap();
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let dyt = ctx.upload(&dy, &pb.y_shape()).unwrap();
    for splits in [1, 2, 4, 5, 26, quads] {
        let run = || weight_grad_with_splits(ctx, &dyt, &xt, &pb, splits);
        let first = run();
        assert_close(&format!("pointwise dW, {splits} splits"), &first, &want);
        assert_eq!(first, run(), "{splits} splits: not bit-for-bit repeatable");
    }
}
