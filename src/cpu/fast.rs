//! The fast CPU path: what the benchmark calls "CPU".
//!
//! Where the CPU has AVX-512F, the direct kernels run ([`CpuKernel::for_problem`] decides):
//! dense forward, weight gradient and stride-1 input gradient on large planes
//! (`cpu/direct.rs`), and every depthwise layer (`cpu/direct_depthwise.rs`); with AVX2 and FMA
//! only, the direct dense forward and stride-1 input gradient (8-lane tiles). The rest of the
//! dense problems run as im2col + SGEMM (the `gemm` crate, multithreaded with rayon), one GEMM
//! per (image, group): forward Y = W·col(X), input gradient col(dX) = Wᵀ·dY then col2im,
//! weight gradient dW = Σₙ dY·col(X)ᵀ (for planes under 256 outputs, images side by side in
//! one GEMM). A 1×1, stride-1, unpadded problem skips im2col (X is its own column matrix).
//! Without AVX-512, depthwise-like problems (one input channel per group) run the portable
//! depthwise kernels (`cpu/depthwise.rs`: any stride as stride 1 over stride phases, AVX2+FMA
//! where the CPU has it), parallel over channel planes, where a GEMM would be 1×R·S wide.
//! Accumulation is f32; tests hold it to the same tolerance as the GPU. Those choices are
//! heuristics; [`CpuChoice`] names them, and the CPU tuner (`cpu/tune.rs`) picks one by
//! measurement.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::cpu::alloc::{ensure_available, filled, vec_with_capacity};
use crate::cpu::isa::{Avx2Fma, Avx512};
use crate::cpu::output::written_by;
use crate::cpu::phases::PhaseGrid;
use crate::cpu::scratch::Scratch;
use crate::epilogue::{self, Addends, Epilogue};
use crate::error::{Result, TensorRole};
use crate::problem::{has_nonfinite, ConvProblem, Op};

pub use crate::cpu::reference::bias_grad;

/// Which family of CPU kernels runs a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuKernel {
    /// The direct kernels where they cover the problem: with AVX-512F, dense forward, weight
    /// gradient and stride-1 input gradient on stride-phase planes with no column matrix
    /// (`cpu/direct.rs`), and all three passes of depthwise layers (`cpu/direct_depthwise.rs`);
    /// with AVX2 and FMA only, the dense forward and stride-1 input gradient; the portable
    /// kernels for the rest. Elsewhere (other CPUs, other passes) it runs
    /// [`CpuKernel::Portable`].
    Direct,
    /// im2col + SGEMM (the `gemm` crate) and the portable depthwise kernels: every CPU.
    Portable,
}

impl CpuKernel {
    /// The family that runs `op` of `pb` by default: direct where the CPU has it and it is the
    /// faster (every depthwise layer; dense layers with large planes, and for the input
    /// gradient stride 1, see `direct::suits`; not 1×1 stride-1, where X already is the GEMM
    /// operand), else portable.
    pub fn for_problem(pb: &ConvProblem, op: Op) -> Self {
        let direct = pb.is_depthwise() || (!pb.is_pointwise() && direct_suits(pb, op));
        if direct_available(op, pb) && direct {
            CpuKernel::Direct
        } else {
            CpuKernel::Portable
        }
    }
}

/// Which CPU kernel runs `op` of `pb` by default, for reports.
pub fn describe(pb: &ConvProblem, op: Op) -> String {
    CpuChoice::HEURISTIC.describe(op, pb)
}

/// The knobs of one way to run an op on the CPU, besides the heuristics: the kernel family, and
/// for the portable GEMM paths whether images run across threads (each with a one-thread GEMM)
/// or one after another with every thread in each GEMM, and whether the weight gradient puts
/// images side by side in one GEMM. `None` leaves the heuristic. What the CPU tuner chooses
/// among ([`crate::cpu::tune`]); every choice computes the same terms, so it changes speed
/// only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CpuChoice {
    /// Direct (AVX-512, or AVX2 + FMA) or portable kernels.
    pub kernel: Option<CpuKernel>,
    /// Portable GEMM paths: images across threads, or threads inside each image's GEMM.
    pub images_in_parallel: Option<bool>,
    /// Portable weight gradient: images side by side in one GEMM (small planes), or one GEMM
    /// per image.
    pub side_by_side: Option<bool>,
    /// Portable dense forward (and the input gradient as one) and weight gradient: a column
    /// matrix (im2col) and one GEMM, or one GEMM per tap reading X's (dY's) stride-phase planes
    /// in place.
    pub columns: Option<bool>,
    /// Portable stride-1 dense input gradient: as a forward over the flipped kernel
    /// ([`ConvProblem::input_grad_as_forward`]), with `columns` choosing how that forward runs,
    /// or as Wᵀ·dY then col2im.
    pub as_forward: Option<bool>,
}

impl CpuChoice {
    /// Every knob left to the heuristics.
    pub const HEURISTIC: CpuChoice = CpuChoice {
        kernel: None,
        images_in_parallel: None,
        side_by_side: None,
        columns: None,
        as_forward: None,
    };

    /// What runs `op` of `pb` under this choice, with every knob that matters set and the
    /// others `None`: two choices that resolve alike run the same code.
    pub fn resolve(&self, op: Op, pb: &ConvProblem) -> CpuChoice {
        if op == Op::BiasGrad {
            return CpuChoice::HEURISTIC;
        }
        let mut kernel = self.kernel_for(op, pb);
        if !direct_available(op, pb) {
            kernel = CpuKernel::Portable;
        }
        if kernel == CpuKernel::Direct || pb.is_depthwise() {
            return CpuChoice::with_kernel(kernel);
        }
        let side_by_side = (op == Op::WeightGrad && !pb.is_pointwise())
            .then(|| self.side_by_side.unwrap_or(pb.p * pb.q < SMALL_PLANE));
        let can_split = rayon::current_num_threads() > 1 && pb.n > 1;
        let images_in_parallel = (can_split && side_by_side != Some(true))
            .then(|| self.images_in_parallel.unwrap_or(images_in_parallel(pb)));
        let as_forward = (op == Op::InputGrad)
            .then(|| pb.input_grad_as_forward())
            .flatten()
            .filter(|_| !pb.is_pointwise())
            .map(|fwd| (self.as_forward(), fwd));
        let columns = match as_forward {
            Some((false, _)) => None,
            Some((true, fwd)) => Some(self.columns.unwrap_or_else(|| {
                columns_default(Op::Forward, &fwd, images_in_parallel.unwrap_or(false))
            })),
            // Images side by side have one column matrix for the run (no per-tap form).
            None => (taps_cover(op, pb) && side_by_side != Some(true)).then(|| {
                let parallel = images_in_parallel.unwrap_or(false);
                self.columns
                    .unwrap_or_else(|| columns_default(op, pb, parallel))
            }),
        };
        CpuChoice {
            kernel: Some(kernel),
            images_in_parallel,
            side_by_side,
            columns,
            as_forward: as_forward.map(|(on, _)| on),
        }
    }

