//! The validated convolution problem: shapes, parameters, output size and FLOP count.
//!
//! This module is the one source of truth for shape arithmetic. The CPU paths, the GPU host code,
//! the CLI and `explain` all build a [`ConvProblem`] and take every derived size and every
//! input/output index relation from it.

use crate::error::{Error, Result, TensorRole};

/// The ops of a convolution's training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum, serde::Serialize))]
#[cfg_attr(feature = "cli", serde(rename_all = "kebab-case"))]
pub enum Op {
    /// Y = conv(X, W) (+ b).
    Forward,
    /// dX from dY and W.
    InputGrad,
    /// dW from dY and X.
    WeightGrad,
    /// db from dY.
    BiasGrad,
}

impl Op {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Forward => "forward",
            Op::InputGrad => "input-grad",
            Op::WeightGrad => "weight-grad",
            Op::BiasGrad => "bias-grad",
        }
    }
}

/// Convolution hyper-parameters. Defaults: stride 1, no padding, dilation 1, one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(serde::Serialize, serde::Deserialize))]
pub struct ConvParams {
    /// Stride (height, width), each ≥ 1.
    pub stride: [usize; 2],
    /// Zero padding [top, left, bottom, right], each ≥ 0.
    pub padding: [usize; 4],
    /// Dilation (height, width), each ≥ 1.
    pub dilation: [usize; 2],
    /// Number of groups; divides both C and K.
    pub groups: usize,
}

