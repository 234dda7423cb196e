//! Depthwise kernels for AVX-512 CPUs, reading X and dY in place (stride 1) or from stride-phase
//! copies.
//!
//! A depthwise layer does 2·R·S FLOPs per output, so it is bound by memory traffic and per-row
//! overheads, not by FMAs. The portable kernels (`depthwise.rs`) copy every plane into zero-bordered
//! phase planes and out again (profiled: a third of their time in small `memcpy`/`memset` calls).
//! Here each 16-wide output vector is computed straight from the source plane with masked loads:
//! lanes that fall in the padding are masked to zero (a masked-off lane is never read, so no
//! border copy is needed) and the result is stored once, masked at the row's end.
//!
//! All three passes are one shape of loop: an output plane gathers Σ_taps w · source[row + dr,
//! col + dc] over shifted windows of one or more source planes (forward: X with offsets
//! r·dh − top, s·dw − left; input gradient: the K/C dY planes of the channel with the mirrored
//! offsets top − r·dh, left − s·dw; weight gradient: a dot product of dY with each shifted X).
//! A strided layer splits each input-sized plane into its sh·sw stride phases; each tap reads
//! one phase with a contiguous row, so the phases are just more source planes ([`Phase`]).

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::cpu::isa::Avx512;
use crate::cpu::output::{as_uninit, written_by};
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
    /// The taps as [`ColumnGroup`]s, when they all form such groups (see [`column_groups`]).
    columns: Option<&'a [ColumnGroup]>,
}

/// Taps that share a column offset `dc` and whose row offsets run dr0, dr0 + 1, … (at most
/// [`MAX_COLUMN_TAPS`]): a tile of N output rows then needs N + len − 1 source rows loaded once
/// each, not N·len loads (3×3 at stride 1: 6 loads per column shift instead of 12; the
/// suite's depthwise layer ran 20–40 % faster; PERFORMANCE.md, [#cpu-depthwise]).
#[derive(Clone, Copy, Debug)]
struct ColumnGroup {
    dc: isize,
    dr0: isize,
    /// Indices into the source's taps, in row order.
    taps: [usize; MAX_COLUMN_TAPS],
    len: usize,
}

const MAX_COLUMN_TAPS: usize = 5;

