//! The forward epilogue y = act(α·conv + b + β·z) and its backward as plans.
//!
//! Fused: when the forward plan is one dispatch of a forward kernel writing Y (the direct
//! depthwise, pointwise, register and block kernels), that dispatch is specialised with the
//! epilogue (`shaders/shared/epilogue.wgsl`): Y is written once, never read, and the residual is
//! read once. Otherwise (a problem split into tiles) the forward runs without bias and the
//! epilogue follows as its own pass over Y (`epilogue.wgsl`), in binding-sized chunks. The
//! backward is one elementwise pass (`activation_grad.wgsl`).

use crate::epilogue::{check_saved, Activation, Epilogue, Saved};
use crate::error::{Error, Result};
use crate::gpu::kernels::{EpilogueSpec, Kernel, TileSpec};
use crate::gpu::plan::{
    dispatch, f32_bytes, single, u32_of, Bind, BufferRef, BufferSlice, OpPlan, Operand, Path,
    Planner, Step,
};
use crate::gpu::uniform::{ElementwiseUniform, UniformValue};
use crate::problem::{ConvProblem, Op};

/// The elementwise passes' workgroup: 64 invocations, one element each.
pub const ELEMENTWISE_TILE: TileSpec = TileSpec {
    lane_tile: 1,
    uniform_tile: 1,
    lanes: 64,
};

/// A forward with an epilogue: the epilogue and which of its tensors the op reads and writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedForward {
    /// The epilogue.
    pub epilogue: Epilogue,
    /// Whether a bias b is added (operand [`Operand::Bias`]).
    pub bias: bool,
    /// Whether a residual z is added (operand [`Operand::Residual`], Y's shape).
    pub residual: bool,
    /// Whether the pre-activation is written (into operand [`Operand::Pre`], Y's shape).
    pub save_pre: bool,
}

impl FusedForward {
    fn spec(&self) -> EpilogueSpec {
        EpilogueSpec {
            fused: true,
            activation: self.epilogue.activation.code(),
            residual: self.residual,
            save_pre: self.save_pre,
        }
    }

    /// The tensors the epilogue reads or writes besides Y, with Y's shape `y`.
    fn operands(&self, k: usize, y: &[usize]) -> Vec<(Operand, Vec<usize>)> {
        let mut v = Vec::new();
        if self.bias {
            v.push((Operand::Bias, vec![k]));
        }
        if self.residual {
            v.push((Operand::Residual, y.to_vec()));
        }
        if self.save_pre {
            v.push((Operand::Pre, y.to_vec()));
        }
        v
    }
}

impl Planner {
    /// The forward with `fused`'s epilogue, fused into the forward kernel where the plan allows
    /// (see the module docs), else as the forward then the epilogue's own pass.
    pub fn plan_fused_forward(
        &self,
        problem: &ConvProblem,
        fused: &FusedForward,
    ) -> Result<OpPlan> {
        fused.epilogue.validate()?;
        let plan = self.plan(Op::Forward, problem, fused.bias)?;
        match fuse(plan, problem, fused) {
            Some(plan) => {
                self.check(&plan)?;
                Ok(plan)
            }
            None => self.plan_unfused_forward(problem, fused),
        }
    }

    /// The forward without bias, then the epilogue as its own pass over Y (the baseline the
    /// fused plan is measured against, and the plan of problems split into tiles).
    pub fn plan_unfused_forward(
        &self,
        problem: &ConvProblem,
        fused: &FusedForward,
    ) -> Result<OpPlan> {
        fused.epilogue.validate()?;
        let mut plan = self.plan(Op::Forward, problem, false)?;
        let pass = self.plan_epilogue(problem.y_shape(), fused)?;
        plan.inputs.extend(pass.inputs);
        plan.steps.extend(pass.steps);
        self.check(&plan)?;
        Ok(plan)
    }

