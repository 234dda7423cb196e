//! Transposed convolution (PyTorch's `conv_transpose2d`, ONNX `ConvTranspose`) as the
//! convolution whose input gradient it is.
//!
//! X is N × C_in × H × W, W is C_in × (C_out/groups) × R × S, Y is N × C_out × H_out × W_out with
//! H_out = (H − 1)·sh − pad_top − pad_bottom + dh·(R − 1) + output_padding_h + 1:
//! y\[n, co, h_out, w_out\] = Σ x\[n, ci, h, w\]·W\[ci, co_g, r, s\] over h_out = h·sh − pad_top + r·dh
//! (and the same along the width), ci in co's group, plus bias\[co\].
//!
//! That is the input gradient of the convolution `conv` with input N × C_out × H_out × W_out,
//! weights W read as K = C_in filters of C_out/groups channels, and output gradient X. With
//! output padding below the stride that convolution's output is exactly H × W; PyTorch also
//! allows output padding up to the dilation, where the convolution's output is taller than X by
//! the rows no input reaches, and X is padded with zeros to it ([`TransposedProblem::pad_x`]).
//! So the forward runs the input-gradient kernels, the input gradient the forward kernels and the
//! weight gradient the weight-gradient kernels, on every path.

use crate::cpu::{fast, reference};
use crate::epilogue::{self, Addends, Epilogue};
use crate::error::{Error, Result, TensorRole};
use crate::gpu::GpuContext;
use crate::problem::{ConvParams, ConvProblem};

/// A validated transposed-convolution problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransposedProblem {
    /// The convolution whose input gradient this is (its X is this problem's Y).
    pub conv: ConvProblem,
    /// The input X: N, C_in, H, W.
    pub x_shape: [usize; 4],
    /// Output padding (height, width).
    pub output_padding: [usize; 2],
}

impl TransposedProblem {
    /// Validates X (N, C_in, H, W), W (C_in, C_out/groups, R, S), the parameters as PyTorch's
    /// `conv_transpose2d` reads them (padding as [top, left, bottom, right]) and the output
    /// padding (each smaller than the stride or the dilation on its axis).
    pub fn new(
        x_shape: &[usize],
        w_shape: &[usize],
        params: ConvParams,
        output_padding: [usize; 2],
    ) -> Result<Self> {
        let [n, cin, h, w] = rank4(TensorRole::Input, x_shape)?;
        let [wcin, cout_g, r, s] = rank4(TensorRole::Weight, w_shape)?;
        if params.groups == 0 {
            return Err(Error::ZeroGroups);
        }
        for (what, value) in [("stride", params.stride), ("dilation", params.dilation)] {
            if value.contains(&0) {
                return Err(Error::ZeroParam { what, value });
            }
        }
        if wcin != cin {
            return Err(Error::TransposedChannels {
                x_channels: cin,
                w_channels: wcin,
            });
        }
        if !cin.is_multiple_of(params.groups) {
            return Err(Error::GroupsDoNotDivide {
                groups: params.groups,
                what: "C_in",
                value: cin,
            });
        }
        for (i, axis) in ["height", "width"].into_iter().enumerate() {
            let (op, st, di) = (output_padding[i], params.stride[i], params.dilation[i]);
            if op >= st && op >= di {
                return Err(Error::OutputPadding {
                    axis,
                    output_padding: op,
                    stride: st,
                    dilation: di,
                });
            }
        }
        let [pt, pl, pb, pr] = params.padding;
        let out = |axis: &'static str,
                   size: usize,
                   k: usize,
                   st: usize,
                   di: usize,
                   lo: usize,
                   hi: usize,
                   op: usize|
         -> Result<usize> {
            let wide = |v: usize| v as i128;
            let too_large = || Error::TooLarge {
                what: format!("transposed output {axis}"),
                value: u128::MAX,
                limit: crate::problem::MAX_EXTENT as u128,
            };
            let grown = (wide(size) - 1)
                .checked_mul(wide(st))
                .and_then(|v| v.checked_add(wide(di).checked_mul(wide(k) - 1)?))
                .and_then(|v| v.checked_add(wide(op) + 1))
                .ok_or_else(too_large)?;
            let len = grown - wide(lo) - wide(hi);
            if len < 1 {
                return Err(Error::TransposedEmpty {
                    axis,
                    len,
                    size,
                    stride: st,
                    dilation: di,
                    kernel: k,
                    output_padding: op,
                    pad_lo: lo,
                    pad_hi: hi,
                });
            }
            usize::try_from(len).map_err(|_| too_large())
        };
        let hout = out(
            "height",
            h,
            r,
            params.stride[0],
            params.dilation[0],
            pt,
            pb,
            output_padding[0],
        )?;
        let wout = out(
            "width",
            w,
            s,
            params.stride[1],
            params.dilation[1],
            pl,
            pr,
            output_padding[1],
        )?;
        let cout = cout_g
            .checked_mul(params.groups)
            .ok_or_else(|| Error::TooLarge {
                what: "C_out = C_out/groups · groups".into(),
                value: cout_g as u128 * params.groups as u128,
                limit: usize::MAX as u128,
            })?;
        let conv = ConvProblem::new(&[n, cout, hout, wout], w_shape, params)?;
        if conv.p < h || conv.q < w {
            return Err(Error::Internal(format!(
                "transposed problem {x_shape:?} {w_shape:?}: its convolution's output {}x{} is smaller than the input {h}x{w}",
                conv.p, conv.q
            )));
        }
        Ok(TransposedProblem {
            conv,
            x_shape: [n, cin, h, w],
            output_padding,
        })
    }