    /// What runs `op` of `pb` under this choice, for reports: the kernel family, and for the
    /// portable GEMM paths how the images are spread.
    pub fn describe(&self, op: Op, pb: &ConvProblem) -> String {
        let r = self.resolve(op, pb);
        let direct = r.kernel == Some(CpuKernel::Direct);
        let family = match op {
            Op::BiasGrad => "channel sums",
            _ if pb.is_depthwise() && direct => "direct depthwise AVX-512",
            _ if pb.is_depthwise() => "direct depthwise planes",
            _ if direct && Avx512::detect().is_some() => "direct AVX-512",
            _ if direct => "direct AVX2",
            _ if pb.is_pointwise() => "gemm on X (1x1)",
            _ if r.as_forward == Some(true) && r.columns == Some(false) => {
                "as a forward: gemm per tap on phase planes"
            }
            _ if r.as_forward == Some(true) => "as a forward: im2col + gemm",
            _ if op == Op::InputGrad => "gemm + col2im",
            _ if r.columns == Some(false) => "gemm per tap on phase planes",
            _ => "im2col + gemm",
        };
        let spread = match (r.side_by_side, r.images_in_parallel) {
            (Some(true), _) => ", images side by side",
            (_, Some(true)) => ", images in parallel",
            (_, Some(false)) => ", threads in each gemm",
            _ => "",
        };
        format!("{family}{spread}")
    }

    /// `kernel` forced, every other knob left to the heuristics.
    pub fn with_kernel(kernel: CpuKernel) -> CpuChoice {
        CpuChoice {
            kernel: Some(kernel),
            ..CpuChoice::HEURISTIC
        }
    }

    /// The kernel family this choice asks for on `op` of `pb` (the heuristic's when unset).
    fn kernel_for(&self, op: Op, pb: &ConvProblem) -> CpuKernel {
        self.kernel
            .unwrap_or_else(|| CpuKernel::for_problem(pb, op))
    }

    /// Whether the portable dense forward or weight gradient builds a column matrix (always,
    /// where the per-tap GEMMs do not cover it).
    fn columns(&self, op: Op, pb: &ConvProblem) -> bool {
        !taps_cover(op, pb)
            || self
                .columns
                .unwrap_or_else(|| columns_default(op, pb, self.parallel(pb)))
    }

    /// Whether the portable stride-1 input gradient runs as a forward: as set, else when the
    /// per-tap GEMMs are asked for (only the forward form has them). By default it runs through
    /// col2im, which was as fast or faster on the small planes where the forward form looked
    /// likeliest to win (PERFORMANCE.md, #cpu-as-forward); the tuner times both.
    fn as_forward(&self) -> bool {
        self.as_forward.unwrap_or(self.columns == Some(false))
    }

    fn parallel(&self, pb: &ConvProblem) -> bool {
        self.images_in_parallel
            .unwrap_or_else(|| images_in_parallel(pb))
    }
}

impl std::fmt::Display for CpuChoice {
    /// `heuristic`, or the set knobs: `kernel=direct|portable images=parallel|serial
    /// batched=yes|no columns=yes|no as-forward=yes|no`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(k) = self.kernel {
            parts.push(match k {
                CpuKernel::Direct => "kernel=direct",
                CpuKernel::Portable => "kernel=portable",
            });
        }
        if let Some(p) = self.images_in_parallel {
            parts.push(if p {
                "images=parallel"
            } else {
                "images=serial"
            });
        }
        if let Some(b) = self.side_by_side {
            parts.push(if b { "batched=yes" } else { "batched=no" });
        }
        if let Some(c) = self.columns {
            parts.push(if c { "columns=yes" } else { "columns=no" });
        }
        if let Some(a) = self.as_forward {
            parts.push(if a { "as-forward=yes" } else { "as-forward=no" });
        }
        if parts.is_empty() {
            return f.write_str("heuristic");
        }
        f.write_str(&parts.join(" "))
    }
}

impl std::str::FromStr for CpuChoice {
    type Err = crate::error::Error;

    /// The [`Display`](std::fmt::Display) form.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || crate::error::Error::InvalidSetting {
            name: "CPU tuning choice",
            value: text.to_string(),
            expected: concat!(
                "heuristic, or kernel=direct|portable / images=parallel|serial / ",
                "batched=yes|no / columns=yes|no / as-forward=yes|no"
            ),
        };
        let mut c = CpuChoice::HEURISTIC;
        if text.trim() == "heuristic" {
            return Ok(c);
        }
        for part in text.split_whitespace() {
            match part.split_once('=') {
                Some(("kernel", "direct")) => c.kernel = Some(CpuKernel::Direct),
                Some(("kernel", "portable")) => c.kernel = Some(CpuKernel::Portable),
                Some(("images", "parallel")) => c.images_in_parallel = Some(true),
                Some(("images", "serial")) => c.images_in_parallel = Some(false),
                Some(("batched", "yes")) => c.side_by_side = Some(true),
                Some(("batched", "no")) => c.side_by_side = Some(false),
                Some(("columns", "yes")) => c.columns = Some(true),
                Some(("columns", "no")) => c.columns = Some(false),
                Some(("as-forward", "yes")) => c.as_forward = Some(true),
                Some(("as-forward", "no")) => c.as_forward = Some(false),
                _ => return Err(bad()),
            }
        }
        if c == CpuChoice::HEURISTIC {
            return Err(bad());
        }
        Ok(c)
    }
}

