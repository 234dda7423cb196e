//! The bias gradient: db\[k\] = Σ_{n,p,q} dY\[n,k,p,q\], one workgroup tree per channel (the
//! order never changes, so results repeat bit for bit).

use crate::error::Result;
use crate::gpu::kernels::{Kernel, TileSpec};
use crate::gpu::plan::{dispatch, mul, single, u32_of, BufferRef, OpPlan, Operand, Path, Planner};
use crate::gpu::uniform::{BiasGradUniform, UniformValue};

/// The bias gradient's fixed workgroup: 256 invocations (`WG` in bias_grad.wgsl).
pub(crate) const BIAS_GRAD_SPEC: TileSpec = TileSpec {
    lane_tile: 1,
    uniform_tile: 1,
    lanes: 256,
};

/// The plan of the bias gradient of dY with shape `[n, k, p, q]` (validated by the caller).
pub(crate) fn plan(planner: &Planner, [n, k, p, q]: [usize; 4]) -> Result<OpPlan> {
    let uniform = BiasGradUniform {
        n: u32_of("batch", n)?,
        k: u32_of("channels", k)?,
        plane: u32_of("plane P·Q", mul("plane P·Q", p, q)?)?,
    };
    let step = dispatch(
        planner,
        Kernel::BiasGrad,
        BIAS_GRAD_SPEC,
        UniformValue::BiasGrad(uniform),
        &[
            ("dy", BufferRef::Operand(Operand::Dy)),
            ("db", BufferRef::Output),
        ],
        k,
    )?;
    Ok(single(
        Path::BiasGradTree,
        vec![(Operand::Dy, vec![n, k, p, q])],
        vec![k],
        "bias gradient db",
        vec![step],
    ))
}
