//! The fast CPU path: what the benchmark calls "CPU".
//!
//! Dense problems run as im2col + SGEMM (the `gemm` crate, multithreaded with rayon), one GEMM
//! per (image, group): forward Y = W·col(X), input gradient col(dX) = Wᵀ·dY then col2im,
//! weight gradient dW = Σₙ dY·col(X)ᵀ. A 1×1, stride-1, unpadded problem skips im2col (X is its
//! own column matrix). Depthwise-like problems (one input channel per group) run direct loops
//! parallel over channel planes instead, where a GEMM would be 1×R·S wide.
//! Accumulation is f32; tests hold it to the same tolerance as the GPU.

use rayon::prelude::*;

use crate::error::{Result, TensorRole};
use crate::problem::ConvProblem;

pub use crate::cpu::reference::bias_grad;

/// A row-major view with explicit strides, for the GEMM wrapper.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }
    fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// dst (m×n, row-major, contiguous) = a·b, or += a·b when `accumulate`.
fn sgemm(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst.len() >= m * n && a.fits() && b.fits(),
        "sgemm shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above keep every index the GEMM touches inside `a`, `b` and `dst`
    // (dst is m×n with row stride n), and `dst` is a unique borrow that aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// True when X itself is the column matrix (1×1 kernel, stride 1, no padding).
fn is_pointwise(pb: &ConvProblem) -> bool {
    pb.r == 1 && pb.s == 1 && pb.params.stride == [1, 1] && pb.params.padding == [0; 4]
}

/// True when each group has one input channel (depthwise and its channel multipliers).
fn is_depthwise(pb: &ConvProblem) -> bool {
    pb.c_per_group() == 1 && pb.params.groups > 1
}

/// One output row p of kernel tap (r, s) that lands inside the input: output columns `qs` of
/// row p read input row `h` at columns w0, w0 + sw, w0 + 2·sw, …
struct TapRow {
    p: usize,
    h: usize,
    qs: std::ops::Range<usize>,
    w0: usize,
}

/// Every output row of tap (r, s) that touches the input, from the problem's index relations.
fn tap_rows(pb: &ConvProblem, r: usize, s: usize) -> impl Iterator<Item = TapRow> + '_ {
    let qs = pb.valid_output_cols(s);
    let w0 = pb.input_col(qs.start, s);
    let rows = if qs.is_empty() {
        0..0
    } else {
        pb.valid_output_rows(r)
    };
    rows.map(move |p| TapRow {
        p,
        h: pb.input_row(p, r).expect("p in the valid range"),
        qs: qs.clone(),
        w0: w0.expect("q in the valid range"),
    })
}

/// col[(c·R + r)·S + s][p·Q + q] = X[n, g·Cg + c, h(p, r), w(q, s)], zero in the padding.
fn im2col(pb: &ConvProblem, x: &[f32], n: usize, g: usize, col: &mut [f32]) {
    let (pq, rs, sw) = (pb.p * pb.q, pb.r * pb.s, pb.params.stride[1]);
    col.par_chunks_mut(pq).enumerate().for_each(|(row, out)| {
        let (c, r, s) = (row / rs, (row % rs) / pb.s, row % pb.s);
        let plane = &x[pb.x_index(n, g * pb.c_per_group() + c, 0, 0)..][..pb.h * pb.w];
        out.fill(0.0);
        for t in tap_rows(pb, r, s) {
            let src = &plane[t.h * pb.w..][..pb.w];
            let dst = &mut out[t.p * pb.q..][..pb.q];
            if sw == 1 {
                let len = t.qs.len();
                dst[t.qs].copy_from_slice(&src[t.w0..t.w0 + len]);
            } else {
                for (i, q) in t.qs.enumerate() {
                    dst[q] = src[t.w0 + i * sw];
                }
            }
        }
    });
}