/// Whether the per-tap GEMMs ([`forward_taps`], [`weight_grad_taps`]) can run `op` of the
/// dense problem `pb`: the forward of any problem with a kernel wider than 1×1 (a pointwise one
/// needs no column matrix anyway), the weight gradient of such a problem on planes of at least
/// [`SMALL_PLANE`] outputs (on smaller ones each tap's GEMM writes K × C sums for a few dozen
/// outputs: 18× slower than the images side by side on resnet-3x3-7, PERFORMANCE.md,
/// #cpu-taps), the input gradient where it is a stride-1 forward
/// ([`ConvProblem::input_grad_as_forward`]).
fn taps_cover(op: Op, pb: &ConvProblem) -> bool {
    !pb.is_depthwise()
        && !pb.is_pointwise()
        && match op {
            Op::Forward => true,
            Op::WeightGrad => pb.p * pb.q >= SMALL_PLANE,
            Op::InputGrad => pb.input_grad_as_forward().is_some(),
            Op::BiasGrad => false,
        }
}

/// The column matrix is the default, except for a forward whose threads all work in each
/// image's GEMMs on a large plane. There the per-tap GEMMs reading X in place ran the U-Net 3×3
/// forward with batch 1 (C=128, 64×64, K=64) about 2× faster (PERFORMANCE.md, #cpu-taps); with
/// images across threads, on small planes (whose flat rows carry more dropped columns), and for
/// the same layer's input gradient (whose per-tap GEMMs reduce over only K=64), the column
/// matrix was as fast or faster.
fn columns_default(op: Op, pb: &ConvProblem, images_in_parallel: bool) -> bool {
    op != Op::Forward || images_in_parallel || pb.p * pb.q < SMALL_PLANE
}

/// The instruction set of this CPU's direct kernels, for reports: "AVX-512", "AVX2" or
/// "none" (every problem runs the portable kernels).
pub fn direct_isa() -> &'static str {
    if Avx512::detect().is_some() {
        "AVX-512"
    } else if Avx2Fma::detect().is_some() {
        "AVX2"
    } else {
        "none"
    }
}

/// Whether this CPU has a direct kernel for `op` of `pb`: with AVX-512F every pass of dense
/// and depthwise layers, with AVX2 and FMA the dense forward; in both the dense input gradient
/// only where it is a stride-1 forward ([`ConvProblem::input_grad_as_forward`]).
fn direct_available(op: Op, pb: &ConvProblem) -> bool {
    let as_forward = || pb.input_grad_as_forward().is_some();
    if Avx512::detect().is_some() {
        return match op {
            Op::BiasGrad => false,
            Op::InputGrad => pb.is_depthwise() || as_forward(),
            Op::Forward | Op::WeightGrad => true,
        };
    }
    Avx2Fma::detect().is_some()
        && !pb.is_depthwise()
        && match op {
            Op::Forward => true,
            Op::InputGrad => as_forward(),
            Op::WeightGrad | Op::BiasGrad => false,
        }
}

/// Whether the direct kernels of this CPU beat the portable ones on dense `op` of `pb`.
fn direct_suits(pb: &ConvProblem, op: Op) -> bool {
    #[cfg(target_arch = "x86_64")]
    return if Avx512::detect().is_some() {
        crate::cpu::direct::suits::<Avx512>(pb, op)
    } else if Avx2Fma::detect().is_some() {
        crate::cpu::direct::suits::<Avx2Fma>(pb, op)
    } else {
        false
    };
    #[cfg(not(target_arch = "x86_64"))]
    return {
        let _ = (pb, op);
        false
    };
}

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

/// dst (m×n, row-major, contiguous) = a·b, or += a·b when `accumulate`; `threads` is the
/// GEMM's own parallelism (`Threads::One` inside an image-parallel loop).
fn sgemm(dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, threads: Threads) {
    // SAFETY: `dst` is a unique borrow of `dst.len()` initialised floats.
    unsafe { gemm_into(dst.as_mut_ptr(), dst.len(), a, b, accumulate, threads) }
}

/// [`sgemm`] without `accumulate` into an output not yet written: the GEMM stores every
/// element of dst's first m×n and reads none.
fn sgemm_write(dst: &mut [MaybeUninit<f32>], a: Mat, b: Mat, threads: Threads) {
    // SAFETY: `dst` is a unique borrow of `dst.len()` floats, and without `accumulate` the
    // GEMM only stores into it (`read_dst` false).
    unsafe { gemm_into(dst.as_mut_ptr().cast(), dst.len(), a, b, false, threads) }
}

/// # Safety
/// `dst` is valid for reads and writes of `dst_len` floats, aliases neither input, and holds
/// initialised floats where it is read (everywhere when `accumulate`).
unsafe fn gemm_into(
    dst: *mut f32,
    dst_len: usize,
    a: Mat,
    b: Mat,
    accumulate: bool,
    threads: Threads,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst_len >= m * n && a.fits() && b.fits(),
        "sgemm shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above keep every index the GEMM touches inside `a`, `b` and `dst`
    // (dst is m×n with row stride n), and the caller vouches for `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
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
            match threads {
                Threads::One => gemm::Parallelism::None,
                Threads::All => gemm::Parallelism::Rayon(0),
            },
        );
    }
}

/// Who runs the per-image work: one thread per image, or all threads on each image in turn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Threads {
    One,
    All,
}

/// Images run in parallel (each with single-threaded GEMMs) when they spread evenly over the
/// threads: per-image GEMMs of late layers are too small to split well, and splitting the batch
/// needs no synchronisation inside it.
fn images_in_parallel(pb: &ConvProblem) -> bool {
    let t = rayon::current_num_threads();
    t > 1 && pb.n >= t && (pb.n.is_multiple_of(t) || pb.n >= 4 * t)
}

/// Calls `f(index, chunk)` on each `size`-long chunk of `data`, across threads or in order.
fn for_each_chunk(
    data: &mut [f32],
    size: usize,
    threads: Threads,
    f: impl Fn(usize, &mut [f32]) + Send + Sync,
) {
    match threads {
        Threads::All => data
            .par_chunks_mut(size)
            .enumerate()
            .for_each(|(i, c)| f(i, c)),
        Threads::One => data.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c)),
    }
}

