//! Stride-1 depthwise kernels for AVX-512 CPUs, reading X and dY in place.
//!
//! A depthwise layer does 2·R·S FLOPs per output, so it is bound by memory traffic and per-row
//! overheads, not by FMAs. The planar loops in `fast.rs` copy every plane into a zero-bordered
//! buffer and out again (profiled: a third of their time in small `memcpy`/`memset` calls).
//! Here each 16-wide output vector is computed straight from the source plane with masked loads:
//! lanes that fall in the padding are masked to zero (a masked-off lane is never read, so no
//! border copy is needed) and the result is stored once, masked at the row's end.
//!
//! All three passes are one shape of loop: an output plane gathers Σ_taps w · source[row + dr,
//! col + dc] over shifted windows of one or more source planes (forward: X with offsets
//! r·dh − top, s·dw − left; input gradient: the K/C dY planes of the channel with the mirrored
//! offsets top − r·dh, left − s·dw; weight gradient: a dot product of dY with each shifted X).

use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::problem::ConvProblem;

const LANES: usize = 16;

/// One source plane and where each tap reads it, relative to the output position.
struct Source<'a> {
    plane: &'a [f32],
    rows: usize,
    cols: usize,
    /// Per tap: weight and (row, column) offset.
    taps: &'a [(f32, isize, isize)],
    /// Per (output vector of a row, tap): the lanes inside the plane, from [`tap_masks`].
    masks: &'a [__mmask16],
}

/// The load mask of every (16-wide output vector of an `out_cols`-wide row, tap): the same for
/// every row, so computed once per call rather than per load.
fn tap_masks(out_cols: usize, src_cols: usize, taps: &[(f32, isize, isize)]) -> Vec<__mmask16> {
    (0..out_cols)
        .step_by(LANES)
        .flat_map(|col| {
            taps.iter()
                .map(move |&(_, _, dc)| inside(col as isize + dc, src_cols))
        })
        .collect()
}

/// Lanes l of a 16-wide load at column `start` that fall inside 0..cols.
fn inside(start: isize, cols: usize) -> __mmask16 {
    let lo = (-start).clamp(0, LANES as isize) as u32;
    let hi = (cols as isize - start).clamp(0, LANES as isize) as u32;
    if hi <= lo {
        return 0;
    }
    let below = |n: u32| if n >= 16 { 0xffff } else { (1u32 << n) - 1 };
    (below(hi) & !below(lo)) as __mmask16
}

/// The 16 values of `src` row `row` from column `col` on, zero outside the plane (`mask`: the
/// lanes inside it, from [`tap_masks`]).
///
/// # Safety
/// The CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_shifted(src: &Source, row: isize, col: isize, mask: __mmask16) -> __m512 {
    if row < 0 || row >= src.rows as isize {
        return _mm512_setzero_ps();
    }
    // The pointer may point before or past the row (wrapping_offset makes that defined); the
    // masked load reads only the lanes inside it, which lie in `src.plane`.
    let at = src
        .plane
        .as_ptr()
        .wrapping_offset(row * src.cols as isize + col);
    _mm512_maskz_loadu_ps(mask, at)
}

/// Output rows and 16-wide column vectors computed together: each output vector is a chain of
/// dependent FMAs (one per tap and source), so one vector at a time waits on the FMA latency;
/// 4 rows × 2 vectors in flight hide it (measured: one row 0.76 ms, four rows 0.63 ms, 4 × 2
/// vectors less again on the suite's 28×28 planes, single thread).
const ROWS: usize = 4;

/// out (rows × cols) = Σ over sources and their taps of w · source[row + dr][col + dc].
///
/// # Safety
/// The CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn gather_plane(out: &mut [f32], cols: usize, sources: &[Source]) {
    let rows = out.len() / cols;
    let full = rows - rows % ROWS;
    for row0 in (0..full).step_by(ROWS) {
        gather_row_group::<ROWS>(out, cols, row0, sources);
    }
    for row0 in full..rows {
        gather_row_group::<1>(out, cols, row0, sources);
    }
}

