//! Direct kernels for the dense forward and weight gradient: no column matrix. The forward
//! (and the stride-1 input gradient as one) runs with AVX-512 or with AVX2 + FMA, one register
//! tile per instruction set ([`ForwardTile`]); the weight gradient needs AVX-512.
//!
//! The input is copied once into zero-bordered planes split by stride phase (plane (a, b) holds
//! padded rows a, a + sh, … and columns b, b + sw, …). In that layout every kernel tap of every
//! output is a plain shift: output (p, q) sits at flat index j = p·width + q, and tap (r, s)
//! reads its phase plane at j + shift(r, s). So the forward is, per tile of 6 output channels ×
//! 64 flat outputs (AVX2: 6 × 16, four tiles in a row on the same weights), a run of
//! broadcast-weight × contiguous-load FMAs over (c, tap); the weight
//! gradient is, per 4 output channels × 6 (c, tap) columns, a run of contiguous dot products
//! over j. Columns past Q (and the padding of the last chunk) are computed and dropped: the
//! "flat" layout costs (width − Q)/width extra work.
//!
//! Counted per inner step: forward 4 vector loads + 6 broadcasts per 24 FMAs (AVX2: 2 + 6 per
//! 12), weight gradient 10 loads per 24 FMAs, all within Zen's one-load-per-FMA budget, so the
//! tiles run at the FMA rate when the operands sit in L1/L2 (blocking below keeps them there).

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::cpu::isa::{Avx2Fma, Avx512};
use crate::cpu::output::written_by;
use crate::cpu::phases::PhaseGrid;
use crate::cpu::scratch::Scratch;
use crate::problem::{ConvProblem, Op};

const LANES: usize = 16;

/// Whether the direct kernels with tile `T` beat im2col + GEMM on `op` of `pb` (measured on
/// the suite, see PERFORMANCE.md, [#cpu-direct] and [#cpu-direct-avx2]): they compute the
/// scratch columns of the flat layout too, so they need most of each flat tile to be real
/// outputs (`T::MIN_FILL`, 85 % with AVX-512 and 90 % with AVX2: ResNet 56×56 and 28×28 planes
/// yes, 14×14 and 7×7 no); the weight gradient also needs runs long enough (≥ 512 per image) to amortise
/// each tile's horizontal sums; the input gradient runs as a forward (stride 1 only, see
/// [`ConvProblem::input_grad_as_forward`]).
pub fn suits<T: ForwardTile>(pb: &ConvProblem, op: Op) -> bool {
    let outputs = pb.p * pb.q;
    let flat = PhasePlanes::flat_len(pb);
    match op {
        Op::Forward => 100 * outputs >= T::MIN_FILL * flat.next_multiple_of(T::CHUNK),
        Op::WeightGrad => {
            let jw = flat.next_multiple_of(LANES);
            100 * outputs >= 85 * jw && jw >= 512
        }
        Op::InputGrad => pb
            .input_grad_as_forward()
            .is_some_and(|f| suits::<T>(&f, Op::Forward)),
        Op::BiasGrad => false,
    }
}

/// dX for a problem [`ConvProblem::input_grad_as_forward`] accepts (else `None`).
pub fn input_grad<T: ForwardTile>(
    cpu: T,
    pb: &ConvProblem,
    dy: &[f32],
    w: &[f32],
) -> Option<Vec<f32>> {
    let fwd = pb.input_grad_as_forward()?;
    let flipped = crate::cpu::fast::flipped_for_input_grad(pb, w);
    Some(forward(cpu, &fwd, dy, &flipped, None))
}

/// The phase-split, zero-bordered copy of X and where each tap reads in it.
struct PhasePlanes {
    /// [n][phase][c][plane_len], then `slack` zeros so tile loads past the last plane stay in
    /// bounds (they only feed outputs that are dropped).
    data: Scratch,
    /// Row pitch of a phase plane; also the row pitch of the flat outputs.
    width: usize,
    plane_len: usize,
    image_len: usize,
    /// Per tap t = r·S + s: offset of its phase plane for channel 0 plus the tap's shift.
    taps: Vec<usize>,
}