/// The taps grouped by column offset, or `None` when some group's row offsets are not
/// consecutive or longer than [`MAX_COLUMN_TAPS`] (dilated or large kernels keep the per-tap
/// loop).
fn column_groups(taps: &[(f32, isize, isize)]) -> Option<Vec<ColumnGroup>> {
    let mut groups: Vec<(isize, Vec<(isize, usize)>)> = Vec::new();
    for (t, &(_, dr, dc)) in taps.iter().enumerate() {
        match groups.iter_mut().find(|(c, _)| *c == dc) {
            Some((_, rows)) => rows.push((dr, t)),
            None => groups.push((dc, vec![(dr, t)])),
        }
    }
    groups
        .into_iter()
        .map(|(dc, mut rows)| {
            rows.sort_unstable();
            let consecutive = rows.windows(2).all(|p| p[1].0 == p[0].0 + 1);
            if !consecutive || rows.len() > MAX_COLUMN_TAPS {
                return None;
            }
            let mut idx = [0; MAX_COLUMN_TAPS];
            for (slot, &(_, t)) in idx.iter_mut().zip(&rows) {
                *slot = t;
            }
            Some(ColumnGroup {
                dc,
                dr0: rows[0].0,
                taps: idx,
                len: rows.len(),
            })
        })
        .collect()
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
#[target_feature(enable = "avx512f")]
#[inline]
fn load_shifted(src: &Source, row: isize, col: isize, mask: __mmask16) -> __m512 {
    if row < 0 || row >= src.rows as isize {
        return _mm512_setzero_ps();
    }
    // The pointer may point before or past the row (wrapping_offset makes that defined); the
    // masked load reads only the lanes inside it, which lie in `src.plane`.
    let at = src
        .plane
        .as_ptr()
        .wrapping_offset(row * src.cols as isize + col);
    // SAFETY: the masked load reads only the lanes in `mask`, inside the row (tap_masks).
    unsafe { _mm512_maskz_loadu_ps(mask, at) }
}

/// Output rows and 16-wide column vectors computed together: each output vector is a chain of
/// dependent FMAs (one per tap and source), so one vector at a time waits on the FMA latency;
/// 4 rows × 2 vectors in flight hide it (measured: one row 0.76 ms, four rows 0.63 ms, 4 × 2
/// vectors less again on the suite's 28×28 planes, single thread).
const ROWS: usize = 4;

/// out (rows × cols) = Σ over sources and their taps of w · source[row + dr][col + dc].
#[target_feature(enable = "avx512f")]
fn gather_plane(out: &mut [MaybeUninit<f32>], cols: usize, sources: &[Source]) {
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
/// `out` holds rows row0..row0 + N of `cols` each.
#[target_feature(enable = "avx512f")]
#[inline]
fn gather_row_group<const N: usize>(
    out: &mut [MaybeUninit<f32>],
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
/// Panics unless `out` holds rows row0..row0 + N of `cols` each and the vectors start inside a
/// row.
#[target_feature(enable = "avx512f")]
#[inline]
fn gather_tile<const N: usize, const V: usize>(
    out: &mut [MaybeUninit<f32>],
    cols: usize,
    row0: usize,
    v0: usize,
    sources: &[Source],
) {
    assert!(out.len() >= (row0 + N) * cols && v0 * LANES < cols);
    let mut acc = [[_mm512_setzero_ps(); V]; N];
    for src in sources {
        if let Some(groups) = src.columns {
            for g in groups {
                match g.len {
                    1 => column_window::<N, V, 1>(&mut acc, src, g, row0, v0),
                    2 => column_window::<N, V, 2>(&mut acc, src, g, row0, v0),
                    3 => column_window::<N, V, 3>(&mut acc, src, g, row0, v0),
                    4 => column_window::<N, V, 4>(&mut acc, src, g, row0, v0),
                    _ => column_window::<N, V, 5>(&mut acc, src, g, row0, v0),
                }
            }
            continue;
        }
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
                        let row = at.wrapping_add(i * src.cols);
                        // SAFETY: rows first..first + N are inside the plane and the masked
                        // load reads only the lanes in `mask`, inside the row (tap_masks).
                        let x = unsafe { _mm512_maskz_loadu_ps(mask, row) };
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
            let at = out
                .as_mut_ptr()
                .wrapping_add((row0 + i) * cols + col)
                .cast::<f32>();
            // SAFETY: row row0 + i is inside `out` (asserted) and the masked store writes only
            // the lanes below `cols`.
            unsafe { _mm512_mask_storeu_ps(at, mask, *a) };
        }
    }
}

/// The `R` taps of column group `g` into the tile's accumulators: source rows
/// row0 + dr0 … row0 + dr0 + N + R − 2 are loaded once per column vector, and output row i
/// takes taps r = 0..R from loaded rows i + r.
#[target_feature(enable = "avx512f")]
#[inline]
fn column_window<const N: usize, const V: usize, const R: usize>(
    acc: &mut [[__m512; V]; N],
    src: &Source,
    g: &ColumnGroup,
    row0: usize,
    v0: usize,
) {
    // N + R − 1 ≤ ROWS + MAX_COLUMN_TAPS − 1 loaded rows.
    const WINDOW: usize = ROWS + MAX_COLUMN_TAPS - 1;
    assert!(N + R - 1 <= WINDOW && R == g.len);
    let ntaps = src.taps.len();
    let mut w = [_mm512_setzero_ps(); R];
    for (r, wv) in w.iter_mut().enumerate() {
        *wv = _mm512_set1_ps(src.taps[g.taps[r]].0);
    }
    let first = row0 as isize + g.dr0;
    let rows_inside = first >= 0 && first + (N + R - 1) as isize <= src.rows as isize;
    for v in 0..V {
        // The mask depends only on the column offset, shared by the group's taps.
        let mask = src.masks[(v0 + v) * ntaps + g.taps[0]];
        let col = ((v0 + v) * LANES) as isize + g.dc;
        let mut xs = [_mm512_setzero_ps(); WINDOW];
        for (j, x) in xs.iter_mut().enumerate().take(N + R - 1) {
            *x = if rows_inside {
                let at = src
                    .plane
                    .as_ptr()
                    .wrapping_offset((first + j as isize) * src.cols as isize + col);
                // SAFETY: the row is inside the plane and the masked load reads only the lanes
                // in `mask`, inside the row (tap_masks).
                unsafe { _mm512_maskz_loadu_ps(mask, at) }
            } else {
                load_shifted(src, first + j as isize, col, mask)
            };
        }
        for (i, acc) in acc.iter_mut().enumerate() {
            for (r, wv) in w.iter().enumerate() {
                acc[v] = _mm512_fmadd_ps(*wv, xs[i + r], acc[v]);
            }
        }
    }
}

/// Σ_{row, col} g[row][col] · src[row + dr][col + dc] for each of `src.taps`' offsets, added to
/// `sums`, in a fixed order.
#[target_feature(enable = "avx512f")]
fn shifted_dots(g: &[f32], cols: usize, src: &Source, sums: &mut [f32]) {
    let rows = g.len() / cols;
    if let Some(groups) = src.columns {
        for grp in groups {
            match grp.len {
                1 => grouped_dots::<1>(g, cols, rows, src, grp, sums),
                2 => grouped_dots::<2>(g, cols, rows, src, grp, sums),
                3 => grouped_dots::<3>(g, cols, rows, src, grp, sums),
                4 => grouped_dots::<4>(g, cols, rows, src, grp, sums),
                _ => grouped_dots::<5>(g, cols, rows, src, grp, sums),
            }
        }
        return;
    }
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

/// [`shifted_dots`] for the `R` taps of column group `grp`: per tile of rows and column vector,
/// the g rows are loaded once for the group's taps and its source rows once for all of them
/// (3×3 at stride 1: 10 loads per 12 FMAs, where one tap at a time takes 24; the
/// per-tap loop was load-bound).
/// `g` holds `rows` rows of `cols`.
#[target_feature(enable = "avx512f")]
fn grouped_dots<const R: usize>(
    g: &[f32],
    cols: usize,
    rows: usize,
    src: &Source,
    grp: &ColumnGroup,
    sums: &mut [f32],
) {
    // One accumulator per (row of the tile, tap), so no FMA waits on the one before it.
    let mut acc = [[_mm512_setzero_ps(); R]; ROWS];
    let full = rows - rows % ROWS;
    for row0 in (0..full).step_by(ROWS) {
        dots_window::<ROWS, R>(&mut acc, g, cols, row0, src, grp);
    }
    for row0 in full..rows {
        let mut one = [acc[0]];
        dots_window::<1, R>(&mut one, g, cols, row0, src, grp);
        acc[0] = one[0];
    }
    for r in 0..R {
        let total = acc
            .iter()
            .fold(_mm512_setzero_ps(), |t, a| _mm512_add_ps(t, a[r]));
        sums[grp.taps[r]] += _mm512_reduce_add_ps(total);
    }
}

/// acc[i][r] += g row row0 + i · src row row0 + i + dr0 + r shifted by the group's dc, for
/// i < N, over every column vector: source rows row0 + dr0 … row0 + dr0 + N + R − 2 are
/// loaded once per vector.
/// Panics unless `g` holds rows row0..row0 + N of `cols` each.
#[target_feature(enable = "avx512f")]
#[inline]
fn dots_window<const N: usize, const R: usize>(
    acc: &mut [[__m512; R]; N],
    g: &[f32],
    cols: usize,
    row0: usize,
    src: &Source,
    grp: &ColumnGroup,
) {
    const WINDOW: usize = ROWS + MAX_COLUMN_TAPS - 1;
    assert!(g.len() >= (row0 + N) * cols && N + R - 1 <= WINDOW && R == grp.len);
    let ntaps = src.taps.len();
    let first = row0 as isize + grp.dr0;
    let rows_inside = first >= 0 && first + (N + R - 1) as isize <= src.rows as isize;
    for (v, col) in (0..cols).step_by(LANES).enumerate() {
        let g_mask = inside(col as isize, cols);
        // The mask depends only on the column offset, shared by the group's taps.
        let mask = src.masks[v * ntaps + grp.taps[0]];
        let at = col as isize + grp.dc;
        let mut gs = [_mm512_setzero_ps(); N];
        for (i, gv) in gs.iter_mut().enumerate() {
            let at = g.as_ptr().wrapping_add((row0 + i) * cols + col);
            // SAFETY: row row0 + i of `g` exists (asserted); the mask keeps the lanes below cols.
            *gv = unsafe { _mm512_maskz_loadu_ps(g_mask, at) };
        }
        let mut xs = [_mm512_setzero_ps(); WINDOW];
        for (j, x) in xs.iter_mut().enumerate().take(N + R - 1) {
            let row = first + j as isize;
            *x = if rows_inside {
                let p = src
                    .plane
                    .as_ptr()
                    .wrapping_offset(row * src.cols as isize + at);
                // SAFETY: the row is inside the plane and the masked load reads only the lanes
                // in `mask`, inside the row (tap_masks).
                unsafe { _mm512_maskz_loadu_ps(mask, p) }
            } else {
                load_shifted(src, row, at, mask)
            };
        }
        for (i, acc) in acc.iter_mut().enumerate() {
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(gs[i], xs[i + r], *a);
            }
        }
    }
}

/// acc[i] += g row row0 + i · src row row0 + i shifted by tap t, for i < N.
/// Panics unless `g` holds rows row0..row0 + N of `cols` each.
#[target_feature(enable = "avx512f")]
#[inline]
fn dot_rows<const N: usize>(
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
            let g_at = g.as_ptr().wrapping_add(row * cols + col);
            // SAFETY: row `row` of `g` exists (asserted); the mask keeps the lanes below cols.
            let gv = unsafe { _mm512_maskz_loadu_ps(g_mask, g_at) };
            let x = if inside_rows {
                // All N rows inside the plane: no per-row test.
                let x_at = at.wrapping_add(i * src.cols);
                // SAFETY: the row is inside the plane and the masked load reads only the
                // lanes in `mask`, inside the row (tap_masks).
                unsafe { _mm512_maskz_loadu_ps(mask, x_at) }
            } else {
                load_shifted(src, first + i as isize, col as isize + dc, mask)
            };
            *a = _mm512_fmadd_ps(gv, x, *a);
        }
    }
}

