//! Portable depthwise kernels (one input channel per group), for CPUs without AVX-512 and as
//! the tuner's `portable` candidate everywhere.
//!
//! Every stride runs as stride 1: the zero-bordered input plane is split into its sh×sw stride
//! phases (phase (a, b) holds padded rows a, a + sh, … and columns b, b + sw, …), and tap (r, s)
//! of a strided output reads one phase at a fixed offset. Laid out flat at the phase width, each
//! output element is then one sum over the taps of contiguous loads (the gather kernel in
//! [`simd`](super::simd)), kept in registers across the taps. The input gradient is the same
//! gather per phase of dX, over the taps that land in that phase, from a zero-bordered dY; the
//! weight gradient is one dot product per tap.
//!
//! The flat layouts carry columns past Q (or past the phase width) whose results are dropped or
//! whose dY is zero. A NaN or ±∞ weight would turn those zeros into NaN in the input gradient,
//! so such weights run the column GEMM instead (see `cpu::fast`); an input plane holding one
//! sums its weight-gradient terms row by row, without the extra columns.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::output::written_by;
use super::phases::{copy_short, PhaseGrid};
use super::simd::{self, Term};
use crate::problem::{has_nonfinite, ConvProblem};

/// The phase planes of one input plane, one after another in `buf`, a zeroed buffer or one
/// this has filled before for the same problem: only the input positions are written, the
/// zero border stays.
fn fill_phases(pb: &ConvProblem, grid: &PhaseGrid, plane: &[f32], buf: &mut [f32]) {
    for (phase, dst) in buf.chunks_exact_mut(grid.plane_len()).enumerate() {
        grid.fill_inputs(pb, plane, phase, dst);
    }
}

/// The flat offset of each tap's read in the phase planes of [`fill_phases`].
fn tap_offsets(pb: &ConvProblem, grid: &PhaseGrid) -> Vec<usize> {
    (0..pb.r * pb.s)
        .map(|t| {
            let (phase, shift) = grid.tap(pb, t / pb.s, t % pb.s);
            phase * grid.plane_len() + shift
        })
        .collect()
}

/// Copies a P×Q plane into rows of `width`, `top` rows and `left` columns in, in a zeroed
/// buffer or one this has laid the same shape into before: the elements around stay zero.
fn lay_out(plane: &[f32], q: usize, width: usize, top: usize, left: usize, buf: &mut [f32]) {
    for (p, src) in plane.chunks_exact(q).enumerate() {
        copy_short(&mut buf[(top + p) * width + left..][..q], src);
    }
}

pub(crate) fn forward(pb: &ConvProblem, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (pq, hw, rs) = (pb.p * pb.q, pb.h * pb.w, pb.r * pb.s);
    if pq == 0 {
        return vec![0f32; pb.y_len()];
    }
    let grid = PhaseGrid::new(pb);
    let offsets = tap_offsets(pb, &grid);
    let len = grid.flat_len(pb);
    let buf_len = PhaseGrid::count(pb) * grid.plane_len();
    let write = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(pq).enumerate().for_each_init(
            || (vec![0f32; buf_len], vec![0f32; len], Vec::new()),
            |(buf, acc, terms), (nk, out)| {
                let (n, k) = (nk / pb.k, nk % pb.k);
                let c = pb.group_of_output(k);
                fill_phases(pb, &grid, &x[pb.x_index(n, c, 0, 0)..][..hw], buf);
                terms.clear();
                terms.extend(offsets.iter().zip(&w[k * rs..][..rs]).map(|(&o, &w)| Term {
                    offset: o,
                    weight: w,
                }));
                simd::gather(acc, buf, terms);
                for (p, out_row) in out.chunks_exact_mut(pb.q).enumerate() {
                    copy_into(out_row, &acc[p * grid.width..]);
                }
            },
        );
    };
    // SAFETY: every output plane is one chunk, and each of its P rows is copied whole.
    unsafe { written_by(pb.y_len(), write) }
}

/// dst[i] = src[i] for every element of dst.
fn copy_into(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    let src = &src[..dst.len()];
    for (d, v) in dst.iter_mut().zip(src) {
        d.write(*v);
    }
}

