//! The plain GEMM on vec4 pixel quads (`pointwise.wgsl`): the forward and input gradient of
//! 1×1 stride-1 unpadded problems whose planes hold whole quads, and the column GEMM of the
//! few-channel input gradient (followed by `col2im.wgsl`).

use crate::error::Result;
use crate::gpu::kernels::{Kernel, TileSpec};
use crate::gpu::plan::profile::{gemm_tile, reduce_spec};
use crate::gpu::plan::{
    dispatch, f32_bytes, mul, u32_of, BufferRef, OpPlan, Operand, Path, Planner, ScratchBuffer,
    Step,
};
use crate::gpu::uniform::{ConvUniform, PointwiseUniform, UniformValue};
use crate::problem::{ConvProblem, Op};

/// One pointwise-kernel GEMM per group: dst\[n, g·out_g + u, pix\] = Σ_t A(g, u, t)·src\[n,
/// g·red_g + t, pix\], A(g, u, t) = W\[g·out_g·red_g + u·stride_out + t·stride_red\].
struct PlainGemm {
    src_c: usize,
    dst_c: usize,
    red_g: usize,
    out_g: usize,
    stride_out: usize,
    stride_red: usize,
}

/// The dispatch of `gemm` over `n` images of `plane` pixels (whole vec4 quads), reading `src`
/// and writing `dst`, and its tile; `None` when the plane is not whole quads.
#[allow(clippy::too_many_arguments)]
fn plain_gemm(
    planner: &Planner,
    n: usize,
    groups: usize,
    plane: usize,
    gemm: PlainGemm,
    src: BufferRef,
    dst: BufferRef,
    bias: BufferRef,
) -> Result<Option<(Step, TileSpec)>> {
    if !plane.is_multiple_of(4) {
        return Ok(None);
    }
    let quads = plane / 4;
    let rows = mul("pointwise rows", n, quads)?;
    let profile = &planner.profile;
    let spec = gemm_tile(
        &planner.overrides,
        profile.pointwise,
        profile.min_lanes,
        rows,
        gemm.out_g,
        groups,
    );
    let tiles_m = rows.div_ceil(spec.lane_items_per_workgroup() as usize);
    let tiles_n = gemm.out_g.div_ceil(spec.uniform_tile as usize);
    let workgroups = mul(
        "pointwise workgroups",
        mul("pointwise workgroups", tiles_m, tiles_n)?,
        groups,
    )?;
    let uniform = PointwiseUniform {
        quads: u32_of("pointwise quads", quads)?,
        src_c: u32_of("channels", gemm.src_c)?,
        dst_c: u32_of("channels", gemm.dst_c)?,
        red_g: u32_of("channels", gemm.red_g)?,
        out_g: u32_of("channels", gemm.out_g)?,
        a_stride_out: u32_of("weight stride", gemm.stride_out)?,
        a_stride_red: u32_of("weight stride", gemm.stride_red)?,
        has_bias: u32::from(bias == BufferRef::Operand(Operand::Bias)),
        rows: u32_of("pointwise rows", rows)?,
        tiles_m: u32_of("pointwise tiles", tiles_m)?,
        tiles_n: u32_of("pointwise tiles", tiles_n)?,
        tiles_total: u32_of("pointwise workgroups", workgroups)?,
        ..Default::default()
    };
    let step = dispatch(
        planner,
        Kernel::Pointwise,
        spec,
        UniformValue::Pointwise(uniform),
        &[
            ("src", src),
            ("wt", BufferRef::Operand(Operand::W)),
            ("bias", bias),
            ("dst", dst),
            ("residual", BufferRef::Zeros),
            ("pre", dst),
        ],
        workgroups,
    )?;
    Ok(Some((step, spec)))
}

/// The 1×1 stride-1 forward on quads, or `None`.
pub(crate) fn forward(
    planner: &Planner,
    problem: &ConvProblem,
    bias: bool,
) -> Result<Option<OpPlan>> {
    if !problem.is_pointwise() {
        return Ok(None);
    }
    let (cg, kg) = (problem.c_per_group(), problem.k_per_group());
    let gemm = PlainGemm {
        src_c: problem.c,
        dst_c: problem.k,
        red_g: cg,
        out_g: kg,
        stride_out: cg,
        stride_red: 1,
    };
    let bias_buf = if bias {
        BufferRef::Operand(Operand::Bias)
    } else {
        BufferRef::Zeros
    };
    let plane = problem.h * problem.w;
    let made = plain_gemm(
        planner,
        problem.n,
        problem.params.groups,
        plane,
        gemm,
        BufferRef::Operand(Operand::X),
        BufferRef::Output,
        bias_buf,
    )?;
    Ok(made.map(|(step, spec)| {
        super::single(
            Path::Pointwise(spec),
            super::inputs(Op::Forward, problem, bias),
            problem.y_shape().to_vec(),
            "output y",
            vec![step],
        )
    }))
}

