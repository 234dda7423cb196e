//! The one executor: a [`Recorder`] records planned ops into a command encoder (its own, or the
//! caller's) and is submitted as one unit.
//!
//! Every op on a recorder validates its problem once, asks the context's planner for the plan,
//! allocates its output and takes pooled scratch, and records the plan's steps. Nothing runs until
//! the recorder is submitted ([`Recorder::submit`]) or, on a caller's encoder, until the caller
//! submits that encoder. Outputs are marked pending until then: reading one, or using it in
//! another recorder, is an error rather than a read of unwritten memory. A recorder dropped without
//! submitting (or unwound by a panic) leaves the context as it was: its scratch goes back to the
//! pool and its outputs are marked abandoned.

use std::sync::Arc;

use crate::epilogue::{Activation, Epilogue, Saved};
use crate::error::{Error, Result, TensorRole};
use crate::gpu::context::next_id;
use crate::gpu::plan::{BufferRef, BufferSlice, Dispatch, FusedForward, OpPlan, Operand, Step};
use crate::gpu::tensor::{GpuTensor, Readiness};
use crate::gpu::GpuContext;
use crate::problem::{check_output_grad_shape, element_count, ConvParams, ConvProblem, Op};

/// Compute passes one recorder can time (two timestamps each).
const MAX_TIMED_PASSES: u32 = 512;

/// The encoder a recorder writes into.
enum Encoder<'e> {
    /// The recorder's own, submitted by [`Recorder::submit`].
    Own(wgpu::CommandEncoder),
    /// The caller's, which the caller submits.
    Borrowed(&'e mut wgpu::CommandEncoder),
}

impl Encoder<'_> {
    fn get(&mut self) -> &mut wgpu::CommandEncoder {
        match self {
            Encoder::Own(e) => e,
            Encoder::Borrowed(e) => e,
        }
    }
}

/// Timestamp queries around every compute pass a recorder records.
struct PassTimer {
    query_set: wgpu::QuerySet,
    passes: u32,
}

/// Records ops into one command encoder; see the module docs. Made by
/// [`GpuContext::recorder`], [`GpuContext::timed_recorder`] or [`GpuContext::recorder_for`].
pub struct Recorder<'c, 'e> {
    ctx: &'c GpuContext,
    id: u64,
    encoder: Option<Encoder<'e>>,
    timer: Option<PassTimer>,
    scratch: Vec<wgpu::Buffer>,
    outputs: Vec<Arc<Readiness>>,
}

/// A recorder's submitted work: wait for it, or read its device time.
pub struct Submission<'c> {
    ctx: &'c GpuContext,
    index: wgpu::SubmissionIndex,
    timing: Option<(wgpu::Buffer, u32)>,
}

impl GpuContext {
    /// A recorder with its own encoder.
    pub fn recorder(&self) -> Recorder<'_, 'static> {
        let _serial = self.serial();
        self.new_recorder(Encoder::Own(self.device.create_command_encoder(
            &wgpu::CommandEncoderDescriptor {
                label: Some("gpuconv recorder"),
            },
        )))
    }

