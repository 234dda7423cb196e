//! Inputs that once broke gpuconv, through the library: sizes that wrapped around, crafted .npy
//! headers, NaN and ±∞ at padded positions, and tensors past one storage binding.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use gpuconv::cpu::{fast, reference};
use gpuconv::gpu::plan::{Path as PlanPath, TileSplit};
use gpuconv::metrics::compare_nan_aware;
use gpuconv::{npy, ConvParams, ConvProblem, Error, Op};

#[test]
fn sizes_that_wrapped_around_are_refused() {
    let huge = usize::MAX;
    let p = ConvParams::default;
    for params in [
        p().padding(huge, huge),
        p().padding_tlbr(huge, 0, 1, 0),
        p().stride(huge, 1),
        p().dilation(1, huge),
    ] {
        let e = ConvProblem::new(&[1, 2, 5, 5], &[3, 2, 3, 3], params).unwrap_err();
        assert!(matches!(e, Error::ParamTooLarge { .. }), "{params:?}: {e}");
        assert!(e.to_string().contains(&huge.to_string()), "{e}");
    }
    // The case: P = Q = 0 after wrap-around.
    let e = ConvProblem::new(&[1, 1, 3, 3], &[1, 1, 2, 2], p().padding(huge, huge)).unwrap_err();
    assert!(matches!(e, Error::ParamTooLarge { .. }), "{e}");
    // Element counts that wrap to zero.
    let big = 1usize << 32;
    for (x, w) in [
        ([big, big, big, big], [1, big, 1, 1]),
        ([1, 1, 1, 1], [big, 1, big, 1]),
    ] {
        let e = ConvProblem::new(&x, &w, p()).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    }
    let e = gpuconv::problem::check_output_grad_shape(&[big, big, big, big]).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
}

fn header_only(shape: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

#[test]
fn crafted_npy_headers_fail_fast_and_cleanly() {
    let read = |bytes: &[u8]| npy::read_from(bytes, Path::new("crafted.npy"));
    // Shapes whose product wraps to 0, and a header-only file whose shape needs data.
    let wraps = header_only("(4294967296, 4294967296, 4294967296, 4294967296)");
    let e = read(&wraps).unwrap_err().to_string();
    assert!(e.contains("elements"), "{e}");
    let e = read(&header_only("(1, 2, 5, 5)")).unwrap_err().to_string();
    assert!(e.contains("truncated") && e.contains("200 bytes"), "{e}");
    // Data past the shape.
    let mut long = header_only("(2,)");
    long.extend_from_slice(&[0u8; 12]);
    assert!(read(&long).unwrap_err().to_string().contains("trailing"));
    // An extra key holding nested empty lists (minutes in a general parser), and 10,000
    // nested parentheses (a stack overflow), each refused at once.
    let nested = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': {}{}}}",
        "[".repeat(24),
        "]".repeat(24)
    );
    let parens = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1,{}}}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    for text in [nested, parens] {
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(text.len() as u32 + 1).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        let start = Instant::now();
        let e = read(&bytes).unwrap_err().to_string();
        assert!(start.elapsed() < Duration::from_secs(1), "{e}");
        assert!(e.contains("crafted.npy"), "{e}");
    }
}

