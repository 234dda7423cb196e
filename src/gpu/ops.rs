//! The four conv ops on GPU tensors, plus slice-in/Vec-out conveniences.
//!
//! Every op validates through [`ConvProblem`], records its dispatches into one command encoder and
//! submits it; nothing waits for the GPU until a result is read back, so chains of ops stay on the
//! device.

use crate::error::{Error, Result, TensorRole};
use crate::gpu::kernels::{Kernel, Spec, WindowSpec};
use crate::gpu::plan::{
    depthwise_forward_geometry, depthwise_weight_grad_window, forward_path, input_grad_path,
    phase_taps, pointwise_weight_grad, reduce_spec, u32_of, weight_grad_block,
    weight_grad_reduction, weight_grad_split, weight_grad_tile, ForwardPath, InputGradPath, Plan,
    SplitK, DEPTHWISE_SPLITS,
};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::uniform::{ConvUniform, DepthwiseUniform};
use crate::gpu::GpuContext;
use crate::problem::{check_output_grad_shape, ConvParams, ConvProblem};

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
    pub(crate) fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: Kernel,
        spec: impl Into<Spec>,
        buffers: &[&wgpu::Buffer],
        workgroups: usize,
    ) -> Result<()> {
        let pipeline = self.pipeline(kernel, spec.into())?;
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
        let timestamps = self.next_pass_timestamps();
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel.file_name()),
            timestamp_writes: timestamps.as_ref().map(|(query_set, first)| {
                wgpu::ComputePassTimestampWrites {
                    query_set,
                    beginning_of_pass_write_index: Some(*first),
                    end_of_pass_write_index: Some(first + 1),
                }
            }),
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(gx, gy, gz);
        Ok(())
    }

    /// Runs `f`, recording every op it calls on this thread into one command encoder that is
    /// submitted once when `f` returns (one submission for a whole forward/backward step).
    /// Reading a tensor inside `f` is an error: its commands have not been submitted yet.
    /// Nested chains join the outer one.
    pub fn chain<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.in_chain_on_this_thread()? {
            return f();
        }
        let encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gpuconv chain"),
            });
        *self.lock_chain()? = Some((std::thread::current().id(), encoder));
        let out = f();
        let taken = self.lock_chain()?.take();
        if let Some((_, encoder)) = taken {
            self.scoped(|| self.queue.submit([encoder.finish()]))?;
        }
        out
    }

    pub(crate) fn in_chain_on_this_thread(&self) -> Result<bool> {
        let me = std::thread::current().id();
        Ok(matches!(&*self.lock_chain()?, Some((owner, _)) if *owner == me))
    }

    fn lock_chain(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Option<(std::thread::ThreadId, wgpu::CommandEncoder)>>>
    {
        self.chain
            .lock()
            .map_err(|_| Error::Gpu("chain lock poisoned".into()))
    }

    pub(crate) fn submit(
        &self,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        {
            let me = std::thread::current().id();
            let mut chain = self.lock_chain()?;
            if let Some((owner, encoder)) = chain.as_mut() {
                if *owner == me {
                    return self.scoped(|| record(encoder))?;
                }
            }
        }
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
        let y = self.storage_buffer("output y", problem.y_len())?;
        let (src, bias_buf) = ([&x.buffer, &w.buffer], bias.map(|b| &b.buffer));
        let (kernel, spec, [row_tile, col_tile]) = match forward_path(&self.profile, &problem)? {
            ForwardPath::Depthwise(plan) => {
                let plan = plan.with_bias(bias.is_some());
                self.run_plan(Kernel::Depthwise, plan, src, bias_buf, &y)?;
                return Ok(GpuTensor::new(self, y, problem.y_shape().to_vec()));
            }
            ForwardPath::Pointwise(plan) => {
                let plan = plan.with_bias(bias.is_some());
                self.run_plan(Kernel::Pointwise, plan, src, bias_buf, &y)?;
                return Ok(GpuTensor::new(self, y, problem.y_shape().to_vec()));
            }
            ForwardPath::ImplicitGemm(spec) => {
                (Kernel::Forward, Spec::from(spec), spec.workgroup_items())
            }
            ForwardPath::Block(spec) => (
                Kernel::BlockForward,
                Spec::from(spec),
                spec.workgroup_items(),
            ),
        };
        let rows = problem.n * problem.p * problem.q;
        let tiles_m = rows.div_ceil(row_tile);
        let tiles_n = problem.k_per_group().div_ceil(col_tile);
        let total = tiles_m * tiles_n * problem.params.groups;
        let uniform = ConvUniform {
            has_bias: bias.is_some() as u32,
            rows: u32_of("forward rows N·P·Q", rows)?,
            cols: u32_of("forward columns", problem.k_per_group())?,
            tiles_m: u32_of("forward tiles", tiles_m)?,
            tiles_n: u32_of("forward tiles", tiles_n)?,
            tiles_total: u32_of("forward workgroups", total)?,
            ..ConvUniform::from_problem(&problem)
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        self.run_with_bias(kernel, spec, &uniform_buf, src, bias_buf, &y, total)?;
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
        let dx = self.storage_buffer("input gradient dx", problem.x_len())?;
        let src = [&dy.buffer, &w.buffer];
        let (kernel, spec, [row_tile, col_tile]) = match input_grad_path(&self.profile, &problem)? {
            InputGradPath::Depthwise(plan) => {
                self.run_plan(Kernel::Depthwise, plan, src, None, &dx)?;
                return Ok(GpuTensor::new(self, dx, problem.x_shape().to_vec()));
            }
            InputGradPath::Column(plan) => {
                let col_len = problem.n * plan.uniform.k as usize * problem.p * problem.q;
                let col = self.storage_buffer("input-gradient columns", col_len)?;
                self.run_plan(Kernel::Pointwise, plan, src, None, &col)?;
                self.col2im(&problem, &col, &dx)?;
                return Ok(GpuTensor::new(self, dx, problem.x_shape().to_vec()));
            }
            InputGradPath::Pointwise(plan) => {
                self.run_plan(Kernel::Pointwise, plan, src, None, &dx)?;
                return Ok(GpuTensor::new(self, dx, problem.x_shape().to_vec()));
            }
            InputGradPath::PhaseGemm(spec) => {
                (Kernel::InputGrad, Spec::from(spec), spec.workgroup_items())
            }
            InputGradPath::PhaseBlock(spec) => (
                Kernel::BlockInputGrad,
                Spec::from(spec),
                spec.workgroup_items(),
            ),
        };
        let [sh, sw] = problem.params.stride;
        let [pad_top, pad_left, _, _] = problem.params.padding;
        let [dh, dw] = problem.params.dilation;
        let mut uniforms = Vec::new();
        // One dense GEMM per stride phase (h mod sh, w mod sw).
        for phase_h in 0..sh.min(problem.h) {
            for phase_w in 0..sw.min(problem.w) {
                let rows_h = (problem.h - phase_h).div_ceil(sh);
                let rows_w = (problem.w - phase_w).div_ceil(sw);
                let rows = problem.n * rows_h * rows_w;
                let tiles_m = rows.div_ceil(row_tile);
                let tiles_n = problem.c_per_group().div_ceil(col_tile);
                let total = tiles_m * tiles_n * problem.params.groups;
                let (r0, r_step, rn) = phase_taps(phase_h, pad_top, problem.r, dh, sh);
                let (s0, s_step, sn) = phase_taps(phase_w, pad_left, problem.s, dw, sw);
                let uniform = ConvUniform {
                    rows: u32_of("input-gradient rows", rows)?,
                    cols: u32_of("input-gradient columns", problem.c_per_group())?,
                    tiles_m: u32_of("input-gradient tiles", tiles_m)?,
                    tiles_n: u32_of("input-gradient tiles", tiles_n)?,
                    tiles_total: u32_of("input-gradient workgroups", total)?,
                    phase_h: phase_h as u32,
                    phase_w: phase_w as u32,
                    phase_rows_h: rows_h as u32,
                    phase_rows_w: rows_w as u32,
                    // Taps are below the kernel size, which ConvProblem bounds below u32::MAX.
                    tap_r0: r0 as u32,
                    tap_r_step: r_step as u32,
                    tap_rn: rn as u32,
                    tap_s0: s0 as u32,
                    tap_s_step: s_step as u32,
                    tap_sn: sn as u32,
                    ..ConvUniform::from_problem(&problem)
                };
                uniforms.push((self.uniform_buffer(&uniform), total));
            }
        }
        self.submit(|enc| {
            for (uniform_buf, total) in &uniforms {
                self.dispatch(
                    enc,
                    kernel,
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
        self.weight_grad_with_split(dy, x, &problem, weight_grad_split(&self.profile, &problem))
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
        if let Some(spec) = depthwise_weight_grad_window(&self.profile, problem) {
            return self.depthwise_weight_grad(dy, x, problem, spec);
        }
        let crs = problem.c_per_group() * problem.r * problem.s;
        let kg = problem.k_per_group();
        // Both kernel families tile (c, r, s) along tiles_m and k along tiles_n; the GEMM rows
        // are (c, r, s) on the block core and k on the register kernels (whose
        // workgroup-uniform items are the output channels).
        let (kernel, spec, red_len, [rows, cols], [crs_tile, kg_tile]) =
            match weight_grad_block(&self.profile, problem) {
                Some((block, _)) => (
                    Kernel::BlockWeightGrad,
                    Spec::from(block),
                    problem.n * problem.p * problem.q,
                    [crs, kg],
                    block.workgroup_items(),
                ),
                None => {
                    let red_len = weight_grad_reduction(problem);
                    let tile = weight_grad_tile(
                        &self.profile,
                        problem,
                        SplitK::with_splits(red_len, split.splits),
                    );
                    let kernel = if pointwise_weight_grad(problem) {
                        Kernel::PointwiseWeightGrad
                    } else {
                        Kernel::WeightGrad
                    };
                    (
                        kernel,
                        Spec::from(tile),
                        red_len,
                        [kg, crs],
                        tile.workgroup_items(),
                    )
                }
            };
        let split = SplitK::with_splits(red_len, split.splits);
        let tiles_m = crs.div_ceil(crs_tile);
        let tiles_n = kg.div_ceil(kg_tile);
        let total = tiles_m * tiles_n * problem.params.groups * split.splits;
        let out_len = problem.w_len();
        let uniform = ConvUniform {
            rows: u32_of("weight-gradient rows", rows)?,
            cols: u32_of("weight-gradient columns", cols)?,
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
                kernel,
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
                    out_len.div_ceil(reduce.lanes as usize),
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

impl GpuContext {
    /// One dispatch of a kernel bound as (uniform, src, weights, bias, dst). The bias binding
    /// always needs a buffer; without a bias the kernel never reads the placeholder.
    #[allow(clippy::too_many_arguments)]
    fn run_with_bias(
        &self,
        kernel: Kernel,
        spec: impl Into<Spec>,
        uniform: &wgpu::Buffer,
        [src, w]: [&wgpu::Buffer; 2],
        bias: Option<&wgpu::Buffer>,
        dst: &wgpu::Buffer,
        workgroups: usize,
    ) -> Result<()> {
        let placeholder;
        let bias_buf = match bias {
            Some(b) => b,
            None => {
                placeholder = self.storage_buffer_from("no bias", &[0.0])?;
                &placeholder
            }
        };
        let spec = spec.into();
        self.submit(|enc| {
            self.dispatch(
                enc,
                kernel,
                spec,
                &[uniform, src, w, bias_buf, dst],
                workgroups,
            )
        })
    }

    /// Runs a planned direct dispatch: `plan` carries its uniform, specialisation and grid.
    fn run_plan<U: bytemuck::Pod, S: Into<Spec>>(
        &self,
        kernel: Kernel,
        plan: Plan<U, S>,
        [src, w]: [&wgpu::Buffer; 2],
        bias: Option<&wgpu::Buffer>,
        dst: &wgpu::Buffer,
    ) -> Result<()> {
        let uniform = self.uniform_buffer(&plan.uniform);
        self.run_with_bias(
            kernel,
            plan.spec,
            &uniform,
            [src, w],
            bias,
            dst,
            plan.workgroups,
        )
    }

    /// dX from the input gradient's column matrix (see shaders/col2im.wgsl).
    fn col2im(&self, problem: &ConvProblem, col: &wgpu::Buffer, dx: &wgpu::Buffer) -> Result<()> {
        let uniform = ConvUniform {
            out_len: u32_of("input-gradient elements", problem.x_len())?,
            ..ConvUniform::from_problem(problem)
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        let spec = reduce_spec();
        self.submit(|enc| {
            self.dispatch(
                enc,
                Kernel::Col2im,
                spec,
                &[&uniform_buf, col, dx],
                problem.x_len().div_ceil(spec.lanes as usize),
            )
        })
    }

    fn depthwise_weight_grad(
        &self,
        dy: &GpuTensor,
        x: &GpuTensor,
        problem: &ConvProblem,
        spec: WindowSpec,
    ) -> Result<GpuTensor> {
        let blocks_h = problem.p.div_ceil(spec.rows as usize);
        let blocks_w = problem.q.div_ceil(spec.cols as usize);
        let splits = (problem.n * blocks_h * blocks_w).clamp(1, DEPTHWISE_SPLITS);
        let chunks = splits.div_ceil(spec.lanes as usize);
        let workgroups = problem.k * chunks;
        let out_len = problem.w_len();
        let uniform = DepthwiseUniform {
            n: problem.n as u32,
            blocks_h: u32_of("depthwise blocks", blocks_h)?,
            blocks_w: u32_of("depthwise blocks", blocks_w)?,
            chunks: chunks as u32,
            tiles_total: u32_of("depthwise workgroups", workgroups)?,
            splits: splits as u32,
            out_len: u32_of("weight count", out_len)?,
            ..depthwise_forward_geometry(problem)
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        let reduce_uniform = self.uniform_buffer(&ConvUniform {
            splits: splits as u32,
            out_len: out_len as u32,
            ..Default::default()
        });
        let dw = self.storage_buffer("weight gradient dw", out_len)?;
        let partial = self.storage_buffer("depthwise partial sums", out_len * splits)?;
        self.submit(|enc| {
            self.dispatch(
                enc,
                Kernel::DepthwiseWeightGrad,
                spec,
                &[&uniform_buf, &dy.buffer, &x.buffer, &partial],
                workgroups,
            )?;
            let reduce = reduce_spec();
            self.dispatch(
                enc,
                Kernel::ReduceSplits,
                reduce,
                &[&reduce_uniform, &partial, &dw],
                out_len.div_ceil(reduce.lanes as usize),
            )
        })?;
        Ok(GpuTensor::new(self, dw, problem.w_shape().to_vec()))
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
