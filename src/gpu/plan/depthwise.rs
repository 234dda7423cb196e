//! The direct depthwise kernels (`depthwise.wgsl`, `depthwise_weight_grad.wgsl`): every pass of a
//! depthwise problem (one input channel per group) whose kernel is small enough to unroll.
//! PERFORMANCE.md, [#gpu-depthwise].

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, WindowSpec};
use crate::gpu::plan::profile::reduce_spec;
use crate::gpu::plan::{
    dispatch, f32_bytes, mul, u32_of, BufferRef, OpPlan, Operand, Path, Planner, ScratchBuffer,
};
use crate::gpu::uniform::{DepthwiseUniform, ReduceUniform, UniformValue};
use crate::problem::{ConvProblem, Op};

/// Largest kernel (R·S taps) the direct depthwise kernels unroll; bigger ones take the GEMM path.
const MAX_TAPS: usize = 49;
/// Input values one invocation keeps in registers: blocks shrink until the window fits.
const MAX_WINDOW: u64 = 64;
/// Windows above this (large dilations even at one output per invocation) take the GEMM path.
const WINDOW_LIMIT: u64 = 256;
/// Weight gradient: partial sums per channel (added by reduce_splits).
pub(crate) const SPLITS: usize = 32;

/// The direct-kernel block for a depthwise pass producing `out` planes at `stride`, or `None`
/// when the problem is not depthwise or its kernel is too large to unroll.
pub(crate) fn window(
    planner: &Planner,
    problem: &ConvProblem,
    out: [usize; 2],
    stride: [usize; 2],
) -> Option<WindowSpec> {
    if !problem.is_depthwise() || problem.r * problem.s > MAX_TAPS {
        return None;
    }
    let [dh, dw] = problem.params.dilation;
    let small = |v: usize| u32::try_from(v).ok();
    let mut spec = WindowSpec {
        rows: small(out[0].clamp(1, 4))?,
        cols: small(out[1].clamp(1, 4))?,
        kernel: [small(problem.r)?, small(problem.s)?],
        stride: [small(stride[0])?, small(stride[1])?],
        dilation: [small(dh)?, small(dw)?],
        upsample: [1, 1],
        lanes: planner.profile.depthwise_lanes,
    };
    let area = |w: WindowSpec| w.window().iter().map(|&v| u64::from(v)).product::<u64>();
    while area(spec) > MAX_WINDOW && (spec.rows > 1 || spec.cols > 1) {
        if spec.rows >= spec.cols {
            spec.rows /= 2;
        } else {
            spec.cols /= 2;
        }
    }
    (area(spec) <= WINDOW_LIMIT).then_some(spec)
}

fn u(what: &str, v: usize) -> Result<u32> {
    u32_of(what, v)
}

fn offset(what: &str, v: i128) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: v.unsigned_abs(),
        limit: i32::MAX as u128,
    })
}

/// The depthwise uniform's geometry for the forward direction (X → Y), shared by the forward
/// pass and the weight gradient; dispatch fields are left zero.
fn forward_geometry(problem: &ConvProblem) -> Result<DepthwiseUniform> {
    let [pad_top, pad_left, _, _] = problem.params.padding;
    Ok(DepthwiseUniform {
        n: u("batch", problem.n)?,
        in_c: u("channels", problem.c)?,
        out_c: u("channels", problem.k)?,
        terms: 1,
        in_h: u("height", problem.h)?,
        in_w: u("width", problem.w)?,
        out_h: u("height", problem.p)?,
        out_w: u("width", problem.q)?,
        off_h: offset("padding", -(pad_top as i128))?,
        off_w: offset("padding", -(pad_left as i128))?,
        flip: 0,
        chan_div: u("channels", problem.k_per_group())?,
        chan_mult: 1,
        ..Default::default()
    })
}