/// Runs `per_image(n, out_n, scratch, threads)` for every image n on its `out_len`-long slice
/// of `out`: images across threads when `parallel` (by default [`images_in_parallel`]), else
/// one after another with every thread inside each. `scratch_len` sizes a per-thread column
/// buffer.
fn for_each_image<T: Send>(
    parallel: bool,
    out: &mut [T],
    out_len: usize,
    scratch_len: usize,
    per_image: impl Fn(usize, &mut [T], &mut [f32], Threads) + Send + Sync,
) {
    if parallel {
        out.par_chunks_mut(out_len).enumerate().for_each_init(
            || Scratch::uninit(scratch_len),
            |col, (n, out_n)| per_image(n, out_n, col, Threads::One),
        );
    } else {
        let mut col = Scratch::uninit(scratch_len);
        for (n, out_n) in out.chunks_mut(out_len).enumerate() {
            per_image(n, out_n, &mut col, Threads::All);
        }
    }
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
fn im2col(pb: &ConvProblem, x: &[f32], n: usize, g: usize, col: &mut [f32], threads: Threads) {
    let (pq, rs) = (pb.p * pb.q, pb.r * pb.s);
    for_each_chunk(
        &mut col[..pb.c_per_group() * rs * pq],
        pq,
        threads,
        |row, out| {
            let c = g * pb.c_per_group() + row / rs;
            let plane = &x[pb.x_index(n, c, 0, 0)..][..pb.h * pb.w];
            col_row(pb, plane, (row % rs) / pb.s, row % pb.s, out);
        },
    );
}

/// im2col of images `images` side by side: col[(c·R + r)·S + s][i·P·Q + p·Q + q] for the i-th
/// image of the run, so one GEMM reduces over all of them.
fn im2col_images(
    pb: &ConvProblem,
    x: &[f32],
    images: std::ops::Range<usize>,
    g: usize,
    col: &mut [f32],
) {
    let (pq, rs) = (pb.p * pb.q, pb.r * pb.s);
    let width = images.len() * pq;
    col[..pb.c_per_group() * rs * width]
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(row, out)| {
            let c = g * pb.c_per_group() + row / rs;
            for (n, out) in images.clone().zip(out.chunks_exact_mut(pq)) {
                let plane = &x[pb.x_index(n, c, 0, 0)..][..pb.h * pb.w];
                col_row(pb, plane, (row % rs) / pb.s, row % pb.s, out);
            }
        });
}

/// One row of a column matrix: tap (r, s) of one input plane at every output (P·Q).
fn col_row(pb: &ConvProblem, plane: &[f32], r: usize, s: usize, out: &mut [f32]) {
    let sw = pb.params.stride[1];
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
}

/// Y = conv(X, W) (+ b).
pub fn forward(pb: &ConvProblem, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let kernel = CpuKernel::for_problem(pb, Op::Forward);
    forward_with(kernel, pb, x, w, bias)
}

/// The fused forward y = act(α·conv(x, w) + b + β·z): the convolution, then the epilogue over
/// each output plane ([`epilogue::apply`]). Returns y, and the pre-activation when `save_pre`.
pub fn forward_fused(
    pb: &ConvProblem,
    x: &[f32],
    w: &[f32],
    addends: Addends<'_>,
    epilogue: &Epilogue,
    save_pre: bool,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    epilogue.validate()?;
    let mut y = forward(pb, x, w, None)?;
    let mut pre = if save_pre {
        let mut v = vec_with_capacity(y.len(), "pre-activation")?;
        v.resize(y.len(), 0.0);
        Some(v)
    } else {
        None
    };
    epilogue::apply(epilogue, pb.y_shape(), &mut y, addends, pre.as_deref_mut())?;
    Ok((y, pre))
}

/// [`forward`] with the kernel family chosen by the caller (tests and benchmarks).
pub fn forward_with(
    kernel: CpuKernel,
    pb: &ConvProblem,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let choice = CpuChoice::with_kernel(kernel);
    forward_choice(&choice, pb, x, w, bias)
}

/// [`forward`] as `choice` says (the CPU tuner's candidates).
pub fn forward_choice(
    choice: &CpuChoice,
    pb: &ConvProblem,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let kernel = choice.kernel_for(Op::Forward, pb);
    pb.check_len(TensorRole::Input, x.len())?;
    pb.check_len(TensorRole::Weight, w.len())?;
    if let Some(b) = bias {
        pb.check_len(TensorRole::Bias, b.len())?;
    }
    // The output and as much again of working memory (planes, columns), or one error.
    ensure_available(pb.y_len() as u128 * 8, "output y and its working memory")?;
    #[cfg(target_arch = "x86_64")]
    if let (CpuKernel::Direct, None, Some(cpu), false) = (
        kernel,
        Avx512::detect(),
        Avx2Fma::detect(),
        pb.is_depthwise(),
    ) {
        return Ok(crate::cpu::direct::forward(cpu, pb, x, w, bias));
    }
    #[cfg(target_arch = "x86_64")]
    if let (CpuKernel::Direct, Some(cpu)) = (kernel, Avx512::detect()) {
        if !pb.is_depthwise() {
            return Ok(crate::cpu::direct::forward(cpu, pb, x, w, bias));
        }
        // The direct depthwise loads mask the padding off, so they drop its 0·w terms, which
        // are NaN for a NaN or ±∞ weight; the portable kernels multiply a zero border.
        if !has_nonfinite(w) {
            let mut y = crate::cpu::direct_depthwise::forward(cpu, pb, x, w);
            add_bias(pb, &mut y, bias);
            return Ok(y);
        }
    }
    let _ = kernel;
    let mut y = if pb.is_depthwise() {
        crate::cpu::depthwise::forward(pb, x, w)
    } else if !choice.columns(Op::Forward, pb) {
        forward_taps(pb, x, w, choice.parallel(pb))?
    } else {
        let (cg, kg, pq) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q);
        let crs = cg * pb.r * pb.s;
        let col_len = if pb.is_pointwise() { 0 } else { crs * pq };
        let parallel = choice.parallel(pb);
        let write = |y: &mut [MaybeUninit<f32>]| {
            for_each_image(parallel, y, pb.k * pq, col_len, |n, y_n, col, threads| {
                for g in 0..pb.params.groups {
                    let w_g = Mat::row_major(&w[g * kg * crs..][..kg * crs], kg, crs);
                    let y_ng = &mut y_n[g * kg * pq..][..kg * pq];
                    let cols = if pb.is_pointwise() {
                        Mat::row_major(&x[pb.x_index(n, g * cg, 0, 0)..][..cg * pq], cg, pq)
                    } else {
                        im2col(pb, x, n, g, col, threads);
                        Mat::row_major(col, crs, pq)
                    };
                    sgemm_write(y_ng, w_g, cols, threads);
                }
            });
        };
        // SAFETY: the images' slices and in them the groups' K/groups × P·Q blocks cover Y,
        // and each block is one GEMM's whole output. Unzeroed: PERFORMANCE.md,
        // [#cpu-unzeroed].
        unsafe { written_by(pb.y_len(), write) }
    };
    add_bias(pb, &mut y, bias);
    Ok(y)
}

