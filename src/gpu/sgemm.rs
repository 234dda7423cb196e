//! A plain WGSL SGEMM with the conv kernels' register tile: the ceiling the implicit-GEMM kernels
//! are measured against on an adapter (`gpuconv sgemm`, benches/NOTES.md).

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, TileSpec};
use crate::gpu::plan::u32_of;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::uniform::ConvUniform;
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
    /// (`lane_tile` counts vec4 column quads).
    pub fn sgemm(&self, a: &GpuTensor, b: &GpuTensor, spec: TileSpec) -> Result<GpuTensor> {
        a.check_context(self)?;
        b.check_context(self)?;
        let (&[m, k], &[k2, n]) = (a.shape(), b.shape()) else {
            return Err(Error::Invalid(format!(
                "sgemm needs 2D matrices, got {:?} and {:?}",
                a.shape(),
                b.shape()
            )));
        };
        if k != k2 || !n.is_multiple_of(4) {
            return Err(Error::Invalid(format!(
                "sgemm needs A (M, K) and B (K, N) with N a multiple of 4, got {:?} and {:?}",
                a.shape(),
                b.shape()
            )));
        }
        let tiles_m = (n / 4).div_ceil(spec.lane_items_per_workgroup() as usize);
        let tiles_n = m.div_ceil(spec.uniform_tile as usize);
        let total = tiles_m * tiles_n;
        let uniform = ConvUniform {
            rows: u32_of("sgemm M", m)?,
            cols: u32_of("sgemm N", n)?,
            red_len: u32_of("sgemm K", k)?,
            tiles_m: u32_of("sgemm tiles", tiles_m)?,
            tiles_n: u32_of("sgemm tiles", tiles_n)?,
            tiles_total: u32_of("sgemm workgroups", total)?,
            ..Default::default()
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        let c = self.storage_buffer("sgemm C", m * n)?;
        self.submit(|enc| {
            self.dispatch(
                enc,
                Kernel::Sgemm,
                spec,
                &[&uniform_buf, &a.buffer, &b.buffer, &c],
                total,
            )
        })?;
        Ok(GpuTensor::new(self, c, vec![m, n]))
    }
}