    /// A recorder that also writes a timestamp at the start and end of every compute pass it
    /// records (where the device has timestamp queries), for
    /// [`Submission::device_time_ms`].
    pub fn timed_recorder(&self) -> Recorder<'_, 'static> {
        let mut rec = self.recorder();
        if self.has_device_timing() {
            let _serial = self.serial();
            rec.timer = Some(PassTimer {
                query_set: self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("gpuconv pass timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * MAX_TIMED_PASSES,
                }),
                passes: 0,
            });
        }
        rec
    }

    /// A recorder writing into the caller's `encoder`, in order with the caller's own commands.
    /// Finish it with [`Recorder::finish`] and submit the encoder yourself; the outputs are
    /// marked ready at `finish`, so submit the encoder before reading them.
    pub fn recorder_for<'e>(&self, encoder: &'e mut wgpu::CommandEncoder) -> Recorder<'_, 'e> {
        self.new_recorder(Encoder::Borrowed(encoder))
    }

    fn new_recorder<'e>(&self, encoder: Encoder<'e>) -> Recorder<'_, 'e> {
        Recorder {
            ctx: self,
            id: next_id(),
            encoder: Some(encoder),
            timer: None,
            scratch: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

impl<'c, 'e> Recorder<'c, 'e> {
    /// The context this recorder records for.
    pub fn context(&self) -> &'c GpuContext {
        self.ctx
    }

    /// Records Y = conv(X, W) (+ b). `x` is (N, C, H, W), `w` (K, C/groups, R, S), `bias` (K,).
    pub fn forward(
        &mut self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: ConvParams,
    ) -> Result<GpuTensor> {
        self.forward_to(x, w, bias, params, None)
    }

    /// [`Recorder::forward`] writing Y into `out` (e.g. a view of the caller's own buffer from
    /// [`GpuTensor::from_buffer`]); the other ops write into a tensor of the caller's through
    /// [`Recorder::record_into`] with a plan from [`GpuContext::planner`].
    pub fn forward_into(
        &mut self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: ConvParams,
        out: &GpuTensor,
    ) -> Result<GpuTensor> {
        self.forward_to(x, w, bias, params, Some(out))
    }

    fn forward_to(
        &mut self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: ConvParams,
        out: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        let problem = ConvProblem::new(x.shape(), w.shape(), params)?;
        if let Some(b) = bias {
            problem.check_shape(TensorRole::Bias, b.shape())?;
        }
        let plan = self.ctx.plan(Op::Forward, &problem, bias.is_some())?;
        let mut operands = vec![(Operand::X, x), (Operand::W, w)];
        if let Some(b) = bias {
            operands.push((Operand::Bias, b));
        }
        self.record_to(&plan, &operands, out)
    }

    /// Records the fused forward y = act(α·conv(x, w) + b + β·z): `bias` (K,) and `residual`
    /// z (Y's shape) optional. The epilogue runs in the forward kernel's store where the plan
    /// allows (Y written once, never read), else as its own pass after the forward
    /// ([`Planner::plan_fused_forward`](crate::gpu::plan::Planner::plan_fused_forward)).
    pub fn forward_fused(
        &mut self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        epilogue: &Epilogue,
        params: ConvParams,
    ) -> Result<GpuTensor> {
        Ok(self
            .fused_forward(x, w, bias, residual, epilogue, params, false)?
            .0)
    }

    /// [`Recorder::forward_fused`] that also writes the pre-activation α·conv + b + β·z
    /// (returned second), for the activations whose backward needs it ([`Saved`]).
    pub fn forward_fused_saving_pre(
        &mut self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        epilogue: &Epilogue,
        params: ConvParams,
    ) -> Result<(GpuTensor, GpuTensor)> {
        let (y, pre) = self.fused_forward(x, w, bias, residual, epilogue, params, true)?;
        let pre = pre.ok_or_else(|| Error::Internal("no pre-activation recorded".into()))?;
        Ok((y, pre))
    }

    #[allow(clippy::too_many_arguments)]
    fn fused_forward(
        &mut self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        epilogue: &Epilogue,
        params: ConvParams,
        save_pre: bool,
    ) -> Result<(GpuTensor, Option<GpuTensor>)> {
        let problem = ConvProblem::new(x.shape(), w.shape(), params)?;
        if let Some(b) = bias {
            problem.check_shape(TensorRole::Bias, b.shape())?;
        }
        if let Some(z) = residual {
            problem.check_shape(TensorRole::Residual, z.shape())?;
        }
        let fused = FusedForward {
            epilogue: *epilogue,
            bias: bias.is_some(),
            residual: residual.is_some(),
            save_pre,
        };
        let plan = self
            .ctx
            .planner_for(Op::Forward, &problem)
            .plan_fused_forward(&problem, &fused)?;
        let pre = if save_pre {
            Some(self.new_output(TensorRole::PreActivation, problem.y_shape().to_vec())?)
        } else {
            None
        };
        let mut operands = vec![(Operand::X, x), (Operand::W, w)];
        operands.extend(bias.map(|b| (Operand::Bias, b)));
        operands.extend(residual.map(|z| (Operand::Residual, z)));
        operands.extend(pre.as_ref().map(|p| (Operand::Pre, p)));
        let y = self.record(&plan, &operands)?;
        Ok((y, pre))
    }

    /// Records the gradient at the epilogue's pre-activation, scaled: `scale`·dy·act′, act′
    /// taken from `saved` (the forward's output y or its pre-activation, as `kind` says; the
    /// output serves only the activations whose derivative it determines). With `scale` = 1
    /// this is dpre, whose [`Recorder::bias_grad`] is db; α gives the convolution's dY (for
    /// the input and weight gradients), β the residual's gradient.
    pub fn activation_grad(
        &mut self,
        dy: &GpuTensor,
        saved: &GpuTensor,
        activation: Activation,
        kind: Saved,
        scale: f32,
    ) -> Result<GpuTensor> {
        if saved.shape() != dy.shape() {
            return Err(Error::ShapeMismatch {
                role: match kind {
                    Saved::Output => TensorRole::Output,
                    Saved::PreActivation => TensorRole::PreActivation,
                },
                got: saved.shape().to_vec(),
                expected: dy.shape().to_vec(),
            });
        }
        let plan = self
            .ctx
            .planner
            .plan_activation_grad(dy.shape(), activation, kind, scale)?;
        self.record(&plan, &[(Operand::Dy, dy), (Operand::Saved, saved)])
    }

    /// Records the epilogue y ← act(α·y + b + β·z) as a pass of its own over `y` (N, K, P, Q)
    /// in place, `y` holding a convolution without bias (e.g. the transposed forward, or a
    /// caller's own op); returns the updated `y`. [`Recorder::forward_fused`] fuses the same
    /// epilogue into the forward kernel instead.
    pub fn epilogue(
        &mut self,
        y: &GpuTensor,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        epilogue: &Epilogue,
    ) -> Result<GpuTensor> {
        let y_shape = check_output_grad_shape(y.shape()).map_err(|_| Error::Rank {
            role: TensorRole::Output,
            expected: 4,
            shape: y.shape().to_vec(),
        })?;
        if let Some(b) = bias {
            if b.shape() != [y_shape[1]] {
                return Err(Error::ShapeMismatch {
                    role: TensorRole::Bias,
                    got: b.shape().to_vec(),
                    expected: vec![y_shape[1]],
                });
            }
        }
        let fused = FusedForward {
            epilogue: *epilogue,
            bias: bias.is_some(),
            residual: residual.is_some(),
            save_pre: false,
        };
        let plan = self.ctx.planner.plan_epilogue(y_shape, &fused)?;
        let mut operands = Vec::new();
        operands.extend(bias.map(|b| (Operand::Bias, b)));
        operands.extend(residual.map(|z| (Operand::Residual, z)));
        self.record_into(&plan, &operands, y)
    }

    /// A new buffer for a second output of an op, pending until this recorder is submitted.
    fn new_output(&mut self, role: TensorRole, shape: Vec<usize>) -> Result<GpuTensor> {
        let len = element_count(role, &shape)?;
        let bytes = (len as u128) * 4;
        let buffer = self.ctx.storage_buffer(&role.to_string(), bytes)?;
        let readiness = Readiness::pending(self.id);
        self.outputs.push(readiness.clone());
        Ok(GpuTensor::new(self.ctx, buffer, shape, len, readiness))
    }

    /// Records dX from dY and W. `x_shape` is the forward input's (N, C, H, W).
    pub fn input_grad(
        &mut self,
        dy: &GpuTensor,
        w: &GpuTensor,
        x_shape: &[usize],
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let problem = ConvProblem::with_output_grad(x_shape, w.shape(), dy.shape(), params)?;
        let plan = self.ctx.plan(Op::InputGrad, &problem, false)?;
        self.record(&plan, &[(Operand::Dy, dy), (Operand::W, w)])
    }

    /// Records dW from dY and X. `w_shape` is the weight's (K, C/groups, R, S).
    pub fn weight_grad(
        &mut self,
        dy: &GpuTensor,
        x: &GpuTensor,
        w_shape: &[usize],
        params: ConvParams,
    ) -> Result<GpuTensor> {
        let problem = ConvProblem::with_output_grad(x.shape(), w_shape, dy.shape(), params)?;
        let plan = self.ctx.plan(Op::WeightGrad, &problem, false)?;
        self.record_weight_grad(&plan, dy, x)
    }

    /// [`Recorder::weight_grad`] with an explicit split-K count (tests and tuning): every count
    /// gives the same result within rounding, and each repeats bit for bit.
    pub fn weight_grad_with_splits(
        &mut self,
        dy: &GpuTensor,
        x: &GpuTensor,
        w_shape: &[usize],
        params: ConvParams,
        splits: usize,
    ) -> Result<GpuTensor> {
        let problem = ConvProblem::with_output_grad(x.shape(), w_shape, dy.shape(), params)?;
        let plan = self
            .ctx
            .planner
            .plan_weight_grad_with_splits(&problem, splits)?;
        self.record_weight_grad(&plan, dy, x)
    }

    fn record_weight_grad(
        &mut self,
        plan: &OpPlan,
        dy: &GpuTensor,
        x: &GpuTensor,
    ) -> Result<GpuTensor> {
        self.record(plan, &[(Operand::Dy, dy), (Operand::X, x)])
    }

    /// Records db\[k\] = Σ dY\[n,k,·,·\]. `dy` is (N, K, P, Q).
    pub fn bias_grad(&mut self, dy: &GpuTensor) -> Result<GpuTensor> {
        let dims = check_output_grad_shape(dy.shape())?;
        let plan = self.ctx.planner.plan_bias_grad(dims)?;
        self.record(&plan, &[(Operand::Dy, dy)])
    }

    /// Records `plan` with its inputs, returning its (pending) output. Each tensor the plan
    /// reads must be given once, with the shape the plan was made for.
    pub fn record(
        &mut self,
        plan: &OpPlan,
        operands: &[(Operand, &GpuTensor)],
    ) -> Result<GpuTensor> {
        self.record_to(plan, operands, None)
    }

    /// [`Recorder::record`] writing the output into `out` (a tensor of the plan's output shape,
    /// e.g. a view of the caller's buffer from [`GpuTensor::from_buffer`]) instead of a new
    /// buffer; nothing outside `out`'s range is written. `out` must not overlap an input.
    /// Returns the written view of `out`, pending until the recorder is submitted.
    pub fn record_into(
        &mut self,
        plan: &OpPlan,
        operands: &[(Operand, &GpuTensor)],
        out: &GpuTensor,
    ) -> Result<GpuTensor> {
        self.record_to(plan, operands, Some(out))
    }

    fn record_to(
        &mut self,
        plan: &OpPlan,
        operands: &[(Operand, &GpuTensor)],
        into: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        for (op, shape) in &plan.inputs {
            let role = role_of(*op);
            let given: Vec<_> = operands.iter().filter(|(o, _)| o == op).collect();
            let [(_, t)] = given.as_slice() else {
                return Err(Error::Internal(format!(
                    "the plan reads {role} once; {} tensors were given for it",
                    given.len()
                )));
            };
            t.check_usable(self.ctx, role, Some(self.id))?;
            if t.shape() != shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    role,
                    got: t.shape().to_vec(),
                    expected: shape.clone(),
                });
            }
        }
        let output_len = plan.output_len();
        let output_bytes = plan.output_bytes();
        let (output, output_offset) = match into {
            Some(out) => {
                out.check_usable(self.ctx, TensorRole::Output, Some(self.id))?;
                if out.shape() != plan.output_shape.as_slice() {
                    return Err(Error::ShapeMismatch {
                        role: TensorRole::Output,
                        got: out.shape().to_vec(),
                        expected: plan.output_shape.clone(),
                    });
                }
                let range = |t: &GpuTensor| t.offset..t.offset + t.bytes();
                let o = range(out);
                let overlap = operands
                    .iter()
                    .map(|(_, t)| (t, range(t)))
                    .find(|(t, i)| t.buffer == out.buffer && i.start < o.end && o.start < i.end);
                if let Some((_, i)) = overlap {
                    return Err(Error::BadBuffer {
                        role: TensorRole::Output,
                        reason: format!(
                            "its bytes {o:?} overlap an input's {i:?} in the same buffer"
                        ),
                    });
                }
                ((*out.buffer).clone(), out.offset)
            }
            None => (
                self.ctx
                    .storage_buffer(plan.output_what, output_bytes.into())?,
                0,
            ),
        };
        let first_scratch = self.scratch.len();
        for s in &plan.scratch {
            let buffer = self.ctx.take_scratch(s.what, s.bytes)?;
            self.scratch.push(buffer);
        }
        let scratch = &self.scratch[first_scratch..];
        let resolve = |slice: &BufferSlice| -> Result<(wgpu::Buffer, u64, Option<u64>)> {
            match slice.buffer {
                // Sized explicitly: `output` may be a view inside the caller's larger buffer.
                BufferRef::Output => Ok((
                    output.clone(),
                    output_offset + slice.offset,
                    Some(
                        slice
                            .size
                            .unwrap_or(output_bytes.saturating_sub(slice.offset)),
                    ),
                )),
                BufferRef::Zeros => Ok(((*self.ctx.zeros).clone(), 0, None)),
                BufferRef::Scratch(i) => scratch
                    .get(i)
                    .map(|b| (b.clone(), slice.offset, slice.size))
                    .ok_or_else(|| Error::Internal(format!("plan uses scratch {i} it lacks"))),
                BufferRef::Operand(op) => {
                    let (_, t) = operands
                        .iter()
                        .find(|(o, _)| *o == op)
                        .ok_or_else(|| Error::Internal(format!("plan reads {op:?}, not given")))?;
                    let size = slice.size.unwrap_or(t.bytes().saturating_sub(slice.offset));
                    Ok(((*t.buffer).clone(), t.offset + slice.offset, Some(size)))
                }
            }
        };
        let ctx = self.ctx;
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| Error::Internal("recorder already finished".into()))?
            .get();
        let timer = &mut self.timer;
        ctx.scoped("recording", || -> Result<()> {
            for step in &plan.steps {
                match step {
                    Step::Dispatch(d) => record_dispatch(ctx, encoder, timer, d, &resolve)?,
                    Step::Clear(slice) => {
                        let (b, offset, size) = resolve(slice)?;
                        encoder.clear_buffer(&b, offset, size);
                    }
                    Step::Copy { src, dst, bytes } => {
                        let (s, s_off, _) = resolve(src)?;
                        let (d, d_off, _) = resolve(dst)?;
                        encoder.copy_buffer_to_buffer(&s, s_off, &d, d_off, *bytes);
                    }
                }
            }
            Ok(())
        })??;
        let readiness = Readiness::pending(self.id);
        self.outputs.push(readiness.clone());
        let mut tensor = GpuTensor::new(
            self.ctx,
            output,
            plan.output_shape.clone(),
            output_len,
            readiness,
        );
        tensor.offset = output_offset;
        Ok(tensor)
    }

    /// Submits everything recorded (one command buffer) and marks the outputs ready.
    pub fn submit(mut self) -> Result<Submission<'c>> {
        let _serial = self.ctx.serial();
        let encoder = match self.encoder.take() {
            Some(Encoder::Own(e)) => e,
            Some(Encoder::Borrowed(_)) => {
                return Err(Error::Internal(
                    "a recorder on the caller's encoder is finished with Recorder::finish".into(),
                ))
            }
            None => return Err(Error::Internal("recorder already finished".into())),
        };
        let mut encoder = encoder;
        let timing = match self.timer.take() {
            Some(t) if t.passes > 0 && t.passes <= MAX_TIMED_PASSES => {
                let queries = 2 * t.passes;
                let bytes = u64::from(queries) * 8;
                let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
                let resolve = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("gpuconv timestamp resolve"),
                    size: bytes,
                    usage,
                    mapped_at_creation: false,
                });
                let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("gpuconv timestamp read-back"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.resolve_query_set(&t.query_set, 0..queries, &resolve, 0);
                encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
                Some((staging, t.passes))
            }
            _ => None,
        };
        let index = self
            .ctx
            .scoped("submitting", || self.ctx.queue.submit([encoder.finish()]))?;
        for r in self.outputs.drain(..) {
            r.set_ready();
        }
        Ok(Submission {
            ctx: self.ctx,
            index,
            timing,
        })
    }

    /// Ends recording into the caller's encoder and marks the outputs ready: the caller submits
    /// the encoder (before reading any output). On a recorder with its own encoder this submits.
    pub fn finish(mut self) -> Result<()> {
        match self.encoder {
            Some(Encoder::Own(_)) => self.submit().map(|_| ()),
            Some(Encoder::Borrowed(_)) => {
                self.encoder = None;
                for r in self.outputs.drain(..) {
                    r.set_ready();
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for Recorder<'_, '_> {
    fn drop(&mut self) {
        // Outputs of a recorder that was never submitted were never written.
        for r in self.outputs.drain(..) {
            r.set_abandoned();
        }
        // The encoder, query set and scratch the pool does not keep are dropped here, serialised.
        let _serial = self.ctx.serial();
        self.encoder = None;
        self.timer = None;
        self.ctx.return_scratch(self.scratch.drain(..));
    }
}

/// The tensor role an input of a plan plays, for messages.
fn role_of(op: Operand) -> TensorRole {
    match op {
        Operand::X | Operand::A => TensorRole::Input,
        Operand::W | Operand::B => TensorRole::Weight,
        Operand::Bias => TensorRole::Bias,
        Operand::Dy => TensorRole::OutputGrad,
        Operand::Residual => TensorRole::Residual,
        Operand::Pre => TensorRole::PreActivation,
        Operand::Saved => TensorRole::Output,
    }
}

/// Records one dispatch: pipeline, uniform, bind group from the kernel's interface, and a
/// compute pass (timestamped when the recorder times).
fn record_dispatch(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    timer: &mut Option<PassTimer>,
    d: &Dispatch,
    resolve: &impl Fn(&BufferSlice) -> Result<(wgpu::Buffer, u64, Option<u64>)>,
) -> Result<()> {
    let pipeline = ctx.pipeline(d.kernel, d.spec, d.epilogue)?;
    let uniform = ctx.uniform_buffer(d.uniform.bytes());
    let iface = d.kernel.interface();
    let mut buffers = Vec::with_capacity(iface.storage.len());
    for slot in iface.storage {
        let bind = d
            .binds
            .iter()
            .find(|b| b.name == slot.name)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "{} needs {}, the plan binds none",
                    d.kernel.file_name(),
                    slot.name
                ))
            })?;
        buffers.push((slot.index, resolve(&bind.slice)?));
    }
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: uniform.as_entire_binding(),
    }];
    for (index, (buffer, offset, size)) in &buffers {
        entries.push(wgpu::BindGroupEntry {
            binding: *index,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: *offset,
                size: size.and_then(wgpu::BufferSize::new),
            }),
        });
    }
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(d.kernel.file_name()),
        layout: &pipeline.layout,
        entries: &entries,
    });
    let slot = timer.as_mut().and_then(|t| {
        let slot = t.passes;
        t.passes = t.passes.saturating_add(1);
        (slot < MAX_TIMED_PASSES).then(|| (t.query_set.clone(), 2 * slot))
    });
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(d.kernel.file_name()),
        timestamp_writes: slot.as_ref().map(|(query_set, first)| {
            wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(*first),
                end_of_pass_write_index: Some(first + 1),
            }
        }),
    });
    pass.set_pipeline(&pipeline.pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    let [x, y, z] = d.grid;
    pass.dispatch_workgroups(x, y, z);
    Ok(())
}

impl Submission<'_> {
    /// Waits until the submitted work has finished.
    pub fn wait(self) -> Result<()> {
        let _serial = self.ctx.serial();
        self.ctx.device.poll(wgpu::PollType::Wait {
            submission_index: Some(self.index),
            timeout: None,
        })?;
        self.ctx.take_uncaptured("waiting for the GPU")
    }

    /// Waits for the work and returns the summed device time of its compute passes in
    /// milliseconds, from timestamp queries: `None` when the recorder was not timed, the device
    /// has no timestamp queries, or more passes were recorded than can be timed.
    pub fn device_time_ms(self) -> Result<Option<f64>> {
        // Held until the staging buffer is dropped (re-entered by `map_read`).
        let _serial = self.ctx.serial();
        let Some((staging, passes)) = self.timing else {
            self.ctx.wait()?;
            return Ok(None);
        };
        let bytes = pollster::block_on(self.ctx.map_read(&staging))?;
        let raw: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        let ticks: u64 = raw
            .chunks_exact(2)
            .take(passes as usize)
            .map(|pair| pair[1].saturating_sub(pair[0]))
            .sum();
        let ns = ticks as f64 * f64::from(self.ctx.queue.get_timestamp_period());
        Ok(Some(ns / 1e6))
    }
}