/// One stride phase of an input-sized plane (rows a, a + sh, …; columns b, b + sw, …) and the
/// taps that read it: tap (r, s) of output (p, q) reads input row p·sh + r·dh − top =
/// (p + dr)·sh + a, so it reads phase (a, b) at (p + dr, q + dc) with a contiguous row.
struct Phase {
    a: usize,
    b: usize,
    rows: usize,
    cols: usize,
    /// Tap indices t = r·S + s with their (dr, dc).
    taps: Vec<(usize, isize, isize)>,
}

/// The phases of `pb`'s input (one, the plane itself, at stride 1) and their taps.
fn phases(pb: &ConvProblem) -> Vec<Phase> {
    let [sh, sw] = pb.params.stride;
    let [dh, dw] = pb.params.dilation;
    let [top, left, _, _] = pb.params.padding;
    let split = |off: isize, stride: usize| {
        (
            off.rem_euclid(stride as isize) as usize,
            off.div_euclid(stride as isize),
        )
    };
    let mut out = Vec::new();
    for a in 0..sh.min(pb.h) {
        for b in 0..sw.min(pb.w) {
            let taps = (0..pb.r * pb.s)
                .filter_map(|t| {
                    let (r, s) = (t / pb.s, t % pb.s);
                    let (ra, dr) = split((r * dh) as isize - top as isize, sh);
                    let (cb, dc) = split((s * dw) as isize - left as isize, sw);
                    (ra == a && cb == b).then_some((t, dr, dc))
                })
                .collect();
            out.push(Phase {
                a,
                b,
                rows: (pb.h - a).div_ceil(sh),
                cols: (pb.w - b).div_ceil(sw),
                taps,
            });
        }
    }
    out
}

