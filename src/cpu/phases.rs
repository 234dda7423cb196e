//! The stride phases of a zero-bordered input plane, shared by the direct (x86-64) and the
//! portable depthwise kernels.
//!
//! Phase (a, b) of the padded plane holds padded rows a, a + sh, … and columns b, b + sw, …
//! Output (p, q) of tap (r, s) reads padded element (p·sh + r·dh, q·sw + s·dw), which is element
//! (p + ⌊r·dh/sh⌋, q + ⌊s·dw/sw⌋) of phase (r·dh mod sh, s·dw mod sw): laid out flat at the phase
//! width, every tap of a strided convolution is a stride-1 read at a fixed shift.

use crate::problem::ConvProblem;

/// Size of each phase plane of a problem's padded input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PhaseGrid {
    /// Rows of a phase plane: padded height / sh, rounded up.
    pub rows: usize,
    /// Row pitch of a phase plane (and of the flat outputs): padded width / sw, rounded up.
    pub width: usize,
}

impl PhaseGrid {
    pub fn new(pb: &ConvProblem) -> Self {
        let [top, left, bottom, right] = pb.params.padding;
        let [sh, sw] = pb.params.stride;
        PhaseGrid {
            rows: (top + pb.h + bottom).div_ceil(sh),
            width: (left + pb.w + right).div_ceil(sw),
        }
    }

    pub fn plane_len(&self) -> usize {
        self.rows * self.width
    }

    /// Outputs laid out flat at the phase width, up to the last real one: (P − 1)·width + Q
    /// (the columns past Q of each earlier row are computed and dropped).
    pub fn flat_len(&self, pb: &ConvProblem) -> usize {
        (pb.p - 1) * self.width + pb.q
    }

    /// sh·sw.
    pub fn count(pb: &ConvProblem) -> usize {
        pb.params.stride[0] * pb.params.stride[1]
    }

    /// Tap (r, s): its phase (a·sw + b) and its shift in that phase plane.
    pub fn tap(&self, pb: &ConvProblem, r: usize, s: usize) -> (usize, usize) {
        let ([sh, sw], [dh, dw]) = (pb.params.stride, pb.params.dilation);
        let phase = (r * dh % sh) * sw + s * dw % sw;
        (phase, (r * dh / sh) * self.width + s * dw / sw)
    }

    /// Writes phase `phase` of the zero-bordered `src` (one H×W input plane) into `plane`
    /// (rows × width): input where the padded position is inside X, zero elsewhere; every
    /// element is written.
    pub fn fill(&self, pb: &ConvProblem, src: &[f32], phase: usize, plane: &mut [f32]) {
        self.for_each_input_row(pb, phase, plane, |row, range, inputs| {
            let (first, end) = (range.start, range.end);
            row[..first].fill(0.0);
            if let Some(h) = inputs {
                copy_columns(pb.params.stride[1], &src[h..], &mut row[first..end]);
            } else {
                row[first..end].fill(0.0);
            }
            row[end..].fill(0.0);
        });
    }

    /// [`fill`](Self::fill) for a `plane` that holds zeros wherever the padded position is
    /// outside X (a zeroed buffer, or one this has filled before for the same problem): writes
    /// the input positions only.
    pub fn fill_inputs(&self, pb: &ConvProblem, src: &[f32], phase: usize, plane: &mut [f32]) {
        self.for_each_input_row(pb, phase, plane, |row, range, inputs| {
            if let Some(h) = inputs {
                copy_columns(pb.params.stride[1], &src[h..], &mut row[range]);
            }
        });
    }

    /// Calls `f(row, columns, inputs)` for every row of phase `phase` in `plane`: `columns`,
    /// the phase columns whose padded column is inside X, and `inputs`, the offset in the
    /// input plane of the first of them where the padded row is inside X too.
    fn for_each_input_row(
        &self,
        pb: &ConvProblem,
        phase: usize,
        plane: &mut [f32],
        mut f: impl FnMut(&mut [f32], std::ops::Range<usize>, Option<usize>),
    ) {
        let [sh, sw] = pb.params.stride;
        let [top, left, _, _] = pb.params.padding;
        let (a, b) = (phase / sw, phase % sw);
        // Phase columns jj whose padded column jj·sw + b is input column jj·sw + b − left.
        let first = left.saturating_sub(b).div_ceil(sw);
        let end = (left + pb.w).saturating_sub(b).div_ceil(sw).min(self.width);
        let (first, end) = (first.min(end), end.max(first.min(end)));
        for (i, row) in plane.chunks_exact_mut(self.width).enumerate() {
            // Padded row i·sh + a is input row i·sh + a − top.
            let h = (i * sh + a).checked_sub(top).filter(|&h| h < pb.h);
            let inputs = h
                .filter(|_| first < end)
                .map(|h| h * pb.w + first * sw + b - left);
            f(row, first..end, inputs);
        }
    }
}

/// dst[j] = src[j·sw] for every element of `dst` (one phase row's input columns).
fn copy_columns(sw: usize, src: &[f32], dst: &mut [f32]) {
    let n = dst.len();
    match sw {
        1 => copy_short(dst, &src[..n]),
        2 => {
            // Every other element: a loop LLVM vectorises with shuffles.
            let src = &src[..2 * n - 1];
            for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
            dst[n - 1] = src[2 * n - 2];
        }
        _ => {
            for (v, w) in dst.iter_mut().zip((0..).step_by(sw)) {
                *v = src[w];
            }
        }
    }
}

/// `dst.copy_from_slice(src)` without a library call for rows of a few dozen floats: whole
/// chunks of eight, then the last eight again (overlapping). Small planes copy one short row
/// at a time, where a call per row cost more than its copy.
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    const CHUNK: usize = 8;
    let n = dst.len();
    if n < CHUNK {
        dst.copy_from_slice(src);
        return;
    }
    for (d, s) in dst.chunks_exact_mut(CHUNK).zip(src.chunks_exact(CHUNK)) {
        let s: [f32; CHUNK] = s.try_into().unwrap();
        d.copy_from_slice(&s);
    }
    let last: [f32; CHUNK] = src[n - CHUNK..].try_into().unwrap();
    dst[n - CHUNK..].copy_from_slice(&last);
}