    /// Y: N, C_out, H_out, W_out.
    pub fn y_shape(&self) -> [usize; 4] {
        self.conv.x_shape()
    }

    /// W: C_in, C_out/groups, R, S.
    pub fn w_shape(&self) -> [usize; 4] {
        self.conv.w_shape()
    }

    /// Elements of X.
    pub fn x_len(&self) -> usize {
        self.x_shape.iter().product()
    }

    /// Whether the convolution's output is larger than X (output padding ≥ stride).
    fn padded(&self) -> bool {
        self.conv.p != self.x_shape[2] || self.conv.q != self.x_shape[3]
    }

    /// X (or a tensor of X's shape) as the convolution's output gradient: itself, or padded
    /// with zeros at the bottom and right to P × Q.
    pub fn pad_x(&self, x: &[f32]) -> Result<Vec<f32>> {
        crate::problem::check_data_len(TensorRole::Input, &self.x_shape, x.len())?;
        if !self.padded() {
            return Ok(x.to_vec());
        }
        let [n, c, h, w] = self.x_shape;
        let (p, q) = (self.conv.p, self.conv.q);
        let mut out = crate::cpu::alloc::filled(n * c * p * q, 0.0f32, "padded transposed input")?;
        for plane in 0..n * c {
            for row in 0..h {
                let src = (plane * h + row) * w;
                let dst = (plane * p + row) * q;
                out[dst..dst + w].copy_from_slice(&x[src..src + w]);
            }
        }
        Ok(out)
    }

    /// A tensor of the convolution's output shape cropped to X's shape.
    pub fn crop_to_x(&self, v: Vec<f32>) -> Vec<f32> {
        if !self.padded() {
            return v;
        }
        let [n, c, h, w] = self.x_shape;
        let (p, q) = (self.conv.p, self.conv.q);
        let mut out = Vec::new();
        for plane in 0..n * c {
            for row in 0..h {
                let src = (plane * p + row) * q;
                out.extend_from_slice(&v[src..src + w]);
            }
        }
        out
    }
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
    crate::problem::element_count(role, &arr)?;
    Ok(arr)
}

/// Which implementation runs a transposed op.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    /// The f64 CPU reference.
    Reference,
    /// The fast CPU path.
    Fast,
    /// The GPU kernels of `ctx`.
    Gpu(&'a GpuContext),
}

/// Y = conv_transpose2d(X, W) + bias.
pub fn forward(
    backend: Backend,
    pb: &TransposedProblem,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let addends = Addends {
        bias,
        residual: None,
    };
    forward_fused(backend, pb, x, w, addends, &Epilogue::default())
}