/// Rows row0..row0 + N of [`gather_plane`], column vectors two at a time.
///
/// # Safety
/// The CPU supports AVX-512F, and `out` holds rows row0..row0 + N of `cols` each.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gather_row_group<const N: usize>(
    out: &mut [f32],
    cols: usize,
    row0: usize,
    sources: &[Source],
) {
    let vectors = cols.div_ceil(LANES);
    let paired = vectors - vectors % 2;
    for v0 in (0..paired).step_by(2) {
        gather_tile::<N, 2>(out, cols, row0, v0, sources);
    }
    if paired < vectors {
        gather_tile::<N, 1>(out, cols, row0, paired, sources);
    }
}

/// Rows row0..row0 + N, column vectors v0..v0 + V of [`gather_plane`].
///
/// # Safety
/// The CPU supports AVX-512F, `out` holds rows row0..row0 + N of `cols` each, and the vectors
/// start inside a row.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gather_tile<const N: usize, const V: usize>(
    out: &mut [f32],
    cols: usize,
    row0: usize,
    v0: usize,
    sources: &[Source],
) {
    assert!(out.len() >= (row0 + N) * cols && v0 * LANES < cols);
    let mut acc = [[_mm512_setzero_ps(); V]; N];
    for src in sources {
        let taps = src.taps.len();
        for (t, &(w, dr, dc)) in src.taps.iter().enumerate() {
            let wv = _mm512_set1_ps(w);
            let first = row0 as isize + dr;
            let rows_inside = first >= 0 && first + N as isize <= src.rows as isize;
            for v in 0..V {
                let mask = src.masks[(v0 + v) * taps + t];
                let col = ((v0 + v) * LANES) as isize + dc;
                if rows_inside {
                    // All N rows inside the plane (most row groups): no per-row test.
                    let at = src
                        .plane
                        .as_ptr()
                        .wrapping_offset(first * src.cols as isize + col);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let x = _mm512_maskz_loadu_ps(mask, at.wrapping_add(i * src.cols));
                        acc[v] = _mm512_fmadd_ps(wv, x, acc[v]);
                    }
                } else {
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let x = load_shifted(src, first + i as isize, col, mask);
                        acc[v] = _mm512_fmadd_ps(wv, x, acc[v]);
                    }
                }
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        for (v, a) in acc.iter().enumerate() {
            let col = (v0 + v) * LANES;
            let mask = inside(col as isize, cols);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add((row0 + i) * cols + col), mask, *a);
        }
    }
}

/// Σ_{row, col} g[row][col] · src[row + dr][col + dc] for each of `src.taps`' offsets, added to
/// `sums`, in a fixed order.
///
/// # Safety
/// The CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn shifted_dots(g: &[f32], cols: usize, src: &Source, sums: &mut [f32]) {
    let rows = g.len() / cols;
    let full = rows - rows % ROWS;
    let taps = src.taps.len();
    for (t, sum) in sums.iter_mut().enumerate().take(taps) {
        // One accumulator per row of a group of four, for the same reason as in gather_plane.
        let mut acc = [_mm512_setzero_ps(); ROWS];
        for row0 in (0..full).step_by(ROWS) {
            dot_rows::<ROWS>(g, cols, row0, src, t, &mut acc);
        }
        for row0 in full..rows {
            let mut one = [acc[0]];
            dot_rows::<1>(g, cols, row0, src, t, &mut one);
            acc[0] = one[0];
        }
        let total = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        *sum += _mm512_reduce_add_ps(total);
    }
}

/// acc[i] += g row row0 + i · src row row0 + i shifted by tap t, for i < N.
///
/// # Safety
/// The CPU supports AVX-512F, and `g` holds rows row0..row0 + N of `cols` each.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_rows<const N: usize>(
    g: &[f32],
    cols: usize,
    row0: usize,
    src: &Source,
    t: usize,
    acc: &mut [__m512; N],
) {
    assert!(g.len() >= (row0 + N) * cols);
    let (_, dr, dc) = src.taps[t];
    for (v, col) in (0..cols).step_by(LANES).enumerate() {
        let g_mask = inside(col as isize, cols);
        let mask = src.masks[v * src.taps.len() + t];
        let first = row0 as isize + dr;
        let inside_rows = first >= 0 && first + N as isize <= src.rows as isize;
        let at = src
            .plane
            .as_ptr()
            .wrapping_offset(first * src.cols as isize + col as isize + dc);
        for (i, a) in acc.iter_mut().enumerate() {
            let row = row0 + i;
            let gv = _mm512_maskz_loadu_ps(g_mask, g.as_ptr().add(row * cols + col));
            let x = if inside_rows {
                // All N rows inside the plane: no per-row test.
                _mm512_maskz_loadu_ps(mask, at.wrapping_add(i * src.cols))
            } else {
                load_shifted(src, first + i as isize, col as isize + dc, mask)
            };
            *a = _mm512_fmadd_ps(gv, x, *a);
        }
    }
}