/// The dense forward without a column matrix: per tap (r, s), Y += W[:, :, r, s] · X_rs, where
/// X_rs is a strided view of X's zero-bordered stride-phase planes (rows: channels, columns:
/// outputs laid out flat at the phase width), so the GEMMs read X in place. The flat columns
/// past Q are computed and dropped. The flat outputs go in column blocks sized so that a
/// block's Y and X_rs stay in L2 across the taps; with every thread in one image, the blocks
/// run across the threads.
fn forward_taps(pb: &ConvProblem, x: &[f32], w: &[f32], parallel: bool) -> Result<Vec<f32>> {
    let (cg, kg, pq, rs) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q, pb.r * pb.s);
    let crs = cg * rs;
    let grid = PhaseGrid::new(pb);
    let plane_len = grid.plane_len();
    let planes_len = PhaseGrid::count(pb) * pb.c * plane_len;
    let flat = grid.flat_len(pb);
    // About 256 KiB of Y and X_rs per block.
    let block = ((1 << 16) / (kg + cg)).next_multiple_of(64).min(flat);
    let blocks = flat.div_ceil(block);
    // W as [group][tap][k][c], so each tap's matrix is contiguous.
    let mut w_taps = filled(pb.w_len(), 0f32, "weights by tap")?;
    for (i, v) in w.iter().enumerate() {
        let (gk, c, t) = (i / crs, i % crs / rs, i % rs);
        let (g, k) = (gk / kg, gk % kg);
        w_taps[((g * rs + t) * kg + k) * cg + c] = *v;
    }
    let mut y = filled(pb.y_len(), 0f32, "output y")?;
    for_each_image(
        parallel,
        &mut y,
        pb.k * pq,
        planes_len + blocks * kg * block,
        |n, y_n, scratch, threads| {
            let (planes, y_flat) = scratch.split_at_mut(planes_len);
            for_each_chunk(planes, plane_len, threads, |i, plane| {
                let c = i % pb.c;
                let src = &x[pb.x_index(n, c, 0, 0)..][..pb.h * pb.w];
                grid.fill(pb, src, i / pb.c, plane);
            });
            let y_flat = &mut y_flat[..blocks * kg * block];
            for g in 0..pb.params.groups {
                let w_g = &w_taps[g * kg * crs..][..kg * crs];
                for_each_chunk(y_flat, kg * block, threads, |b, out| {
                    let (j0, len) = (b * block, block.min(flat - b * block));
                    let out = &mut out[..kg * len];
                    for t in 0..rs {
                        let (phase, shift) = grid.tap(pb, t / pb.s, t % pb.s);
                        let start = (phase * pb.c + g * cg) * plane_len + shift + j0;
                        let x_t = Mat {
                            data: &planes[start..],
                            rows: cg,
                            cols: len,
                            row_stride: plane_len,
                            col_stride: 1,
                        };
                        let w_t = Mat::row_major(&w_g[t * kg * cg..][..kg * cg], kg, cg);
                        sgemm(out, w_t, x_t, t > 0, Threads::One);
                    }
                });
                // Each block's rows (one per output channel) into the rows of Y it covers.
                let y_ng = &mut y_n[g * kg * pq..][..kg * pq];
                for (b, out) in y_flat.chunks_exact(kg * block).enumerate() {
                    let (j0, len) = (b * block, block.min(flat - b * block));
                    for p in j0 / grid.width..=(j0 + len - 1) / grid.width {
                        let row = p * grid.width;
                        let (from, to) = (j0.max(row), (j0 + len).min(row + pb.q));
                        if from >= to {
                            continue;
                        }
                        for k in 0..kg {
                            let src = &out[k * len + from - j0..][..to - from];
                            y_ng[k * pq + p * pb.q + from - row..][..to - from]
                                .copy_from_slice(src);
                        }
                    }
                }
            }
        },
    );
    Ok(y)
}

/// W′ of [`ConvProblem::input_grad_as_forward`]: W′[g·Cg + c, k, r, s] = W[g·Kg + k, c, R−1−r,
/// S−1−s] (per group, input and output channels swapped, taps mirrored).
pub(crate) fn flipped_for_input_grad(pb: &ConvProblem, w: &[f32]) -> Scratch {
    // Blocks of 16 input × 16 output channels: per block W is read as 16 runs of 16·R·S floats
    // and written as 16 such runs, all within L1. Channel by channel, the reads strode C·R·S
    // floats apart (a page each at C = 512) and the flip took a fifth of resnet-3x3-7's input
    // gradient.
    const BLOCK: usize = 16;
    let (cg, kg, rs) = (pb.c_per_group(), pb.k_per_group(), pb.r * pb.s);
    // Every element is written (the scratch holds old data): block × c × k × tap.
    let mut flipped = Scratch::uninit(w.len());
    flipped
        .par_chunks_mut(BLOCK * kg * rs)
        .enumerate()
        .for_each(|(block, dst)| {
            for k0 in (0..kg).step_by(BLOCK) {
                for (i, dst) in dst.chunks_mut(kg * rs).enumerate() {
                    let c_all = block * BLOCK + i;
                    let (g, c) = (c_all / cg, c_all % cg);
                    for k in k0..(k0 + BLOCK).min(kg) {
                        let src = &w[((g * kg + k) * cg + c) * rs..][..rs];
                        for (d, v) in dst[k * rs..][..rs].iter_mut().zip(src.iter().rev()) {
                            *d = *v;
                        }
                    }
                }
            }
        });
    flipped
}