/// Copies phase `ph` of an H×W plane into `dst` (rows × cols).
fn extract_phase(cpu: Avx512, pb: &ConvProblem, plane: &[f32], ph: &Phase, dst: &mut [f32]) {
    let [sh, sw] = pb.params.stride;
    for (i, row) in dst.chunks_exact_mut(ph.cols).enumerate() {
        let src = &plane[(i * sh + ph.a) * pb.w + ph.b..(i * sh + ph.a + 1) * pb.w];
        if sw == 2 {
            let _ = cpu;
            // SAFETY: the `cpu` token proves AVX-512F.
            unsafe { every_other(src, row) };
            continue;
        }
        for (v, x) in row.iter_mut().zip(src.iter().step_by(sw)) {
            *v = *x;
        }
    }
}

/// dst[j] = src[2·j] for every j of dst (at most ⌈src.len / 2⌉), 16 at a time with a two-vector
/// permute: the stride-2 phase split was a fifth of a strided depthwise layer's time as a
/// scalar loop.
#[target_feature(enable = "avx512f")]
fn every_other(src: &[f32], dst: &mut [f32]) {
    assert!(dst.len() <= src.len().div_ceil(2));
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for j0 in (0..dst.len()).step_by(LANES) {
        let at = 2 * j0;
        let hi_at = at + LANES;
        // SAFETY: each masked load reads only lanes below src.len(), the store only lanes below
        // dst.len().
        let (lo, hi) = unsafe {
            (
                _mm512_maskz_loadu_ps(
                    inside(at as isize, src.len()),
                    src.as_ptr().wrapping_add(at),
                ),
                _mm512_maskz_loadu_ps(
                    inside(hi_at as isize, src.len()),
                    src.as_ptr().wrapping_add(hi_at),
                ),
            )
        };
        let v = _mm512_permutex2var_ps(lo, even, hi);
        let mask = inside(j0 as isize, dst.len());
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().wrapping_add(j0), mask, v) };
    }
}