/// Fills in the grid of a forward-shaped depthwise dispatch: workgroups over (image, output
/// channel, chunk of blocks).
fn with_grid(mut uniform: DepthwiseUniform, spec: WindowSpec) -> Result<(DepthwiseUniform, usize)> {
    let blocks_h = (uniform.out_h as usize).div_ceil(spec.rows as usize);
    let blocks_w = (uniform.out_w as usize).div_ceil(spec.cols as usize);
    let chunks = mul("depthwise blocks", blocks_h, blocks_w)?.div_ceil(spec.lanes as usize);
    let planes = mul(
        "depthwise planes",
        uniform.n as usize,
        uniform.out_c as usize,
    )?;
    let workgroups = mul("depthwise workgroups", planes, chunks)?;
    uniform.blocks_h = u("depthwise blocks", blocks_h)?;
    uniform.blocks_w = u("depthwise blocks", blocks_w)?;
    uniform.chunks = u("depthwise workgroups per plane", chunks)?;
    uniform.tiles_total = u("depthwise workgroups", workgroups)?;
    Ok((uniform, workgroups))
}

fn one_dispatch(
    planner: &Planner,
    op: Op,
    problem: &ConvProblem,
    spec: WindowSpec,
    uniform: DepthwiseUniform,
    src: Operand,
    bias: bool,
) -> Result<OpPlan> {
    let (uniform, workgroups) = with_grid(uniform, spec)?;
    let bias_buf = if bias {
        BufferRef::Operand(Operand::Bias)
    } else {
        BufferRef::Zeros
    };
    let step = dispatch(
        planner,
        Kernel::Depthwise,
        spec,
        UniformValue::Depthwise(uniform),
        &[
            ("src", BufferRef::Operand(src)),
            ("wt", BufferRef::Operand(Operand::W)),
            ("bias", bias_buf),
            ("dst", BufferRef::Output),
            ("residual", BufferRef::Zeros),
            ("pre", BufferRef::Output),
        ],
        workgroups,
    )?;
    let (shape, what) = match op {
        Op::Forward => (problem.y_shape().to_vec(), "output y"),
        _ => (problem.x_shape().to_vec(), "input gradient dx"),
    };
    Ok(super::single(
        Path::Depthwise(spec),
        super::inputs(op, problem, bias),
        shape,
        what,
        vec![step],
    ))
}

/// The direct depthwise forward, or `None` when the problem does not qualify.
pub(crate) fn forward(
    planner: &Planner,
    problem: &ConvProblem,
    bias: bool,
) -> Result<Option<OpPlan>> {
    let Some(spec) = window(
        planner,
        problem,
        [problem.p, problem.q],
        problem.params.stride,
    ) else {
        return Ok(None);
    };
    let uniform = DepthwiseUniform {
        has_bias: u32::from(bias),
        ..forward_geometry(problem)?
    };
    one_dispatch(
        planner,
        Op::Forward,
        problem,
        spec,
        uniform,
        Operand::X,
        bias,
    )
    .map(Some)
}

/// The direct depthwise input gradient, or `None`: dX is a correlation of dY with the flipped
/// taps, dY read as upsampled by the stride with zeros in the stride holes (so a strided layer
/// does R·S multiply-adds per dX element, stride² times the useful ones, but in one direct
/// pass instead of a GEMM per stride phase with one output channel per group; PERFORMANCE.md,
/// [#gpu-depthwise]).
pub(crate) fn input_grad(planner: &Planner, problem: &ConvProblem) -> Result<Option<OpPlan>> {
    let Some(mut spec) = window(planner, problem, [problem.h, problem.w], [1, 1]) else {
        return Ok(None);
    };
    let [sh, sw] = problem.params.stride;
    spec.upsample = [u("stride", sh)?, u("stride", sw)?];
    let [pad_top, pad_left, _, _] = problem.params.padding;
    let [dh, dw] = problem.params.dilation;
    let reach = |pad: usize, taps: usize, dil: usize| pad as i128 - ((taps - 1) * dil) as i128;
    let kg = problem.k_per_group();
    let uniform = DepthwiseUniform {
        n: u("batch", problem.n)?,
        in_c: u("channels", problem.k)?,
        out_c: u("channels", problem.c)?,
        terms: u("channels", kg)?,
        in_h: u("height", problem.p)?,
        in_w: u("width", problem.q)?,
        out_h: u("height", problem.h)?,
        out_w: u("width", problem.w)?,
        off_h: offset("input-gradient offset", reach(pad_top, problem.r, dh))?,
        off_w: offset("input-gradient offset", reach(pad_left, problem.s, dw))?,
        flip: 1,
        chan_div: 1,
        chan_mult: u("channels", kg)?,
        ..Default::default()
    };
    one_dispatch(
        planner,
        Op::InputGrad,
        problem,
        spec,
        uniform,
        Operand::Dy,
        false,
    )
    .map(Some)
}