/// The 1×1 stride-1 input gradient on quads (the weight read transposed), or `None`.
pub(crate) fn input_grad(planner: &Planner, problem: &ConvProblem) -> Result<Option<OpPlan>> {
    if !problem.is_pointwise() {
        return Ok(None);
    }
    let (cg, kg) = (problem.c_per_group(), problem.k_per_group());
    let gemm = PlainGemm {
        src_c: problem.k,
        dst_c: problem.c,
        red_g: kg,
        out_g: cg,
        stride_out: 1,
        stride_red: cg,
    };
    let made = plain_gemm(
        planner,
        problem.n,
        problem.params.groups,
        problem.h * problem.w,
        gemm,
        BufferRef::Operand(Operand::Dy),
        BufferRef::Output,
        BufferRef::Zeros,
    )?;
    Ok(made.map(|(step, spec)| {
        super::single(
            Path::Pointwise(spec),
            super::inputs(Op::InputGrad, problem, false),
            problem.x_shape().to_vec(),
            "input gradient dx",
            vec![step],
        )
    }))
}

/// Groups with fewer input channels than this run the input gradient as a column GEMM plus
/// col2im: the implicit GEMM's uniform tile would hold only C/g channels, one gathered dY value
/// feeding that few FMAs. PERFORMANCE.md, [#column-input-grad].
const COLUMN_BELOW_CHANNELS: usize = 8;
/// One image's column buffer (C·R·S·P·Q floats) stays under 256 MiB and the device's storage
/// binding limit, else the implicit GEMM runs; a batch whose columns exceed the binding runs in
/// batch chunks (`plan::tiling`).
const COLUMN_MAX_BYTES: u64 = 256 << 20;

/// The column GEMM of the input gradient for few-channel groups: col\[n, g·crs + (c, r, s), p, q\]
/// = Σ_k W\[g·kg + k, c, r, s\]·dY\[n, g·kg + k, p, q\] on the pointwise kernel (W read as a
/// kg × crs matrix per group); col2im.wgsl then sums it into dX. `None` when the problem does
/// not qualify ([`Overrides::column_input_grad`](crate::gpu::Overrides) forces it on or off
/// for every dense problem).
pub(crate) fn column_input_grad(
    planner: &Planner,
    problem: &ConvProblem,
) -> Result<Option<OpPlan>> {
    let wanted = planner
        .overrides
        .column_input_grad
        .unwrap_or(problem.c_per_group() < COLUMN_BELOW_CHANNELS);
    if problem.is_pointwise() || problem.is_depthwise() || !wanted {
        return Ok(None);
    }
    let pq = problem.p * problem.q;
    let crs = problem.c_per_group() * problem.r * problem.s;
    let col_channels = mul("column channels", problem.params.groups, crs)?;
    let col_len = mul(
        "input-gradient columns",
        mul("input-gradient columns", problem.n, col_channels)?,
        pq,
    )?;
    let col_bytes = f32_bytes("input-gradient columns", col_len)?;
    let image_bytes = f32_bytes("input-gradient columns", mul("columns", col_channels, pq)?)?;
    if image_bytes > COLUMN_MAX_BYTES.min(planner.limits.max_storage_buffer_binding_size) {
        return Ok(None);
    }
    let gemm = PlainGemm {
        src_c: problem.k,
        dst_c: col_channels,
        red_g: problem.k_per_group(),
        out_g: crs,
        stride_out: 1,
        stride_red: crs,
    };
    let Some((gemm_step, spec)) = plain_gemm(
        planner,
        problem.n,
        problem.params.groups,
        pq,
        gemm,
        BufferRef::Operand(Operand::Dy),
        BufferRef::Scratch(0),
        BufferRef::Zeros,
    )?
    else {
        return Ok(None);
    };
    let x_len = problem.x_len();
    let reduce = reduce_spec();
    let col2im = dispatch(
        planner,
        Kernel::Col2im,
        reduce,
        UniformValue::Conv(ConvUniform {
            out_len: u32_of("input-gradient elements", x_len)?,
            ..ConvUniform::from_problem(problem)
        }),
        &[("col", BufferRef::Scratch(0)), ("dx", BufferRef::Output)],
        x_len.div_ceil(reduce.lanes as usize),
    )?;
    Ok(Some(OpPlan {
        inputs: super::inputs(Op::InputGrad, problem, false),
        path: Path::Column(spec),
        output_shape: problem.x_shape().to_vec(),
        output_what: "input gradient dx",
        scratch: vec![ScratchBuffer {
            what: "input-gradient columns",
            bytes: col_bytes,
        }],
        steps: vec![gemm_step, col2im],
    }))
}
