//! The fused forward epilogue y = act(α·conv + b + β·z) and its backward: every activation on
//! the GPU (fused into each forward kernel, and as its own pass) and the fast CPU path against
//! the f64 reference, values at each activation's kinks and saturation, the backward against
//! finite differences, and the errors.

mod common;

use common::*;
use gpuconv::cpu::{fast, reference};
use gpuconv::epilogue::{self, Addends};
use gpuconv::gpu::plan::FusedForward;
use gpuconv::{Activation, ConvParams, ConvProblem, Epilogue, Error, GpuContext, Saved};

const ACTIVATIONS: [Activation; 11] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu { slope: 0.1 },
    Activation::LeakyRelu { slope: -0.4 },
    Activation::Relu6,
    Activation::Clamp { lo: -0.3, hi: 0.8 },
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Silu,
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Runs the fused forward of `case` on `ctx` with `act` and random α, β, bias and residual
/// presence; checks y (and the pre-activation when saved) against the reference, and the fast
/// CPU path too. Returns the plan's one-line description.
fn check_fused(ctx: &GpuContext, case: &Case, act: Activation, rng: &mut SplitMix64) -> String {
    let pb = ConvProblem::new(&case.x, &case.w, case.params).unwrap();
    // Scaled so the pre-activations cross every kink and reach saturation.
    let scale = 3.0;
    let x: Vec<f32> = rng.tensor(pb.x_len()).iter().map(|v| v * scale).collect();
    let w = rng.tensor(pb.w_len());
    let b = rng.tensor(pb.k);
    let z: Vec<f32> = rng.tensor(pb.y_len()).iter().map(|v| v * scale).collect();
    let has_bias = rng.range(0, 2) == 1;
    let has_residual = rng.range(0, 2) == 1;
    let save_pre = rng.range(0, 2) == 1;
    let epi = Epilogue {
        activation: act,
        alpha: [1.0, 0.7, -1.3][rng.range(0, 3)],
        beta: [1.0, 0.5, -2.0][rng.range(0, 3)],
    };
    let addends = Addends {
        bias: has_bias.then_some(b.as_slice()),
        residual: has_residual.then_some(z.as_slice()),
    };
    let what = format!(
        "{act} α={} β={} bias={has_bias} residual={has_residual} pre={save_pre} on {} x={:?} w={:?} {:?}",
        epi.alpha, epi.beta, case.label, case.x, case.w, case.params
    );
    let (want_y, want_pre) = reference::forward_fused(&pb, &x, &w, addends, &epi).unwrap();
    let (y, pre) = ctx
        .conv2d_forward_fused(
            &x,
            &case.x,
            &w,
            &case.w,
            addends,
            &epi,
            case.params,
            save_pre,
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_close(&format!("GPU y, {what}"), &y, &want_y);
    assert_eq!(pre.is_some(), save_pre);
    if let Some(pre) = pre {
        assert_close(&format!("GPU pre-activation, {what}"), &pre, &want_pre);
    }
    let (cy, cpre) = fast::forward_fused(&pb, &x, &w, addends, &epi, save_pre).unwrap();
    assert_close(&format!("CPU y, {what}"), &cy, &want_y);
    if let Some(cpre) = cpre {
        assert_close(&format!("CPU pre-activation, {what}"), &cpre, &want_pre);
    }
    let fused = FusedForward {
        epilogue: epi,
        bias: has_bias,
        residual: has_residual,
        save_pre,
    };
    ctx.planner()
        .plan_fused_forward(&pb, &fused)
        .unwrap()
        .to_string()
}

/// Every activation, fused into the forward kernels the adapter's profile picks (register,
/// pointwise, depthwise) and the block core (hardware-GPU tiles), over named and random
/// problems: y and the pre-activation match the reference.
#[test]
fn every_activation_matches_the_reference_on_every_forward_kernel() {
    let ctx = gpu().expect("GPU context");
    let block = gpu_with_gpu_tiles().expect("GPU context");
    let mut rng = SplitMix64::new(0xe1);
    let mut cases = vec![
        case(
            "3x3 pad 1",
            [2, 5, 9, 7],
            [6, 5, 3, 3],
            ConvParams::default().padding(1, 1),
        ),
        case(
            "pointwise",
            [2, 8, 4, 6],
            [12, 8, 1, 1],
            ConvParams::default(),
        ),
        case(
            "depthwise s2",
            [2, 6, 11, 9],
            [6, 1, 3, 3],
            ConvParams {
                stride: [2, 2],
                padding: [1, 0, 1, 1],
                groups: 6,
                ..Default::default()
            },
        ),
    ];
    for i in 0..8 {
        cases.push(random_case(&mut rng, i));
    }
    let mut fused_kernels = std::collections::BTreeSet::new();
    for act in ACTIVATIONS {
        for c in &cases {
            let plan = check_fused(ctx, c, act, &mut rng);
            assert!(plan.contains("epilogue fused"), "{plan}");
            fused_kernels.insert(plan.split(',').next().unwrap().to_string());
        }
        let plan = check_fused(block, &cases[0], act, &mut rng);
        assert!(
            plan.contains("workgroup memory") && plan.contains("epilogue fused"),
            "{plan}"
        );
    }
    // The depthwise, pointwise and implicit-GEMM kernels all fused the epilogue.
    for family in ["direct depthwise", "pointwise GEMM", "implicit GEMM"] {
        assert!(
            fused_kernels.iter().any(|k| k.contains(family)),
            "{family} not reached: {fused_kernels:?}"
        );
    }
}

/// Problems too large for one (here 4 KiB) binding run the forward in tiles and the epilogue
/// as its own pass in binding-sized chunks; they match the reference too.
#[test]
fn tiled_problems_run_the_epilogue_as_its_own_pass() {
    let adapter = gpu().expect("GPU context").limits().clone();
    let ctx = GpuContext::with_options(gpuconv::gpu::ContextOptions {
        poison_outputs: true,
        limits: gpuconv::gpu::LimitsChoice::Custom(Box::new(gpuconv::wgpu::Limits {
            max_storage_buffer_binding_size: 4096,
            ..adapter
        })),
        ..Default::default()
    })
    .unwrap();
    let mut rng = SplitMix64::new(0xe2);
    let c = case(
        "tiled",
        [3, 4, 20, 21],
        [5, 4, 3, 3],
        ConvParams::default().padding(1, 1),
    );
    for act in [Activation::Gelu, Activation::Relu6, Activation::Silu] {
        let plan = check_fused(&ctx, &c, act, &mut rng);
        assert!(plan.contains("epilogue's own pass"), "{plan}");
    }
}

/// Inputs at each activation's kinks, just either side, and far into saturation (1×1
/// identity convolution, so the pre-activation is exactly the input): the GPU's values and
/// derivatives match the reference's.
#[test]
fn values_at_kinks_and_saturation_match() {
    let ctx = gpu().expect("GPU context");
    let mut pts = vec![
        0.0f32, -0.0, 1e-7, -1e-7, 1e-4, -1e-4, 0.03, -0.03, 0.124, 0.126, -0.3, 0.8, 6.0, 5.9999,
        6.0001, 1.0, -1.0, 3.0, -3.0, 9.0, -9.0, 20.0, -20.0, 40.0, -40.0, 88.0, -88.0, 200.0,
        -200.0,
    ];
    for &v in &[-0.3f32, 0.8, 0.0, 6.0] {
        pts.push(f32::from_bits(v.to_bits() + 1));
        pts.push(f32::from_bits(v.to_bits().wrapping_sub(1)));
    }
    pts.retain(|v| v.is_finite());
    let n = pts.len();
    let shape = [1, 1, 1, n];
    let x_t = ctx.upload(&pts, &shape).unwrap();
    let w_t = ctx.upload(&[1.0], &[1, 1, 1, 1]).unwrap();
    let g: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.01).collect();
    let g_t = ctx.upload(&g, &shape).unwrap();
    for act in ACTIVATIONS {
        let epi = Epilogue::new(act);
        let mut rec = ctx.recorder();
        let (y, pre) = rec
            .forward_fused_saving_pre(&x_t, &w_t, None, None, &epi, ConvParams::default())
            .unwrap();
        let d_pre = rec
            .activation_grad(&g_t, &pre, act, Saved::PreActivation, 1.0)
            .unwrap();
        let d_out = act.derivative_from_output().then(|| {
            rec.activation_grad(&g_t, &y, act, Saved::Output, 1.0)
                .unwrap()
        });
        rec.submit().unwrap();
        let y = ctx.read(&y).unwrap();
        let want_y: Vec<f32> = pts
            .iter()
            .map(|&v| act.apply(f64::from(v)) as f32)
            .collect();
        assert_close(&format!("{act} at kinks"), &y, &want_y);
        assert_eq!(
            ctx.read(&pre).unwrap(),
            pts,
            "{act}: pre-activation is the input"
        );
        let want_d: Vec<f32> = pts
            .iter()
            .zip(&g)
            .map(|(&v, &g)| (f64::from(g) * act.derivative(f64::from(v))) as f32)
            .collect();
        assert_close(
            &format!("{act}′ at kinks"),
            &ctx.read(&d_pre).unwrap(),
            &want_d,
        );
        if let Some(d_out) = d_out {
            assert_close(
                &format!("{act}′ from the output at kinks"),
                &ctx.read(&d_out).unwrap(),
                &want_d,
            );
        }
        // Exactly at the kinks, the derivative is PyTorch's side.
        for (i, &v) in pts.iter().enumerate() {
            let d = act.derivative(f64::from(v));
            let kink = matches!(
                act,
                Activation::Relu
                    | Activation::LeakyRelu { .. }
                    | Activation::Relu6
                    | Activation::Clamp { .. }
            );
            if kink {
                assert_eq!(
                    ctx.read(&d_pre).unwrap()[i],
                    (f64::from(g[i]) * d) as f32,
                    "{act}′({v})"
                );
            }
        }
    }
}