/// The direct depthwise weight gradient, `SPLITS` partial sums per channel added by
/// reduce_splits in a fixed order, or `None`.
pub(crate) fn weight_grad(planner: &Planner, problem: &ConvProblem) -> Result<Option<OpPlan>> {
    let Some(spec) = window(
        planner,
        problem,
        [problem.p, problem.q],
        problem.params.stride,
    ) else {
        return Ok(None);
    };
    let blocks_h = problem.p.div_ceil(spec.rows as usize);
    let blocks_w = problem.q.div_ceil(spec.cols as usize);
    let blocks = mul("depthwise blocks", blocks_h, blocks_w)?;
    // The partial sums (splits × dW) must fit one binding.
    let most = usize::try_from(
        planner.limits.max_storage_buffer_binding_size
            / f32_bytes("weight count", problem.w_len())?.max(4),
    )
    .unwrap_or(usize::MAX)
    .clamp(1, SPLITS);
    let splits = mul("depthwise blocks", problem.n, blocks)?.clamp(1, most);
    let chunks = splits.div_ceil(spec.lanes as usize);
    let workgroups = mul("depthwise workgroups", problem.k, chunks)?;
    let out_len = problem.w_len();
    let uniform = DepthwiseUniform {
        blocks_h: u("depthwise blocks", blocks_h)?,
        blocks_w: u("depthwise blocks", blocks_w)?,
        chunks: u("depthwise workgroups per channel", chunks)?,
        tiles_total: u("depthwise workgroups", workgroups)?,
        splits: u("splits", splits)?,
        out_len: u("weight count", out_len)?,
        ..forward_geometry(problem)?
    };
    let partial_len = mul("depthwise partial sums", out_len, splits)?;
    let reduce = reduce_spec();
    let steps = vec![
        dispatch(
            planner,
            Kernel::DepthwiseWeightGrad,
            spec,
            UniformValue::Depthwise(uniform),
            &[
                ("dy", BufferRef::Operand(Operand::Dy)),
                ("x", BufferRef::Operand(Operand::X)),
                ("partial", BufferRef::Scratch(0)),
            ],
            workgroups,
        )?,
        dispatch(
            planner,
            Kernel::ReduceSplits,
            reduce,
            UniformValue::Reduce(ReduceUniform {
                splits: u("splits", splits)?,
                out_len: u("weight count", out_len)?,
                accumulate: 0,
                out_offset: 0,
            }),
            &[
                ("partial", BufferRef::Scratch(0)),
                ("out", BufferRef::Output),
            ],
            out_len.div_ceil(reduce.lanes as usize),
        )?,
    ];
    Ok(Some(OpPlan {
        inputs: super::inputs(Op::WeightGrad, problem, false),
        path: Path::DepthwiseWeightGrad {
            window: spec,
            splits,
        },
        output_shape: problem.w_shape().to_vec(),
        output_what: "weight gradient dw",
        scratch: vec![ScratchBuffer {
            what: "depthwise partial sums",
            bytes: f32_bytes("depthwise partial sums", partial_len)?,
        }],
        steps,
    }))
}