impl Default for ConvParams {
    fn default() -> Self {
        ConvParams {
            stride: [1, 1],
            padding: [0; 4],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl ConvParams {
    /// Sets the stride (height, width).
    pub fn stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = [sh, sw];
        self
    }
    /// Sets symmetric padding: `ph` rows top and bottom, `pw` columns left and right.
    pub fn padding(mut self, ph: usize, pw: usize) -> Self {
        self.padding = [ph, pw, ph, pw];
        self
    }
    /// Sets asymmetric padding [top, left, bottom, right].
    pub fn padding_tlbr(mut self, top: usize, left: usize, bottom: usize, right: usize) -> Self {
        self.padding = [top, left, bottom, right];
        self
    }
    /// Sets the dilation (height, width).
    pub fn dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = [dh, dw];
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

/// A validated 2D convolution: input (N, C, H, W), weights (K, C/groups, R, S), output (N, K, P, Q).
///
/// Construct with [`ConvProblem::new`]; every field is consistent afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvProblem {
    /// Batch size N.
    pub n: usize,
    /// Input channels C.
    pub c: usize,
    /// Input height H.
    pub h: usize,
    /// Input width W.
    pub w: usize,
    /// Output channels K.
    pub k: usize,
    /// Kernel height R.
    pub r: usize,
    /// Kernel width S.
    pub s: usize,
    /// Output height P.
    pub p: usize,
    /// Output width Q.
    pub q: usize,
    /// The hyper-parameters.
    pub params: ConvParams,
}

/// Largest element count of any tensor; keeps every flat index inside u32 for the kernels.
pub const MAX_ELEMENTS: usize = u32::MAX as usize;

/// Largest stride, dilation and padding accepted, and the largest padded, strided or dilated
/// extent: the kernels compute coordinates in i32, and these bounds keep every such sum (an
/// extent plus a padding plus a dilated tap) far from overflow.
pub const MAX_EXTENT: usize = (i32::MAX / 4) as usize;

/// The element count of `shape` (any rank), or why it is too large for gpuconv.
pub fn element_count(role: TensorRole, shape: &[usize]) -> Result<usize> {
    let elems = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    if elems > MAX_ELEMENTS as u128 {
        return Err(Error::TooLarge {
            what: format!("element count of {role} {shape:?}"),
            value: elems,
            limit: MAX_ELEMENTS as u128,
        });
    }
    usize::try_from(elems).map_err(|_| Error::TooLarge {
        what: format!("element count of {role} {shape:?}"),
        value: elems,
        limit: usize::MAX as u128,
    })
}

fn rank4(role: TensorRole, shape: &[usize]) -> Result<[usize; 4]> {
    let arr: [usize; 4] = shape.try_into().map_err(|_| Error::Rank {
        role,
        expected: 4,
        shape: shape.to_vec(),
    })?;
    if arr.contains(&0) {
        return Err(Error::ZeroSize {
            role,
            shape: shape.to_vec(),
        });
    }
    element_count(role, &arr)?;
    Ok(arr)
}

fn bounded(what: &'static str, value: usize) -> Result<usize> {
    if value > MAX_EXTENT {
        return Err(Error::ParamTooLarge {
            what,
            value,
            limit: MAX_EXTENT,
        });
    }
    Ok(value)
}

/// Output length along one axis, or why it would be empty. Every argument is bounded by
/// [`MAX_EXTENT`] (checked by the caller), and the arithmetic runs in u128, so nothing wraps.
fn output_len(
    axis: &'static str,
    size: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_lo: usize,
    pad_hi: usize,
) -> Result<usize> {
    let padded = size as u128 + pad_lo as u128 + pad_hi as u128;
    let dilated = dilation as u128 * (kernel as u128 - 1) + 1;
    if padded < dilated {
        return Err(Error::EmptyOutput {
            axis,
            size,
            pad_lo,
            pad_hi,
            padded,
            kernel,
            dilation,
            dilated,
        });
    }
    let len = (padded - dilated) / stride as u128 + 1;
    usize::try_from(len).map_err(|_| Error::TooLarge {
        what: format!("output {axis}"),
        value: len,
        limit: usize::MAX as u128,
    })
}

impl ConvProblem {
    /// Validates a problem from the input shape (N, C, H, W), the weight shape
    /// (K, C/groups, R, S) and the parameters, and derives the output size
    /// P = ⌊(H + top + bottom − dh·(R−1) − 1)/sh⌋ + 1, Q likewise.
    ///
    /// Every size is derived with checked arithmetic: an accepted problem has every tensor's
    /// element count at most [`MAX_ELEMENTS`] and every padded, strided or dilated extent at
    /// most [`MAX_EXTENT`], so none of the problem's methods can overflow.
    pub fn new(x_shape: &[usize], w_shape: &[usize], params: ConvParams) -> Result<Self> {
        let [n, c, h, w] = rank4(TensorRole::Input, x_shape)?;
        let [k, cg, r, s] = rank4(TensorRole::Weight, w_shape)?;
        for (what, value) in [("stride", params.stride), ("dilation", params.dilation)] {
            if value.contains(&0) {
                return Err(Error::ZeroParam { what, value });
            }
        }
        let [sh, sw] = params.stride;
        let [dh, dw] = params.dilation;
        let [pt, pl, pb, pr] = params.padding;
        for (what, value) in [
            ("stride (height)", sh),
            ("stride (width)", sw),
            ("dilation (height)", dh),
            ("dilation (width)", dw),
            ("padding (top)", pt),
            ("padding (left)", pl),
            ("padding (bottom)", pb),
            ("padding (right)", pr),
        ] {
            bounded(what, value)?;
        }
        let g = params.groups;
        if g == 0 {
            return Err(Error::ZeroGroups);
        }
        for (what, value) in [("C", c), ("K", k)] {
            if !value.is_multiple_of(g) {
                return Err(Error::GroupsDoNotDivide {
                    groups: g,
                    what,
                    value,
                });
            }
        }
        if cg != c / g {
            return Err(Error::WeightChannels {
                got: cg,
                expected: c / g,
                c,
                groups: g,
            });
        }
        // Index arithmetic in the kernels runs in i32 on padded coordinates: the padded input,
        // the dilated kernel and the strided output must each stay well inside it.
        let extent = |v: u128| -> Result<()> {
            if v > MAX_EXTENT as u128 {
                return Err(Error::TooLarge {
                    what: "a padded, strided or dilated extent".into(),
                    value: v,
                    limit: MAX_EXTENT as u128,
                });
            }
            Ok(())
        };
        let wide = |v: usize| v as u128;
        extent(wide(h) + wide(pt) + wide(pb))?;
        extent(wide(w) + wide(pl) + wide(pr))?;
        extent(wide(dh) * wide(r))?;
        extent(wide(dw) * wide(s))?;
        let p = output_len("height", h, r, sh, dh, pt, pb)?;
        let q = output_len("width", w, s, sw, dw, pl, pr)?;
        extent(wide(sh) * wide(p))?;
        extent(wide(sw) * wide(q))?;
        element_count(TensorRole::Output, &[n, k, p, q])?;
        Ok(ConvProblem {
            n,
            c,
            h,
            w,
            k,
            r,
            s,
            p,
            q,
            params,
        })
    }

    /// Validates a problem whose output gradient dy is given: checks dy's shape against (N, K, P, Q).
    pub fn with_output_grad(
        x_shape: &[usize],
        w_shape: &[usize],
        dy_shape: &[usize],
        params: ConvParams,
    ) -> Result<Self> {
        let problem = Self::new(x_shape, w_shape, params)?;
        problem.check_shape(TensorRole::OutputGrad, dy_shape)?;
        Ok(problem)
    }

    /// Input channels per group, C/groups.
    pub fn c_per_group(&self) -> usize {
        self.c / self.params.groups
    }
    /// Output channels per group, K/groups.
    pub fn k_per_group(&self) -> usize {
        self.k / self.params.groups
    }
    /// A 1×1 kernel with stride 1 and no padding: every pass is a plain GEMM over pixels.
    pub fn is_pointwise(&self) -> bool {
        self.r == 1
            && self.s == 1
            && self.params.stride == [1, 1]
            && self.params.padding == [0, 0, 0, 0]
    }
    /// The input gradient of a stride-1 problem as a forward problem: dX = conv(dY, W′) with
    /// W′[g·Cg + c, k, r, s] = W[g·Kg + k, c, R−1−r, S−1−s] and each side padded by
    /// (R−1)·dh − pad (or (S−1)·dw − pad), which gives back H × W. `None` for strided problems or
    /// when a padding exceeds the kernel's reach (the mirrored padding would be negative).
    pub fn input_grad_as_forward(&self) -> Option<ConvProblem> {
        if self.params.stride != [1, 1] {
            return None;
        }
        let [dh, dw] = self.params.dilation;
        let [top, left, bottom, right] = self.params.padding;
        let (reach_h, reach_w) = ((self.r - 1) * dh, (self.s - 1) * dw);
        let mirrored = [
            reach_h.checked_sub(top)?,
            reach_w.checked_sub(left)?,
            reach_h.checked_sub(bottom)?,
            reach_w.checked_sub(right)?,
        ];
        let params = self
            .params
            .padding_tlbr(mirrored[0], mirrored[1], mirrored[2], mirrored[3]);
        let fwd = ConvProblem::new(
            &[self.n, self.k, self.p, self.q],
            &[self.c, self.k_per_group(), self.r, self.s],
            params,
        )
        .ok()?;
        (fwd.p == self.h && fwd.q == self.w).then_some(fwd)
    }
    /// One input channel per group (groups = C): depthwise, with K/C output channels per input.
    pub fn is_depthwise(&self) -> bool {
        self.c_per_group() == 1 && self.params.groups > 1
    }
    /// (N, C, H, W).
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    /// (K, C/groups, R, S).
    pub fn w_shape(&self) -> [usize; 4] {
        [self.k, self.c_per_group(), self.r, self.s]
    }
    /// (N, K, P, Q).
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.k, self.p, self.q]
    }
    /// Number of input elements.
    pub fn x_len(&self) -> usize {
        self.x_shape().iter().product()
    }
    /// Number of weight elements.
    pub fn w_len(&self) -> usize {
        self.w_shape().iter().product()
    }
    /// Number of output elements.
    pub fn y_len(&self) -> usize {
        self.y_shape().iter().product()
    }
    /// Multiply-adds × 2 of one pass: 2·N·K·(C/groups)·R·S·P·Q (the same for all three passes).
    pub fn flops(&self) -> f64 {
        [
            self.n,
            self.k,
            self.c_per_group(),
            self.r,
            self.s,
            self.p,
            self.q,
        ]
        .iter()
        .fold(2.0, |acc, &d| acc * d as f64)
    }