impl PhasePlanes {
    /// Copies X of `pb` into phase planes, with `reach` elements of readable zeros past the end
    /// of each tile's furthest start.
    fn new(pb: &ConvProblem, x: &[f32], reach: usize) -> Self {
        let grid = PhaseGrid::new(pb);
        let (width, plane_len, phases) = (grid.width, grid.plane_len(), PhaseGrid::count(pb));
        let image_len = phases * pb.c * plane_len;
        let mut taps = Vec::with_capacity(pb.r * pb.s);
        let mut max_shift = 0;
        for r in 0..pb.r {
            for s in 0..pb.s {
                let (phase, shift) = grid.tap(pb, r, s);
                max_shift = max_shift.max(shift);
                taps.push(phase * pb.c * plane_len + shift);
            }
        }
        let mut data = Scratch::uninit(pb.n * image_len + max_shift + reach);
        let (planes, slack) = data.split_at_mut(pb.n * image_len);
        slack.fill(0.0);
        // Every element is written (the scratch holds old data).
        planes
            .par_chunks_mut(plane_len)
            .enumerate()
            .for_each(|(i, plane)| {
                let (n, phase, c) = (i / (phases * pb.c), i / pb.c % phases, i % pb.c);
                let src = &x[pb.x_index(n, c, 0, 0)..][..pb.h * pb.w];
                grid.fill(pb, src, phase, plane);
            });
        PhasePlanes {
            data,
            width,
            plane_len,
            image_len,
            taps,
        }
    }

    /// Flat outputs per plane: P·width (those with q ≥ Q are scratch).
    fn flat_len(pb: &ConvProblem) -> usize {
        pb.p * PhaseGrid::new(pb).width
    }

    /// Start of channel `c` of image `n` (phase 0, no shift).
    fn channel(&self, n: usize, c: usize) -> usize {
        n * self.image_len + c * self.plane_len
    }
}

/// Y's data for the forward's parallel items, which write disjoint elements of it.
struct SharedOut(*mut f32);
// SAFETY: the pointer is only written through, at elements no two items share (see the use).
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// Element `i` (a method, so closures capture the Sync wrapper, not the raw field).
    fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// An instruction set's forward register tile: `K` output channels × `CHUNK` flat outputs,
/// summed over (c, tap) as broadcast-weight × contiguous-load FMAs. Implemented by the CPU
/// tokens, so only a CPU that has the instructions reaches a tile.
pub trait ForwardTile: Copy + Send + Sync {
    /// Output channels per tile.
    const K: usize;
    /// Flat outputs per tile.
    const CHUNK: usize;
    /// The least share of real outputs, in percent of the flat outputs rounded up to whole
    /// tiles, at which the forward beats im2col + GEMM ([`suits`]).
    const MIN_FILL: usize;

    /// out[i·pitch + l] (+)= Σ_{c, t} weights[(c·T + t)·K + i] · x[c·plane_len + taps[t] + l]
    /// over c < c_count and l < CHUNK, adding to what `out` holds when `accumulate`. Panics
    /// unless `x` is readable up to (c_count − 1)·plane_len + max(taps) + CHUNK and the other
    /// slices hold the tile.
    fn tile(self, operands: TileOperands<'_>, out: &mut [f32], pitch: usize, accumulate: bool);
}

/// What one forward tile reads: `c_count` channels of X's phase planes from `x` on (pitch
/// `plane_len`), each tap's offset in `taps`, and the packed weights [c][tap][K].
pub struct TileOperands<'a> {
    x: &'a [f32],
    c_count: usize,
    plane_len: usize,
    taps: &'a [usize],
    weights: &'a [f32],
}

impl TileOperands<'_> {
    /// Panics unless the operands hold a tile of `k` channels × `chunk` outputs written at
    /// row pitch `pitch` into `out`.
    fn check(&self, k: usize, chunk: usize, out: &[f32], pitch: usize) {
        let max_tap = self.taps.iter().copied().max().unwrap_or(0);
        assert!(
            self.c_count > 0
                && self.x.len() >= (self.c_count - 1) * self.plane_len + max_tap + chunk
                && self.weights.len() >= self.c_count * self.taps.len() * k
                && pitch >= chunk
                && out.len() >= (k - 1) * pitch + chunk
        );
    }
}

/// AVX-512: 6 channels × 4 vectors of 16 (24 of the 32 registers accumulate; 4 loads and 6
/// broadcasts per 24 FMAs).
impl ForwardTile for Avx512 {
    const K: usize = 6;
    const CHUNK: usize = 4 * LANES;
    const MIN_FILL: usize = 85;