/// NaN in a corner weight with padding 1, NaN in a corner of dY: the counts of NaN outputs are
/// PyTorch's (torch 2.15, CPU, f32 and f64 alike: forward 25 of 75, input gradient 16 of 50,
/// weight gradient 18 of 54), on the reference, the fast CPU path and the GPU.
#[test]
fn nan_at_padded_positions_follows_pytorch() {
    let params = ConvParams::default().padding(1, 1);
    let pb = ConvProblem::new(&[1, 2, 5, 5], &[3, 2, 3, 3], params).unwrap();
    let mut rng = SplitMix64::new(0x7a7a);
    let x = rng.tensor(pb.x_len());
    let mut w = rng.tensor(pb.w_len());
    w[0] = f32::NAN;
    let mut dy = rng.tensor(pb.y_len());
    let nans = |v: &[f32]| v.iter().filter(|a| a.is_nan()).count();
    let ctx = gpu().expect("GPU context");
    let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());
    let y = [
        reference::forward(&pb, &x, &w, None).unwrap(),
        fast::forward(&pb, &x, &w, None).unwrap(),
        ctx.conv2d_forward(&x, &xs, &w, &ws, None, params).unwrap(),
    ];
    let dx = [
        reference::input_grad(&pb, &dy, &w).unwrap(),
        fast::input_grad(&pb, &dy, &w).unwrap(),
        ctx.conv2d_input_grad(&dy, &ys, &w, &ws, &xs, params)
            .unwrap(),
    ];
    dy[0] = f32::NAN;
    let dw = [
        reference::weight_grad(&pb, &dy, &x).unwrap(),
        fast::weight_grad(&pb, &dy, &x).unwrap(),
        ctx.conv2d_weight_grad(&dy, &ys, &x, &xs, &ws, params)
            .unwrap(),
    ];
    for (i, path) in ["reference", "fast CPU", "GPU"].iter().enumerate() {
        assert_eq!(nans(&y[i]), 25, "{path} forward");
        assert_eq!(nans(&dx[i]), 16, "{path} input gradient");
        assert_eq!(nans(&dw[i]), 18, "{path} weight gradient");
        for (what, got, want) in [
            ("forward", &y[i], &y[0]),
            ("dx", &dx[i], &dx[0]),
            ("dw", &dw[i], &dw[0]),
        ] {
            let e = compare_nan_aware(got, want);
            assert!(e.within_tolerance(), "{path} {what}: {e:?}");
        }
    }
}

/// NaN and ±∞ in every tensor at random places, over problems of every class and both tile
/// profiles: the GPU and the fast CPU path agree with the reference on every value, finite or not.
#[test]
fn nan_and_inf_agree_with_the_reference_everywhere() {
    let mut rng = SplitMix64::new(0x1ef);
    let contexts = [
        gpu().expect("GPU context"),
        gpu_with_gpu_tiles().expect("GPU context"),
    ];
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    for i in 0..40 {
        let case = random_case(&mut rng, i);
        let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
        let mut tensors = [
            rng.tensor(pb.x_len()),
            rng.tensor(pb.w_len()),
            rng.tensor(pb.y_len()),
        ];
        // One to three special values in one of the tensors.
        let t = rng.range(0, 3);
        for _ in 0..rng.range(1, 4) {
            let at = rng.range(0, tensors[t].len());
            tensors[t][at] = rng.pick(&specials);
        }
        let [x, w, dy] = &tensors;
        let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());
        let want = [
            reference::forward(&pb, x, w, None).unwrap(),
            reference::input_grad(&pb, dy, w).unwrap(),
            reference::weight_grad(&pb, dy, x).unwrap(),
        ];
        let cpu = [
            fast::forward(&pb, x, w, None).unwrap(),
            fast::input_grad(&pb, dy, w).unwrap(),
            fast::weight_grad(&pb, dy, x).unwrap(),
        ];
        for (op, (got, want)) in ["forward", "input-grad", "weight-grad"]
            .iter()
            .zip(cpu.iter().zip(&want))
        {
            let e = compare_nan_aware(got, want);
            assert!(e.within_tolerance(), "fast {op} {}: {e:?}", case.label);
        }
        for ctx in contexts {
            let gpu = [
                ctx.conv2d_forward(x, &xs, w, &ws, None, case.params)
                    .unwrap(),
                ctx.conv2d_input_grad(dy, &ys, w, &ws, &xs, case.params)
                    .unwrap(),
                ctx.conv2d_weight_grad(dy, &ys, x, &xs, &ws, case.params)
                    .unwrap(),
            ];
            for (op, (got, want)) in ["forward", "input-grad", "weight-grad"]
                .iter()
                .zip(gpu.iter().zip(&want))
            {
                let e = compare_nan_aware(got, want);
                assert!(
                    e.within_tolerance(),
                    "GPU ({:?}) {op} {} x={:?} w={:?} {:?}: {e:?}",
                    ctx.tile_profile().block.is_some(),
                    case.label,
                    case.x,
                    case.w,
                    case.params
                );
            }
        }
    }
}

