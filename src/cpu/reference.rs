//! The reference convolution: plain loops over [`ConvProblem::taps`], accumulated in f64.
//!
//! Kept obviously correct rather than fast: every op walks the same list of forward terms
//! X\[x\]·W\[w\] → Y\[y\]; the gradients scatter along those terms instead of gathering.
//! Parallel over independent output slices only, so results do not depend on thread count.

use rayon::prelude::*;

use crate::error::{Result, TensorRole};
use crate::problem::{check_data_len, check_output_grad_shape, ConvProblem};

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}

fn narrow(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|a| a as f32).collect()
}

/// Y = conv(X, W) (+ b): Y\[n,k,p,q\] = Σ_{c,r,s} X\[n,c,p·sh−top+r·dh,q·sw−left+s·dw\]·W\[k,c,r,s\] + b\[k\].
pub fn forward(
    problem: &ConvProblem,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let bias = bias.map(widen);
    forward_f64(problem, &widen(x), &widen(w), bias.as_deref()).map(narrow)
}

/// dX\[n,c,h,w\] = Σ over every (k, p, q, r, s) whose window put X\[n,c,h,w\] under W\[k,c,r,s\] of dY\[n,k,p,q\]·W\[k,c,r,s\].
pub fn input_grad(problem: &ConvProblem, dy: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    input_grad_f64(problem, &widen(dy), &widen(w)).map(narrow)
}

/// dW\[k,c,r,s\] = Σ_{n,p,q} dY\[n,k,p,q\]·X\[n,c,p·sh−top+r·dh,q·sw−left+s·dw\]: one term per output
/// position the shared weight touched.
pub fn weight_grad(problem: &ConvProblem, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    weight_grad_f64(problem, &widen(dy), &widen(x)).map(narrow)
}

/// [`forward`] in f64 throughout (for gradient checks).
pub fn forward_f64(
    problem: &ConvProblem,
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
) -> Result<Vec<f64>> {
    problem.check_len(TensorRole::Input, x.len())?;
    problem.check_len(TensorRole::Weight, w.len())?;
    if let Some(b) = bias {
        problem.check_len(TensorRole::Bias, b.len())?;
    }
    let pq = problem.p * problem.q;
    let mut y = vec![0f64; problem.y_len()];
    y.par_chunks_mut(pq).enumerate().for_each(|(nk, plane)| {
        let (n, k) = (nk / problem.k, nk % problem.k);
        for (i, out) in plane.iter_mut().enumerate() {
            let (p, q) = (i / problem.q, i % problem.q);
            let mut acc = bias.map_or(0.0, |b| b[k]);
            for tap in problem.taps(n, k, p, q) {
                acc += x[tap.x] * w[tap.w];
            }
            *out = acc;
        }
    });
    Ok(y)
}

/// [`input_grad`] in f64 throughout: scatters dY·W along every forward term.
pub fn input_grad_f64(problem: &ConvProblem, dy: &[f64], w: &[f64]) -> Result<Vec<f64>> {
    problem.check_len(TensorRole::OutputGrad, dy.len())?;
    problem.check_len(TensorRole::Weight, w.len())?;
    let chw = problem.c * problem.h * problem.w;
    let mut dx = vec![0f64; problem.x_len()];
    dx.par_chunks_mut(chw).enumerate().for_each(|(n, dx_n)| {
        for k in 0..problem.k {
            for p in 0..problem.p {
                for q in 0..problem.q {
                    let g = dy[problem.y_index(n, k, p, q)];
                    for tap in problem.taps(n, k, p, q) {
                        dx_n[tap.x - n * chw] += g * w[tap.w];
                    }
                }
            }
        }
    });
    Ok(dx)
}

/// [`weight_grad`] in f64 throughout: scatters dY·X along every forward term.
pub fn weight_grad_f64(problem: &ConvProblem, dy: &[f64], x: &[f64]) -> Result<Vec<f64>> {
    problem.check_len(TensorRole::OutputGrad, dy.len())?;
    problem.check_len(TensorRole::Input, x.len())?;
    let crs = problem.c_per_group() * problem.r * problem.s;
    let mut dw = vec![0f64; problem.w_len()];
    dw.par_chunks_mut(crs).enumerate().for_each(|(k, dw_k)| {
        for n in 0..problem.n {
            for p in 0..problem.p {
                for q in 0..problem.q {
                    let g = dy[problem.y_index(n, k, p, q)];
                    for tap in problem.taps(n, k, p, q) {
                        dw_k[tap.w - k * crs] += g * x[tap.x];
                    }
                }
            }
        }
    });
    Ok(dw)
}

/// db\[k\] = Σ_{n,p,q} dY\[n,k,p,q\]. `dy_shape` is (N, K, P, Q).
pub fn bias_grad(dy_shape: &[usize], dy: &[f32]) -> Result<Vec<f32>> {
    let [n, k, p, q] = check_output_grad_shape(dy_shape)?;
    check_data_len(TensorRole::OutputGrad, dy_shape, dy.len())?;
    Ok((0..k)
        .map(|kk| {
            let mut acc = 0f64;
            for nn in 0..n {
                let start = (nn * k + kk) * p * q;
                acc += dy[start..start + p * q]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            acc as f32
        })
        .collect())
}
