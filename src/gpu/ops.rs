//! The four conv ops on GPU tensors, plus slice-in/Vec-out conveniences.
//!
//! Every op validates through [`ConvProblem`], records its dispatches into one command encoder and
//! submits it; nothing waits for the GPU until a result is read back, so chains of ops stay on the
//! device.

use crate::error::{Error, Result, TensorRole};
use crate::gpu::kernels::{Kernel, TileSpec};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::uniform::ConvUniform;
use crate::gpu::GpuContext;
use crate::problem::{check_output_grad_shape, ConvParams, ConvProblem, Op};

/// The implicit-GEMM tile used by the forward, input-gradient and weight-gradient kernels.
pub const DEFAULT_TILE: TileSpec = TileSpec {
    tm: 4,
    tn: 4,
    wg_x: 16,
    wg_y: 4,
};

/// Split-K aims for at least this many workgroups in the weight gradient...
const SPLIT_K_TARGET_WORKGROUPS: usize = 128;
/// ...but never splits the reduction into chunks shorter than this.
const SPLIT_K_MIN_CHUNK: usize = 256;

/// How the weight gradient's reduction over N·P·Q is split across workgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitK {
    /// Number of partial sums.
    pub splits: usize,
    /// Reduction indices per split (the last may be shorter).
    pub split_len: usize,
}

impl SplitK {
    /// The split for a reduction of `red_len` over a grid of `tiles` workgroups.
    pub fn choose(red_len: usize, tiles: usize) -> SplitK {
        let wanted = SPLIT_K_TARGET_WORKGROUPS.div_ceil(tiles.max(1));
        let most = red_len.div_ceil(SPLIT_K_MIN_CHUNK).max(1);
        SplitK::with_splits(red_len, wanted.clamp(1, most))
    }

    /// Exactly `splits` chunks of equal length (the last shorter), none empty.
    pub fn with_splits(red_len: usize, splits: usize) -> SplitK {
        let split_len = red_len.div_ceil(splits.clamp(1, red_len.max(1)));
        SplitK {
            splits: red_len.div_ceil(split_len),
            split_len,
        }
    }
}

fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: v as u128,
        limit: u32::MAX as u128,
    })
}