/// The loss L = Σ g·y with y = act(α·conv(x, w) + b + β·z): the GPU's backward (dpre from the
/// saved tensor, then db, dX, dW with α·dpre as dY, dz = β·dpre) against central differences
/// of the f64 reference at random entries of x, w, b and z.
#[test]
fn the_backward_matches_finite_differences() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(0xe3);
    let pb = ConvProblem::new(
        &[2, 3, 6, 5],
        &[4, 3, 3, 3],
        ConvParams::default().padding(1, 1).stride(2, 1),
    )
    .unwrap();
    let x = rng.tensor(pb.x_len());
    let w = rng.tensor(pb.w_len());
    let b = rng.tensor(pb.k);
    let z = rng.tensor(pb.y_len());
    let g = rng.tensor(pb.y_len());
    let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());
    for act in ACTIVATIONS {
        let epi = Epilogue {
            activation: act,
            alpha: 0.8,
            beta: -0.6,
        };
        // The loss in f64, as a function of the four inputs.
        let loss = |x: &[f32], w: &[f32], b: &[f32], z: &[f32]| -> f64 {
            let c = reference::forward_f64(
                &pb,
                &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                &w.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                None,
            )
            .unwrap();
            let plane = pb.p * pb.q;
            c.iter()
                .enumerate()
                .map(|(i, &c)| {
                    let pre = epi.pre(c, f64::from(b[i / plane % pb.k]), f64::from(z[i]));
                    f64::from(g[i]) * act.apply(pre)
                })
                .sum()
        };
        let up = |v: &[f32], s: &[usize]| ctx.upload(v, s).unwrap();
        let (xt, wt, bt, zt, gt) = (
            up(&x, &xs),
            up(&w, &ws),
            up(&b, &[pb.k]),
            up(&z, &ys),
            up(&g, &ys),
        );
        let mut rec = ctx.recorder();
        let (y, pre) = rec
            .forward_fused_saving_pre(&xt, &wt, Some(&bt), Some(&zt), &epi, pb.params)
            .unwrap();
        let saved = if act.derivative_from_output() {
            &y
        } else {
            &pre
        };
        let kind = if act.derivative_from_output() {
            Saved::Output
        } else {
            Saved::PreActivation
        };
        let d_pre = rec.activation_grad(&gt, saved, act, kind, 1.0).unwrap();
        let d_conv = rec
            .activation_grad(&gt, saved, act, kind, epi.alpha)
            .unwrap();
        let dz = rec
            .activation_grad(&gt, saved, act, kind, epi.beta)
            .unwrap();
        let db = rec.bias_grad(&d_pre).unwrap();
        let dx = rec.input_grad(&d_conv, &wt, &xs, pb.params).unwrap();
        let dw = rec.weight_grad(&d_conv, &xt, &ws, pb.params).unwrap();
        rec.submit().unwrap();
        let grads = [
            ("dx", ctx.read(&dx).unwrap()),
            ("dw", ctx.read(&dw).unwrap()),
            ("db", ctx.read(&db).unwrap()),
            ("dz", ctx.read(&dz).unwrap()),
        ];
        for (t, (name, grad)) in grads.iter().enumerate() {
            let len = grad.len();
            for _ in 0..8 {
                let i = rng.range(0, len);
                let h = 1e-3f32;
                let mut inputs = [x.clone(), w.clone(), b.clone(), z.clone()];
                inputs[t][i] += h;
                let plus = loss(&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
                inputs[t][i] -= 2.0 * h;
                let minus = loss(&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
                // The step as f32 actually took it.
                let step = f64::from(inputs[t][i] + 2.0 * h) - f64::from(inputs[t][i]);
                let fd = (plus - minus) / step;
                let got = f64::from(grad[i]);
                // A kink inside the step makes the difference an average; skip those entries.
                if matches!(
                    act,
                    Activation::Relu
                        | Activation::LeakyRelu { .. }
                        | Activation::Relu6
                        | Activation::Clamp { .. }
                ) && (fd - got).abs() > 1e-2 * fd.abs().max(1.0)
                {
                    continue;
                }
                assert!(
                    (fd - got).abs() <= 2e-3 * fd.abs().max(1.0),
                    "{act}: {name}[{i}] GPU {got} vs finite difference {fd}"
                );
            }
        }
        // The CPU backward agrees with the GPU's.
        let y_host = ctx.read(saved).unwrap();
        let cpu = epilogue::gradient(act, &g, &y_host, kind, epi.beta).unwrap();
        assert_close(&format!("{act}: CPU dz"), &grads[3].1, &cpu);
    }
}

/// Bad parameters and misuse are typed errors naming the values, never panics.
#[test]
fn epilogue_errors_name_the_values() {
    let ctx = gpu().expect("GPU context");
    let x = ctx.upload(&[1.0; 16], &[1, 1, 4, 4]).unwrap();
    let w = ctx.upload(&[1.0; 9], &[1, 1, 3, 3]).unwrap();
    let mut rec = ctx.recorder();
    let clamp = Epilogue::new(Activation::Clamp { lo: 2.0, hi: 1.0 });
    let e = rec
        .forward_fused(&x, &w, None, None, &clamp, ConvParams::default())
        .unwrap_err();
    assert!(e.to_string().contains("lo=2 is above hi=1"), "{e}");
    let nan_alpha = Epilogue {
        alpha: f32::NAN,
        ..Default::default()
    };
    let e = rec
        .forward_fused(&x, &w, None, None, &nan_alpha, ConvParams::default())
        .unwrap_err();
    assert!(e.to_string().contains("alpha=NaN"), "{e}");
    let wrong_z = ctx.upload(&[0.0; 16], &[1, 1, 4, 4]).unwrap();
    let e = rec
        .forward_fused(
            &x,
            &w,
            None,
            Some(&wrong_z),
            &Epilogue::default(),
            ConvParams::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("residual z"), "{e}");
    let y = ctx.upload(&[0.5; 4], &[1, 1, 2, 2]).unwrap();
    let e = rec
        .activation_grad(&y, &y, Activation::Gelu, Saved::Output, 1.0)
        .unwrap_err();
    assert!(e.to_string().contains("derivative of gelu"), "{e}");
    let e = rec
        .activation_grad(&y, &x, Activation::Relu, Saved::Output, 1.0)
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    for text in ["leaky-relu:inf", "clamp:1", "relu6:2", "softplus"] {
        let e = text.parse::<Activation>().unwrap_err();
        assert!(
            e.to_string().contains(text.split(':').next().unwrap()),
            "{e}"
        );
    }
}

/// Without an adapter: a fused plan of a problem that fits is its forward's one dispatch with
/// the epilogue compiled in, the residual and pre-activation bound from their operands and Y
/// bound once; under a small binding limit the forward runs in tiles and the epilogue's own pass
/// covers every element of Y exactly once, in aligned chunks.
#[test]
fn fused_plans_bind_the_epilogue_tensors_and_cover_y() {
    use gpuconv::gpu::kernels::Kernel;
    use gpuconv::gpu::plan::{BufferRef, Operand, Planner, Step};
    use gpuconv::gpu::uniform::UniformValue;
    use gpuconv::gpu::TileProfile;
    let mut rng = SplitMix64::new(0xe4);
    let whole = Planner::new(TileProfile::SIMD_CPU, gpuconv::wgpu::Limits::default());
    let small = Planner::new(
        TileProfile::GPU,
        gpuconv::wgpu::Limits {
            max_storage_buffer_binding_size: 4096,
            ..Default::default()
        },
    );
    let mut passes_seen = 0;
    for i in 0..120 {
        let c = random_case(&mut rng, i);
        let pb = ConvProblem::new(&c.x, &c.w, c.params).unwrap();
        let fused = FusedForward {
            epilogue: Epilogue::new(Activation::Silu),
            bias: i % 2 == 0,
            residual: i % 3 != 0,
            save_pre: i % 4 == 0,
        };
        let plan = whole.plan_fused_forward(&pb, &fused).unwrap();
        let ds: Vec<_> = plan.dispatches().collect();
        assert_eq!(ds.len(), 1, "{plan:#}");
        let d = ds[0];
        assert!(d.epilogue.fused && d.kernel != Kernel::Epilogue, "{plan:#}");
        assert_eq!(d.epilogue.residual, fused.residual);
        assert_eq!(d.epilogue.save_pre, fused.save_pre);
        let bound = |name: &str| {
            d.binds
                .iter()
                .find(|b| b.name == name)
                .unwrap()
                .slice
                .buffer
        };
        let y_name = if matches!(d.kernel, Kernel::Forward | Kernel::BlockForward) {
            "y"
        } else {
            "dst"
        };
        assert_eq!(bound(y_name), BufferRef::Output);
        if fused.residual {
            assert_eq!(bound("residual"), BufferRef::Operand(Operand::Residual));
        }
        if fused.save_pre {
            assert_eq!(bound("pre"), BufferRef::Operand(Operand::Pre));
        }
        for op in [Operand::Bias, Operand::Residual, Operand::Pre] {
            let wanted = match op {
                Operand::Bias => fused.bias,
                Operand::Residual => fused.residual,
                _ => fused.save_pre,
            };
            assert_eq!(plan.inputs.iter().any(|(o, _)| *o == op), wanted, "{op:?}");
        }
        match &d.uniform {
            UniformValue::Conv(u) => assert_eq!((u.alpha, u.beta), (1.0, 1.0)),
            UniformValue::Pointwise(u) => assert_eq!((u.alpha, u.beta), (1.0, 1.0)),
            UniformValue::Depthwise(u) => assert_eq!((u.alpha, u.beta), (1.0, 1.0)),
            other => panic!("{other:?}"),
        }

        let Ok(tiled) = small.plan_fused_forward(&pb, &fused) else {
            continue;
        };
        let passes: Vec<_> = tiled
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Dispatch(d) if d.kernel == Kernel::Epilogue => Some(d),
                _ => None,
            })
            .collect();
        if passes.is_empty() {
            assert_eq!(tiled.dispatches().count(), 1, "{tiled:#}");
            continue;
        }
        // The epilogue's own pass comes last and covers Y once, in order, at aligned offsets.
        passes_seen += 1;
        let mut next = 0u64;
        for d in &passes {
            let y = d.binds.iter().find(|b| b.name == "y").unwrap().slice;
            assert_eq!(y.buffer, BufferRef::Output);
            assert_eq!(y.offset, next);
            assert_eq!(y.offset % 256, 0);
            let UniformValue::Elementwise(u) = d.uniform else {
                panic!()
            };
            assert_eq!(u64::from(u.len) * 4, y.size.unwrap());
            next += y.size.unwrap();
        }
        assert_eq!(next, pb.y_len() as u64 * 4, "{tiled:#}");
        assert!(
            matches!(tiled.steps.last(), Some(Step::Dispatch(d)) if d.kernel == Kernel::Epilogue)
        );
        // The tiled forward adds no bias itself: only the pass does (after α).
        for d in tiled.dispatches().filter(|d| d.kernel != Kernel::Epilogue) {
            assert!(!d.epilogue.fused);
            if let Some(b) = d.binds.iter().find(|b| b.name == "bias") {
                assert_eq!(b.slice.buffer, BufferRef::Zeros, "{tiled:#}");
            }
        }
    }
    assert!(
        passes_seen >= 20,
        "only {passes_seen} problems took the epilogue's own pass"
    );
}

