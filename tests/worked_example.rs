//! The classic example: X is 3×3 holding V1..V9, W is 2×2 holding W1..W4, stride 1, no padding.
//! G1 = V1W1 + V2W2 + V4W3 + V5W4 (and G2..G4 likewise), and
//! ∂E/∂W1 = ∂E/∂G1·V1 + ∂E/∂G2·V2 + ∂E/∂G3·V4 + ∂E/∂G4·V5.

mod common;

use common::{assert_close, gpu, SplitMix64};
use gpuconv::cpu::reference;
use gpuconv::{ConvParams, ConvProblem};

fn vals(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    rng.tensor(n)
}

/// The hand-derived answers, indexed V[1..=9], W[1..=4], dG[1..=4] (index 0 unused).
fn hand(v: &[f32], w: &[f32], dg: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (v, w, dg) = (
        |i: usize| v[i - 1] as f64,
        |i: usize| w[i - 1] as f64,
        |i: usize| dg[i - 1] as f64,
    );
    let g = vec![
        v(1) * w(1) + v(2) * w(2) + v(4) * w(3) + v(5) * w(4),
        v(2) * w(1) + v(3) * w(2) + v(5) * w(3) + v(6) * w(4),
        v(4) * w(1) + v(5) * w(2) + v(7) * w(3) + v(8) * w(4),
        v(5) * w(1) + v(6) * w(2) + v(8) * w(3) + v(9) * w(4),
    ];
    let dw = vec![
        dg(1) * v(1) + dg(2) * v(2) + dg(3) * v(4) + dg(4) * v(5),
        dg(1) * v(2) + dg(2) * v(3) + dg(3) * v(5) + dg(4) * v(6),
        dg(1) * v(4) + dg(2) * v(5) + dg(3) * v(7) + dg(4) * v(8),
        dg(1) * v(5) + dg(2) * v(6) + dg(3) * v(8) + dg(4) * v(9),
    ];
    // Each V collects ∂E/∂G·W from every output window that covered it (the flipped kernel).
    let dv = vec![
        dg(1) * w(1),
        dg(1) * w(2) + dg(2) * w(1),
        dg(2) * w(2),
        dg(1) * w(3) + dg(3) * w(1),
        dg(1) * w(4) + dg(2) * w(3) + dg(3) * w(2) + dg(4) * w(1),
        dg(2) * w(4) + dg(4) * w(2),
        dg(3) * w(3),
        dg(3) * w(4) + dg(4) * w(3),
        dg(4) * w(4),
    ];
    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (f(g), f(dw), f(dv))
}

#[test]
fn classic_example_on_cpu_and_gpu() {
    let mut rng = SplitMix64::new(2024);
    let (v, w, dg) = (vals(&mut rng, 9), vals(&mut rng, 4), vals(&mut rng, 4));
    let params = ConvParams::default();
    let pb = ConvProblem::new(&[1, 1, 3, 3], &[1, 1, 2, 2], params).unwrap();
    assert_eq!(pb.y_shape(), [1, 1, 2, 2]);
    let (g, dw, dv) = hand(&v, &w, &dg);

    assert_close("CPU G", &reference::forward(&pb, &v, &w, None).unwrap(), &g);
    assert_close(
        "CPU dE/dW",
        &reference::weight_grad(&pb, &dg, &v).unwrap(),
        &dw,
    );
    assert_close(
        "CPU dE/dV",
        &reference::input_grad(&pb, &dg, &w).unwrap(),
        &dv,
    );

    let ctx = gpu().expect("GPU context");
    let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());
    assert_close(
        "GPU G",
        &ctx.conv2d_forward(&v, &xs, &w, &ws, None, params).unwrap(),
        &g,
    );
    assert_close(
        "GPU dE/dW",
        &ctx.conv2d_weight_grad(&dg, &ys, &v, &xs, &ws, params)
            .unwrap(),
        &dw,
    );
    assert_close(
        "GPU dE/dV",
        &ctx.conv2d_input_grad(&dg, &ys, &w, &ws, &xs, params)
            .unwrap(),
        &dv,
    );
}