/// Padding terms with a NaN or ±∞ operand, on every CPU kernel family: the forward's 0·w and
/// the weight gradient's dY·0 are NaN in PyTorch's sums, so a kernel that skips the padding
/// (the AVX-512 depthwise loads mask it off) must not run on such operands. Depthwise with a
/// multiplier, strided, asymmetric padding, and dense for comparison.
#[test]
fn padding_terms_of_nonfinite_operands_on_every_cpu_kernel() {
    use gpuconv::cpu::fast::CpuKernel;
    let cases = [
        // The random sweep's case that found the masked depthwise weight gradient.
        ([1, 3, 11, 1], [21, 1, 1, 3], [1, 2], [0, 1, 2, 2], 3),
        ([2, 4, 9, 10], [4, 1, 3, 3], [2, 2], [1, 2, 0, 1], 4),
        ([1, 4, 7, 7], [8, 1, 3, 3], [1, 1], [1, 1, 1, 1], 4),
        ([1, 3, 8, 9], [5, 3, 3, 3], [2, 1], [2, 1, 1, 0], 1),
    ];
    let mut rng = SplitMix64::new(0x9add);
    for (xs, ws, stride, padding, groups) in cases {
        let params = ConvParams {
            stride,
            padding,
            dilation: [1, 1],
            groups,
        };
        let pb = ConvProblem::new(&xs, &ws, params).unwrap();
        for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let x = rng.tensor(pb.x_len());
            let (mut w, mut dy) = (rng.tensor(pb.w_len()), rng.tensor(pb.y_len()));
            // A corner output and a corner weight: both meet the padding.
            w[0] = special;
            dy[0] = special;
            let want_y = reference::forward(&pb, &x, &w, None).unwrap();
            let want_dw = reference::weight_grad(&pb, &dy, &x).unwrap();
            assert!(want_y.iter().any(|v| v.is_nan()) && want_dw.iter().any(|v| v.is_nan()));
            for kernel in [CpuKernel::Direct, CpuKernel::Portable] {
                let y = fast::forward_with(kernel, &pb, &x, &w, None).unwrap();
                let dw = fast::weight_grad_with(kernel, &pb, &dy, &x).unwrap();
                for (what, got, want) in [("forward", &y, &want_y), ("dw", &dw, &want_dw)] {
                    let e = compare_nan_aware(got, want);
                    assert!(
                        e.within_tolerance(),
                        "{kernel:?} {what} x={xs:?} w={ws:?} {params:?} {special}: {e:?}"
                    );
                }
            }
        }
    }
}

/// A NaN or ±∞ at each input position in turn, for the weight gradient of unpadded depthwise
/// and dense layers (stride 1 and stride 2) on every CPU kernel: the flat layouts' extra columns meet
/// input values that no term of the sum has (the first columns of a row, past the window of the
/// previous row's last output), and 0·NaN there must not reach dW.
#[test]
fn nonfinite_inputs_outside_every_window_stay_out_of_the_weight_gradient() {
    use gpuconv::cpu::fast::{CpuChoice, CpuKernel};
    let mut rng = SplitMix64::new(0x0dd5);
    // The direct and portable kernels, and the per-tap GEMMs (whose flat layout pairs dropped
    // columns with X values outside every window).
    let per_tap = CpuChoice {
        kernel: Some(CpuKernel::Portable),
        side_by_side: Some(false),
        columns: Some(false),
        ..CpuChoice::HEURISTIC
    };
    let choices = [
        CpuChoice::with_kernel(CpuKernel::Direct),
        CpuChoice::with_kernel(CpuKernel::Portable),
        per_tap,
    ];
    // Planes of at least 256 outputs (16×16 and 17×17), where the per-tap form is offered.
    for (stride, side) in [([1, 1], 18), ([2, 2], 35)] {
        for groups in [2, 1] {
            let params = ConvParams::default()
                .groups(groups)
                .stride(stride[0], stride[1]);
            let pb = ConvProblem::new(&[1, 2, side, side], &[2, 2 / groups, 3, 3], params).unwrap();
            let dy = rng.tensor(pb.y_len());
            let clean = rng.tensor(pb.x_len());
            for at in 0..pb.x_len() {
                let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][at % 3];
                let mut x = clean.clone();
                x[at] = special;
                let want = reference::weight_grad(&pb, &dy, &x).unwrap();
                for choice in &choices {
                    let got = fast::weight_grad_choice(choice, &pb, &dy, &x).unwrap();
                    let e = compare_nan_aware(&got, &want);
                    assert!(
                        e.within_tolerance(),
                        "{choice} groups {groups} stride {stride:?}, x[{at}] = {special}: {e:?}"
                    );
                }
            }
        }
    }
}