pub(crate) fn input_grad(pb: &ConvProblem, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (pq, hw, rs) = (pb.p * pb.q, pb.h * pb.w, pb.r * pb.s);
    let ([sh, sw], [dh, dw]) = (pb.params.stride, pb.params.dilation);
    let [top, left, _, _] = pb.params.padding;
    let kg = pb.k_per_group();
    if pq == 0 {
        return vec![0f32; pb.x_len()];
    }
    let grid = PhaseGrid::new(pb);
    // dY with `above` zero rows over it and `before` zero columns before it, at width `gw`:
    // phase element (i, j) of dX sums w·dY[i − ra][j − sb] over the taps r·dh = a + sh·ra,
    // s·dw = b + sw·sb of its phase (a, b), so it reads this layout at a fixed offset per tap.
    let (above, before) = (((pb.r - 1) * dh) / sh, ((pb.s - 1) * dw) / sw);
    let gw = grid.width + before;
    let g_len = (grid.rows + above) * gw;
    // Each phase's dX at width gw; the columns past the phase width are dropped.
    let out_len = (grid.rows - 1) * gw + grid.width;
    let write = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(hw).enumerate().for_each_init(
            || {
                (
                    vec![0f32; kg * g_len],
                    vec![0f32; PhaseGrid::count(pb) * out_len],
                    Vec::new(),
                )
            },
            |(gbuf, out, terms), (nc, plane)| {
                let (n, c) = (nc / pb.c, nc % pb.c);
                let ks = c * kg..(c + 1) * kg;
                for (k, buf) in ks.clone().zip(gbuf.chunks_exact_mut(g_len)) {
                    let g = &dy[pb.y_index(n, k, 0, 0)..][..pq];
                    lay_out(g, pb.q, gw, above, before, buf);
                }
                for (phase, out) in out.chunks_exact_mut(out_len).enumerate() {
                    let (a, b) = (phase / sw, phase % sw);
                    terms.clear();
                    for (i, k) in ks.clone().enumerate() {
                        for r in (0..pb.r).filter(|r| (r * dh) % sh == a) {
                            for s in (0..pb.s).filter(|s| (s * dw) % sw == b) {
                                let (ra, sb) = ((r * dh) / sh, (s * dw) / sw);
                                terms.push(Term {
                                    offset: i * g_len + (above - ra) * gw + before - sb,
                                    weight: w[k * rs + r * pb.s + s],
                                });
                            }
                        }
                    }
                    simd::gather(out, gbuf, terms);
                }
                for (h, dst) in plane.chunks_exact_mut(pb.w).enumerate() {
                    let row = top + h;
                    // Input column w is phase column (left + w) / sw of phase (row mod sh,
                    // (left + w) mod sw): with sw = 2, columns alternate between two phase rows.
                    let start = |b: usize| {
                        let phase = (row % sh) * sw + (left + b) % sw;
                        &out[phase * out_len + (row / sh) * gw + (left + b) / sw..]
                    };
                    match sw {
                        1 => copy_into(dst, start(0)),
                        2 => interleave(dst, start(0), start(1)),
                        _ => {
                            for b in 0..sw.min(pb.w) {
                                for (d, v) in dst[b..].iter_mut().step_by(sw).zip(start(b)) {
                                    d.write(*v);
                                }
                            }
                        }
                    }
                }
            },
        );
    };
    // SAFETY: every dX plane is one chunk, and each of its H rows is written whole (columns
    // b, b + sw, … for every b < sw).
    unsafe { written_by(pb.x_len(), write) }
}

/// dst[2j] = even[j], dst[2j + 1] = odd[j] (a loop LLVM vectorises with shuffles).
fn interleave(dst: &mut [MaybeUninit<f32>], even: &[f32], odd: &[f32]) {
    let half = dst.len() / 2;
    let mut pairs = dst.chunks_exact_mut(2);
    for ((d, e), o) in (&mut pairs).zip(even).zip(odd) {
        d[0].write(*e);
        d[1].write(*o);
    }
    if let [last] = pairs.into_remainder() {
        last.write(even[half]);
    }
}

pub(crate) fn weight_grad(pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Vec<f32> {
    let (pq, hw, rs) = (pb.p * pb.q, pb.h * pb.w, pb.r * pb.s);
    let mut dwt = vec![0f32; pb.w_len()];
    if pq == 0 {
        return dwt;
    }
    let grid = PhaseGrid::new(pb);
    let offsets = tap_offsets(pb, &grid);
    let len = grid.flat_len(pb);
    let buf_len = PhaseGrid::count(pb) * grid.plane_len();
    dwt.par_chunks_mut(rs).enumerate().for_each_init(
        || (vec![0f32; buf_len], vec![0f32; len]),
        |(buf, grad), (k, out)| {
            let c = pb.group_of_output(k);
            for n in 0..pb.n {
                let plane = &x[pb.x_index(n, c, 0, 0)..][..hw];
                fill_phases(pb, &grid, plane, buf);
                let g = &dy[pb.y_index(n, k, 0, 0)..][..pq];
                if has_nonfinite(plane) {
                    // Row by row: only the terms of the sum, no 0·NaN from columns past Q.
                    for (p, g_row) in g.chunks_exact(pb.q).enumerate() {
                        simd::dots(out, g_row, &buf[p * grid.width..], &offsets);
                    }
                    continue;
                }
                lay_out(g, pb.q, grid.width, 0, 0, grad);
                simd::dots(out, grad, buf, &offsets);
            }
        },
    );
    dwt
}