    fn tile(self, operands: TileOperands<'_>, out: &mut [f32], pitch: usize, accumulate: bool) {
        // SAFETY: the token proves AVX-512F.
        unsafe { forward_tile_avx512(operands, out, pitch, accumulate) }
    }
}

/// AVX2: 6 channels × 2 vectors of 8 (12 of the 16 registers accumulate, 2 hold X, 1 the
/// broadcast weight; 2 loads and 6 broadcasts per 12 FMAs). 4 × 3 needs all 16 registers, and
/// the compiler spilled an accumulator (60 against 100 GFLOP/s on resnet-3x3-28).
impl ForwardTile for Avx2Fma {
    const K: usize = AVX2_K;
    const CHUNK: usize = AVX2_V * AVX2_LANES;
    const MIN_FILL: usize = 90;

    fn tile(self, operands: TileOperands<'_>, out: &mut [f32], pitch: usize, accumulate: bool) {
        // SAFETY: the token proves AVX2 and FMA.
        unsafe { forward_tile_avx2(operands, out, pitch, accumulate) }
    }
}

const AVX2_LANES: usize = 8;
const AVX2_K: usize = 6;
const AVX2_V: usize = 2;

/// Flat outputs per forward work item: one AVX-512 tile, several AVX2 tiles side by side
/// (which run one after another with each tile's weights hot in L1).
const FWD_ITEM: usize = 64;
const _: () = assert!(
    FWD_ITEM.is_multiple_of(<Avx512 as ForwardTile>::CHUNK)
        && FWD_ITEM.is_multiple_of(<Avx2Fma as ForwardTile>::CHUNK)
);
/// Most output-channel tiles one forward work item covers (96 channels).
const PART_K_BLOCKS: usize = 16;