/// The phase planes of one H×W plane: the plane itself at stride 1, else copies in `buf`.
fn phase_planes<'a>(
    cpu: Avx512,
    pb: &ConvProblem,
    plane: &'a [f32],
    phases: &[Phase],
    buf: &'a mut Vec<f32>,
) -> Vec<&'a [f32]> {
    if phases.len() == 1 && pb.params.stride == [1, 1] {
        return vec![plane];
    }
    buf.resize(phases.iter().map(|ph| ph.rows * ph.cols).sum(), 0.0);
    let mut rest = &mut buf[..];
    let mut views = Vec::with_capacity(phases.len());
    for ph in phases {
        let (this, tail) = rest.split_at_mut(ph.rows * ph.cols);
        extract_phase(cpu, pb, plane, ph, this);
        views.push(&*this);
        rest = tail;
    }
    views
}

/// Per phase: the (weight of output channel k, or 0 without `w`; dr; dc) of its taps, with
/// the offsets negated (`sign` −1) for the input gradient, which reads dY the other way.
fn phase_taps(
    pb: &ConvProblem,
    phases: &[Phase],
    w: Option<&[f32]>,
    k: usize,
    sign: isize,
) -> Vec<Vec<(f32, isize, isize)>> {
    let rs = pb.r * pb.s;
    phases
        .iter()
        .map(|ph| {
            ph.taps
                .iter()
                .map(|&(t, dr, dc)| (w.map_or(0.0, |w| w[k * rs + t]), sign * dr, sign * dc))
                .collect()
        })
        .collect()
}