/// Compares one GPU op against the fast CPU path (itself checked against the reference on
/// every problem class) on problems too large for the f64 reference to be quick.
fn check_large(what: &str, got: &[f32], want: &[f32]) {
    let e = gpuconv::metrics::compare(got, want);
    assert!(e.within_tolerance(), "{what}: {e:?}");
}

/// Tensors past lavapipe's 128 MiB storage binding: a single-channel 6000×6000 image (row
/// bands), four channels of 3000×3000 (row bands with per-channel copies), a batch of 34 images
/// of 1024×1024 (batch chunks), and the input gradients that once hit the column-scratch cap.
/// Every op, checked against the CPU.
#[test]
fn tensors_past_one_binding_run_in_tiles() {
    let ctx = gpu().expect("GPU context");
    let limit = ctx.limits().max_storage_buffer_binding_size;
    let mut rng = SplitMix64::new(0xb16);
    let p = ConvParams::default;
    let cases = [
        (
            [1, 1, 6000, 6000],
            [1, 1, 3, 3],
            p().padding(1, 1),
            TileSplit::Rows,
        ),
        (
            [1, 4, 3000, 3000],
            [2, 4, 3, 3],
            p().stride(2, 2).padding(1, 1),
            TileSplit::Rows,
        ),
        (
            [34, 1, 1024, 1024],
            [2, 1, 3, 3],
            p().padding(1, 1),
            TileSplit::Batch,
        ),
    ];
    for (x_shape, w_shape, params, split) in cases {
        let pb = ConvProblem::new(&x_shape, &w_shape, params).unwrap();
        assert!(
            pb.x_len() as u64 * 4 > limit,
            "{x_shape:?} must exceed the binding"
        );
        let what = |op: &str| format!("{op} x={x_shape:?} w={w_shape:?} {params:?}");
        let (x, w, dy) = (
            rng.tensor(pb.x_len()),
            rng.tensor(pb.w_len()),
            rng.tensor(pb.y_len()),
        );
        for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
            let plan = ctx.planner().plan(op, &pb, false).unwrap();
            assert!(
                matches!(plan.path, PlanPath::Tiled { split: s, .. } if s == split)
                    || (op != Op::Forward && !matches!(plan.path, PlanPath::Tiled { .. })),
                "{}: {}",
                what(op.name()),
                plan
            );
        }
        let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());
        check_large(
            &what("forward"),
            &ctx.conv2d_forward(&x, &xs, &w, &ws, None, params).unwrap(),
            &fast::forward(&pb, &x, &w, None).unwrap(),
        );
        check_large(
            &what("input-grad"),
            &ctx.conv2d_input_grad(&dy, &ys, &w, &ws, &xs, params)
                .unwrap(),
            &fast::input_grad(&pb, &dy, &w).unwrap(),
        );
        let dw = ctx
            .conv2d_weight_grad(&dy, &ys, &x, &xs, &ws, params)
            .unwrap();
        check_large(
            &what("weight-grad"),
            &dw,
            &fast::weight_grad(&pb, &dy, &x).unwrap(),
        );
        // Tiled weight gradients add their tiles in a fixed order: bit for bit repeatable.
        let again = ctx
            .conv2d_weight_grad(&dy, &ys, &x, &xs, &ws, params)
            .unwrap();
        assert!(dw
            .iter()
            .zip(&again)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        check_large(
            &what("bias-grad"),
            &ctx.conv2d_bias_grad(&dy, &ys).unwrap(),
            &reference::bias_grad(&ys, &dy).unwrap(),
        );
    }
    // The input gradients that hit the fixed column-scratch cap on 128 MiB bindings.
    for (x_shape, w_shape, params) in [
        ([1, 4, 1024, 1024], [1, 4, 3, 3], p().padding(1, 1)),
        (
            [32, 3, 224, 224],
            [64, 3, 7, 7],
            p().stride(2, 2).padding(3, 3),
        ),
    ] {
        let pb = ConvProblem::new(&x_shape, &w_shape, params).unwrap();
        let (w, dy) = (rng.tensor(pb.w_len()), rng.tensor(pb.y_len()));
        let got = ctx
            .conv2d_input_grad(&dy, &pb.y_shape(), &w, &pb.w_shape(), &pb.x_shape(), params)
            .unwrap();
        check_large(
            &format!("input-grad x={x_shape:?} w={w_shape:?}"),
            &got,
            &fast::input_grad(&pb, &dy, &w).unwrap(),
        );
    }
}