/// Y = conv(X, W) (+ bias), for any dense problem (any stride, padding, dilation, groups).
pub fn forward<T: ForwardTile>(
    cpu: T,
    pb: &ConvProblem,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let fwd_k = T::K;
    let (groups, cg, kg, taps) = (
        pb.params.groups,
        pb.c_per_group(),
        pb.k_per_group(),
        pb.r * pb.s,
    );
    let flat_len = PhasePlanes::flat_len(pb);
    let chunks = flat_len.div_ceil(FWD_ITEM);
    let xs = PhasePlanes::new(pb, x, chunks * FWD_ITEM);
    let k_blocks = kg.div_ceil(fwd_k);

    // Weights packed per (group, block of fwd_k output channels) as [c][tap][fwd_k], zero rows
    // past K/g, so the tile reads them in order.
    let block_len = cg * taps * fwd_k;
    let mut packed = Scratch::zeroed(groups * k_blocks * block_len);
    packed
        .par_chunks_mut(block_len)
        .enumerate()
        .for_each(|(gb, block)| {
            let (g, kb) = (gb / k_blocks, gb % k_blocks);
            for i in 0..fwd_k.min(kg - kb * fwd_k) {
                let k = g * kg + kb * fwd_k + i;
                for ct in 0..cg * taps {
                    block[ct * fwd_k + i] = w[k * cg * taps + ct];
                }
            }
        });

    // Work: per (group, image, chunk of FWD_ITEM flat outputs) every output channel, split
    // into parts of at most PART_K_BLOCKS tiles for parallelism and to bound the weights one
    // part streams. Inside, channel blocks of about 144 (c, tap) steps run over every tile of
    // the part in turn: the block's input rows (~13 KB) stay in L1 across the part's tiles,
    // and each tile carries its sums from block to block in a small per-thread buffer. The
    // finished tiles are written straight into Y (+ bias), dropping the scratch columns.
    let tile_len = fwd_k * FWD_ITEM;
    let c_block = 144usize.div_ceil(taps);
    let parts = k_blocks.div_ceil(PART_K_BLOCKS);
    let write = |y: &mut [MaybeUninit<f32>]| {
        let out = SharedOut(y.as_mut_ptr().cast::<f32>());
        (0..groups * pb.n * chunks * parts)
            .into_par_iter()
            .for_each_init(
                || vec![0f32; PART_K_BLOCKS * tile_len],
                |tiles, item| {
                    let (region, part) = (item / parts, item % parts);
                    let (g, n, chunk) = (
                        region / (pb.n * chunks),
                        region / chunks % pb.n,
                        region % chunks,
                    );
                    let start = xs.channel(n, g * cg) + chunk * FWD_ITEM;
                    let chunk_start = chunk * FWD_ITEM;
                    let chunk_end = (chunk_start + FWD_ITEM).min(flat_len);
                    let subs = (chunk_end - chunk_start).div_ceil(T::CHUNK);
                    let first_block = part * PART_K_BLOCKS;
                    let blocks = PART_K_BLOCKS.min(k_blocks - first_block);
                    let tiles = &mut tiles[..blocks * tile_len];
                    for c0 in (0..cg).step_by(c_block) {
                        let c_count = c_block.min(cg - c0);
                        for (i, tile) in tiles.chunks_exact_mut(tile_len).enumerate() {
                            let block = (g * k_blocks + first_block + i) * block_len;
                            let weights = &packed[block + c0 * taps * fwd_k..block + block_len];
                            for m in 0..subs {
                                // The tile checks that `x` reaches its furthest load, start +
                                // (cg − 1)·plane_len + max tap + FWD_ITEM − 1, inside `xs.data`
                                // by the slack PhasePlanes::new adds.
                                let at = m * T::CHUNK;
                                let operands = TileOperands {
                                    x: &xs.data[start + at + c0 * xs.plane_len..],
                                    c_count,
                                    plane_len: xs.plane_len,
                                    taps: &xs.taps,
                                    weights,
                                };
                                cpu.tile(operands, &mut tile[at..], FWD_ITEM, c0 > 0);
                            }
                        }
                    }
                    // Flat index j of this chunk is output (j / width, j % width), kept when the
                    // column is below Q.
                    for (kk, row) in (first_block * fwd_k..kg).zip(tiles.chunks_exact(FWD_ITEM)) {
                        let k = g * kg + kk;
                        let b = bias.map_or(0.0, |b| b[k]);
                        let plane = pb.y_index(n, k, 0, 0);
                        let mut j = chunk_start;
                        while j < chunk_end {
                            let (p, q) = (j / xs.width, j % xs.width);
                            let run = (xs.width - q).min(chunk_end - j);
                            if q < pb.q {
                                let src = &row[j - chunk_start..][..run.min(pb.q - q)];
                                // SAFETY: (n, k, p, q..q + len) is inside Y (p < P, q + len ≤ Q),
                                // and no other item writes it: items own disjoint (group, image,
                                // chunk of flat outputs, output channels).
                                unsafe {
                                    let dst = out.at(plane + p * pb.q + q);
                                    for (t, v) in src.iter().enumerate() {
                                        *dst.add(t) = v + b;
                                    }
                                }
                            }
                            j += run;
                        }
                    }
                },
            );
    };
    // SAFETY: the items write every element of Y: each (group, image, chunk, part) covers its
    // chunk's flat outputs with q < Q for the part's output channels, and together they cover
    // all of them.
    unsafe { written_by(pb.y_len(), write) }
}

/// [`ForwardTile::tile`] with 16-lane vectors.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn forward_tile_avx512(
    operands: TileOperands<'_>,
    out: &mut [f32],
    pitch: usize,
    accumulate: bool,
) {
    const K: usize = <Avx512 as ForwardTile>::K;
    const V: usize = <Avx512 as ForwardTile>::CHUNK / LANES;
    const CHUNK: usize = <Avx512 as ForwardTile>::CHUNK;
    operands.check(K, CHUNK, out, pitch);
    let TileOperands {
        x,
        c_count,
        plane_len,
        taps,
        weights,
    } = operands;
    let mut acc = [[_mm512_setzero_ps(); V]; K];
    if accumulate {
        for (i, acc) in acc.iter_mut().enumerate() {
            for (v, a) in acc.iter_mut().enumerate() {
                let at = &out[i * pitch + v * LANES..][..LANES];
                // SAFETY: `at` holds the 16 floats the unaligned load reads.
                *a = unsafe { _mm512_loadu_ps(at.as_ptr()) };
            }
        }
    }
    // Pointers walk the operands (wrapping arithmetic is safe; only the loads need the bounds
    // checked above), so the inner loop carries no per-tap bounds checks.
    let mut wp = weights.as_ptr();
    for c in 0..c_count {
        let xc = x.as_ptr().wrapping_add(c * plane_len);
        for &tap in taps {
            let xt = xc.wrapping_add(tap);
            let mut xv = [_mm512_setzero_ps(); V];
            for (v, xv) in xv.iter_mut().enumerate() {
                // SAFETY: xt + v·16 + 15 ≤ (c_count − 1)·plane_len + max(taps) + CHUNK − 1,
                // inside `x` by the check.
                *xv = unsafe { _mm512_loadu_ps(xt.wrapping_add(v * LANES)) };
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: wp walks c_count·taps·K weights, inside `weights` by the check.
                let wv = _mm512_set1_ps(unsafe { *wp.wrapping_add(i) });
                for (a, xv) in acc.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(wv, *xv, *a);
                }
            }
            wp = wp.wrapping_add(K);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        for (v, a) in acc.iter().enumerate() {
            let at = &mut out[i * pitch + v * LANES..][..LANES];
            // SAFETY: `at` holds the 16 floats the unaligned store writes.
            unsafe { _mm512_storeu_ps(at.as_mut_ptr(), *a) };
        }
    }
}