    /// The shape a tensor of `role` must have in this problem.
    pub fn shape_of(&self, role: TensorRole) -> Vec<usize> {
        match role {
            TensorRole::Input | TensorRole::InputGrad => self.x_shape().to_vec(),
            TensorRole::Weight | TensorRole::WeightGrad => self.w_shape().to_vec(),
            TensorRole::Bias | TensorRole::BiasGrad => vec![self.k],
            TensorRole::Output
            | TensorRole::OutputGrad
            | TensorRole::Residual
            | TensorRole::PreActivation => self.y_shape().to_vec(),
        }
    }

    /// Checks that `shape` is the shape `role` must have.
    pub fn check_shape(&self, role: TensorRole, shape: &[usize]) -> Result<()> {
        let expected = self.shape_of(role);
        if shape != expected.as_slice() {
            return Err(Error::ShapeMismatch {
                role,
                got: shape.to_vec(),
                expected,
            });
        }
        Ok(())
    }

    /// Checks that a data slice of `len` elements fits `role`'s shape.
    pub fn check_len(&self, role: TensorRole, len: usize) -> Result<()> {
        check_data_len(role, &self.shape_of(role), len)
    }

    /// The input row that output row `p` reads through kernel row `r`: h = p·sh − top + r·dh,
    /// or `None` where that lands in the padding.
    pub fn input_row(&self, p: usize, r: usize) -> Option<usize> {
        let [sh, _] = self.params.stride;
        let [dh, _] = self.params.dilation;
        (p * sh + r * dh)
            .checked_sub(self.params.padding[0])
            .filter(|&h| h < self.h)
    }

