//! Helpers shared by the integration tests: a seeded RNG, the GPU context, error metrics.
#![allow(dead_code)]

use std::sync::OnceLock;

use gpuconv::cpu::reference;
use gpuconv::gpu::{ContextOptions, TileProfile};
use gpuconv::GpuContext;
use gpuconv::{ConvParams, ConvProblem};

pub use gpuconv::rng::SplitMix64;

/// The one GPU context of a test binary, with poisoned outputs. Fails (never skips) without an
/// adapter, unless GPUCONV_SKIP_GPU_TESTS=1 is set explicitly.
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| open_context(None)).as_ref()
}

/// A second context that runs the hardware-GPU tile profile whatever the adapter, so those
/// tiles are checked on lavapipe too.
pub fn gpu_with_gpu_tiles() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| open_context(Some(TileProfile::GPU)))
        .as_ref()
}

/// A new context with poisoned outputs and `tile_profile` (`None`: the adapter's own).
pub fn open_context(tile_profile: Option<TileProfile>) -> Option<GpuContext> {
    match GpuContext::with_options(ContextOptions {
        poison_outputs: true,
        tile_profile,
        ..Default::default()
    }) {
        Ok(ctx) => {
            eprintln!("GPU tests run on {}", ctx.adapter());
            Some(ctx)
        }
        Err(e) if std::env::var("GPUCONV_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
            eprintln!("GPUCONV_SKIP_GPU_TESTS=1: skipping GPU checks ({e})");
            None
        }
        Err(e) => panic!("{e}\n(set GPUCONV_SKIP_GPU_TESTS=1 to run only the CPU tests)"),
    }
}

pub use gpuconv::metrics::{compare, MAX_TOL, REL_L2_TOL};

/// Panics with the worst index and values unless `got` matches `want` within the tolerances.
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    let c = compare(got, want);
    assert!(
        c.within_tolerance(),
        "{what}: rel L2 {:.3e} (tol {REL_L2_TOL:e}), scaled max {:.3e} (tol {MAX_TOL:e}), {} elements off; \
         worst at {}: got {} want {}",
        c.rel_l2, c.scaled_max, c.bad, c.worst, got[c.worst], want[c.worst]
    );
}

/// Runs all four GPU ops on `case` with fresh random inputs and checks each against the f64
/// reference.
pub fn check_all_ops(case: &Case, rng: &mut SplitMix64) {
    check_all_ops_on(gpu().expect("GPU context"), case, rng);
}

/// [`check_all_ops`] on a given context.
pub fn check_all_ops_on(ctx: &GpuContext, case: &Case, rng: &mut SplitMix64) {
    let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
    let what = |op: &str| {
        format!(
            "{op} on {} x={:?} w={:?} {:?}",
            case.label, case.x, case.w, case.params
        )
    };
    let x = rng.tensor(pb.x_len());
    let w = rng.tensor(pb.w_len());
    let b = rng.tensor(pb.k);
    let dy = rng.tensor(pb.y_len());
    let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());

    let y = ctx
        .conv2d_forward(&x, &xs, &w, &ws, Some(&b), case.params)
        .unwrap();
    assert_close(
        &what("forward"),
        &y,
        &reference::forward(&pb, &x, &w, Some(&b)).unwrap(),
    );
    let dx = ctx
        .conv2d_input_grad(&dy, &ys, &w, &ws, &xs, case.params)
        .unwrap();
    assert_close(
        &what("input-grad"),
        &dx,
        &reference::input_grad(&pb, &dy, &w).unwrap(),
    );
    let dw = ctx
        .conv2d_weight_grad(&dy, &ys, &x, &xs, &ws, case.params)
        .unwrap();
    assert_close(
        &what("weight-grad"),
        &dw,
        &reference::weight_grad(&pb, &dy, &x).unwrap(),
    );
    let db = ctx.conv2d_bias_grad(&dy, &ys).unwrap();
    assert_close(
        &what("bias-grad"),
        &db,
        &reference::bias_grad(&ys, &dy).unwrap(),
    );
}

/// A problem as (x shape, w shape, params), with a label for failure messages.
#[derive(Debug, Clone)]
pub struct Case {
    pub label: String,
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub params: ConvParams,
}

pub fn case(label: &str, x: [usize; 4], w: [usize; 4], params: ConvParams) -> Case {
    Case {
        label: label.to_string(),
        x,
        w,
        params,
    }
}

