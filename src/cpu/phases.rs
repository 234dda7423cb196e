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
        let [sh, sw] = pb.params.stride;
        let [top, left, _, _] = pb.params.padding;
        let (a, b) = (phase / sw, phase % sw);
        // Phase columns jj whose padded column jj·sw + b is input column jj·sw + b − left.
        let first = left.saturating_sub(b).div_ceil(sw);
        let end = (left + pb.w).saturating_sub(b).div_ceil(sw).min(self.width);
        for (i, row) in plane.chunks_exact_mut(self.width).enumerate() {
            // Padded row i·sh + a is input row i·sh + a − top.
            let Some(h) = (i * sh + a).checked_sub(top).filter(|&h| h < pb.h) else {
                row.fill(0.0);
                continue;
            };
            let src = &src[h * pb.w..][..pb.w];
            row[..first.min(end)].fill(0.0);
            if first < end {
                let w0 = first * sw + b - left;
                let n = end - first;
                if sw == 1 {
                    row[first..end].copy_from_slice(&src[w0..w0 + n]);
                } else if sw == 2 {
                    // Every other element: a loop LLVM vectorises with shuffles.
                    let (dst, src) = (&mut row[first..end], &src[w0..w0 + 2 * n - 1]);
                    for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
                        *d = pair[0];
                    }
                    dst[n - 1] = src[2 * n - 2];
                } else {
                    for (v, w) in row[first..end].iter_mut().zip((w0..).step_by(sw)) {
                        *v = src[w];
                    }
                }
            }
            row[end.max(first)..].fill(0.0);
        }
    }
}
