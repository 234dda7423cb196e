//! The four conv ops on GPU tensors, plus slice-in/Vec-out conveniences.
//!
//! Every op validates through [`ConvProblem`], records its dispatches into one command encoder and
//! submits it; nothing waits for the GPU until a result is read back, so chains of ops stay on the
//! device.

use crate::error::{Error, Result, TensorRole};
use crate::gpu::kernels::{Kernel, Spec, TileSpec, WindowSpec};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::uniform::{ConvUniform, DepthwiseUniform};
use crate::gpu::GpuContext;
use crate::problem::{check_output_grad_shape, ConvParams, ConvProblem, Op};

/// The largest implicit-GEMM tile: 16 lane items × 32 uniform items per invocation, 8 lanes (one
/// 256-bit SIMD vector on lavapipe). Lavapipe runs one invocation per SIMD lane and pays a
/// per-lane loop for every gathered load, so it rewards many FMAs per gathered value
/// (tile sweep in benches/NOTES.md).
pub const DEFAULT_TILE: TileSpec = TileSpec {
    lane_tile: 16,
    uniform_tile: 32,
    lanes: 8,
};

/// Below this many workgroups a pass shrinks its lane tile so every core has work.
const MIN_WORKGROUPS: usize = 32;

/// The tile for an implicit-GEMM pass with `lane_extent` items along the lane dimension,
/// `uniform_extent` along the uniform one, and `parallel` independent copies of that grid
/// (groups × splits). The uniform tile is the smallest power of two covering `uniform_extent`
/// (so depthwise, with one channel per group, wastes nothing), capped at the default; the lane
/// tile then halves (lanes first, down to one SIMD width of 8) while it is more than twice the
/// lane extent or the grid has too few workgroups.
pub fn gemm_tile(lane_extent: usize, uniform_extent: usize, parallel: usize) -> TileSpec {
    gemm_tile_within(DEFAULT_TILE, lane_extent, uniform_extent, parallel)
}

/// [`gemm_tile`] starting from the largest tile `max`.
fn gemm_tile_within(
    max: TileSpec,
    lane_extent: usize,
    uniform_extent: usize,
    parallel: usize,
) -> TileSpec {
    if let Some(spec) = tile_override() {
        return spec;
    }
    let mut spec = max;
    spec.uniform_tile = (uniform_extent.max(1).next_power_of_two() as u32).min(spec.uniform_tile);
    let workgroups = |t: TileSpec| {
        lane_extent.div_ceil(t.lane_items_per_workgroup() as usize)
            * uniform_extent.div_ceil(t.uniform_tile as usize)
            * parallel
    };
    // Halve while half the lane items would still cover the whole extent, or the grid is short.
    while (spec.lane_items_per_workgroup() as usize / 2 >= lane_extent.max(1))
        || workgroups(spec) < MIN_WORKGROUPS
    {
        if spec.lanes > 8 {
            spec.lanes /= 2;
        } else if spec.lane_tile > 1 {
            spec.lane_tile /= 2;
        } else {
            break;
        }
    }
    spec
}

/// `GPUCONV_TILE=lane_tile,uniform_tile,lanes` forces one tile on every implicit-GEMM pass, for
/// tile sweeps (benches/NOTES.md); malformed values are ignored.
fn tile_override() -> Option<TileSpec> {
    let text = std::env::var("GPUCONV_TILE").ok()?;
    let v: Vec<u32> = text
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    match v[..] {
        [lane_tile, uniform_tile, lanes] if lane_tile * uniform_tile * lanes > 0 => {
            Some(TileSpec {
                lane_tile,
                uniform_tile,
                lanes,
            })
        }
        _ => None,
    }
}

/// The tile each pass uses on `problem`.
fn forward_tile(problem: &ConvProblem) -> TileSpec {
    gemm_tile(
        problem.n * problem.p * problem.q,
        problem.k_per_group(),
        problem.params.groups,
    )
}

fn input_grad_tile(problem: &ConvProblem) -> TileSpec {
    let [sh, sw] = problem.params.stride;
    let phase_pixels = problem.n * problem.h.div_ceil(sh) * problem.w.div_ceil(sw);
    gemm_tile(phase_pixels, problem.c_per_group(), problem.params.groups)
}