/// y[n, k, ·, ·] += bias[k].
fn add_bias(pb: &ConvProblem, y: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        y.par_chunks_mut(pb.p * pb.q)
            .enumerate()
            .for_each(|(nk, plane)| {
                let bk = b[nk % pb.k];
                plane.iter_mut().for_each(|v| *v += bk);
            });
    }
}

/// dX from dY and W.
pub fn input_grad(pb: &ConvProblem, dy: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    let kernel = CpuKernel::for_problem(pb, Op::InputGrad);
    input_grad_with(kernel, pb, dy, w)
}

/// [`input_grad`] with the kernel family chosen by the caller (tests and benchmarks). The direct
/// dense input gradient covers stride 1 (padding within the kernel's reach); other dense
/// problems run the portable one.
///
/// With a NaN or ±∞ weight every problem runs the column GEMM: the direct and depthwise kernels
/// read dY as zero past its edges and multiply that by the weight, which PyTorch's input
/// gradient (only the terms that exist) does not.
pub fn input_grad_with(
    kernel: CpuKernel,
    pb: &ConvProblem,
    dy: &[f32],
    w: &[f32],
) -> Result<Vec<f32>> {
    let choice = CpuChoice::with_kernel(kernel);
    input_grad_choice(&choice, pb, dy, w)
}