/// Y = conv(X, W) (+ b).
pub fn forward(pb: &ConvProblem, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    pb.check_len(TensorRole::Input, x.len())?;
    pb.check_len(TensorRole::Weight, w.len())?;
    if let Some(b) = bias {
        pb.check_len(TensorRole::Bias, b.len())?;
    }
    let mut y = if is_depthwise(pb) {
        depthwise_forward(pb, x, w)
    } else {
        let (cg, kg, pq) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q);
        let crs = cg * pb.r * pb.s;
        let mut y = vec![0f32; pb.y_len()];
        let mut col = vec![0f32; if is_pointwise(pb) { 0 } else { crs * pq }];
        for n in 0..pb.n {
            for g in 0..pb.params.groups {
                let w_g = Mat::row_major(&w[g * kg * crs..][..kg * crs], kg, crs);
                let y_ng = &mut y[pb.y_index(n, g * kg, 0, 0)..][..kg * pq];
                if is_pointwise(pb) {
                    let x_ng = &x[pb.x_index(n, g * cg, 0, 0)..][..cg * pq];
                    sgemm(y_ng, w_g, Mat::row_major(x_ng, cg, pq), false);
                } else {
                    im2col(pb, x, n, g, &mut col);
                    sgemm(y_ng, w_g, Mat::row_major(&col, crs, pq), false);
                }
            }
        }
        y
    };
    if let Some(b) = bias {
        let pq = pb.p * pb.q;
        y.par_chunks_mut(pq).enumerate().for_each(|(nk, plane)| {
            let bk = b[nk % pb.k];
            plane.iter_mut().for_each(|v| *v += bk);
        });
    }
    Ok(y)
}

/// dX from dY and W.
pub fn input_grad(pb: &ConvProblem, dy: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    pb.check_len(TensorRole::OutputGrad, dy.len())?;
    pb.check_len(TensorRole::Weight, w.len())?;
    if is_depthwise(pb) {
        return Ok(depthwise_input_grad(pb, dy, w));
    }
    let (cg, kg, pq) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q);
    let crs = cg * pb.r * pb.s;
    let mut dx = vec![0f32; pb.x_len()];
    let mut col = vec![0f32; crs * pq];
    for n in 0..pb.n {
        for g in 0..pb.params.groups {
            let w_g = Mat::row_major(&w[g * kg * crs..][..kg * crs], kg, crs);
            let dy_ng = Mat::row_major(&dy[pb.y_index(n, g * kg, 0, 0)..][..kg * pq], kg, pq);
            let dx_ng = &mut dx[pb.x_index(n, g * cg, 0, 0)..][..cg * pb.h * pb.w];
            if is_pointwise(pb) {
                sgemm(dx_ng, w_g.t(), dy_ng, false);
            } else {
                sgemm(&mut col, w_g.t(), dy_ng, false);
                col2im(pb, &col, dx_ng);
            }
        }
    }
    Ok(dx)
}

/// Scatter-adds the column matrix of one (image, group) into its dX planes, parallel over channels.
fn col2im(pb: &ConvProblem, col: &[f32], dx_ng: &mut [f32]) {
    let (pq, rs, sw) = (pb.p * pb.q, pb.r * pb.s, pb.params.stride[1]);
    dx_ng
        .par_chunks_mut(pb.h * pb.w)
        .enumerate()
        .for_each(|(c, plane)| {
            for r in 0..pb.r {
                for s in 0..pb.s {
                    let src = &col[(c * rs + r * pb.s + s) * pq..][..pq];
                    for t in tap_rows(pb, r, s) {
                        let dst = &mut plane[t.h * pb.w..][..pb.w];
                        for (i, q) in t.qs.enumerate() {
                            dst[t.w0 + i * sw] += src[t.p * pb.q + q];
                        }
                    }
                }
            }
        });
}

/// dW from dY and X.
pub fn weight_grad(pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    pb.check_len(TensorRole::OutputGrad, dy.len())?;
    pb.check_len(TensorRole::Input, x.len())?;
    if is_depthwise(pb) {
        return Ok(depthwise_weight_grad(pb, dy, x));
    }
    let (cg, kg, pq) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q);
    let crs = cg * pb.r * pb.s;
    let mut dw = vec![0f32; pb.w_len()];
    let mut col = vec![0f32; if is_pointwise(pb) { 0 } else { crs * pq }];
    for n in 0..pb.n {
        for g in 0..pb.params.groups {
            let dy_ng = Mat::row_major(&dy[pb.y_index(n, g * kg, 0, 0)..][..kg * pq], kg, pq);
            let dw_g = &mut dw[g * kg * crs..][..kg * crs];
            let cols = if is_pointwise(pb) {
                Mat::row_major(&x[pb.x_index(n, g * cg, 0, 0)..][..cg * pq], cg, pq)
            } else {
                im2col(pb, x, n, g, &mut col);
                Mat::row_major(&col, crs, pq)
            };
            sgemm(dw_g, dy_ng, cols.t(), n > 0);
        }
    }
    Ok(dw)
}