/// A tensor beyond the device's largest buffer is refused, naming the tensor, its size and the
/// limit; a weight past one binding (which no tile can split) too.
#[test]
fn tensors_beyond_the_device_are_named() {
    let ctx = gpu().expect("GPU context");
    let limits = ctx.limits().clone();
    // An output beyond max_buffer_size: a 1×1 input padded until Y alone is too large.
    let side = ((limits.max_buffer_size / 4) as f64).sqrt() as usize + 2;
    let params = ConvParams::default().padding(side / 2, side / 2);
    let x = ctx.upload(&[1.0], &[1, 1, 1, 1]).unwrap();
    let w = ctx.upload(&[1.0], &[1, 1, 1, 1]).unwrap();
    match ctx.forward(&x, &w, None, params) {
        Err(Error::BufferTooLarge {
            what, bytes, limit, ..
        }) => {
            assert!(
                what.contains("output y") && bytes > u128::from(limit),
                "{what}"
            );
        }
        other => panic!("expected a buffer-size error, got {other:?}"),
    }
    // A weight past one binding.
    let k = (limits.max_storage_buffer_binding_size / 4 / 9) as usize + 1;
    let pb = ConvProblem::new(&[1, 1, 3, 3], &[k, 1, 3, 3], ConvParams::default()).unwrap();
    let e = ctx.planner().plan(Op::Forward, &pb, false).unwrap_err();
    assert!(e.to_string().contains("weight w"), "{e}");
}

/// A context whose storage bindings hold only `bytes`, so small problems take the tiled paths.
fn small_binding_context(bytes: u64) -> gpuconv::GpuContext {
    let adapter_limits = gpu().expect("GPU context").limits().clone();
    let limits = gpuconv::gpu::LimitsChoice::Custom(Box::new(gpuconv::wgpu::Limits {
        max_storage_buffer_binding_size: bytes,
        ..adapter_limits
    }));
    gpuconv::GpuContext::with_options(gpuconv::gpu::ContextOptions {
        poison_outputs: true,
        limits,
        ..Default::default()
    })
    .expect("GPU context with small bindings")
}

/// Random problems whose tensors exceed a 4 KiB binding: every op runs in batch chunks, row
/// bands or channel chunks, and matches the reference.
#[test]
fn tiled_paths_match_the_reference_on_random_problems() {
    let ctx = small_binding_context(4096);
    let mut rng = SplitMix64::new(0x711e);
    let mut tiled = [0usize; 3];
    let mut checked = 0;
    while checked < 60 {
        let mut case = random_case(&mut rng, checked);
        // Larger images than the usual sweep so tensors pass the binding.
        case.x[2] = rng.range(8, 40);
        case.x[3] = rng.range(8, 40);
        let Ok(pb) = ConvProblem::new(&case.x, &case.w, case.params) else {
            continue;
        };
        for (i, op) in [Op::Forward, Op::InputGrad, Op::WeightGrad]
            .iter()
            .enumerate()
        {
            match ctx.planner().plan(*op, &pb, true) {
                Ok(plan) if matches!(plan.path, PlanPath::Tiled { .. }) => tiled[i] += 1,
                Ok(_) => {}
                // A tensor that cannot be split (weights, one row band) past 4 KiB.
                Err(Error::BufferTooLarge { .. }) => {}
                Err(e) => panic!("{}: {e}", case.label),
            }
        }
        if [Op::Forward, Op::InputGrad, Op::WeightGrad]
            .iter()
            .any(|op| ctx.planner().plan(*op, &pb, true).is_err())
        {
            continue;
        }
        check_all_ops_on(&ctx, &case, &mut rng);
        checked += 1;
    }
    assert!(
        tiled.iter().all(|&t| t >= 10),
        "too few tiled plans: {tiled:?}"
    );
}