/// [`input_grad`] as `choice` says (the CPU tuner's candidates).
pub fn input_grad_choice(
    choice: &CpuChoice,
    pb: &ConvProblem,
    dy: &[f32],
    w: &[f32],
) -> Result<Vec<f32>> {
    let kernel = choice.kernel_for(Op::InputGrad, pb);
    pb.check_len(TensorRole::OutputGrad, dy.len())?;
    pb.check_len(TensorRole::Weight, w.len())?;
    ensure_available(
        pb.x_len() as u128 * 8,
        "input gradient dx and its working memory",
    )?;
    if has_nonfinite(w) {
        return input_grad_gemm(choice, pb, dy, w);
    }
    #[cfg(target_arch = "x86_64")]
    if let (CpuKernel::Direct, None, Some(cpu), false) = (
        kernel,
        Avx512::detect(),
        Avx2Fma::detect(),
        pb.is_depthwise(),
    ) {
        if let Some(dx) = crate::cpu::direct::input_grad(cpu, pb, dy, w) {
            return Ok(dx);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let (CpuKernel::Direct, Some(cpu)) = (kernel, Avx512::detect()) {
        if pb.is_depthwise() {
            return Ok(crate::cpu::direct_depthwise::input_grad(cpu, pb, dy, w));
        }
        if let Some(dx) = crate::cpu::direct::input_grad(cpu, pb, dy, w) {
            return Ok(dx);
        }
    }
    let _ = kernel;
    if pb.is_depthwise() {
        return Ok(crate::cpu::depthwise::input_grad(pb, dy, w));
    }
    match pb.input_grad_as_forward() {
        Some(fwd) if !pb.is_pointwise() && choice.as_forward() => {
            let flipped = flipped_for_input_grad(pb, w);
            let as_forward = CpuChoice {
                kernel: Some(CpuKernel::Portable),
                as_forward: None,
                side_by_side: None,
                ..*choice
            };
            forward_choice(&as_forward, &fwd, dy, &flipped, None)
        }
        _ => input_grad_gemm(choice, pb, dy, w),
    }
}

/// The input gradient as Wᵀ·dY per (image, group), then col2im: exactly the terms that exist.
fn input_grad_gemm(
    choice: &CpuChoice,
    pb: &ConvProblem,
    dy: &[f32],
    w: &[f32],
) -> Result<Vec<f32>> {
    let (cg, kg, pq) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q);
    let (crs, hw) = (cg * pb.r * pb.s, pb.h * pb.w);
    let parallel = choice.parallel(pb);
    let operands = |n: usize, g: usize| {
        (
            Mat::row_major(&w[g * kg * crs..][..kg * crs], kg, crs),
            Mat::row_major(&dy[pb.y_index(n, g * kg, 0, 0)..][..kg * pq], kg, pq),
        )
    };
    if pb.is_pointwise() {
        // dX = Wᵀ·dY, one GEMM per group writing its planes whole: no zeroing first
        // (PERFORMANCE.md, [#cpu-unzeroed]).
        let write = |dx: &mut [MaybeUninit<f32>]| {
            for_each_image(parallel, dx, pb.c * hw, 0, |n, dx_n, _, threads| {
                for (g, dx_ng) in dx_n.chunks_exact_mut(cg * hw).enumerate() {
                    let (w_g, dy_ng) = operands(n, g);
                    sgemm_write(dx_ng, w_g.t(), dy_ng, threads);
                }
            });
        };
        // SAFETY: the images' slices and in them the groups' C/groups × H·W blocks cover dX,
        // and each block is one GEMM's whole output (H·W = P·Q: 1×1, stride 1, no padding).
        return Ok(unsafe { written_by(pb.x_len(), write) });
    }
    let mut dx = filled(pb.x_len(), 0f32, "input gradient dx")?;
    for_each_image(
        parallel,
        &mut dx,
        pb.c * hw,
        crs * pq,
        |n, dx_n, col, threads| {
            for (g, dx_ng) in dx_n.chunks_exact_mut(cg * hw).enumerate() {
                let (w_g, dy_ng) = operands(n, g);
                sgemm(col, w_g.t(), dy_ng, false, threads);
                col2im(pb, col, dx_ng, threads);
            }
        },
    );
    Ok(dx)
}

/// Scatter-adds the column matrix of one (image, group) into its dX planes, parallel over channels.
fn col2im(pb: &ConvProblem, col: &[f32], dx_ng: &mut [f32], threads: Threads) {
    let (pq, rs, sw) = (pb.p * pb.q, pb.r * pb.s, pb.params.stride[1]);
    for_each_chunk(dx_ng, pb.h * pb.w, threads, |c, plane| {
        for r in 0..pb.r {
            for s in 0..pb.s {
                let src = &col[(c * rs + r * pb.s + s) * pq..][..pq];
                for t in tap_rows(pb, r, s) {
                    let dst = &mut plane[t.h * pb.w..][..pb.w];
                    let src = &src[t.p * pb.q..][..pb.q];
                    if sw == 1 {
                        // Contiguous rows: a zip the compiler vectorises.
                        let len = t.qs.len();
                        for (d, v) in dst[t.w0..t.w0 + len].iter_mut().zip(&src[t.qs]) {
                            *d += v;
                        }
                    } else {
                        for (i, q) in t.qs.enumerate() {
                            dst[t.w0 + i * sw] += src[q];
                        }
                    }
                }
            }
        }
    });
}

/// dW from dY and X.
pub fn weight_grad(pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    let kernel = CpuKernel::for_problem(pb, Op::WeightGrad);
    weight_grad_with(kernel, pb, dy, x)
}

/// [`weight_grad`] with the kernel family chosen by the caller (tests and benchmarks).
///
/// The direct kernels compute with flat layouts whose scratch columns multiply a zero dY by X
/// values no term of PyTorch's sum contains; with a NaN or ±∞ in X those problems run the
/// GEMM, whose columns hold exactly the terms (the portable depthwise kernel handles such a
/// plane itself). The direct depthwise kernels skip the padding, so with a NaN or ±∞ in dY
/// they run the GEMM too, whose zero padding columns give the dY·0 terms PyTorch's sum has.
pub fn weight_grad_with(
    kernel: CpuKernel,
    pb: &ConvProblem,
    dy: &[f32],
    x: &[f32],
) -> Result<Vec<f32>> {
    let choice = CpuChoice::with_kernel(kernel);
    weight_grad_choice(&choice, pb, dy, x)
}

/// [`weight_grad`] as `choice` says (the CPU tuner's candidates).
pub fn weight_grad_choice(
    choice: &CpuChoice,
    pb: &ConvProblem,
    dy: &[f32],
    x: &[f32],
) -> Result<Vec<f32>> {
    let kernel = choice.kernel_for(Op::WeightGrad, pb);
    pb.check_len(TensorRole::OutputGrad, dy.len())?;
    pb.check_len(TensorRole::Input, x.len())?;
    let [top, left, bottom, right] = pb.params.padding;
    let padded_plane = (top + pb.h + bottom) as u128 * (left + pb.w + right) as u128;
    ensure_available(
        (pb.x_len() as u128 + pb.y_len() as u128 + padded_plane * 2) * 8,
        "weight gradient working memory",
    )?;
    let direct = kernel == CpuKernel::Direct && Avx512::detect().is_some();
    // The direct depthwise loads mask the padding off, so they drop its dY·0 terms, which are
    // NaN for a NaN or ±∞ in dY.
    let masked = direct && pb.is_depthwise();
    if (direct && has_nonfinite(x)) || (masked && has_nonfinite(dy)) {
        return weight_grad_gemm(choice, pb, dy, x);
    }
    #[cfg(target_arch = "x86_64")]
    if let (CpuKernel::Direct, Some(cpu)) = (kernel, Avx512::detect()) {
        if !pb.is_depthwise() {
            return Ok(crate::cpu::direct::weight_grad(cpu, pb, dy, x));
        }
        return Ok(crate::cpu::direct_depthwise::weight_grad(cpu, pb, dy, x));
    }
    let _ = kernel;
    if pb.is_depthwise() {
        return Ok(crate::cpu::depthwise::weight_grad(pb, dy, x));
    }
    weight_grad_gemm(choice, pb, dy, x)
}

/// The weight gradient as Σ dY·col(X)ᵀ: exactly the terms, padding zeros included.
fn weight_grad_gemm(
    choice: &CpuChoice,
    pb: &ConvProblem,
    dy: &[f32],
    x: &[f32],
) -> Result<Vec<f32>> {
    let side_by_side = choice.side_by_side.unwrap_or(pb.p * pb.q < SMALL_PLANE);
    if side_by_side && !pb.is_pointwise() {
        return Ok(weight_grad_batched(pb, dy, x));
    }
    let (cg, kg, pq) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q);
    let crs = cg * pb.r * pb.s;
    let col_len = if pb.is_pointwise() { 0 } else { crs * pq };
    // The per-tap form's dropped columns pair a zero dY with X values outside every window,
    // which a NaN or ±∞ there would turn into NaN: such an X takes the column matrix.
    let taps = !choice.columns(Op::WeightGrad, pb) && !has_nonfinite(x);
    // dW over the images in `range`, accumulated in order.
    let partial = |range: std::ops::Range<usize>, threads: Threads| {
        if taps {
            return weight_grad_taps(pb, dy, x, range, threads);
        }
        let mut dw = vec![0f32; pb.w_len()];
        let mut col = Scratch::uninit(col_len);
        for n in range.clone() {
            for g in 0..pb.params.groups {
                let dy_ng = Mat::row_major(&dy[pb.y_index(n, g * kg, 0, 0)..][..kg * pq], kg, pq);
                let dw_g = &mut dw[g * kg * crs..][..kg * crs];
                let cols = if pb.is_pointwise() {
                    Mat::row_major(&x[pb.x_index(n, g * cg, 0, 0)..][..cg * pq], cg, pq)
                } else {
                    im2col(pb, x, n, g, &mut col, threads);
                    Mat::row_major(&col, crs, pq)
                };
                sgemm(dw_g, dy_ng, cols.t(), n > range.start, threads);
            }
        }
        dw
    };
    // A fixed number of contiguous runs of images, each summed in order, then the runs added
    // in order: the same sums whatever the thread count (images in parallel with one-thread
    // GEMMs, or runs one after another with every thread in each GEMM).
    let runs = pb.n.min(IMAGE_RUNS);
    let ranges: Vec<_> = (0..runs)
        .map(|i| i * pb.n / runs..(i + 1) * pb.n / runs)
        .collect();
    let partials: Vec<Vec<f32>> = if choice.parallel(pb) {
        ranges
            .into_par_iter()
            .map(|range| partial(range, Threads::One))
            .collect()
    } else {
        ranges
            .into_iter()
            .map(|range| partial(range, Threads::All))
            .collect()
    };
    let mut dw = vec![0f32; pb.w_len()];
    for part in &partials {
        dw.iter_mut().zip(part).for_each(|(d, v)| *d += v);
    }
    Ok(dw)
}

/// Runs of images the portable weight gradient sums separately before adding them in order.
const IMAGE_RUNS: usize = 4;

