//! Problems whose tensors (or scratch) exceed one storage binding run in tiles: each tile is a
//! smaller problem planned as usual, with its inputs bound as aligned sub-ranges of the
//! caller's tensors or copied into scratch, and its output bound in place or copied (forward,
//! input gradient) or added (weight and bias gradients, in a fixed order, so results still
//! repeat bit for bit) into the op's output.
//!
//! The split, in order of preference:
//! - **batch chunks**: the largest run of whole images whose sub-problem fits;
//! - **row bands**, one image at a time: output rows of the forward and weight gradient (each
//!   band's input rows, halo included, are copied into scratch, rows outside the input written
//!   as zeros, which is what padding multiplies by), input-gradient rows of the input gradient
//!   (each band reads the dY rows that reach it);
//! - for the bias gradient, **channel chunks** of one image, then **spans** of one plane.
//!
//! Tensors that cannot be split this way — the weights, the weight gradient, the bias, a single
//! input row band, a single dY plane — must fit one binding; otherwise the error names the
//! tensor, its size and the limit.

use crate::error::{Error, Result, TensorRole};
use crate::gpu::kernels::Kernel;
use crate::gpu::plan::profile::reduce_spec;
use crate::gpu::plan::{
    bias_grad, dispatch, f32_bytes, mul, u32_of, BufferRef, BufferSlice, OpPlan, Operand, Path,
    Planner, ScratchBuffer, Step, TileSplit,
};
use crate::gpu::uniform::{ReduceUniform, UniformValue};
use crate::problem::{ConvParams, ConvProblem, Op};

/// Bytes of the zeros buffer bound for absent inputs.
pub(crate) const ZEROS_BYTES: u64 = 256;

/// Bytes one binding of `slice` in `plan` covers.
fn binding_bytes(plan: &OpPlan, slice: &BufferSlice) -> u64 {
    let whole = match slice.buffer {
        BufferRef::Operand(op) => plan.input_bytes(op),
        BufferRef::Output => plan.output_bytes(),
        BufferRef::Scratch(i) => plan.scratch.get(i).map_or(0, |s| s.bytes),
        BufferRef::Zeros => ZEROS_BYTES,
    };
    slice
        .size
        .unwrap_or_else(|| whole.saturating_sub(slice.offset))
}

/// Whether every binding `plan` makes fits the device's storage-binding limit, every scratch
/// buffer its buffer limit, and every kernel's loops the driver's loop budget.
pub fn fits(plan: &OpPlan, planner: &Planner) -> bool {
    let limit = planner.limits.max_storage_buffer_binding_size;
    plan.dispatches().all(|d| {
        d.binds
            .iter()
            .all(|b| binding_bytes(plan, &b.slice) <= limit)
            && d.loop_trips() <= planner.max_loop_trips
    }) && plan
        .scratch
        .iter()
        .all(|s| s.bytes <= planner.limits.max_buffer_size)
}

/// A tiled plan under construction: scratch slots reused from tile to tile (the tiles run one
/// after another, so each slot holds one tile's data at a time), and the steps so far.
struct Builder<'p> {
    planner: &'p Planner,
    scratch: Vec<ScratchBuffer>,
    slots: Vec<&'static str>,
    steps: Vec<Step>,
}

