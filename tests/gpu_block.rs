//! The workgroup-memory GEMM core (shaders/shared/block_gemm.wgsl) in all three passes: lavapipe
//! runs it here through profiles that send every dense pass to it, at several block tiles, so
//! its index maps, tails (rows, columns and reduction not multiples of the block), stride-phase
//! tap lists and split-K are checked against the f64 reference whatever the adapter.

mod common;

use common::*;
use gpuconv::gpu::kernels::BlockSpec;
use gpuconv::gpu::{BlockPasses, TileProfile};
use gpuconv::{ConvParams, ConvProblem, GpuContext, Op};

/// A context whose dense passes all run the block core, starting from tile `block`.
fn block_context(block: BlockSpec) -> GpuContext {
    assert!(block.is_valid(), "{block:?}");
    open_context(Some(TileProfile {
        block: Some(block),
        block_passes: BlockPasses::ALL,
        ..TileProfile::GPU
    }))
    .expect("GPU context")
}

const BLOCKS: [BlockSpec; 3] = [
    // The hardware profile's tile (narrowed and shrunk per problem).
    BlockSpec {
        bm: 128,
        bn: 128,
        bk: 8,
        tm: 8,
        tn: 8,
    },
    // Deep slices, few threads, several loads per thread.
    BlockSpec {
        bm: 32,
        bn: 32,
        bk: 16,
        tm: 8,
        tn: 4,
    },
    // Wide columns, short rows.
    BlockSpec {
        bm: 32,
        bn: 64,
        bk: 8,
        tm: 4,
        tn: 4,
    },
];

#[test]
fn block_core_runs_every_pass_and_matches_reference() {
    let mut rng = SplitMix64::new(0xb10c_0001);
    for block in BLOCKS {
        let ctx = block_context(block);
        // Every dense pass reports the block core.
        let dense = ConvProblem::new(&[2, 8, 9, 9], &[8, 8, 3, 3], ConvParams::default()).unwrap();
        for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
            let plan = plan_text(&ctx, op, &dense);
            assert!(
                plan.contains("in workgroup memory"),
                "{block:?} {op:?}: {plan}"
            );
        }
        for case in named_cases() {
            check_all_ops_on(&ctx, &case, &mut rng);
        }
        for i in 0..25 {
            let case = random_case(&mut rng, i);
            check_all_ops_on(&ctx, &case, &mut rng);
        }
    }
}

/// Strides with phases that meet one tap, several taps or none (stride past the dilated
/// kernel), asymmetric padding and dilation: the host's tap lists per phase. (At least 8
/// channels per group, or the input gradient takes the column GEMM.)
#[test]
fn block_input_grad_every_stride_phase() {
    let ctx = block_context(BLOCKS[1]);
    let mut rng = SplitMix64::new(0xb10c_0002);
    let p = ConvParams::default;
    let cases = [
        case(
            "s2 k3",
            [2, 9, 11, 10],
            [6, 9, 3, 3],
            p().stride(2, 2).padding(1, 1),
        ),
        case(
            "s3x2 k2 d2",
            [1, 8, 13, 9],
            [3, 8, 2, 3],
            p().stride(3, 2).dilation(2, 1).padding_tlbr(0, 2, 1, 0),
        ),
        case(
            "s4 k1 (empty phases)",
            [2, 10, 9, 9],
            [5, 10, 1, 1],
            p().stride(4, 4),
        ),
        case(
            "s2 k5 d3 groups",
            [1, 16, 17, 15],
            [4, 8, 5, 2],
            p().stride(2, 3).dilation(3, 2).padding(4, 1).groups(2),
        ),
    ];
    for case in cases {
        let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
        let plan = plan_text(&ctx, Op::InputGrad, &pb);
        assert!(
            plan.contains("in workgroup memory"),
            "{}: {plan}",
            case.label
        );
        check_all_ops_on(&ctx, &case, &mut rng);
    }
}

/// Split-K on the block core: every split count, even ones leaving a short last split, matches
/// the reference and repeats bit for bit.
#[test]
fn block_weight_grad_split_k_is_deterministic() {
    let ctx = block_context(BLOCKS[2]);
    let mut rng = SplitMix64::new(0xb10c_0003);
    let params = ConvParams::default().padding(1, 1).groups(2);
    let pb = ConvProblem::new(&[3, 6, 7, 9], &[10, 3, 3, 3], params).unwrap();
    let red_len = pb.n * pb.p * pb.q; // 189
    let (x, dy) = (rng.tensor(pb.x_len()), rng.tensor(pb.y_len()));
    let want = gpuconv::cpu::reference::weight_grad(&pb, &dy, &x).unwrap();
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let dyt = ctx.upload(&dy, &pb.y_shape()).unwrap();
    for splits in [1, 2, 5, 23, red_len] {
        let run = || weight_grad_with_splits(&ctx, &dyt, &xt, &pb, splits);
        let first = run();
        assert_close(&format!("block dW, {splits} splits"), &first, &want);
        assert_eq!(first, run(), "{splits} splits: not bit-for-bit repeatable");
    }
}

#[test]
fn block_tiles_validate() {
    for b in BLOCKS {
        assert!(b.is_valid(), "{b:?}");
    }
    let bad = [
        (128, 128, 8, 6, 8), // tm not a multiple of 4
        (96, 128, 8, 8, 8),  // loads don't split over the threads
        (256, 256, 8, 8, 4), // 2048 threads
    ];
    for (bm, bn, bk, tm, tn) in bad {
        assert!(
            !BlockSpec { bm, bn, bk, tm, tn }.is_valid(),
            "{bm},{bn},{bk},{tm},{tn}"
        );
    }
}