    /// The epilogue as a pass of its own over a tensor of shape `y_shape` (N, K, P, Q), in
    /// place: record it into the tensor that holds the convolution (without bias), e.g. with
    /// `Recorder::record_into`.
    pub fn plan_epilogue(&self, y_shape: [usize; 4], fused: &FusedForward) -> Result<OpPlan> {
        fused.epilogue.validate()?;
        let [_, k, p, q] = y_shape;
        let plane = super::mul("output plane P·Q", p, q)?;
        let image = super::mul("output image K·P·Q", k, plane)?;
        let [a, b] = fused.epilogue.activation.params();
        let base = ElementwiseUniform {
            plane: u32_of("output plane P·Q", plane)?,
            channels: u32_of("output channels K", k)?,
            has_bias: u32::from(fused.bias),
            alpha: fused.epilogue.alpha,
            beta: fused.epilogue.beta,
            act_a: a,
            act_b: b,
            ..Default::default()
        };
        let len = y_shape
            .iter()
            .try_fold(1usize, |acc, &d| super::mul("output y elements", acc, d))?;
        let bias = if fused.bias {
            BufferRef::Operand(Operand::Bias)
        } else {
            BufferRef::Zeros
        };
        let per_element: &[(&'static str, Option<BufferRef>)] = &[
            (
                "residual",
                fused
                    .residual
                    .then_some(BufferRef::Operand(Operand::Residual)),
            ),
            ("y", Some(BufferRef::Output)),
            (
                "pre",
                Some(if fused.save_pre {
                    BufferRef::Operand(Operand::Pre)
                } else {
                    BufferRef::Output
                }),
            ),
        ];
        let mut steps = Vec::new();
        for (start, count) in self.element_chunks(len)? {
            // Where the chunk's first element sits in its image: the bias channel's origin.
            let first = start % image;
            let uniform = ElementwiseUniform {
                len: u32_of("epilogue chunk", count)?,
                first: u32_of("epilogue chunk origin", first)?,
                ..base
            };
            u32_of("epilogue chunk end", first + count)?;
            let offset = f32_bytes("epilogue chunk offset", start)?;
            let size = f32_bytes("epilogue chunk", count)?;
            let mut binds = vec![Bind {
                name: "bias",
                slice: BufferSlice::whole(bias),
            }];
            for &(name, buffer) in per_element {
                binds.push(Bind {
                    name,
                    slice: match buffer {
                        Some(buffer) => BufferSlice {
                            buffer,
                            offset,
                            size: Some(size),
                        },
                        None => BufferSlice::whole(BufferRef::Zeros),
                    },
                });
            }
            steps.push(elementwise(
                self,
                Kernel::Epilogue,
                fused.spec(),
                uniform,
                binds,
                count,
            )?);
        }
        let plan = single(
            Path::Elementwise(ELEMENTWISE_TILE),
            fused.operands(k, &y_shape),
            y_shape.to_vec(),
            "output y",
            steps,
        );
        self.check(&plan)?;
        Ok(plan)
    }

    /// The epilogue's backward over `len` elements: `scale`·dy·act′, act′ from the saved
    /// tensor (operand [`Operand::Saved`]) as `saved` says; dy is operand [`Operand::Dy`] and
    /// both have shape `shape`, as has the output.
    pub fn plan_activation_grad(
        &self,
        shape: &[usize],
        activation: Activation,
        saved: Saved,
        scale: f32,
    ) -> Result<OpPlan> {
        activation.validate()?;
        check_saved(activation, saved)?;
        if !scale.is_finite() {
            return Err(Error::Epilogue {
                reason: format!("gradient scale {scale} is not finite"),
            });
        }
        let len = shape.iter().try_fold(1usize, |acc, &d| {
            super::mul("output gradient elements", acc, d)
        })?;
        let [a, b] = activation.params();
        let spec = EpilogueSpec {
            fused: false,
            activation: activation.code(),
            residual: false,
            save_pre: false,
        };
        let mut steps = Vec::new();
        for (start, count) in self.element_chunks(len)? {
            let offset = f32_bytes("gradient chunk offset", start)?;
            let size = Some(f32_bytes("gradient chunk", count)?);
            let slice = |buffer| BufferSlice {
                buffer,
                offset,
                size,
            };
            let uniform = ElementwiseUniform {
                len: u32_of("gradient chunk", count)?,
                from_output: u32::from(saved == Saved::Output),
                alpha: scale,
                act_a: a,
                act_b: b,
                ..Default::default()
            };
            let binds = vec![
                Bind {
                    name: "dy",
                    slice: slice(BufferRef::Operand(Operand::Dy)),
                },
                Bind {
                    name: "saved",
                    slice: slice(BufferRef::Operand(Operand::Saved)),
                },
                Bind {
                    name: "out",
                    slice: slice(BufferRef::Output),
                },
            ];
            steps.push(elementwise(
                self,
                Kernel::ActivationGrad,
                spec,
                uniform,
                binds,
                count,
            )?);
        }
        let plan = single(
            Path::Elementwise(ELEMENTWISE_TILE),
            vec![
                (Operand::Dy, shape.to_vec()),
                (Operand::Saved, shape.to_vec()),
            ],
            shape.to_vec(),
            "epilogue gradient",
            steps,
        );
        self.check(&plan)?;
        Ok(plan)
    }

    /// `len` elements as (start, count) chunks that each fit one binding and start at an
    /// aligned offset.
    fn element_chunks(&self, len: usize) -> Result<Vec<(usize, usize)>> {
        let align = u64::from(self.limits.min_storage_buffer_offset_alignment).max(4);
        let binding = self.limits.max_storage_buffer_binding_size;
        let grid = u64::from(self.limits.max_compute_workgroups_per_dimension).pow(3);
        let by_grid = grid.saturating_mul(u64::from(ELEMENTWISE_TILE.lanes));
        // Whole alignment units within one binding and u32 indices.
        let bytes = binding
            .min(u64::from(u32::MAX))
            .min(by_grid.saturating_mul(4))
            / align
            * align;
        let chunk = usize::try_from(bytes / 4).unwrap_or(usize::MAX);
        if chunk == 0 {
            return Err(Error::LimitTooSmall {
                what: "the epilogue's elementwise pass".into(),
                limit_name: "max_storage_buffer_binding_size",
                limit: binding,
                needed: align,
            });
        }
        Ok((0..len)
            .step_by(chunk)
            .map(|start| (start, chunk.min(len - start)))
            .collect())
    }
}

/// An elementwise dispatch over `count` elements.
fn elementwise(
    planner: &Planner,
    kernel: Kernel,
    epilogue: EpilogueSpec,
    uniform: ElementwiseUniform,
    binds: Vec<Bind>,
    count: usize,
) -> Result<Step> {
    let workgroups = count.div_ceil(ELEMENTWISE_TILE.lanes as usize);
    let Step::Dispatch(mut d) = dispatch(
        planner,
        kernel,
        ELEMENTWISE_TILE,
        UniformValue::Elementwise(uniform),
        &[],
        workgroups,
    )?
    else {
        return Err(Error::Internal("dispatch() made no dispatch".into()));
    };
    d.epilogue = epilogue;
    d.binds = binds;
    Ok(Step::Dispatch(d))
}

/// `plan` (a whole forward plan) with the epilogue fused into its one forward dispatch, or
/// `None` when the plan is not one such dispatch.
fn fuse(mut plan: OpPlan, problem: &ConvProblem, fused: &FusedForward) -> Option<OpPlan> {
    let [Step::Dispatch(d)] = plan.steps.as_mut_slice() else {
        return None;
    };
    let forward_kernel = matches!(
        d.kernel,
        Kernel::Forward | Kernel::BlockForward | Kernel::Pointwise | Kernel::Depthwise
    );
    let writes_y = d
        .binds
        .iter()
        .any(|b| b.slice == BufferSlice::whole(BufferRef::Output));
    if !forward_kernel || !writes_y || !plan.scratch.is_empty() {
        return None;
    }
    let e = fused.epilogue;
    let [a, b] = e.activation.params();
    match &mut d.uniform {
        UniformValue::Conv(u) => (u.alpha, u.beta, u.act_a, u.act_b) = (e.alpha, e.beta, a, b),
        UniformValue::Pointwise(u) => (u.alpha, u.beta, u.act_a, u.act_b) = (e.alpha, e.beta, a, b),
        UniformValue::Depthwise(u) => (u.alpha, u.beta, u.act_a, u.act_b) = (e.alpha, e.beta, a, b),
        _ => return None,
    }
    d.epilogue = fused.spec();
    for bind in &mut d.binds {
        match bind.name {
            "residual" if fused.residual => {
                bind.slice = BufferSlice::whole(BufferRef::Operand(Operand::Residual))
            }
            "pre" if fused.save_pre => {
                bind.slice = BufferSlice::whole(BufferRef::Operand(Operand::Pre))
            }
            _ => {}
        }
    }
    plan.inputs = super::inputs(Op::Forward, problem, false);
    plan.inputs
        .extend(fused.operands(problem.k, problem.y_shape().as_slice()));
    Some(plan)
}