/// llvmpipe stops every loop of a shader after 65535 iterations in total, silently: plans keep
/// each kernel's loops within that budget (the large problems above run in more splits or
/// tiles), and a plan that cannot is refused with the count and the limit named.
#[test]
fn kernel_loops_stay_within_the_drivers_budget() {
    let ctx = gpu().expect("GPU context");
    let budget = ctx.planner().max_loop_trips;
    if budget == u64::MAX {
        eprintln!("{} has no loop limit", ctx.adapter());
        return;
    }
    let p = ConvParams::default;
    // A 400×400 plane: 160,000 reduction steps, more than one invocation may loop.
    let pb = ConvProblem::new(&[1, 1, 400, 400], &[1, 1, 3, 3], p().padding(1, 1)).unwrap();
    for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
        let plan = ctx.planner().plan(op, &pb, false).unwrap();
        assert!(
            plan.dispatches().all(|d| d.loop_trips() <= budget),
            "{plan}"
        );
    }
    let e = ctx
        .planner()
        .plan_weight_grad_with_splits(&pb, 1)
        .unwrap_err();
    assert!(
        matches!(e, Error::LimitTooSmall { needed, .. } if needed > 160_000),
        "{e}"
    );
    assert!(e.to_string().contains("65535"), "{e}");
    // A forward reduction of 8192·3·3 terms per output has no split: refused, not wrong.
    let wide = ConvProblem::new(&[1, 8192, 3, 3], &[1, 8192, 3, 3], p()).unwrap();
    let e = ctx.planner().plan(Op::Forward, &wide, false).unwrap_err();
    assert!(matches!(e, Error::LimitTooSmall { .. }), "{e}");
    // The budget's edge: a bias gradient whose one invocation runs just under it is exact.
    let mut rng = SplitMix64::new(0x100b);
    let dy_shape = [1, 1, 4000, 4000];
    let dy = rng.tensor(16_000_000);
    let got = ctx.conv2d_bias_grad(&dy, &dy_shape).unwrap();
    check_large(
        "bias-grad 4000×4000",
        &got,
        &reference::bias_grad(&dy_shape, &dy).unwrap(),
    );
}

/// The strided depthwise input gradient reads dY on its stride-upsampled grid: a NaN or ±∞
/// weight must reach only the dX elements PyTorch's input gradient has a term for, not the
/// stride holes between them.
#[test]
fn strided_depthwise_input_gradient_keeps_nan_weights_out_of_the_stride_holes() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(0x1f0);
    let cases = [
        (
            [2, 4, 11, 9],
            [4, 1, 3, 3],
            ConvParams::default().stride(2, 2).padding_tlbr(0, 0, 1, 1),
        ),
        (
            [1, 3, 13, 12],
            [6, 1, 5, 5],
            ConvParams::default()
                .stride(3, 2)
                .padding(2, 2)
                .dilation(1, 2),
        ),
    ];
    for (x_shape, w_shape, params) in cases {
        let params = params.groups(x_shape[1]);
        let pb = ConvProblem::new(&x_shape, &w_shape, params).unwrap();
        let plan = ctx
            .planner()
            .plan(Op::InputGrad, &pb, false)
            .unwrap()
            .to_string();
        assert!(plan.contains("stride holes"), "{plan}");
        for special in [f32::NAN, f32::INFINITY] {
            let mut w = rng.tensor(pb.w_len());
            w[rng.range(0, pb.w_len())] = special;
            let dy = rng.tensor(pb.y_len());
            let want = reference::input_grad(&pb, &dy, &w).unwrap();
            assert!(want.iter().any(|v| !v.is_finite()) && want.iter().any(|v| v.is_finite()));
            let got = ctx
                .conv2d_input_grad(&dy, &pb.y_shape(), &w, &pb.w_shape(), &pb.x_shape(), params)
                .unwrap();
            let e = compare_nan_aware(&got, &want);
            assert!(e.within_tolerance(), "{special} in w, {pb:?}: {e:?}");
        }
    }
}
