//! Central finite differences (f64) of the reference forward check the reference gradients.
//! With E = Σ G·Y for a random G, ∂E/∂X is the input gradient of dY = G and ∂E/∂W the weight
//! gradient; E is linear in X and in W, so central differences are exact up to rounding.

mod common;

use common::SplitMix64;
use gpuconv::cpu::reference::{bias_grad, forward_f64, input_grad_f64, weight_grad_f64};
use gpuconv::{ConvParams, ConvProblem};

fn energy(pb: &ConvProblem, x: &[f64], w: &[f64], b: &[f64], g: &[f64]) -> f64 {
    let y = forward_f64(pb, x, w, Some(b)).unwrap();
    y.iter().zip(g).map(|(a, b)| a * b).sum()
}

fn random_f64(rng: &mut SplitMix64, len: usize) -> Vec<f64> {
    (0..len).map(|_| 2.0 * rng.next_f64() - 1.0).collect()
}

fn check(pb: &ConvProblem, rng: &mut SplitMix64) {
    let x = random_f64(rng, pb.x_len());
    let w = random_f64(rng, pb.w_len());
    let b = random_f64(rng, pb.k);
    let g = random_f64(rng, pb.y_len());
    let eps = 1e-3;
    let dx = input_grad_f64(pb, &g, &w).unwrap();
    let dw = weight_grad_f64(pb, &g, &x).unwrap();
    let numeric = |which: usize, i: usize| {
        let (mut xp, mut wp, mut bp) = (x.clone(), w.clone(), b.clone());
        let (mut xm, mut wm, mut bm) = (x.clone(), w.clone(), b.clone());
        match which {
            0 => {
                xp[i] += eps;
                xm[i] -= eps;
            }
            1 => {
                wp[i] += eps;
                wm[i] -= eps;
            }
            _ => {
                bp[i] += eps;
                bm[i] -= eps;
            }
        }
        (energy(pb, &xp, &wp, &bp, &g) - energy(pb, &xm, &wm, &bm, &g)) / (2.0 * eps)
    };
    for (i, &analytic) in dx.iter().enumerate() {
        let num = numeric(0, i);
        assert!(
            (num - analytic).abs() <= 1e-8 * (1.0 + num.abs()),
            "{pb:?}: dX[{i}] analytic {analytic} numeric {num}"
        );
    }
    for (i, &analytic) in dw.iter().enumerate() {
        let num = numeric(1, i);
        assert!(
            (num - analytic).abs() <= 1e-8 * (1.0 + num.abs()),
            "{pb:?}: dW[{i}] analytic {analytic} numeric {num}"
        );
    }
    // The bias gradient is checked through the f32 API against the f64 sums.
    let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
    let db = bias_grad(&pb.y_shape(), &g32).unwrap();
    for (k, &analytic) in db.iter().enumerate() {
        let num = numeric(2, k);
        assert!(
            (num - analytic as f64).abs() <= 1e-5 * (1.0 + num.abs()),
            "db[{k}] analytic {analytic} numeric {num}"
        );
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = SplitMix64::new(0x9_7ad);
    let p = ConvParams::default;
    let problems = [
        ConvProblem::new(&[1, 2, 5, 5], &[3, 2, 3, 3], p()).unwrap(),
        ConvProblem::new(
            &[2, 2, 7, 6],
            &[2, 2, 3, 2],
            p().stride(2, 3).padding_tlbr(1, 0, 2, 1),
        )
        .unwrap(),
        ConvProblem::new(
            &[1, 4, 8, 7],
            &[6, 2, 2, 3],
            p().dilation(2, 1).groups(2).padding(1, 2),
        )
        .unwrap(),
        ConvProblem::new(
            &[2, 3, 6, 6],
            &[6, 1, 3, 3],
            p().groups(3).stride(2, 2).dilation(1, 2).padding(2, 2),
        )
        .unwrap(),
    ];
    for pb in &problems {
        check(pb, &mut rng);
    }
}