    /// The input column that output column `q` reads through kernel column `s`:
    /// w = q·sw − left + s·dw, or `None` where that lands in the padding.
    pub fn input_col(&self, q: usize, s: usize) -> Option<usize> {
        let [_, sw] = self.params.stride;
        let [_, dw] = self.params.dilation;
        (q * sw + s * dw)
            .checked_sub(self.params.padding[1])
            .filter(|&w| w < self.w)
    }

    /// The output rows p whose kernel row `r` lands inside the input (not in padding):
    /// exactly those p for which [`ConvProblem::input_row`] is `Some`.
    pub fn valid_output_rows(&self, r: usize) -> std::ops::Range<usize> {
        valid_range(
            self.p,
            self.h,
            self.params.stride[0],
            r * self.params.dilation[0],
            self.params.padding[0],
        )
    }

    /// The output columns q whose kernel column `s` lands inside the input: exactly those q for
    /// which [`ConvProblem::input_col`] is `Some`.
    pub fn valid_output_cols(&self, s: usize) -> std::ops::Range<usize> {
        valid_range(
            self.q,
            self.w,
            self.params.stride[1],
            s * self.params.dilation[1],
            self.params.padding[1],
        )
    }

    /// The group that output channel `k` belongs to.
    pub fn group_of_output(&self, k: usize) -> usize {
        k / self.k_per_group()
    }