/// Y = conv(X, W) of a depthwise problem (any stride, padding, dilation, multiplier).
pub fn forward(cpu: Avx512, pb: &ConvProblem, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, pq) = (pb.h * pb.w, pb.p * pb.q);
    let phases = phases(pb);
    let taps: Vec<_> = (0..pb.k)
        .map(|k| phase_taps(pb, &phases, Some(w), k, 1))
        .collect();
    let masks: Vec<_> = (phases.iter().zip(&taps[0]))
        .map(|(ph, t)| tap_masks(pb.q, ph.cols, t))
        .collect();
    // Tap offsets are the same for every channel, only the weights differ.
    let columns: Vec<_> = taps[0].iter().map(|t| column_groups(t)).collect();
    let direct = pb.params.stride == [1, 1];
    let write = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(pq)
            .enumerate()
            .for_each_init(Vec::new, |buf, (nk, out)| {
                let (n, k) = (nk / pb.k, nk % pb.k);
                let c = pb.group_of_output(k);
                let plane = &x[pb.x_index(n, c, 0, 0)..][..hw];
                let source = |i: usize, plane| Source {
                    plane,
                    rows: phases[i].rows,
                    cols: phases[i].cols,
                    taps: &taps[k][i],
                    masks: &masks[i],
                    columns: columns[i].as_deref(),
                };
                // SAFETY: the `cpu` token proves AVX-512F.
                if direct {
                    // The plane is its only phase: no copies, nothing allocated per plane.
                    unsafe { gather_plane(out, pb.q, &[source(0, plane)]) };
                    return;
                }
                let planes = phase_planes(cpu, pb, plane, &phases, buf);
                let sources: Vec<Source> = (planes.iter().enumerate())
                    .map(|(i, plane)| source(i, plane))
                    .collect();
                // SAFETY: as above.
                unsafe { gather_plane(out, pb.q, &sources) };
            });
    };
    // SAFETY: every output plane is one chunk, and gather_plane stores each of its elements.
    unsafe { written_by(pb.y_len(), write) }
}

/// dX of a depthwise problem: each stride phase of dX gathers the taps of its phase from the
/// dY planes of its channel (dY offsets negated), then is interleaved into dX.
pub fn input_grad(cpu: Avx512, pb: &ConvProblem, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, pq, kg) = (pb.h * pb.w, pb.p * pb.q, pb.k_per_group());
    let phases = phases(pb);
    let taps: Vec<_> = (0..pb.k)
        .map(|k| phase_taps(pb, &phases, Some(w), k, -1))
        .collect();
    let masks: Vec<_> = (phases.iter().zip(&taps[0]))
        .map(|(ph, t)| tap_masks(ph.cols, pb.q, t))
        .collect();
    let columns: Vec<_> = taps[0].iter().map(|t| column_groups(t)).collect();
    let direct = pb.params.stride == [1, 1];
    let sizes: Vec<usize> = phases.iter().map(|ph| ph.rows * ph.cols).collect();
    let write = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(hw).enumerate().for_each_init(
            Vec::new,
            |buf: &mut Vec<f32>, (nc, out)| {
                let (n, c) = (nc / pb.c, nc % pb.c);
                // Strided: every phase of dX into `buf` first, then interleaved into dX.
                if !direct {
                    buf.resize(sizes.iter().sum(), 0.0);
                }
                let mut at = 0;
                for (i, ph) in phases.iter().enumerate() {
                    let sources: Vec<Source> = (c * kg..(c + 1) * kg)
                        .map(|k| Source {
                            plane: &dy[pb.y_index(n, k, 0, 0)..][..pq],
                            rows: pb.p,
                            cols: pb.q,
                            taps: &taps[k][i],
                            masks: &masks[i],
                            columns: columns[i].as_deref(),
                        })
                        .collect();
                    // SAFETY: the `cpu` token proves AVX-512F.
                    if direct {
                        unsafe { gather_plane(out, pb.w, &sources) };
                        continue;
                    }
                    let phase = as_uninit(&mut buf[at..at + sizes[i]]);
                    // SAFETY: as above.
                    unsafe { gather_plane(phase, ph.cols, &sources) };
                    at += sizes[i];
                }
                if !direct {
                    interleave_phases(cpu, pb, &phases, buf, out);
                }
            },
        );
    };
    // SAFETY: every dX plane is one chunk, written whole by gather_plane (stride 1) or by
    // interleave_phases (every row, every column phase).
    unsafe { written_by(pb.x_len(), write) }
}