fn weight_grad_tile(problem: &ConvProblem, split: SplitK) -> TileSpec {
    let crs = problem.c_per_group() * problem.r * problem.s;
    gemm_tile(
        crs,
        problem.k_per_group(),
        problem.params.groups * split.splits,
    )
}

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
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel.file_name()),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(gx, gy, gz);
        Ok(())
    }

    pub(crate) fn submit(
        &self,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
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
        if let Some(plan) = depthwise_plan(&problem, PointwisePass::Forward)? {
            let y = self.storage_buffer("output y", problem.y_len())?;
            self.run_depthwise(plan, &x.buffer, &w.buffer, bias.map(|b| &b.buffer), &y)?;
            return Ok(GpuTensor::new(self, y, problem.y_shape().to_vec()));
        }
        if let Some(plan) = pointwise_plan(&problem, PointwisePass::Forward) {
            let y = self.storage_buffer("output y", problem.y_len())?;
            self.run_pointwise(plan, &x.buffer, &w.buffer, bias.map(|b| &b.buffer), &y)?;
            return Ok(GpuTensor::new(self, y, problem.y_shape().to_vec()));
        }
        let spec = forward_tile(&problem);
        let rows = problem.n * problem.p * problem.q;
        let tiles_m = rows.div_ceil(spec.lane_items_per_workgroup() as usize);
        let tiles_n = problem.k_per_group().div_ceil(spec.uniform_tile as usize);
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
        let dx = self.storage_buffer("input gradient dx", problem.x_len())?;
        if let Some(plan) = depthwise_plan(&problem, PointwisePass::InputGrad)? {
            self.run_depthwise(plan, &dy.buffer, &w.buffer, None, &dx)?;
            return Ok(GpuTensor::new(self, dx, problem.x_shape().to_vec()));
        }
        if let Some(plan) = pointwise_plan(&problem, PointwisePass::InputGrad) {
            self.run_pointwise(plan, &dy.buffer, &w.buffer, None, &dx)?;
            return Ok(GpuTensor::new(self, dx, problem.x_shape().to_vec()));
        }
        let spec = input_grad_tile(&problem);
        let [sh, sw] = problem.params.stride;
        let mut uniforms = Vec::new();
        // One dense GEMM per stride phase (h mod sh, w mod sw).
        for phase_h in 0..sh.min(problem.h) {
            for phase_w in 0..sw.min(problem.w) {
                let rows_h = (problem.h - phase_h).div_ceil(sh);
                let rows_w = (problem.w - phase_w).div_ceil(sw);
                let rows = problem.n * rows_h * rows_w;
                let tiles_m = rows.div_ceil(spec.lane_items_per_workgroup() as usize);
                let tiles_n = problem.c_per_group().div_ceil(spec.uniform_tile as usize);
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
        if let Some(spec) = depthwise_window(problem, [problem.p, problem.q], problem.params.stride)
        {
            return self.depthwise_weight_grad(dy, x, problem, spec);
        }
        let red_len = problem.n * problem.p * problem.q;
        let split = SplitK::with_splits(red_len, split.splits);
        let spec = weight_grad_tile(problem, split);
        let crs = problem.c_per_group() * problem.r * problem.s;
        let tiles_m = crs.div_ceil(spec.lane_items_per_workgroup() as usize);
        let tiles_n = problem.k_per_group().div_ceil(spec.uniform_tile as usize);
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

/// Which pass a pointwise GEMM computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointwisePass {
    Forward,
    InputGrad,
}

impl PointwisePass {
    fn of(op: Op) -> PointwisePass {
        match op {
            Op::InputGrad => PointwisePass::InputGrad,
            _ => PointwisePass::Forward,
        }
    }
}

/// A pointwise (plain GEMM) dispatch: its uniform, tile and workgroup count.
struct PointwisePlan {
    uniform: ConvUniform,
    spec: TileSpec,
    workgroups: usize,
}

/// The largest pointwise tile: 8 pixel quads (32 floats) × 16 channels per invocation, 32 lanes.
const POINTWISE_TILE: TileSpec = TileSpec {
    lane_tile: 8,
    uniform_tile: 16,
    lanes: 32,
};

/// The plain-GEMM plan for a 1×1 stride-1 unpadded problem whose planes hold whole vec4 quads;
/// `None` sends the problem to the implicit GEMM.
fn pointwise_plan(problem: &ConvProblem, pass: PointwisePass) -> Option<PointwisePlan> {
    let hw = problem.h * problem.w;
    if !problem.is_pointwise() || !hw.is_multiple_of(4) {
        return None;
    }
    let (cg, kg) = (problem.c_per_group(), problem.k_per_group());
    let base = ConvUniform::from_problem(problem);
    // src/dst channel counts, reduced/output channels per group, weight strides.
    let (src_c, dst_c, red_g, out_g, stride_out, stride_red) = match pass {
        PointwisePass::Forward => (problem.c, problem.k, cg, kg, cg, 1),
        PointwisePass::InputGrad => (problem.k, problem.c, kg, cg, 1, cg),
    };
    let rows = problem.n * hw / 4;
    let groups = problem.params.groups;
    let spec = gemm_tile_within(POINTWISE_TILE, rows, out_g, groups);
    let tiles_m = rows.div_ceil(spec.lane_items_per_workgroup() as usize);
    let tiles_n = out_g.div_ceil(spec.uniform_tile as usize);
    let workgroups = tiles_m * tiles_n * groups;
    let uniform = ConvUniform {
        c: src_c as u32,
        k: dst_c as u32,
        cg: red_g as u32,
        kg: out_g as u32,
        a_stride_out: stride_out as u32,
        a_stride_red: stride_red as u32,
        rows: u32::try_from(rows).ok()?,
        tiles_m: u32::try_from(tiles_m).ok()?,
        tiles_n: u32::try_from(tiles_n).ok()?,
        tiles_total: u32::try_from(workgroups).ok()?,
        ..base
    };
    Some(PointwisePlan {
        uniform,
        spec,
        workgroups,
    })
}

impl GpuContext {
    fn run_pointwise(
        &self,
        plan: PointwisePlan,
        src: &wgpu::Buffer,
        w: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        dst: &wgpu::Buffer,
    ) -> Result<()> {
        let uniform = ConvUniform {
            has_bias: bias.is_some() as u32,
            ..plan.uniform
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        let dummy;
        let bias_buf = match bias {
            Some(b) => b,
            None => {
                dummy = self.storage_buffer_from("no bias", &[0.0])?;
                &dummy
            }
        };
        self.submit(|enc| {
            self.dispatch(
                enc,
                Kernel::Pointwise,
                plan.spec,
                &[&uniform_buf, src, w, bias_buf, dst],
                plan.workgroups,
            )
        })
    }
}

/// Largest kernel (R·S taps) the direct depthwise kernels unroll; bigger ones take the GEMM path.
const DEPTHWISE_MAX_TAPS: usize = 49;
/// Input values one depthwise invocation keeps in registers: blocks shrink until the window fits.
const DEPTHWISE_MAX_WINDOW: u32 = 64;
/// Windows above this (large dilations even at one output per invocation) take the GEMM path.
const DEPTHWISE_WINDOW_LIMIT: u32 = 256;
/// Depthwise workgroups: one SIMD vector on lavapipe, sharing one plane's weights.
const DEPTHWISE_LANES: u32 = 8;
/// Depthwise weight gradient: partial sums per channel (added by reduce_splits).
const DEPTHWISE_SPLITS: usize = 32;

/// The direct-kernel block for a depthwise pass producing `out` planes at `stride`, or `None`
/// when the problem is not depthwise or its kernel is too large to unroll.
fn depthwise_window(
    problem: &ConvProblem,
    out: [usize; 2],
    stride: [usize; 2],
) -> Option<WindowSpec> {
    if !problem.is_depthwise() || problem.r * problem.s > DEPTHWISE_MAX_TAPS {
        return None;
    }
    let [dh, dw] = problem.params.dilation;
    let small = |v: usize| u32::try_from(v).ok();
    let mut spec = WindowSpec {
        rows: out[0].clamp(1, 4) as u32,
        cols: out[1].clamp(1, 4) as u32,
        kernel: [problem.r as u32, problem.s as u32],
        stride: [small(stride[0])?, small(stride[1])?],
        dilation: [small(dh)?, small(dw)?],
        lanes: DEPTHWISE_LANES,
    };
    let area = |w: WindowSpec| w.window().iter().map(|&v| v as u64).product::<u64>();
    while area(spec) > DEPTHWISE_MAX_WINDOW as u64 && (spec.rows > 1 || spec.cols > 1) {
        if spec.rows >= spec.cols {
            spec.rows /= 2;
        } else {
            spec.cols /= 2;
        }
    }
    (area(spec) <= DEPTHWISE_WINDOW_LIMIT as u64).then_some(spec)
}

/// A direct depthwise dispatch for the forward pass or the stride-1 input gradient.
struct DepthwisePlan {
    uniform: DepthwiseUniform,
    spec: WindowSpec,
    workgroups: usize,
}

fn depthwise_plan(problem: &ConvProblem, pass: PointwisePass) -> Result<Option<DepthwisePlan>> {
    let [pad_top, pad_left, _, _] = problem.params.padding;
    let [dh, dw] = problem.params.dilation;
    let kg = problem.k_per_group();
    let (spec, uniform) = match pass {
        PointwisePass::Forward => {
            let Some(spec) =
                depthwise_window(problem, [problem.p, problem.q], problem.params.stride)
            else {
                return Ok(None);
            };
            let uniform = DepthwiseUniform {
                in_c: problem.c as u32,
                out_c: problem.k as u32,
                terms: 1,
                in_h: problem.h as u32,
                in_w: problem.w as u32,
                out_h: problem.p as u32,
                out_w: problem.q as u32,
                off_h: -(pad_top as i64) as i32,
                off_w: -(pad_left as i64) as i32,
                flip: 0,
                chan_div: kg as u32,
                chan_mult: 1,
                ..Default::default()
            };
            (spec, uniform)
        }
        PointwisePass::InputGrad => {
            // Stride 1 only: then dX is a correlation of dY with the flipped taps. Strided
            // depthwise input gradients take the phase-split GEMM.
            if problem.params.stride != [1, 1] {
                return Ok(None);
            }
            let Some(spec) = depthwise_window(problem, [problem.h, problem.w], [1, 1]) else {
                return Ok(None);
            };
            let offset =
                |pad: usize, taps: usize, dil: usize| pad as i64 - ((taps - 1) * dil) as i64;
            let off_h = offset(pad_top, problem.r, dh);
            let off_w = offset(pad_left, problem.s, dw);
            let uniform = DepthwiseUniform {
                in_c: problem.k as u32,
                out_c: problem.c as u32,
                terms: kg as u32,
                in_h: problem.p as u32,
                in_w: problem.q as u32,
                out_h: problem.h as u32,
                out_w: problem.w as u32,
                off_h: i32::try_from(off_h)
                    .map_err(|_| too_large("input-gradient offset", off_h))?,
                off_w: i32::try_from(off_w)
                    .map_err(|_| too_large("input-gradient offset", off_w))?,
                flip: 1,
                chan_div: 1,
                chan_mult: kg as u32,
                ..Default::default()
            };
            (spec, uniform)
        }
    };
    let blocks_h = (uniform.out_h as usize).div_ceil(spec.rows as usize);
    let blocks_w = (uniform.out_w as usize).div_ceil(spec.cols as usize);
    let chunks = (blocks_h * blocks_w).div_ceil(spec.lanes as usize);
    let workgroups = problem.n * uniform.out_c as usize * chunks;
    let uniform = DepthwiseUniform {
        n: problem.n as u32,
        blocks_h: u32_of("depthwise blocks", blocks_h)?,
        blocks_w: u32_of("depthwise blocks", blocks_w)?,
        chunks: u32_of("depthwise workgroups per plane", chunks)?,
        tiles_total: u32_of("depthwise workgroups", workgroups)?,
        ..uniform
    };
    Ok(Some(DepthwisePlan {
        uniform,
        spec,
        workgroups,
    }))
}

fn too_large(what: &str, v: i64) -> Error {
    Error::TooLarge {
        what: what.to_string(),
        value: v.unsigned_abs() as u128,
        limit: i32::MAX as u128,
    }
}

impl GpuContext {
    fn run_depthwise(
        &self,
        plan: DepthwisePlan,
        src: &wgpu::Buffer,
        w: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        dst: &wgpu::Buffer,
    ) -> Result<()> {
        let uniform = DepthwiseUniform {
            has_bias: bias.is_some() as u32,
            ..plan.uniform
        };
        let uniform_buf = self.uniform_buffer(&uniform);
        let dummy;
        let bias_buf = match bias {
            Some(b) => b,
            None => {
                dummy = self.storage_buffer_from("no bias", &[0.0])?;
                &dummy
            }
        };
        self.submit(|enc| {
            self.dispatch(
                enc,
                Kernel::Depthwise,
                plan.spec,
                &[&uniform_buf, src, w, bias_buf, dst],
                plan.workgroups,
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
        let [pad_top, pad_left, _, _] = problem.params.padding;
        let blocks_h = problem.p.div_ceil(spec.rows as usize);
        let blocks_w = problem.q.div_ceil(spec.cols as usize);
        let splits = (problem.n * blocks_h * blocks_w).clamp(1, DEPTHWISE_SPLITS);
        let chunks = splits.div_ceil(spec.lanes as usize);
        let workgroups = problem.k * chunks;
        let out_len = problem.w_len();
        let uniform = DepthwiseUniform {
            n: problem.n as u32,
            in_c: problem.c as u32,
            out_c: problem.k as u32,
            terms: 1,
            in_h: problem.h as u32,
            in_w: problem.w as u32,
            out_h: problem.p as u32,
            out_w: problem.q as u32,
            off_h: -(pad_top as i64) as i32,
            off_w: -(pad_left as i64) as i32,
            chan_div: problem.k_per_group() as u32,
            chan_mult: 1,
            blocks_h: u32_of("depthwise blocks", blocks_h)?,
            blocks_w: u32_of("depthwise blocks", blocks_w)?,
            chunks: chunks as u32,
            tiles_total: u32_of("depthwise workgroups", workgroups)?,
            splits: splits as u32,
            out_len: u32_of("weight count", out_len)?,
            ..Default::default()
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

/// The split-K the weight gradient uses for `problem`.
pub fn weight_grad_split(problem: &ConvProblem) -> SplitK {
    let spec = weight_grad_tile(problem, SplitK::with_splits(1, 1));
    let crs = problem.c_per_group() * problem.r * problem.s;
    let tiles_m = crs.div_ceil(spec.lane_items_per_workgroup() as usize);
    let tiles_n = problem.k_per_group().div_ceil(spec.uniform_tile as usize);
    let tiles = tiles_m * tiles_n * problem.params.groups;
    SplitK::choose(problem.n * problem.p * problem.q, tiles)
}

/// Which kernel and tile an op runs with on `problem`, for reports and `--verbose`.
pub fn describe_plan(op: Op, problem: &ConvProblem) -> String {
    let [sh, sw] = problem.params.stride;
    match op {
        Op::Forward | Op::InputGrad
            if matches!(depthwise_plan(problem, PointwisePass::of(op)), Ok(Some(_))) =>
        {
            let plan = depthwise_plan(problem, PointwisePass::of(op))
                .ok()
                .flatten()
                .expect("checked");
            format!("direct depthwise, {}", Spec::from(plan.spec))
        }
        Op::WeightGrad
            if depthwise_window(problem, [problem.p, problem.q], problem.params.stride)
                .is_some() =>
        {
            let spec = depthwise_window(problem, [problem.p, problem.q], problem.params.stride)
                .expect("checked");
            format!("direct depthwise + split reduce, {}", Spec::from(spec))
        }
        Op::Forward | Op::InputGrad if pointwise_plan(problem, PointwisePass::of(op)).is_some() => {
            let plan = pointwise_plan(problem, PointwisePass::of(op)).expect("checked");
            format!("pointwise GEMM on vec4 pixels, {}", plan.spec)
        }
        Op::Forward => format!("implicit GEMM, {}", forward_tile(problem)),
        Op::InputGrad => format!(
            "implicit GEMM x {} stride phases, {}",
            sh.min(problem.h) * sw.min(problem.w),
            input_grad_tile(problem)
        ),
        Op::WeightGrad => {
            let split = weight_grad_split(problem);
            format!(
                "GEMM split-K {}x{}, {}",
                split.splits,
                split.split_len,
                weight_grad_tile(problem, split)
            )
        }
        Op::BiasGrad => "workgroup tree reduction".to_string(),
    }
}

/// The 1D kernels (split reduction, bias gradient) use no register tile.
fn reduce_spec() -> TileSpec {
    TileSpec {
        lane_tile: 1,
        uniform_tile: 1,
        lanes: 64,
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
