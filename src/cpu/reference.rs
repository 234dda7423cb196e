//! The reference convolution: plain loops over [`ConvProblem::taps`], accumulated in f64.
//!
//! Kept obviously correct rather than fast: every op walks the same list of forward terms
//! X\[x\]·W\[w\] → Y\[y\]; the gradients scatter along those terms instead of gathering.
//! Parallel over independent output slices only, so results do not depend on thread count.
//!
//! NaN and ±∞ follow PyTorch: the padding is a zero that the forward pass multiplies by its
//! weights and the weight gradient by dY ([`ConvProblem::padding_taps`]), so 0·NaN = NaN reaches
//! those sums; the input gradient has only the terms that exist (a tap that misses dY adds
//! nothing). Buffers are allocated fallibly: a problem too large for memory is an error.

use rayon::prelude::*;

use crate::cpu::alloc::{filled, vec_with_capacity};
use crate::epilogue::{Addends, Epilogue};
use crate::error::{Result, TensorRole};
use crate::problem::{check_data_len, check_output_grad_shape, ConvProblem};

fn widen(v: &[f32], what: &str) -> Result<Vec<f64>> {
    let mut out = vec_with_capacity(v.len(), what)?;
    out.extend(v.iter().map(|&a| f64::from(a)));
    Ok(out)
}

fn narrow(v: Vec<f64>, what: &str) -> Result<Vec<f32>> {
    let mut out = vec_with_capacity(v.len(), what)?;
    out.extend(v.into_iter().map(|a| a as f32));
    Ok(out)
}

fn f64_nonfinite(v: &[f64]) -> bool {
    v.iter().any(|a| !a.is_finite())
}

/// Y = conv(X, W) (+ b): Y\[n,k,p,q\] = Σ_{c,r,s} X\[n,c,p·sh−top+r·dh,q·sw−left+s·dw\]·W\[k,c,r,s\] + b\[k\].
pub fn forward(
    problem: &ConvProblem,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let bias = bias.map(|b| widen(b, "bias b (f64)")).transpose()?;
    let y = forward_f64(
        problem,
        &widen(x, "input x (f64)")?,
        &widen(w, "weight w (f64)")?,
        bias.as_deref(),
    )?;
    narrow(y, "output y")
}

/// The fused forward y = act(α·conv(x, w) + b + β·z) with everything in f64 until the final
/// rounding; returns y and the pre-activation α·conv + b + β·z.
pub fn forward_fused(
    problem: &ConvProblem,
    x: &[f32],
    w: &[f32],
    addends: Addends<'_>,
    epilogue: &Epilogue,
) -> Result<(Vec<f32>, Vec<f32>)> {
    epilogue.validate()?;
    if let Some(b) = addends.bias {
        problem.check_len(TensorRole::Bias, b.len())?;
    }
    if let Some(z) = addends.residual {
        problem.check_len(TensorRole::Residual, z.len())?;
    }
    let c = forward_f64(
        problem,
        &widen(x, "input x (f64)")?,
        &widen(w, "weight w (f64)")?,
        None,
    )?;
    let plane = problem.p * problem.q;
    let mut y = vec_with_capacity(c.len(), "output y")?;
    let mut pre = vec_with_capacity(c.len(), "pre-activation")?;
    for (i, &c) in c.iter().enumerate() {
        let b = addends
            .bias
            .map_or(0.0, |b| f64::from(b[i / plane % problem.k]));
        let z = addends.residual.map_or(0.0, |z| f64::from(z[i]));
        let v = epilogue.pre(c, b, z);
        pre.push(v as f32);
        y.push(epilogue.activation.apply(v) as f32);
    }
    Ok((y, pre))
}

/// dX\[n,c,h,w\] = Σ over every (k, p, q, r, s) whose window put X\[n,c,h,w\] under W\[k,c,r,s\] of dY\[n,k,p,q\]·W\[k,c,r,s\].
pub fn input_grad(problem: &ConvProblem, dy: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    let dx = input_grad_f64(
        problem,
        &widen(dy, "output gradient dy (f64)")?,
        &widen(w, "weight w (f64)")?,
    )?;
    narrow(dx, "input gradient dx")
}

/// dW\[k,c,r,s\] = Σ_{n,p,q} dY\[n,k,p,q\]·X\[n,c,p·sh−top+r·dh,q·sw−left+s·dw\]: one term per output
/// position the shared weight touched.
pub fn weight_grad(problem: &ConvProblem, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    let dw = weight_grad_f64(
        problem,
        &widen(dy, "output gradient dy (f64)")?,
        &widen(x, "input x (f64)")?,
    )?;
    narrow(dw, "weight gradient dw")
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
    let mut y = filled(problem.y_len(), 0f64, "output y (f64)")?;
    // Padding terms add 0·w: nothing unless a weight is NaN or ±∞.
    let padding_terms = f64_nonfinite(w);
    y.par_chunks_mut(pq).enumerate().for_each(|(nk, plane)| {
        let (n, k) = (nk / problem.k, nk % problem.k);
        for (i, out) in plane.iter_mut().enumerate() {
            let (p, q) = (i / problem.q, i % problem.q);
            let mut acc = bias.map_or(0.0, |b| b[k]);
            for tap in problem.taps(n, k, p, q) {
                acc += x[tap.x] * w[tap.w];
            }
            if padding_terms {
                for wi in problem.padding_taps(k, p, q) {
                    acc += 0.0 * w[wi];
                }
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
    let mut dx = filled(problem.x_len(), 0f64, "input gradient dx (f64)")?;
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
    let mut dw = filled(problem.w_len(), 0f64, "weight gradient dw (f64)")?;
    // Padding terms add dY·0: nothing unless a dY value is NaN or ±∞.
    let padding_terms = f64_nonfinite(dy);
    dw.par_chunks_mut(crs).enumerate().for_each(|(k, dw_k)| {
        for n in 0..problem.n {
            for p in 0..problem.p {
                for q in 0..problem.q {
                    let g = dy[problem.y_index(n, k, p, q)];
                    for tap in problem.taps(n, k, p, q) {
                        dw_k[tap.w - k * crs] += g * x[tap.x];
                    }
                    if padding_terms {
                        for wi in problem.padding_taps(k, p, q) {
                            dw_k[wi - k * crs] += g * 0.0;
                        }
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