/// Y = act(α·conv_transpose2d(X, W) + b + β·z): the transposed forward (a convolution's input
/// gradient), then the epilogue over Y ([`epilogue::apply`] on the CPU paths; on the GPU its
/// own pass, in the same submission, before Y is read back).
pub fn forward_fused(
    backend: Backend,
    pb: &TransposedProblem,
    x: &[f32],
    w: &[f32],
    addends: Addends<'_>,
    epi: &Epilogue,
) -> Result<Vec<f32>> {
    epi.validate()?;
    let conv = &pb.conv;
    let y_shape = pb.y_shape();
    if let Some(b) = addends.bias {
        crate::problem::check_data_len(TensorRole::Bias, &[y_shape[1]], b.len())?;
    }
    if let Some(z) = addends.residual {
        crate::problem::check_data_len(TensorRole::Residual, &y_shape, z.len())?;
    }
    let dy = pb.pad_x(x)?;
    let mut y = match backend {
        Backend::Reference => reference::input_grad(conv, &dy, w)?,
        Backend::Fast => fast::input_grad(conv, &dy, w)?,
        Backend::Gpu(ctx) => return gpu_forward(ctx, pb, &dy, w, addends, epi),
    };
    epilogue::apply(epi, y_shape, &mut y, addends, None)?;
    Ok(y)
}

/// The GPU transposed forward: the input-gradient plan, then the epilogue's pass over Y in
/// place, one submission.
fn gpu_forward(
    ctx: &GpuContext,
    pb: &TransposedProblem,
    dy: &[f32],
    w: &[f32],
    addends: Addends<'_>,
    epi: &Epilogue,
) -> Result<Vec<f32>> {
    let conv = &pb.conv;
    let y_shape = pb.y_shape();
    let dyt = ctx.upload_as(TensorRole::Input, dy, &conv.y_shape())?;
    let wt = ctx.upload_as(TensorRole::Weight, w, &conv.w_shape())?;
    let bt = addends
        .bias
        .map(|b| ctx.upload_as(TensorRole::Bias, b, &[y_shape[1]]))
        .transpose()?;
    let zt = addends
        .residual
        .map(|z| ctx.upload_as(TensorRole::Residual, z, &y_shape))
        .transpose()?;
    let mut rec = ctx.recorder();
    let y = rec.input_grad(&dyt, &wt, &conv.x_shape(), conv.params)?;
    let plain = *epi == Epilogue::default() && bt.is_none() && zt.is_none();
    let y = if plain {
        y
    } else {
        rec.epilogue(&y, bt.as_ref(), zt.as_ref(), epi)?
    };
    rec.submit()?;
    ctx.read(&y)
}

/// dX of the transposed convolution from dY (N, C_out, H_out, W_out): a convolution forward.
pub fn input_grad(
    backend: Backend,
    pb: &TransposedProblem,
    dy: &[f32],
    w: &[f32],
) -> Result<Vec<f32>> {
    let conv = &pb.conv;
    let dx = match backend {
        Backend::Reference => reference::forward(conv, dy, w, None)?,
        Backend::Fast => fast::forward(conv, dy, w, None)?,
        Backend::Gpu(ctx) => {
            ctx.conv2d_forward(dy, &conv.x_shape(), w, &conv.w_shape(), None, conv.params)?
        }
    };
    Ok(pb.crop_to_x(dx))
}

/// dW (C_in, C_out/groups, R, S) of the transposed convolution from dY and X.
pub fn weight_grad(
    backend: Backend,
    pb: &TransposedProblem,
    dy: &[f32],
    x: &[f32],
) -> Result<Vec<f32>> {
    let conv = &pb.conv;
    let xp = pb.pad_x(x)?;
    match backend {
        Backend::Reference => reference::weight_grad(conv, &xp, dy),
        Backend::Fast => fast::weight_grad(conv, &xp, dy),
        Backend::Gpu(ctx) => ctx.conv2d_weight_grad(
            &xp,
            &conv.y_shape(),
            dy,
            &conv.x_shape(),
            &conv.w_shape(),
            conv.params,
        ),
    }
}