/// dW over `images`, accumulated in order, without a column matrix: per tap (r, s),
/// dW[:, :, r, s] += dY_flat · X_rsᵀ, where dY_flat is dY laid out flat at the phase width (zero
/// in the columns past Q) and X_rs the strided view of X's stride-phase planes that
/// [`forward_taps`] reads. The GEMMs still pack X_rs, but no 9×-X column matrix is written and
/// read back first. Each GEMM's output is small (K/groups × C/groups) and its reduction long,
/// so the threads split the reduction: [`TAP_SPLITS`] fixed runs of the flat outputs, each
/// summed over the images in order, then added in order (the same sums whatever the thread
/// count). X must be finite (see [`weight_grad_gemm`]).
fn weight_grad_taps(
    pb: &ConvProblem,
    dy: &[f32],
    x: &[f32],
    images: std::ops::Range<usize>,
    threads: Threads,
) -> Vec<f32> {
    let (cg, kg, pq, rs) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q, pb.r * pb.s);
    let grid = PhaseGrid::new(pb);
    let plane_len = grid.plane_len();
    let flat = grid.flat_len(pb);
    let mut planes = Scratch::uninit(PhaseGrid::count(pb) * pb.c * plane_len);
    // Only the real columns are ever written: the others stay zero.
    let mut grads = vec![0f32; pb.k * flat];
    // Per run of flat outputs, dW by tap, [group][tap][k][c]: each tap's GEMM output contiguous.
    let splits = TAP_SPLITS.min(flat);
    let mut partials = vec![vec![0f32; pb.w_len()]; splits];
    for n in images.clone() {
        for_each_chunk(&mut planes, plane_len, threads, |i, plane| {
            let src = &x[pb.x_index(n, i % pb.c, 0, 0)..][..pb.h * pb.w];
            grid.fill(pb, src, i / pb.c, plane);
        });
        for (k, row) in grads.chunks_exact_mut(flat).enumerate() {
            let g = &dy[pb.y_index(n, k, 0, 0)..][..pq];
            for (p, src) in g.chunks_exact(pb.q).enumerate() {
                row[p * grid.width..][..pb.q].copy_from_slice(src);
            }
        }
        let run = |split: usize, dw_taps: &mut Vec<f32>| {
            let (j0, j1) = (split * flat / splits, (split + 1) * flat / splits);
            for g in 0..pb.params.groups {
                let dy_g = Mat {
                    data: &grads[g * kg * flat + j0..],
                    rows: kg,
                    cols: j1 - j0,
                    row_stride: flat,
                    col_stride: 1,
                };
                for t in 0..rs {
                    let (phase, shift) = grid.tap(pb, t / pb.s, t % pb.s);
                    let x_t = Mat {
                        data: &planes[(phase * pb.c + g * cg) * plane_len + shift + j0..],
                        rows: cg,
                        cols: j1 - j0,
                        row_stride: plane_len,
                        col_stride: 1,
                    };
                    let dw_t = &mut dw_taps[(g * rs + t) * kg * cg..][..kg * cg];
                    sgemm(dw_t, dy_g, x_t.t(), n > images.start, Threads::One);
                }
            }
        };
        match threads {
            Threads::All => partials
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, d)| run(i, d)),
            Threads::One => partials.iter_mut().enumerate().for_each(|(i, d)| run(i, d)),
        }
    }
    let mut dw = vec![0f32; pb.w_len()];
    for (i, d) in dw.iter_mut().enumerate() {
        let (gk, c, t) = (i / (cg * rs), i / rs % cg, i % rs);
        let (g, k) = (gk / kg, gk % kg);
        let at = ((g * rs + t) * kg + k) * cg + c;
        *d = partials.iter().map(|part| part[at]).sum();
    }
    dw
}

/// Runs of flat outputs [`weight_grad_taps`] reduces separately (a fixed count, so the sums do
/// not depend on the thread count).
const TAP_SPLITS: usize = 4;

/// Output planes smaller than this take [`weight_grad_batched`]. (The same batching for the
/// input gradient's column GEMM measured slower on resnet-3x3-7, 116–123 vs 143–158 GFLOP/s.)
const SMALL_PLANE: usize = 256;

/// Images per side-by-side run: the column matrix stays near 16 MiB.
fn image_run(pb: &ConvProblem) -> usize {
    let crs = pb.c_per_group() * pb.r * pb.s;
    ((4 << 20) / (crs * pb.p * pb.q)).clamp(1, pb.n)
}

/// dY of images `images`, output channels of group g, as K/g rows of the images side by side.
fn grads_side_by_side(
    pb: &ConvProblem,
    dy: &[f32],
    images: std::ops::Range<usize>,
    g: usize,
    grads: &mut [f32],
) {
    let (kg, pq) = (pb.k_per_group(), pb.p * pb.q);
    let width = images.len() * pq;
    for (k, row) in grads.chunks_exact_mut(width).take(kg).enumerate() {
        for (n, out) in images.clone().zip(row.chunks_exact_mut(pq)) {
            out.copy_from_slice(&dy[pb.y_index(n, g * kg + k, 0, 0)..][..pq]);
        }
    }
}

/// dW for small planes: per image the GEMM would reduce over only P·Q (49 on a 7×7 layer) while
/// reading and writing all of dW, so images go side by side into one column matrix and one
/// multithreaded GEMM reduces over all of them (runs of images sized to keep the matrix near
/// 16 MiB, accumulated in order: deterministic).
fn weight_grad_batched(pb: &ConvProblem, dy: &[f32], x: &[f32]) -> Vec<f32> {
    let (cg, kg, pq) = (pb.c_per_group(), pb.k_per_group(), pb.p * pb.q);
    let crs = cg * pb.r * pb.s;
    let run = image_run(pb);
    let mut col = Scratch::uninit(crs * run * pq);
    let mut grads = Scratch::uninit(kg * run * pq);
    let mut dw = vec![0f32; pb.w_len()];
    for g in 0..pb.params.groups {
        for first in (0..pb.n).step_by(run) {
            let images = first..(first + run).min(pb.n);
            let width = images.len() * pq;
            im2col_images(pb, x, images.clone(), g, &mut col);
            grads_side_by_side(pb, dy, images.clone(), g, &mut grads);
            sgemm(
                &mut dw[g * kg * crs..][..kg * crs],
                Mat::row_major(&grads[..kg * width], kg, width),
                Mat::row_major(&col[..crs * width], crs, width).t(),
                first > 0,
                Threads::All,
            );
        }
    }
    dw
}