/// Input channel of output channel `k` when each group has one input channel.
fn depthwise_channel(pb: &ConvProblem, k: usize) -> usize {
    pb.group_of_output(k)
}

fn depthwise_forward(pb: &ConvProblem, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (pq, hw, rs, sw) = (pb.p * pb.q, pb.h * pb.w, pb.r * pb.s, pb.params.stride[1]);
    let mut y = vec![0f32; pb.y_len()];
    y.par_chunks_mut(pq).enumerate().for_each(|(nk, out)| {
        let (n, k) = (nk / pb.k, nk % pb.k);
        let plane = &x[pb.x_index(n, depthwise_channel(pb, k), 0, 0)..][..hw];
        for r in 0..pb.r {
            for s in 0..pb.s {
                let wv = w[k * rs + r * pb.s + s];
                for t in tap_rows(pb, r, s) {
                    let (dst, src) = (&mut out[t.p * pb.q..][..pb.q], &plane[t.h * pb.w..][..pb.w]);
                    if sw == 1 {
                        // Contiguous rows: a zip the compiler vectorises.
                        let len = t.qs.len();
                        for (d, x) in dst[t.qs].iter_mut().zip(&src[t.w0..t.w0 + len]) {
                            *d += wv * x;
                        }
                    } else {
                        for (i, q) in t.qs.enumerate() {
                            dst[q] += wv * src[t.w0 + i * sw];
                        }
                    }
                }
            }
        }
    });
    y
}

fn depthwise_input_grad(pb: &ConvProblem, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (pq, hw, rs, sw) = (pb.p * pb.q, pb.h * pb.w, pb.r * pb.s, pb.params.stride[1]);
    let kg = pb.k_per_group();
    let mut dx = vec![0f32; pb.x_len()];
    dx.par_chunks_mut(hw).enumerate().for_each(|(nc, plane)| {
        let (n, c) = (nc / pb.c, nc % pb.c);
        for k in c * kg..(c + 1) * kg {
            let g = &dy[pb.y_index(n, k, 0, 0)..][..pq];
            for r in 0..pb.r {
                for s in 0..pb.s {
                    let wv = w[k * rs + r * pb.s + s];
                    for t in tap_rows(pb, r, s) {
                        let (dst, src) =
                            (&mut plane[t.h * pb.w..][..pb.w], &g[t.p * pb.q..][..pb.q]);
                        if sw == 1 {
                            let len = t.qs.len();
                            for (d, g) in dst[t.w0..t.w0 + len].iter_mut().zip(&src[t.qs]) {
                                *d += wv * g;
                            }
                        } else {
                            for (i, q) in t.qs.enumerate() {
                                dst[t.w0 + i * sw] += wv * src[q];
                            }
                        }
                    }
                }
            }
        }
    });
    dx
}

fn depthwise_weight_grad(pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Vec<f32> {
    let (pq, hw, rs, sw) = (pb.p * pb.q, pb.h * pb.w, pb.r * pb.s, pb.params.stride[1]);
    let mut dwt = vec![0f32; pb.w_len()];
    dwt.par_chunks_mut(rs).enumerate().for_each(|(k, out)| {
        let c = depthwise_channel(pb, k);
        for n in 0..pb.n {
            let g = &dy[pb.y_index(n, k, 0, 0)..][..pq];
            let plane = &x[pb.x_index(n, c, 0, 0)..][..hw];
            for r in 0..pb.r {
                for s in 0..pb.s {
                    let mut acc = 0f32;
                    for t in tap_rows(pb, r, s) {
                        let (row, src) = (&plane[t.h * pb.w..][..pb.w], &g[t.p * pb.q..][..pb.q]);
                        for (i, q) in t.qs.enumerate() {
                            acc += src[q] * row[t.w0 + i * sw];
                        }
                    }
                    out[r * pb.s + s] += acc;
                }
            }
        }
    });
    dwt
}