/// Hand-picked problems, one per class the sweep must hit for sure.
pub fn named_cases() -> Vec<Case> {
    let p = ConvParams::default;
    vec![
        case("1x1 kernel", [2, 8, 5, 7], [12, 8, 1, 1], p()),
        case("1x7 kernel", [1, 3, 6, 11], [5, 3, 1, 7], p().padding(0, 3)),
        case(
            "3x5 kernel",
            [2, 5, 9, 8],
            [7, 5, 3, 5],
            p().padding_tlbr(1, 2, 0, 3),
        ),
        case("output 1x1", [3, 4, 5, 5], [6, 4, 5, 5], p()),
        case(
            "stride 3 > kernel 2",
            [1, 3, 11, 10],
            [4, 3, 2, 2],
            p().stride(3, 3),
        ),
        case(
            "stride 3 > kernel 1",
            [2, 5, 10, 9],
            [3, 5, 1, 1],
            p().stride(3, 2),
        ),
        case(
            "unequal strides",
            [1, 7, 13, 9],
            [5, 7, 3, 3],
            p().stride(1, 2).padding(1, 1),
        ),
        case(
            "dilation 2",
            [2, 3, 12, 12],
            [4, 3, 3, 3],
            p().dilation(2, 2).padding(2, 2),
        ),
        case(
            "dilation 3 unequal",
            [1, 4, 14, 11],
            [3, 4, 3, 2],
            p().dilation(3, 1).padding_tlbr(0, 1, 3, 0),
        ),
        case(
            "groups 2",
            [2, 6, 8, 8],
            [10, 3, 3, 3],
            p().groups(2).padding(1, 1),
        ),
        case(
            "groups 4",
            [1, 8, 7, 9],
            [12, 2, 3, 3],
            p().groups(4).stride(2, 2).padding(1, 1),
        ),
        case(
            "depthwise K=C",
            [2, 7, 9, 9],
            [7, 1, 3, 3],
            p().groups(7).padding(1, 1),
        ),
        case(
            "depthwise K=2C",
            [2, 5, 8, 10],
            [10, 1, 3, 3],
            p().groups(5).padding(1, 1).stride(2, 1),
        ),
        case(
            "asymmetric padding",
            [1, 3, 7, 6],
            [4, 3, 3, 3],
            p().padding_tlbr(0, 2, 3, 1),
        ),
        case(
            "kernel larger than input",
            [1, 2, 3, 2],
            [3, 2, 5, 4],
            p().padding_tlbr(2, 2, 1, 1),
        ),
        case(
            "stride 2, last row never read",
            [1, 3, 6, 6],
            [4, 3, 3, 3],
            p().stride(2, 2),
        ),
        case("channels 1", [3, 1, 9, 9], [1, 1, 3, 3], p().padding(1, 1)),
        case(
            "non-multiple of 4 channels",
            [2, 13, 6, 6],
            [11, 13, 3, 3],
            p().padding(1, 1),
        ),
        case(
            "multiple of 4 channels",
            [2, 16, 6, 6],
            [32, 16, 3, 3],
            p().padding(1, 1),
        ),
        case(
            "stride 2 dilation 2 groups 3",
            [2, 9, 15, 13],
            [6, 3, 3, 3],
            p().stride(2, 2).dilation(2, 2).groups(3).padding(2, 1),
        ),
        case(
            "long reduction for split-K",
            [4, 3, 40, 40],
            [5, 3, 3, 3],
            p().padding(1, 1),
        ),
    ]
}

/// A random valid problem: channels 1–8 per group (multiples of 4 and not), spatial 1–14,
/// kernels 1–7, stride and dilation 1–3, padding 0–3 per side, groups 1/2/3/4/depthwise.
pub fn random_case(rng: &mut SplitMix64, i: usize) -> Case {
    loop {
        let groups = rng.pick(&[1, 1, 1, 2, 3, 4]);
        let depthwise = rng.range(0, 6) == 0;
        let (c, k, groups) = if depthwise {
            let c = rng.pick(&[1, 3, 4, 5, 7, 8]);
            (c, c * rng.pick(&[1, 2]), c)
        } else {
            let cg = rng.pick(&[1, 2, 3, 4, 5, 7, 8]);
            let kg = rng.pick(&[1, 3, 4, 5, 7, 8, 9]);
            (cg * groups, kg * groups, groups)
        };
        let x = [rng.range(1, 4), c, rng.range(1, 15), rng.range(1, 15)];
        let w = [
            k,
            c / groups,
            rng.pick(&[1, 2, 3, 3, 5, 7]),
            rng.pick(&[1, 2, 3, 3, 5, 7]),
        ];
        let params = ConvParams {
            stride: [rng.range(1, 4), rng.range(1, 4)],
            padding: [
                rng.range(0, 4),
                rng.range(0, 4),
                rng.range(0, 4),
                rng.range(0, 4),
            ],
            dilation: [rng.pick(&[1, 1, 2, 3]), rng.pick(&[1, 1, 2, 3])],
            groups,
        };
        if ConvProblem::new(&x, &w, params).is_ok() {
            return case(&format!("random #{i}"), x, w, params);
        }
    }
}

/// dW on the GPU with an explicit split-K count, in one recorder.
pub fn weight_grad_with_splits(
    ctx: &GpuContext,
    dy: &gpuconv::GpuTensor,
    x: &gpuconv::GpuTensor,
    pb: &ConvProblem,
    splits: usize,
) -> Vec<f32> {
    let mut rec = ctx.recorder();
    let dw = rec
        .weight_grad_with_splits(dy, x, &pb.w_shape(), pb.params, splits)
        .unwrap();
    rec.submit().unwrap();
    ctx.read(&dw).unwrap()
}

/// The one-line description of `op`'s plan on `pb` in `ctx` (what `gpuconv bench` prints).
pub fn plan_text(ctx: &GpuContext, op: gpuconv::Op, pb: &ConvProblem) -> String {
    ctx.planner().plan(op, pb, false).unwrap().to_string()
}