impl<'p> Builder<'p> {
    fn new(planner: &'p Planner) -> Self {
        Builder {
            planner,
            scratch: Vec::new(),
            slots: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// The scratch slot named `what`, grown to at least `bytes`.
    fn slot(&mut self, what: &'static str, bytes: u64) -> BufferRef {
        let i = match self.slots.iter().position(|s| *s == what) {
            Some(i) => i,
            None => {
                self.slots.push(what);
                self.scratch.push(ScratchBuffer { what, bytes: 4 });
                self.slots.len() - 1
            }
        };
        self.scratch[i].bytes = self.scratch[i].bytes.max(bytes.max(4));
        BufferRef::Scratch(i)
    }

    /// Whether a binding may start at `offset` bytes.
    fn aligned(&self, offset: u64) -> bool {
        offset.is_multiple_of(u64::from(
            self.planner.limits.min_storage_buffer_offset_alignment,
        ))
    }

    fn copy(&mut self, src: BufferSlice, dst: BufferSlice, bytes: u64) {
        if bytes > 0 {
            self.steps.push(Step::Copy { src, dst, bytes });
        }
    }

    /// Appends `inner`'s steps with its buffers mapped: an input by `input`, the output to
    /// `output`, its scratch to slots of its own.
    fn append(
        &mut self,
        inner: &OpPlan,
        input: impl Fn(Operand) -> BufferSlice,
        output: BufferSlice,
    ) {
        let scratch: Vec<BufferRef> = inner
            .scratch
            .iter()
            .map(|s| self.slot(s.what, s.bytes))
            .collect();
        let map = |slice: BufferSlice| -> BufferSlice {
            let base = match slice.buffer {
                BufferRef::Operand(op) => input(op),
                BufferRef::Output => output,
                BufferRef::Scratch(i) => BufferSlice::whole(scratch[i]),
                BufferRef::Zeros => BufferSlice::whole(BufferRef::Zeros),
            };
            BufferSlice {
                buffer: base.buffer,
                offset: base.offset + slice.offset,
                size: slice
                    .size
                    .or_else(|| base.size.map(|s| s.saturating_sub(slice.offset))),
            }
        };
        for step in &inner.steps {
            self.steps.push(match step {
                Step::Dispatch(d) => {
                    let mut d = d.clone();
                    for b in &mut d.binds {
                        b.slice = map(b.slice);
                    }
                    Step::Dispatch(d)
                }
                Step::Clear(slice) => Step::Clear(map(*slice)),
                Step::Copy { src, dst, bytes } => Step::Copy {
                    src: map(*src),
                    dst: map(*dst),
                    bytes: *bytes,
                },
            });
        }
    }

    /// Adds `len` elements of `src` onto the output from element `at` on, after the tile that
    /// computed them.
    fn accumulate(&mut self, src: BufferRef, len: usize, at: usize) -> Result<()> {
        let reduce = reduce_spec();
        let step = dispatch(
            self.planner,
            Kernel::ReduceSplits,
            reduce,
            UniformValue::Reduce(ReduceUniform {
                splits: 1,
                out_len: u32_of("accumulated elements", len)?,
                accumulate: 1,
                out_offset: u32_of("accumulation offset", at)?,
            }),
            &[("partial", src), ("out", BufferRef::Output)],
            len.div_ceil(reduce.lanes as usize),
        )?;
        self.steps.push(step);
        Ok(())
    }

    fn finish(
        self,
        problem_inputs: Vec<(Operand, Vec<usize>)>,
        output_shape: Vec<usize>,
        output_what: &'static str,
        split: TileSplit,
        tiles: usize,
        inner: Path,
    ) -> OpPlan {
        OpPlan {
            path: Path::Tiled {
                split,
                tiles,
                inner: Box::new(inner),
            },
            inputs: problem_inputs,
            output_shape,
            output_what,
            scratch: self.scratch,
            steps: self.steps,
        }
    }
}

/// The tensor that is too large for one binding, as an error.
fn unsplittable(planner: &Planner, role: TensorRole, bytes: u64) -> Error {
    Error::BufferTooLarge {
        what: role.to_string(),
        bytes: bytes.into(),
        limit: planner.limits.max_storage_buffer_binding_size,
        limit_name: "storage binding (max_storage_buffer_binding_size), and it cannot be split",
        adapter: String::from("this device"),
    }
}

/// `problem` with `n` images.
fn with_batch(problem: &ConvProblem, n: usize) -> Result<ConvProblem> {
    ConvProblem::new(
        &[n, problem.c, problem.h, problem.w],
        &problem.w_shape(),
        problem.params,
    )
}

/// One image of `problem` restricted to input rows [a, b) with no top or bottom padding (the
/// rows outside the input are materialised as zeros by the caller).
fn band(problem: &ConvProblem, rows: usize) -> Result<ConvProblem> {
    let [_, left, _, right] = problem.params.padding;
    let params = ConvParams {
        padding: [0, left, 0, right],
        ..problem.params
    };
    ConvProblem::new(&[1, problem.c, rows, problem.w], &problem.w_shape(), params)
}

/// The largest `v` in 1..=max for which `ok(v)` holds (it holds for all smaller ones too), or
/// `None` when not even 1 does.
fn largest(max: usize, ok: impl Fn(usize) -> Result<bool>) -> Result<Option<usize>> {
    if max == 0 || !ok(1)? {
        return Ok(None);
    }
    let (mut lo, mut hi) = (1, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(Some(lo))
}

/// The tiled plan of `op` on `problem` (the forward, input and weight gradients).
pub fn plan(planner: &Planner, op: Op, problem: &ConvProblem, bias: bool) -> Result<OpPlan> {
    let limit = planner.limits.max_storage_buffer_binding_size;
    let whole = |role: TensorRole, len: usize| -> Result<()> {
        let bytes = f32_bytes("tensor", len)?;
        if bytes > limit {
            return Err(unsplittable(planner, role, bytes));
        }
        Ok(())
    };
    match op {
        Op::Forward => {
            whole(TensorRole::Weight, problem.w_len())?;
            whole(TensorRole::Bias, problem.k)?;
        }
        Op::InputGrad => whole(TensorRole::Weight, problem.w_len())?,
        Op::WeightGrad => whole(TensorRole::WeightGrad, problem.w_len())?,
        Op::BiasGrad => return plan_bias_grad(planner, problem.y_shape()),
    }
    let fits_batch = |n: usize| -> Result<bool> {
        let sub = with_batch(problem, n)?;
        Ok(fits(&planner.plan_whole(op, &sub, bias)?, planner))
    };
    if let Some(nb) = largest(problem.n.saturating_sub(1), fits_batch)? {
        return batch_chunks(planner, op, problem, bias, nb);
    }
    row_bands(planner, op, problem, bias)
}

/// Byte range of images [n0, n0 + count) of a tensor with `per_image` elements each.
fn images(per_image: usize, n0: usize, count: usize) -> (u64, u64) {
    let bytes = per_image as u64 * 4;
    (n0 as u64 * bytes, count as u64 * bytes)
}

fn batch_chunks(
    planner: &Planner,
    op: Op,
    problem: &ConvProblem,
    bias: bool,
    nb: usize,
) -> Result<OpPlan> {
    let mut b = Builder::new(planner);
    let (chw, kpq) = (
        problem.c * problem.h * problem.w,
        problem.k * problem.p * problem.q,
    );
    let out_image = match op {
        Op::InputGrad => chw,
        _ => kpq,
    };
    let mut first_path = None;
    let mut tiles = 0;
    for n0 in (0..problem.n).step_by(nb) {
        let count = nb.min(problem.n - n0);
        let sub = with_batch(problem, count)?;
        let inner = planner.plan_whole(op, &sub, bias)?;
        first_path.get_or_insert_with(|| inner.path.clone());
        tiles += 1;
        // Each image-shaped input: an aligned sub-range of the caller's tensor, or a copy.
        let chunk_input = |b: &mut Builder, operand: Operand, per_image: usize| {
            let (offset, size) = images(per_image, n0, count);
            let src = BufferSlice {
                buffer: BufferRef::Operand(operand),
                offset,
                size: Some(size),
            };
            if b.aligned(offset) {
                return src;
            }
            let what = match operand {
                Operand::X => "tile of input x",
                _ => "tile of output gradient dy",
            };
            let slot = b.slot(what, size);
            b.copy(src, BufferSlice::whole(slot), size);
            BufferSlice::whole(slot)
        };
        // Only the inputs this op reads.
        let x = (op != Op::InputGrad).then(|| chunk_input(&mut b, Operand::X, chw));
        let dy = (op != Op::Forward).then(|| chunk_input(&mut b, Operand::Dy, kpq));
        let input = |operand: Operand| match (operand, x, dy) {
            (Operand::X, Some(x), _) => x,
            (Operand::Dy, _, Some(dy)) => dy,
            (other, _, _) => BufferSlice::whole(BufferRef::Operand(other)),
        };
        match op {
            Op::Forward | Op::InputGrad => {
                let (offset, size) = images(out_image, n0, count);
                let dst = BufferSlice {
                    buffer: BufferRef::Output,
                    offset,
                    size: Some(size),
                };
                if b.aligned(offset) {
                    b.append(&inner, input, dst);
                } else {
                    let slot = b.slot("tile of the output", size);
                    b.append(&inner, input, BufferSlice::whole(slot));
                    b.copy(BufferSlice::whole(slot), dst, size);
                }
            }
            _ => {
                // The weight gradient: the first tile writes dW, the others add to it.
                let out = BufferSlice::whole(BufferRef::Output);
                if n0 == 0 {
                    b.append(&inner, input, out);
                } else {
                    let slot = b.slot("tile's weight gradient", inner.output_bytes());
                    b.append(&inner, input, BufferSlice::whole(slot));
                    b.accumulate(slot, problem.w_len(), 0)?;
                }
            }
        }
    }
    let (shape, what) = output_of(op, problem);
    Ok(b.finish(
        super::inputs(op, problem, bias),
        shape,
        what,
        TileSplit::Batch,
        tiles,
        first_path.unwrap_or(Path::BiasGradTree),
    ))
}

fn output_of(op: Op, problem: &ConvProblem) -> (Vec<usize>, &'static str) {
    match op {
        Op::Forward => (problem.y_shape().to_vec(), "output y"),
        Op::InputGrad => (problem.x_shape().to_vec(), "input gradient dx"),
        Op::WeightGrad => (problem.w_shape().to_vec(), "weight gradient dw"),
        Op::BiasGrad => (vec![problem.k], "bias gradient db"),
    }
}

/// Input rows [a, b) (a may be negative, b past H) that output rows [p0, p1) read.
fn input_window(problem: &ConvProblem, p0: usize, p1: usize) -> (i128, i128) {
    let [sh, _] = problem.params.stride;
    let [dh, _] = problem.params.dilation;
    let top = problem.params.padding[0] as i128;
    let a = (p0 * sh) as i128 - top;
    let b = ((p1 - 1) * sh + (problem.r - 1) * dh) as i128 - top + 1;
    (a, b)
}

/// Copies rows [a, b) of every channel plane of `tensor`'s image `n` (planes of `rows` × `cols`,
/// `planes` per image) into `slot` as planes of (b − a) rows, zeros outside [0, rows).
#[allow(clippy::too_many_arguments)]
fn gather_rows(
    b: &mut Builder,
    tensor: Operand,
    n: usize,
    planes: usize,
    rows: usize,
    cols: usize,
    (a, end): (i128, i128),
    slot: BufferRef,
) {
    let height = (end - a) as u64;
    let lo = a.max(0);
    let hi = end.min(rows as i128);
    if lo > a || hi < end {
        b.steps.push(Step::Clear(BufferSlice::whole(slot)));
    }
    if hi <= lo {
        return;
    }
    let row_bytes = cols as u64 * 4;
    for c in 0..planes {
        let plane = (n * planes + c) as u64 * rows as u64 * row_bytes;
        b.copy(
            BufferSlice {
                buffer: BufferRef::Operand(tensor),
                offset: plane + lo as u64 * row_bytes,
                size: None,
            },
            BufferSlice {
                buffer: slot,
                offset: (c as u64 * height + (lo - a) as u64) * row_bytes,
                size: None,
            },
            (hi - lo) as u64 * row_bytes,
        );
    }
}

fn row_bands(planner: &Planner, op: Op, problem: &ConvProblem, bias: bool) -> Result<OpPlan> {
    // Rows the band tiles: output rows for the forward and weight gradient, dX rows for the
    // input gradient.
    let total = if op == Op::InputGrad {
        problem.h
    } else {
        problem.p
    };
    // The largest band sub-problem `rows` rows make anywhere in the image.
    let band_problem = |rows: usize| -> Result<ConvProblem> {
        match op {
            Op::InputGrad => {
                // A band of dX rows [h0, h0 + rows) reads at most ⌊(rows − 1 + reach)/sh⌋ + 2 dY
                // rows, wherever it starts.
                let [sh, _] = problem.params.stride;
                let reach = (problem.r - 1) * problem.params.dilation[0];
                let dy_rows = ((rows - 1 + reach) / sh + 2).min(problem.p);
                let (a, end) = input_window(problem, 0, dy_rows);
                band(problem, (end - a) as usize)
            }
            _ => {
                let (a, end) = input_window(problem, 0, rows);
                band(problem, (end - a) as usize)
            }
        }
    };
    let fits_rows = |rows: usize| -> Result<bool> {
        let sub = band_problem(rows)?;
        Ok(fits(&planner.plan_whole(op, &sub, bias)?, planner))
    };
    let Some(rows) = largest(total, fits_rows)? else {
        let role = match op {
            Op::InputGrad => TensorRole::OutputGrad,
            _ => TensorRole::Input,
        };
        let sub = band_problem(1)?;
        let bytes = f32_bytes("one row band", sub.x_len().max(sub.y_len()))?;
        return Err(unsplittable(planner, role, bytes));
    };
    let mut b = Builder::new(planner);
    let mut first_path = None;
    let mut tiles = 0;
    let (c, k, h, w, p, q) = (
        problem.c, problem.k, problem.h, problem.w, problem.p, problem.q,
    );
    if op == Op::InputGrad {
        // Rows that no band writes (no dY row reaches them) must read zero.
        b.steps
            .push(Step::Clear(BufferSlice::whole(BufferRef::Output)));
    }
    for n in 0..problem.n {
        for r0 in (0..total).step_by(rows) {
            let r1 = (r0 + rows).min(total);
            match op {
                Op::InputGrad => {
                    let (pa, pb) = dy_rows(problem, r0, r1);
                    if pb <= pa {
                        continue;
                    }
                    let (a, end) = input_window(problem, pa, pb);
                    let sub = band(problem, (end - a) as usize)?;
                    let inner = planner.plan_whole(op, &sub, bias)?;
                    first_path.get_or_insert_with(|| inner.path.clone());
                    tiles += 1;
                    // dY rows [pa, pb) of every channel.
                    let dy_slot = b.slot("band of output gradient dy", sub.y_len() as u64 * 4);
                    gather_rows(
                        &mut b,
                        Operand::Dy,
                        n,
                        k,
                        p,
                        q,
                        (pa as i128, pb as i128),
                        dy_slot,
                    );
                    let out = b.slot("band of input gradient dx", sub.x_len() as u64 * 4);
                    b.append(
                        &inner,
                        |o| match o {
                            Operand::Dy => BufferSlice::whole(dy_slot),
                            other => BufferSlice::whole(BufferRef::Operand(other)),
                        },
                        BufferSlice::whole(out),
                    );
                    // Its rows [r0, r1) into dX: the band starts at or above r0 (a ≤ r0); rows
                    // past its end no dY row reaches, and they stay cleared.
                    let height = (end - a) as u64;
                    let row_bytes = w as u64 * 4;
                    let last = (r1 as i128).min(end);
                    for ch in 0..c {
                        b.copy(
                            BufferSlice {
                                buffer: out,
                                offset: (ch as u64 * height + (r0 as i128 - a) as u64) * row_bytes,
                                size: None,
                            },
                            BufferSlice {
                                buffer: BufferRef::Output,
                                offset: ((n * c + ch) * h + r0) as u64 * row_bytes,
                                size: None,
                            },
                            (last - r0 as i128).max(0) as u64 * row_bytes,
                        );
                    }
                }
                _ => {
                    let (a, end) = input_window(problem, r0, r1);
                    let sub = band(problem, (end - a) as usize)?;
                    let inner = planner.plan_whole(op, &sub, bias)?;
                    first_path.get_or_insert_with(|| inner.path.clone());
                    tiles += 1;
                    let x_slot = b.slot("band of input x", sub.x_len() as u64 * 4);
                    gather_rows(&mut b, Operand::X, n, c, h, w, (a, end), x_slot);
                    let row_bytes = q as u64 * 4;
                    let band_rows = (r1 - r0) as u64;
                    if op == Op::Forward {
                        let out = b.slot("band of output y", sub.y_len() as u64 * 4);
                        b.append(
                            &inner,
                            |o| match o {
                                Operand::X => BufferSlice::whole(x_slot),
                                other => BufferSlice::whole(BufferRef::Operand(other)),
                            },
                            BufferSlice::whole(out),
                        );
                        for kk in 0..k {
                            b.copy(
                                BufferSlice {
                                    buffer: out,
                                    offset: kk as u64 * band_rows * row_bytes,
                                    size: None,
                                },
                                BufferSlice {
                                    buffer: BufferRef::Output,
                                    offset: ((n * k + kk) * p + r0) as u64 * row_bytes,
                                    size: None,
                                },
                                band_rows * row_bytes,
                            );
                        }
                    } else {
                        let dy_slot = b.slot("band of output gradient dy", sub.y_len() as u64 * 4);
                        gather_rows(
                            &mut b,
                            Operand::Dy,
                            n,
                            k,
                            p,
                            q,
                            (r0 as i128, r1 as i128),
                            dy_slot,
                        );
                        let input = |o| match o {
                            Operand::X => BufferSlice::whole(x_slot),
                            Operand::Dy => BufferSlice::whole(dy_slot),
                            other => BufferSlice::whole(BufferRef::Operand(other)),
                        };
                        let out = BufferSlice::whole(BufferRef::Output);
                        if tiles == 1 {
                            b.append(&inner, input, out);
                        } else {
                            let slot = b.slot("tile's weight gradient", inner.output_bytes());
                            b.append(&inner, input, BufferSlice::whole(slot));
                            b.accumulate(slot, problem.w_len(), 0)?;
                        }
                    }
                }
            }
        }
    }
    let (shape, what) = output_of(op, problem);
    Ok(b.finish(
        super::inputs(op, problem, bias),
        shape,
        what,
        TileSplit::Rows,
        tiles,
        first_path.unwrap_or(Path::BiasGradTree),
    ))
}

/// The dY rows [pa, pb) that reach input-gradient rows [h0, h1) (pb ≤ pa when none does).
fn dy_rows(problem: &ConvProblem, h0: usize, h1: usize) -> (usize, usize) {
    let [sh, _] = problem.params.stride;
    let [dh, _] = problem.params.dilation;
    let top = problem.params.padding[0];
    let reach = (problem.r - 1) * dh;
    let pa = (h0 + top).saturating_sub(reach) / sh;
    let pb = ((h1 - 1 + top) / sh + 1).min(problem.p);
    (pa.min(problem.p), pb)
}

/// The tiled bias gradient of a dY of shape `[n, k, p, q]`: batch chunks when one image fits a
/// binding, else runs of whole channel planes of one image, else spans of one plane; each
/// tile's sums are added onto db in a fixed order, so results still repeat bit for bit.
pub fn plan_bias_grad(planner: &Planner, [n, k, p, q]: [usize; 4]) -> Result<OpPlan> {
    let limit = planner.limits.max_storage_buffer_binding_size;
    let fits_dims =
        |dims: [usize; 4]| -> Result<bool> { Ok(fits(&bias_grad::plan(planner, dims)?, planner)) };
    let db_bytes = f32_bytes("bias gradient db", k)?;
    if db_bytes > limit {
        return Err(unsplittable(planner, TensorRole::BiasGrad, db_bytes));
    }
    let plane = mul("bias-gradient plane", p, q)?;
    let image = mul("bias-gradient image", k, plane)?;
    let mut b = Builder::new(planner);
    // Every tile adds onto db, which starts at zero.
    b.steps
        .push(Step::Clear(BufferSlice::whole(BufferRef::Output)));
    let mut tiles = 0;
    // Sums `len` elements of dY from element `start` on, as `dims`, into db[k0..].
    let mut tile = |b: &mut Builder, start: usize, dims: [usize; 4], k0: usize| -> Result<()> {
        let inner = bias_grad::plan(planner, dims)?;
        let len = mul("bias-gradient tile", dims[0], image_len(dims))?;
        let offset = f32_bytes("bias-gradient tile offset", start)?;
        let size = f32_bytes("bias-gradient tile", len)?;
        let src = BufferSlice {
            buffer: BufferRef::Operand(Operand::Dy),
            offset,
            size: Some(size),
        };
        let dy = if b.aligned(offset) {
            src
        } else {
            let slot = b.slot("tile of output gradient dy", size);
            b.copy(src, BufferSlice::whole(slot), size);
            BufferSlice::whole(slot)
        };
        let slot = b.slot("tile's bias gradient", inner.output_bytes());
        b.append(&inner, |_| dy, BufferSlice::whole(slot));
        b.accumulate(slot, dims[1], k0)?;
        tiles += 1;
        Ok(())
    };
    let split = if let Some(nb) = largest(n, |nb| fits_dims([nb, k, p, q]))? {
        for n0 in (0..n).step_by(nb) {
            let count = nb.min(n - n0);
            tile(&mut b, n0 * image, [count, k, p, q], 0)?;
        }
        TileSplit::Batch
    } else if let Some(kc) = largest(k, |kc| fits_dims([1, kc, p, q]))? {
        for img in 0..n {
            for k0 in (0..k).step_by(kc) {
                let count = kc.min(k - k0);
                tile(&mut b, img * image + k0 * plane, [1, count, p, q], k0)?;
            }
        }
        TileSplit::Channels
    } else {
        // Spans of one plane: whole multiples of the offset alignment, so most bind in place.
        let align = usize::try_from(planner.limits.min_storage_buffer_offset_alignment / 4)
            .unwrap_or(1)
            .max(1);
        let Some(span) = largest(plane / align + 1, |s| {
            fits_dims([1, 1, 1, (s * align).min(plane)])
        })?
        .map(|s| (s * align).min(plane)) else {
            return Err(unsplittable(planner, TensorRole::OutputGrad, db_bytes));
        };
        for img in 0..n {
            for kk in 0..k {
                for s0 in (0..plane).step_by(span) {
                    let len = span.min(plane - s0);
                    tile(&mut b, img * image + kk * plane + s0, [1, 1, 1, len], kk)?;
                }
            }
        }
        TileSplit::Spans
    };
    Ok(b.finish(
        vec![(Operand::Dy, vec![n, k, p, q])],
        vec![k],
        "bias gradient db",
        split,
        tiles,
        Path::BiasGradTree,
    ))
}

/// Elements of one image of `dims`.
fn image_len([_, k, p, q]: [usize; 4]) -> usize {
    k * p * q
}
