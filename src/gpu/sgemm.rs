//! A plain WGSL SGEMM on the conv kernels' register core: the ceiling the implicit-GEMM kernels
//! are measured against on an adapter (`gpuconv sgemm`, PERFORMANCE.md [#sgemm-ceiling]).

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, TileSpec};
use crate::gpu::plan::{dispatch, mul, u32_of, BufferRef, OpPlan, Operand, Path};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::uniform::{SgemmUniform, UniformValue};
use crate::gpu::GpuContext;

/// Tiles `gpuconv sgemm` times by default; the best is the adapter's ceiling. The 8-lane tiles
/// are lavapipe's shape for the conv kernels (one 256-bit vector per workgroup), the wider ones
/// hardware GPUs'.
pub const SGEMM_TILES: [TileSpec; 7] = [
    TileSpec {
        lane_tile: 16,
        uniform_tile: 32,
        lanes: 8,
    },
    TileSpec {
        lane_tile: 8,
        uniform_tile: 32,
        lanes: 8,
    },
    TileSpec {
        lane_tile: 8,
        uniform_tile: 16,
        lanes: 8,
    },
    TileSpec {
        lane_tile: 8,
        uniform_tile: 16,
        lanes: 32,
    },
    TileSpec {
        lane_tile: 8,
        uniform_tile: 8,
        lanes: 32,
    },
    TileSpec {
        lane_tile: 4,
        uniform_tile: 16,
        lanes: 32,
    },
    TileSpec {
        lane_tile: 4,
        uniform_tile: 8,
        lanes: 64,
    },
];

impl GpuContext {
    /// C = A·B for row-major `a` (M, K) and `b` (K, N) with N a multiple of 4, at tile `spec`
    /// (`lane_tile` counts vec4 column quads); recorded and submitted.
    pub fn sgemm(&self, a: &GpuTensor, b: &GpuTensor, spec: TileSpec) -> Result<GpuTensor> {
        let bad = || Error::SgemmShape {
            a: a.shape().to_vec(),
            b: b.shape().to_vec(),
        };
        let (&[m, k], &[k2, n]) = (a.shape(), b.shape()) else {
            return Err(bad());
        };
        if k != k2 || !n.is_multiple_of(4) || m == 0 || n == 0 || k == 0 {
            return Err(bad());
        }
        let tiles_m = (n / 4).div_ceil(spec.lane_items_per_workgroup() as usize);
        let tiles_n = m.div_ceil(spec.uniform_tile as usize);
        let workgroups = mul("sgemm workgroups", tiles_m, tiles_n)?;
        let uniform = SgemmUniform {
            m: u32_of("sgemm M", m)?,
            n: u32_of("sgemm N", n)?,
            k: u32_of("sgemm K", k)?,
            tiles_m: u32_of("sgemm tiles", tiles_m)?,
            tiles_n: u32_of("sgemm tiles", tiles_n)?,
            tiles_total: u32_of("sgemm workgroups", workgroups)?,
        };
        let step = dispatch(
            &self.planner,
            Kernel::Sgemm,
            spec,
            UniformValue::Sgemm(uniform),
            &[
                ("a", BufferRef::Operand(Operand::A)),
                ("b", BufferRef::Operand(Operand::B)),
                ("c", BufferRef::Output),
            ],
            workgroups,
        )?;
        let plan = OpPlan {
            path: Path::Sgemm(spec),
            inputs: vec![(Operand::A, vec![m, k]), (Operand::B, vec![k, n])],
            output_shape: vec![m, n],
            output_what: "sgemm C",
            scratch: Vec::new(),
            steps: vec![step],
        };
        plan.check(self.limits())?;
        let mut rec = self.recorder();
        let c = rec.record(&plan, &[(Operand::A, a), (Operand::B, b)])?;
        rec.submit()?;
        Ok(c)
    }
}