/// NaN and ±∞ in X reach the fused epilogue as PyTorch's activations pass them: every
/// activation gives the reference's value, finite or not, at every output.
#[test]
fn non_finite_inputs_pass_through_the_epilogue_as_in_the_reference() {
    use gpuconv::metrics::compare_nan_aware;
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(0xe5);
    let c = case(
        "3x3",
        [1, 3, 7, 6],
        [4, 3, 3, 3],
        ConvParams::default().padding(1, 1),
    );
    let pb = ConvProblem::new(&c.x, &c.w, c.params).unwrap();
    for act in ACTIVATIONS {
        for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = rng.tensor(pb.x_len());
            x[rng.range(0, pb.x_len())] = special;
            let w = rng.tensor(pb.w_len());
            let b = rng.tensor(pb.k);
            let addends = Addends {
                bias: Some(&b),
                residual: None,
            };
            let epi = Epilogue::new(act);
            let (want, _) = reference::forward_fused(&pb, &x, &w, addends, &epi).unwrap();
            assert!(want.iter().any(|v| !v.is_finite()) || act != Activation::Identity);
            let (got, _) = ctx
                .conv2d_forward_fused(&x, &c.x, &w, &c.w, addends, &epi, c.params, false)
                .unwrap();
            let e = compare_nan_aware(&got, &want);
            assert!(e.within_tolerance(), "{act} with {special} in x: {e:?}");
        }
    }
}