/// Writes the phase planes in `planes` (in `phases` order, back to back) into the H×W plane
/// `out`: phase (a, b) row i is dX row i·sh + a, columns b, b + sw, …
fn interleave_phases(
    cpu: Avx512,
    pb: &ConvProblem,
    phases: &[Phase],
    planes: &[f32],
    out: &mut [MaybeUninit<f32>],
) {
    let [sh, sw] = pb.params.stride;
    let starts: Vec<usize> = phases
        .iter()
        .scan(0, |at, ph| {
            let start = *at;
            *at += ph.rows * ph.cols;
            Some(start)
        })
        .collect();
    let per_row = sw.min(pb.w);
    for (h, dst) in out.chunks_exact_mut(pb.w).enumerate() {
        let (a, i) = (h % sh, h / sh);
        let row_of = |b: usize| {
            let (ph, start) = (&phases[a * per_row + b], starts[a * per_row + b]);
            &planes[start + i * ph.cols..][..ph.cols]
        };
        if sw == 2 && pb.w >= 2 {
            let _ = cpu;
            // SAFETY: the `cpu` token proves AVX-512F.
            unsafe { interleave2(row_of(0), row_of(1), dst) };
            continue;
        }
        for b in 0..per_row {
            for (d, v) in dst[b..].iter_mut().step_by(sw).zip(row_of(b)) {
                d.write(*v);
            }
        }
    }
}

/// dst[2·j] = even[j], dst[2·j + 1] = odd[j] over dst, 16 pairs at a time with two-vector
/// permutes (the scalar interleave was half of a stride-2 depthwise input gradient).
#[target_feature(enable = "avx512f")]
fn interleave2(even: &[f32], odd: &[f32], dst: &mut [MaybeUninit<f32>]) {
    assert!(even.len() == dst.len().div_ceil(2) && odd.len() == dst.len() / 2);
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for j0 in (0..even.len()).step_by(LANES) {
        // SAFETY: each masked load reads only lanes below its slice's length, each masked store
        // only lanes below dst.len().
        let (e, o) = unsafe {
            (
                _mm512_maskz_loadu_ps(
                    inside(j0 as isize, even.len()),
                    even.as_ptr().wrapping_add(j0),
                ),
                _mm512_maskz_loadu_ps(
                    inside(j0 as isize, odd.len()),
                    odd.as_ptr().wrapping_add(j0),
                ),
            )
        };
        let at = 2 * j0;
        let first = _mm512_permutex2var_ps(e, low, o);
        let second = _mm512_permutex2var_ps(e, high, o);
        let out = dst.as_mut_ptr().cast::<f32>();
        // SAFETY: as above.
        unsafe {
            _mm512_mask_storeu_ps(out.wrapping_add(at), inside(at as isize, dst.len()), first);
            _mm512_mask_storeu_ps(
                out.wrapping_add(at + LANES),
                inside((at + LANES) as isize, dst.len()),
                second,
            );
        }
    }
}

/// dW of a depthwise problem. Deterministic: each dW row sums its images in order.
pub fn weight_grad(cpu: Avx512, pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Vec<f32> {
    let (hw, pq, rs) = (pb.h * pb.w, pb.p * pb.q, pb.r * pb.s);
    let phases = phases(pb);
    let taps = phase_taps(pb, &phases, None, 0, 1);
    let masks: Vec<_> = (phases.iter().zip(&taps))
        .map(|(ph, t)| tap_masks(pb.q, ph.cols, t))
        .collect();
    let columns: Vec<_> = taps.iter().map(|t| column_groups(t)).collect();
    let mut dwt = vec![0f32; pb.w_len()];
    dwt.par_chunks_mut(rs)
        .enumerate()
        .for_each_init(Vec::new, |buf, (k, out)| {
            let c = pb.group_of_output(k);
            let mut sums = vec![0f32; rs];
            for n in 0..pb.n {
                let plane = &x[pb.x_index(n, c, 0, 0)..][..hw];
                let planes = phase_planes(cpu, pb, plane, &phases, buf);
                let g = &dy[pb.y_index(n, k, 0, 0)..][..pq];
                for (i, ph) in phases.iter().enumerate() {
                    let src = Source {
                        plane: planes[i],
                        rows: ph.rows,
                        cols: ph.cols,
                        taps: &taps[i],
                        masks: &masks[i],
                        columns: columns[i].as_deref(),
                    };
                    sums[..ph.taps.len()].fill(0.0);
                    // SAFETY: the `cpu` token proves AVX-512F.
                    unsafe { shifted_dots(g, pb.q, &src, &mut sums[..ph.taps.len()]) };
                    for (&(t, _, _), v) in ph.taps.iter().zip(&sums) {
                        out[t] += v;
                    }
                }
            }
        });
    dwt
}
