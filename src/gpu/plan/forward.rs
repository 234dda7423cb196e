//! The forward pass: Y = conv(X, W) (+ b).
//!
//! In order of preference: the direct depthwise kernel, the workgroup-memory core (hardware
//! GPUs), the vec4 pointwise GEMM (1×1 stride-1), and the implicit GEMM on the register core.

use crate::error::Result;
use crate::gpu::kernels::{BlockSpec, Kernel, Spec};
use crate::gpu::plan::profile::{block_passes, block_tile, gemm_tile};
use crate::gpu::plan::{
    depthwise, dispatch, mul, pointwise, single, u32_of, BufferRef, OpPlan, Operand, Path, Planner,
};
use crate::gpu::uniform::{ConvUniform, UniformValue};
use crate::problem::{ConvProblem, Op};

/// The forward pass's block tile, or `None` for the other kernels.
pub(crate) fn block(planner: &Planner, problem: &ConvProblem) -> Option<BlockSpec> {
    block_tile(
        planner,
        block_passes(&planner.profile, &planner.overrides).forward,
        problem.n * problem.p * problem.q,
        problem.k_per_group(),
        problem.c_per_group() * problem.r * problem.s,
        problem.params.groups,
        true,
    )
}

/// The plan of the forward pass.
pub(crate) fn plan(planner: &Planner, problem: &ConvProblem, bias: bool) -> Result<OpPlan> {
    if let Some(plan) = depthwise::forward(planner, problem, bias)? {
        return Ok(plan);
    }
    let block = block(planner, problem);
    if block.is_none() {
        if let Some(plan) = pointwise::forward(planner, problem, bias)? {
            return Ok(plan);
        }
    }
    let rows = problem.n * problem.p * problem.q;
    let (kernel, spec, path, [row_tile, col_tile]) = match block {
        Some(b) => (
            Kernel::BlockForward,
            Spec::from(b),
            Path::Block {
                block: b,
                phases: 1,
            },
            b.workgroup_items(),
        ),
        None => {
            let profile = &planner.profile;
            let tile = gemm_tile(
                &planner.overrides,
                profile.gemm,
                profile.min_lanes,
                rows,
                problem.k_per_group(),
                problem.params.groups,
            );
            (
                Kernel::Forward,
                Spec::from(tile),
                Path::ImplicitGemm { tile, phases: 1 },
                tile.workgroup_items(),
            )
        }
    };
    let tiles_m = rows.div_ceil(row_tile);
    let tiles_n = problem.k_per_group().div_ceil(col_tile);
    let workgroups = mul(
        "forward workgroups",
        mul("forward workgroups", tiles_m, tiles_n)?,
        problem.params.groups,
    )?;
    let uniform = ConvUniform {
        has_bias: u32::from(bias),
        rows: u32_of("forward rows N·P·Q", rows)?,
        cols: u32_of("forward columns", problem.k_per_group())?,
        tiles_m: u32_of("forward tiles", tiles_m)?,
        tiles_n: u32_of("forward tiles", tiles_n)?,
        tiles_total: u32_of("forward workgroups", workgroups)?,
        ..ConvUniform::from_problem(problem)
    };
    let bias_buf = if bias {
        BufferRef::Operand(Operand::Bias)
    } else {
        BufferRef::Zeros
    };
    let step = dispatch(
        planner,
        kernel,
        spec,
        UniformValue::Conv(uniform),
        &[
            ("x", BufferRef::Operand(Operand::X)),
            ("wt", BufferRef::Operand(Operand::W)),
            ("bias", bias_buf),
            ("y", BufferRef::Output),
            ("residual", BufferRef::Zeros),
            ("pre", BufferRef::Output),
        ],
        workgroups,
    )?;
    Ok(single(
        path,
        super::inputs(Op::Forward, problem, bias),
        problem.y_shape().to_vec(),
        "output y",
        vec![step],
    ))
}