/// [`ForwardTile::tile`] with 8-lane vectors.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_tile_avx2(
    operands: TileOperands<'_>,
    out: &mut [f32],
    pitch: usize,
    accumulate: bool,
) {
    const K: usize = AVX2_K;
    const V: usize = AVX2_V;
    const L: usize = AVX2_LANES;
    const CHUNK: usize = V * L;
    operands.check(K, CHUNK, out, pitch);
    let TileOperands {
        x,
        c_count,
        plane_len,
        taps,
        weights,
    } = operands;
    let mut acc = [[_mm256_setzero_ps(); V]; K];
    if accumulate {
        for (i, acc) in acc.iter_mut().enumerate() {
            for (v, a) in acc.iter_mut().enumerate() {
                let at = &out[i * pitch + v * L..][..L];
                // SAFETY: `at` holds the 8 floats the unaligned load reads.
                *a = unsafe { _mm256_loadu_ps(at.as_ptr()) };
            }
        }
    }
    // As in the AVX-512 tile: pointers walk the operands, bounds checked once above.
    let mut wp = weights.as_ptr();
    for c in 0..c_count {
        let xc = x.as_ptr().wrapping_add(c * plane_len);
        for &tap in taps {
            let xt = xc.wrapping_add(tap);
            let mut xv = [_mm256_setzero_ps(); V];
            for (v, xv) in xv.iter_mut().enumerate() {
                // SAFETY: xt + v·8 + 7 ≤ (c_count − 1)·plane_len + max(taps) + CHUNK − 1,
                // inside `x` by the check.
                *xv = unsafe { _mm256_loadu_ps(xt.wrapping_add(v * L)) };
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: wp walks c_count·taps·K weights, inside `weights` by the check.
                let wv = _mm256_broadcast_ss(unsafe { &*wp.wrapping_add(i) });
                for (a, xv) in acc.iter_mut().zip(&xv) {
                    *a = _mm256_fmadd_ps(wv, *xv, *a);
                }
            }
            wp = wp.wrapping_add(K);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        for (v, a) in acc.iter().enumerate() {
            let at = &mut out[i * pitch + v * L..][..L];
            // SAFETY: `at` holds the 8 floats the unaligned store writes.
            unsafe { _mm256_storeu_ps(at.as_mut_ptr(), *a) };
        }
    }
}

/// Weight-gradient tile: output channels × (c, tap) columns.
const WG_K: usize = 4;
const WG_COLS: usize = 6;
/// Most row tiles and column tiles one weight-gradient job covers (16 rows × 252 columns).
const JOB_K_TILES: usize = 4;
const JOB_COL_TILES: usize = 42;

/// dW from dY and X, for any dense problem. Deterministic: every dW element sums its images and
/// flat blocks in one fixed order whatever the thread count.
pub fn weight_grad(cpu: Avx512, pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Vec<f32> {
    let _ = cpu;
    let (groups, cg, kg, taps) = (
        pb.params.groups,
        pb.c_per_group(),
        pb.k_per_group(),
        pb.r * pb.s,
    );
    let jw = PhasePlanes::flat_len(pb).next_multiple_of(LANES);
    let xs = PhasePlanes::new(pb, x, jw);
    // dY at the planes' row pitch, zero in the scratch columns and past the end.
    let mut dyf = Scratch::uninit(pb.n * pb.k * jw);
    dyf.par_chunks_mut(jw).enumerate().for_each(|(nk, row)| {
        let src = &dy[nk * pb.p * pb.q..][..pb.p * pb.q];
        row.fill(0.0);
        for (p, s) in src.chunks_exact(pb.q).enumerate() {
            row[p * xs.width..][..pb.q].copy_from_slice(s);
        }
    });

    let cols = cg * taps;
    // Jobs: (group, up to JOB_K_TILES tiles of WG_K rows, up to JOB_COL_TILES tiles of WG_COLS
    // columns), so a job's input block (its channels' planes) stays within L2 and its sums
    // stay small.
    let k_tiles = kg.div_ceil(WG_K);
    let col_tiles = cols.div_ceil(WG_COLS);
    let (k_per_job, cols_per_job) = (JOB_K_TILES.min(k_tiles), JOB_COL_TILES.min(col_tiles));
    let (k_jobs, col_jobs) = (
        k_tiles.div_ceil(k_per_job),
        col_tiles.div_ceil(cols_per_job),
    );
    let job_tiles = |job: usize| {
        let (g, kj, cj) = (
            job / (k_jobs * col_jobs),
            job / col_jobs % k_jobs,
            job % col_jobs,
        );
        let ks = kj * k_per_job..((kj + 1) * k_per_job).min(k_tiles);
        let cs = cj * cols_per_job..((cj + 1) * cols_per_job).min(col_tiles);
        (g, ks, cs)
    };
    // The reduction (image, flat index) in blocks of about `block` elements, each a list of
    // (image, start, length) runs: a job's planes block (its channels, plus the tap reach) stays
    // in L2, and a block spans several images when the planes are small.
    let job_channels = (cols_per_job * WG_COLS).div_ceil(taps) + 1;
    let reach = xs.width * (pb.r * pb.params.dilation[0]).div_ceil(pb.params.stride[0]);
    let block = (128 * 1024 / job_channels)
        .saturating_sub(reach)
        .clamp(8 * LANES, 4096)
        .next_multiple_of(LANES);
    let mut blocks: Vec<Vec<Run>> = vec![Vec::new()];
    let mut filled = 0;
    for n in 0..pb.n {
        for start in (0..jw).step_by(block) {
            let len = block.min(jw - start);
            if filled > 0 && filled + len > block {
                blocks.push(Vec::new());
                filled = 0;
            }
            blocks
                .last_mut()
                .expect("one block")
                .push(Run { n, start, len });
            filled += len;
        }
    }

    let dy_image = pb.k * jw;
    let results: Vec<Vec<f32>> = (0..groups * k_jobs * col_jobs)
        .into_par_iter()
        .map(|job| {
            let (g, ks, cs) = job_tiles(job);
            let row_len = cs.len() * WG_COLS;
            let mut sums = vec![0f32; ks.len() * WG_K * row_len];
            for runs in &blocks {
                for (bi, kt) in ks.clone().enumerate() {
                    let dy_rows: [usize; WG_K] =
                        std::array::from_fn(|i| (g * kg + (kt * WG_K + i).min(kg - 1)) * jw);
                    for (ci, ct) in cs.clone().enumerate() {
                        // Tail tiles repeat the last column; their sums are dropped.
                        let x_rows: [usize; WG_COLS] = std::array::from_fn(|m| {
                            let col = (ct * WG_COLS + m).min(cols - 1);
                            let (c, t) = (col / taps, col % taps);
                            xs.channel(0, g * cg + c) + xs.taps[t]
                        });
                        // SAFETY: the `cpu` token proves AVX-512F (the tile checks its own
                        // bounds).
                        let tile = unsafe {
                            weight_grad_tile(
                                Rows {
                                    data: &dyf,
                                    starts: dy_rows,
                                    image_stride: dy_image,
                                },
                                Rows {
                                    data: &xs.data,
                                    starts: x_rows,
                                    image_stride: xs.image_len,
                                },
                                runs,
                            )
                        };
                        for (i, tile_row) in tile.iter().enumerate() {
                            let at = (bi * WG_K + i) * row_len + ci * WG_COLS;
                            for (d, v) in sums[at..at + WG_COLS].iter_mut().zip(tile_row) {
                                *d += v;
                            }
                        }
                    }
                }
            }
            sums
        })
        .collect();

    let mut dw = vec![0f32; pb.w_len()];
    for (job, sums) in results.iter().enumerate() {
        let (g, ks, cs) = job_tiles(job);
        let row_len = cs.len() * WG_COLS;
        for (bi, kt) in ks.enumerate() {
            for i in 0..WG_K.min(kg - kt * WG_K) {
                let k = g * kg + kt * WG_K + i;
                let (first, end) = (cs.start * WG_COLS, (cs.end * WG_COLS).min(cols));
                let src = &sums[(bi * WG_K + i) * row_len..][..end - first];
                dw[k * cols + first..k * cols + end].copy_from_slice(src);
            }
        }
    }
    dw
}

/// The 16-lane sums of dy row i · x row m over `len` elements (a multiple of 16). Kept apart
/// from the loop over runs: with that loop around it the accumulators were spilled to the stack.
///
/// # Safety
/// Every pointer is readable for `len` elements.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn weight_grad_run(
    dp: &[*const f32; WG_K],
    xp: &[*const f32; WG_COLS],
    len: usize,
) -> [[__m512; WG_COLS]; WG_K] {
    let mut acc = [[_mm512_setzero_ps(); WG_COLS]; WG_K];
    for j in (0..len).step_by(LANES) {
        let mut xv = [_mm512_setzero_ps(); WG_COLS];
        for (xv, xp) in xv.iter_mut().zip(xp) {
            // SAFETY: the caller guarantees `len` readable elements from each pointer.
            *xv = unsafe { _mm512_loadu_ps(xp.wrapping_add(j)) };
        }
        for (acc, dp) in acc.iter_mut().zip(dp) {
            // SAFETY: as above.
            let d = unsafe { _mm512_loadu_ps(dp.wrapping_add(j)) };
            for (a, xv) in acc.iter_mut().zip(&xv) {
                *a = _mm512_fmadd_ps(d, *xv, *a);
            }
        }
    }
    acc
}

/// A run of the weight gradient's reduction: flat indices start..start + len of image n.
struct Run {
    n: usize,
    start: usize,
    len: usize,
}

/// R rows of a tile operand: row i of image n starts at data[starts[i] + n·image_stride].
struct Rows<'a, const R: usize> {
    data: &'a [f32],
    starts: [usize; R],
    image_stride: usize,
}