impl GpuContext {
    /// Folds `total` workgroups into a (x, y, z) grid within the per-dimension limit; kernels
    /// recover the linear index and skip the excess.
    fn grid(&self, total: usize) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as usize;
        let x = total.clamp(1, max);
        let y = total.div_ceil(x).clamp(1, max);
        let z = total.div_ceil(x * y).max(1);
        if z > max {
            return Err(Error::TooLarge {
                what: "workgroup count of one dispatch".into(),
                value: total as u128,
                limit: (max as u128).pow(3),
            });
        }
        Ok([x as u32, y as u32, z as u32])
    }

    /// Records one dispatch of `kernel` over `workgroups` workgroups with `buffers` bound in order.
    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: Kernel,
        spec: TileSpec,
        buffers: &[&wgpu::Buffer],
        workgroups: usize,
    ) -> Result<()> {
        let pipeline = self.pipeline(kernel, spec)?;
        let [gx, gy, gz] = self.grid(workgroups)?;
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.file_name()),
            layout: &layout,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel.file_name()),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(gx, gy, gz);
        Ok(())
    }

    fn submit(&self, record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>) -> Result<()> {
        self.scoped(|| -> Result<()> {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("gpuconv op"),
                });
            record(&mut encoder)?;
            self.queue.submit([encoder.finish()]);
            Ok(())
        })?
    }

    fn check_tensor(&self, t: &GpuTensor, problem: &ConvProblem, role: TensorRole) -> Result<()> {
        t.check_context(self)?;
        problem.check_shape(role, t.shape())
    }

    /// Y = conv(X, W) (+ b). `x` is (N, C, H, W), `w` (K, C/groups, R, S), `bias` (K,).
    pub fn forward(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let problem = ConvProblem::new(x.shape(), w.shape(), params)?;
        x.check_context(self)?;
        w.check_context(self)?;
        if let Some(b) = bias {
            self.check_tensor(b, &problem, TensorRole::Bias)?;
        }
        let spec = DEFAULT_TILE;
        let rows = problem.n * problem.p * problem.q;
        let tiles_m = rows.div_ceil(spec.rows_per_workgroup() as usize);
        let tiles_n = problem
            .k_per_group()
            .div_ceil(spec.cols_per_workgroup() as usize);
        let total = tiles_m * tiles_n * problem.params.groups;
        let uniform = ConvUniform {
            has_bias: bias.is_some() as u32,
            rows: u32_of("forward rows N·P·Q", rows)?,
            tiles_m: u32_of("forward tiles", tiles_m)?,
            tiles_n: u32_of("forward tiles", tiles_n)?,
            tiles_total: u32_of("forward workgroups", total)?,
            ..ConvUniform::from_problem(&problem)
        };
        let y = self.storage_buffer("output y", problem.y_len())?;
        let uniform_buf = self.uniform_buffer(&uniform);
        // The bias binding always needs a buffer; without a bias the kernel never reads it.
        let dummy;
        let bias_buf = match bias {
            Some(b) => &b.buffer,
            None => {
                dummy = self.storage_buffer_from("no bias", &[0.0])?;
                &dummy
            }
        };
        self.submit(|enc| {
            self.dispatch(
                enc,
                Kernel::Forward,
                spec,
                &[&uniform_buf, &x.buffer, &w.buffer, bias_buf, &y],
                total,
            )
        })?;
        Ok(GpuTensor::new(self, y, problem.y_shape().to_vec()))
    }

    /// dX from dY and W. `x_shape` is the forward input's (N, C, H, W).
    pub fn input_grad(
        &self,
        dy: &GpuTensor,
        w: &GpuTensor,
        x_shape: &[usize],
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let problem = ConvProblem::with_output_grad(x_shape, w.shape(), dy.shape(), params)?;
        dy.check_context(self)?;
        w.check_context(self)?;
        let spec = DEFAULT_TILE;
        let dx = self.storage_buffer("input gradient dx", problem.x_len())?;
        let [sh, sw] = problem.params.stride;
        let mut uniforms = Vec::new();
        // One dense GEMM per stride phase (h mod sh, w mod sw).
        for phase_h in 0..sh.min(problem.h) {
            for phase_w in 0..sw.min(problem.w) {
                let rows_h = (problem.h - phase_h).div_ceil(sh);
                let rows_w = (problem.w - phase_w).div_ceil(sw);
                let rows = problem.n * rows_h * rows_w;
                let tiles_m = rows.div_ceil(spec.rows_per_workgroup() as usize);
                let tiles_n = problem
                    .c_per_group()
                    .div_ceil(spec.cols_per_workgroup() as usize);
                let total = tiles_m * tiles_n * problem.params.groups;
                let uniform = ConvUniform {
                    rows: u32_of("input-gradient rows", rows)?,
                    tiles_m: u32_of("input-gradient tiles", tiles_m)?,
                    tiles_n: u32_of("input-gradient tiles", tiles_n)?,
                    tiles_total: u32_of("input-gradient workgroups", total)?,
                    phase_h: phase_h as u32,
                    phase_w: phase_w as u32,
                    phase_rows_h: rows_h as u32,
                    phase_rows_w: rows_w as u32,
                    ..ConvUniform::from_problem(&problem)
                };
                uniforms.push((self.uniform_buffer(&uniform), total));
            }
        }
        self.submit(|enc| {
            for (uniform_buf, total) in &uniforms {
                self.dispatch(
                    enc,
                    Kernel::InputGrad,
                    spec,
                    &[uniform_buf, &dy.buffer, &w.buffer, &dx],
                    *total,
                )?;
            }
            Ok(())
        })?;
        Ok(GpuTensor::new(self, dx, problem.x_shape().to_vec()))
    }

    /// dW from dY and X. `w_shape` is the weight's (K, C/groups, R, S).
    pub fn weight_grad(
        &self,
        dy: &GpuTensor,
        x: &GpuTensor,
        w_shape: &[usize],
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let problem = ConvProblem::with_output_grad(x.shape(), w_shape, dy.shape(), params)?;
        self.weight_grad_with_split(dy, x, &problem, weight_grad_split(&problem))
    }

    /// [`GpuContext::weight_grad`] with an explicit split-K (for tests and tuning).
    pub fn weight_grad_with_split(
        &self,
        dy: &GpuTensor,
        x: &GpuTensor,
        problem: &ConvProblem,
        split: SplitK,
    ) -> Result<GpuTensor> {
        self.check_tensor(dy, problem, TensorRole::OutputGrad)?;
        self.check_tensor(x, problem, TensorRole::Input)?;
        let spec = DEFAULT_TILE;
        let red_len = problem.n * problem.p * problem.q;
        let split = SplitK::with_splits(red_len, split.splits);
        let crs = problem.c_per_group() * problem.r * problem.s;
        let tiles_m = problem
            .k_per_group()
            .div_ceil(spec.rows_per_workgroup() as usize);
        let tiles_n = crs.div_ceil(spec.cols_per_workgroup() as usize);
        let total = tiles_m * tiles_n * problem.params.groups * split.splits;
        let out_len = problem.w_len();
        let uniform = ConvUniform {
            rows: u32_of("weight-gradient rows", problem.k_per_group())?,
            cols: u32_of("weight-gradient columns", crs)?,
            tiles_m: u32_of("weight-gradient tiles", tiles_m)?,
            tiles_n: u32_of("weight-gradient tiles", tiles_n)?,
            tiles_total: u32_of("weight-gradient workgroups", total)?,
            splits: split.splits as u32,
            split_len: u32_of("split length", split.split_len)?,
            red_len: u32_of("weight-gradient reduction N·P·Q", red_len)?,
            out_len: u32_of("weight count", out_len)?,
            ..ConvUniform::from_problem(problem)
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        let dw = self.storage_buffer("weight gradient dw", out_len)?;
        let partial = if split.splits > 1 {
            let len = out_len.checked_mul(split.splits).ok_or(Error::TooLarge {
                what: "split-K partial sums".into(),
                value: out_len as u128 * split.splits as u128,
                limit: usize::MAX as u128,
            })?;
            Some(self.storage_buffer("split-K partial sums", len)?)
        } else {
            None
        };
        self.submit(|enc| {
            let target = partial.as_ref().unwrap_or(&dw);
            self.dispatch(
                enc,
                Kernel::WeightGrad,
                spec,
                &[&uniform_buf, &dy.buffer, &x.buffer, target],
                total,
            )?;
            if let Some(partial) = &partial {
                let reduce = reduce_spec();
                self.dispatch(
                    enc,
                    Kernel::ReduceSplits,
                    reduce,
                    &[&uniform_buf, partial, &dw],
                    out_len.div_ceil(reduce.wg_x as usize),
                )?;
            }
            Ok(())
        })?;
        Ok(GpuTensor::new(self, dw, problem.w_shape().to_vec()))
    }

    /// db\[k\] = Σ dY\[n,k,·,·\]. `dy` is (N, K, P, Q).
    pub fn bias_grad(&self, dy: &GpuTensor) -> Result<GpuTensor> {
        dy.check_context(self)?;
        let [n, k, p, q] = check_output_grad_shape(dy.shape())?;
        let uniform = ConvUniform {
            n: n as u32,
            k: k as u32,
            p: p as u32,
            q: q as u32,
            ..Default::default()
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        let db = self.storage_buffer("bias gradient db", k)?;
        self.submit(|enc| {
            self.dispatch(
                enc,
                Kernel::BiasGrad,
                reduce_spec(),
                &[&uniform_buf, &dy.buffer, &db],
                k,
            )
        })?;
        Ok(GpuTensor::new(self, db, vec![k]))
    }
}

/// The split-K the weight gradient uses for `problem`.
pub fn weight_grad_split(problem: &ConvProblem) -> SplitK {
    let tiles_m = problem
        .k_per_group()
        .div_ceil(DEFAULT_TILE.rows_per_workgroup() as usize);
    let crs = problem.c_per_group() * problem.r * problem.s;
    let tiles_n = crs.div_ceil(DEFAULT_TILE.cols_per_workgroup() as usize);
    let tiles = tiles_m * tiles_n * problem.params.groups;
    SplitK::choose(problem.n * problem.p * problem.q, tiles)
}

/// Which kernel and tile an op runs with on `problem`, for reports and `--verbose`.
pub fn describe_plan(op: Op, problem: &ConvProblem) -> String {
    let [sh, sw] = problem.params.stride;
    match op {
        Op::Forward => format!("implicit GEMM, {DEFAULT_TILE}"),
        Op::InputGrad => format!(
            "implicit GEMM x {} stride phases, {DEFAULT_TILE}",
            sh.min(problem.h) * sw.min(problem.w)
        ),
        Op::WeightGrad => {
            let split = weight_grad_split(problem);
            format!(
                "GEMM split-K {}x{}, {DEFAULT_TILE}",
                split.splits, split.split_len
            )
        }
        Op::BiasGrad => "workgroup tree reduction".to_string(),
    }
}

/// The 1D kernels (split reduction, bias gradient) use no register tile.
fn reduce_spec() -> TileSpec {
    TileSpec {
        tm: 1,
        tn: 1,
        wg_x: 64,
        wg_y: 1,
    }
}

/// Slice-in, Vec-out conveniences: upload, run, read back. Each has a blocking and an async form.
impl GpuContext {
    /// Forward convolution on host slices; returns Y (N, K, P, Q) flat.
    pub async fn conv2d_forward_async(
        &self,
        x: &[f32],
        x_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        bias: Option<&[f32]>,
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        let problem = ConvProblem::new(x_shape, w_shape, params)?;
        problem.check_len(TensorRole::Input, x.len())?;
        problem.check_len(TensorRole::Weight, w.len())?;
        let xt = self.upload(x, x_shape)?;
        let wt = self.upload(w, w_shape)?;
        let bt = match bias {
            Some(b) => {
                problem.check_len(TensorRole::Bias, b.len())?;
                Some(self.upload(b, &[problem.k])?)
            }
            None => None,
        };
        let y = self.forward(&xt, &wt, bt.as_ref(), params)?;
        self.read_async(&y).await
    }

    /// Blocking form of [`GpuContext::conv2d_forward_async`].
    pub fn conv2d_forward(
        &self,
        x: &[f32],
        x_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        bias: Option<&[f32]>,
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_forward_async(x, x_shape, w, w_shape, bias, params))
    }

    /// Input gradient on host slices; returns dX (N, C, H, W) flat.
    pub async fn conv2d_input_grad_async(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        x_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        let problem = ConvProblem::with_output_grad(x_shape, w_shape, dy_shape, params)?;
        problem.check_len(TensorRole::OutputGrad, dy.len())?;
        problem.check_len(TensorRole::Weight, w.len())?;
        let dyt = self.upload(dy, dy_shape)?;
        let wt = self.upload(w, w_shape)?;
        let dx = self.input_grad(&dyt, &wt, x_shape, params)?;
        self.read_async(&dx).await
    }

    /// Blocking form of [`GpuContext::conv2d_input_grad_async`].
    pub fn conv2d_input_grad(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        w: &[f32],
        w_shape: &[usize],
        x_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_input_grad_async(dy, dy_shape, w, w_shape, x_shape, params))
    }

    /// Weight gradient on host slices; returns dW (K, C/groups, R, S) flat.
    pub async fn conv2d_weight_grad_async(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        x: &[f32],
        x_shape: &[usize],
        w_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        let problem = ConvProblem::with_output_grad(x_shape, w_shape, dy_shape, params)?;
        problem.check_len(TensorRole::OutputGrad, dy.len())?;
        problem.check_len(TensorRole::Input, x.len())?;
        let dyt = self.upload(dy, dy_shape)?;
        let xt = self.upload(x, x_shape)?;
        let dw = self.weight_grad(&dyt, &xt, w_shape, params)?;
        self.read_async(&dw).await
    }

    /// Blocking form of [`GpuContext::conv2d_weight_grad_async`].
    pub fn conv2d_weight_grad(
        &self,
        dy: &[f32],
        dy_shape: &[usize],
        x: &[f32],
        x_shape: &[usize],
        w_shape: &[usize],
        params: ConvParams,
    ) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_weight_grad_async(dy, dy_shape, x, x_shape, w_shape, params))
    }

    /// Bias gradient on a host slice; returns db (K,).
    pub async fn conv2d_bias_grad_async(&self, dy: &[f32], dy_shape: &[usize]) -> Result<Vec<f32>> {
        check_output_grad_shape(dy_shape)?;
        crate::cpu::reference::check_data_len(dy_shape, dy.len())?;
        let dyt = self.upload(dy, dy_shape)?;
        let db = self.bias_grad(&dyt)?;
        self.read_async(&db).await
    }

    /// Blocking form of [`GpuContext::conv2d_bias_grad_async`].
    pub fn conv2d_bias_grad(&self, dy: &[f32], dy_shape: &[usize]) -> Result<Vec<f32>> {
        pollster::block_on(self.conv2d_bias_grad_async(dy, dy_shape))
    }
}