/// Per tap t = r·S + s of output channel k: (weight, or 0 without `w`; row offset; column
/// offset), with the offsets of the forward (`sign` 1) or mirrored for the input gradient (−1).
fn tap_table(
    pb: &ConvProblem,
    w: Option<&[f32]>,
    k: usize,
    sign: isize,
) -> Vec<(f32, isize, isize)> {
    let [dh, dw] = pb.params.dilation.map(|d| d as isize);
    let [top, left, _, _] = pb.params.padding.map(|p| p as isize);
    let rs = pb.r * pb.s;
    (0..rs)
        .map(|t| {
            let (r, s) = ((t / pb.s) as isize, (t % pb.s) as isize);
            let weight = w.map_or(0.0, |w| w[k * rs + t]);
            (weight, sign * (r * dh - top), sign * (s * dw - left))
        })
        .collect()
}

/// Y = conv(X, W) of a stride-1 depthwise problem.
pub fn forward(pb: &ConvProblem, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, pq) = (pb.h * pb.w, pb.p * pb.q);
    let taps: Vec<_> = (0..pb.k).map(|k| tap_table(pb, Some(w), k, 1)).collect();
    let masks = tap_masks(pb.q, pb.w, &taps[0]);
    let mut y = vec![0f32; pb.y_len()];
    y.par_chunks_mut(pq).enumerate().for_each(|(nk, out)| {
        let (n, k) = (nk / pb.k, nk % pb.k);
        let c = pb.group_of_output(k);
        let src = Source {
            plane: &x[pb.x_index(n, c, 0, 0)..][..hw],
            rows: pb.h,
            cols: pb.w,
            taps: &taps[k],
            masks: &masks,
        };
        // SAFETY: the caller checked AVX-512F (`direct::available`); loads are masked to the plane, stores to the row.
        unsafe { gather_plane(out, pb.q, &[src]) };
    });
    y
}

/// dX of a stride-1 depthwise problem.
pub fn input_grad(pb: &ConvProblem, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, pq, kg) = (pb.h * pb.w, pb.p * pb.q, pb.k_per_group());
    let taps: Vec<_> = (0..pb.k).map(|k| tap_table(pb, Some(w), k, -1)).collect();
    let masks = tap_masks(pb.w, pb.q, &taps[0]);
    let mut dx = vec![0f32; pb.x_len()];
    dx.par_chunks_mut(hw).enumerate().for_each(|(nc, out)| {
        let (n, c) = (nc / pb.c, nc % pb.c);
        let sources: Vec<Source> = (c * kg..(c + 1) * kg)
            .map(|k| Source {
                plane: &dy[pb.y_index(n, k, 0, 0)..][..pq],
                rows: pb.p,
                cols: pb.q,
                taps: &taps[k],
                masks: &masks,
            })
            .collect();
        // SAFETY: as in `forward`.
        unsafe { gather_plane(out, pb.w, &sources) };
    });
    dx
}

/// dW of a stride-1 depthwise problem. Deterministic: each dW row sums its images in order.
pub fn weight_grad(pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Vec<f32> {
    let (hw, pq, rs) = (pb.h * pb.w, pb.p * pb.q, pb.r * pb.s);
    let taps = tap_table(pb, None, 0, 1);
    let masks = tap_masks(pb.q, pb.w, &taps);
    let mut dwt = vec![0f32; pb.w_len()];
    dwt.par_chunks_mut(rs).enumerate().for_each(|(k, sums)| {
        let c = pb.group_of_output(k);
        for n in 0..pb.n {
            let src = Source {
                plane: &x[pb.x_index(n, c, 0, 0)..][..hw],
                rows: pb.h,
                cols: pb.w,
                taps: &taps,
                masks: &masks,
            };
            let g = &dy[pb.y_index(n, k, 0, 0)..][..pq];
            // SAFETY: as in `forward`.
            unsafe { shifted_dots(g, pb.q, &src, sums) };
        }
    });
    dwt
}