impl<const R: usize> Rows<'_, R> {
    /// Whether every row holds `run` (its length a multiple of 16) in bounds.
    fn holds(&self, run: &Run) -> bool {
        run.len.is_multiple_of(LANES)
            && self
                .starts
                .iter()
                .all(|&s| s + run.n * self.image_stride + run.start + run.len <= self.data.len())
    }

    fn at(&self, i: usize, run: &Run) -> *const f32 {
        self.data[self.starts[i] + run.n * self.image_stride + run.start..].as_ptr()
    }
}

/// Σ over `runs` of dy row i · x row m (16 lanes at a time), for the WG_K × WG_COLS tile.
/// Panics unless every run lies inside both operands.
#[target_feature(enable = "avx512f")]
fn weight_grad_tile(
    dy: Rows<'_, WG_K>,
    x: Rows<'_, WG_COLS>,
    runs: &[Run],
) -> [[f32; WG_COLS]; WG_K] {
    let mut acc = [[_mm512_setzero_ps(); WG_COLS]; WG_K];
    for run in runs {
        assert!(dy.holds(run) && x.holds(run));
        let dp: [*const f32; WG_K] = std::array::from_fn(|i| dy.at(i, run));
        let xp: [*const f32; WG_COLS] = std::array::from_fn(|m| x.at(m, run));
        // SAFETY: `holds` checked above that every row holds the run's `len` elements.
        let part = unsafe { weight_grad_run(&dp, &xp, run.len) };
        for (acc, part) in acc.iter_mut().zip(&part) {
            for (a, p) in acc.iter_mut().zip(part) {
                *a = _mm512_add_ps(*a, *p);
            }
        }
    }
    // Plain loops, not `map` closures: a closure does not inherit the target feature, so the
    // reductions would become 24 out-of-line calls per tile.
    let mut sums = [[0f32; WG_COLS]; WG_K];
    for (sum_row, acc_row) in sums.iter_mut().zip(&acc) {
        for (sum, a) in sum_row.iter_mut().zip(acc_row) {
            *sum = _mm512_reduce_add_ps(*a);
        }
    }
    sums
}