    /// Flat NCHW index into X.
    pub fn x_index(&self, n: usize, c: usize, h: usize, w: usize) -> usize {
        ((n * self.c + c) * self.h + h) * self.w + w
    }
    /// Flat index into W (K, C/groups, R, S); `cg` is the channel within the group.
    pub fn w_index(&self, k: usize, cg: usize, r: usize, s: usize) -> usize {
        ((k * self.c_per_group() + cg) * self.r + r) * self.s + s
    }
    /// Flat NKPQ index into Y or dY.
    pub fn y_index(&self, n: usize, k: usize, p: usize, q: usize) -> usize {
        ((n * self.k + k) * self.p + p) * self.q + q
    }

    /// Every term of the forward sum of output (n, k, p, q), in the order (cg, r, s):
    /// `(input index, weight index)`; padding taps are left out.
    pub fn taps(&self, n: usize, k: usize, p: usize, q: usize) -> impl Iterator<Item = Tap> + '_ {
        let cg_count = self.c_per_group();
        let c0 = self.group_of_output(k) * cg_count;
        (0..cg_count).flat_map(move |cg| {
            (0..self.r).flat_map(move |r| {
                (0..self.s).filter_map(move |s| {
                    let h = self.input_row(p, r)?;
                    let w = self.input_col(q, s)?;
                    Some(Tap {
                        x: self.x_index(n, c0 + cg, h, w),
                        w: self.w_index(k, cg, r, s),
                    })
                })
            })
        })
    }
}

impl ConvProblem {
    /// The weights of output channel `k` whose tap lands in the padding at output (p, q), as
    /// flat indices into W, in the order (cg, r, s). PyTorch multiplies them by the padding's
    /// zero (0·NaN = NaN), so the forward sum and the weight gradient include these terms.
    pub fn padding_taps(&self, k: usize, p: usize, q: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.c_per_group()).flat_map(move |cg| {
            (0..self.r).flat_map(move |r| {
                (0..self.s).filter_map(move |s| {
                    let inside = self.input_row(p, r).is_some() && self.input_col(q, s).is_some();
                    (!inside).then(|| self.w_index(k, cg, r, s))
                })
            })
        })
    }
}

/// Whether any value is NaN or ±∞.
pub fn has_nonfinite(values: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    // An or over whole chunks vectorises to compares and ors on every x86-64; the unsigned max
    // it replaced needs SSE4.1, and baseline x86-64 emulated it with a few instructions per
    // vector (perf annotate of the depthwise weight gradient, PERFORMANCE.md,
    // [#cpu-portable-depthwise]).
    values.chunks(1 << 14).any(|c| {
        c.iter()
            .fold(false, |any, v| any | (v.to_bits() & EXPONENT == EXPONENT))
    })
}

/// Output positions o in 0..out with 0 ≤ o·stride + offset − pad < size.
fn valid_range(
    out: usize,
    size: usize,
    stride: usize,
    offset: usize,
    pad: usize,
) -> std::ops::Range<usize> {
    // o·stride ≥ pad − offset  and  o·stride ≤ size − 1 + pad − offset.
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    let hi = match (size - 1 + pad).checked_sub(offset) {
        Some(top) => (top / stride + 1).min(out),
        None => 0,
    };
    lo.min(hi)..hi
}

/// One multiply of a forward sum: X\[x\] · W\[w\].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tap {
    /// Flat index into X.
    pub x: usize,
    /// Flat index into W.
    pub w: usize,
}

/// Validates a bias-gradient input dy: rank 4, no zero sizes, at most [`MAX_ELEMENTS`] elements.
pub fn check_output_grad_shape(dy_shape: &[usize]) -> Result<[usize; 4]> {
    rank4(TensorRole::OutputGrad, dy_shape)
}

/// Checks that `len` elements are what `shape` (of tensor `role`) holds.
pub fn check_data_len(role: TensorRole, shape: &[usize], len: usize) -> Result<()> {
    let expected = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    if len as u128 != expected {
        return Err(Error::LengthMismatch {
            role,
            got: len,
            expected,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}
