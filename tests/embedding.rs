//! gpuconv inside an application's own GPU program: the embedding example runs and agrees with
//! the host-slice ops; tensors over the caller's buffers are checked (usage, alignment, range,
//! device) with typed errors; ops write into the caller's buffer without touching a byte outside
//! the output's range, also when the op runs in tiles past one storage binding.

mod common;

#[path = "../examples/embed.rs"]
mod embed;

use common::*;
use gpuconv::cpu::reference;
use gpuconv::gpu::plan::{Operand, Path as PlanPath};
use gpuconv::gpu::{ContextOptions, GpuTensor, LimitsChoice};
use gpuconv::wgpu;
use gpuconv::{ConvParams, ConvProblem, Error, GpuContext, Op};

/// The value written around the output's range; it must survive.
const GUARD: f32 = 12345.0;

#[test]
fn the_embedding_example_matches_the_host_slice_ops() {
    let diff = embed::run().expect("the embedding example runs");
    assert!(diff < 1e-4, "largest difference {diff:e}");
}

fn storage_buffer(ctx: &GpuContext, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test buffer"),
        size: bytes,
        usage,
        mapped_at_creation: false,
    })
}

fn rw() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

#[test]
fn a_tensor_over_the_callers_buffer_is_checked() {
    let ctx = gpu().expect("GPU context");
    let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment);
    let shape = [1usize, 2, 4, 4];
    let bytes = 32 * 4;

    let no_storage = storage_buffer(
        ctx,
        bytes,
        wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    );
    let e = GpuTensor::from_buffer(ctx, &no_storage, 0, &shape).unwrap_err();
    assert!(matches!(e, Error::BadBuffer { .. }), "{e}");
    assert!(e.to_string().contains("STORAGE"), "{e}");

    let buffer = storage_buffer(ctx, bytes + 2 * align, rw());
    let e = GpuTensor::from_buffer(ctx, &buffer, 4, &shape).unwrap_err();
    assert!(matches!(e, Error::BadBuffer { .. }), "{e}");
    assert!(e.to_string().contains("offset 4"), "{e}");

    let e = GpuTensor::from_buffer(ctx, &buffer, 2 * align + align, &shape).unwrap_err();
    assert!(matches!(e, Error::BadBuffer { .. }), "{e}");
    assert!(e.to_string().contains("do not fit"), "{e}");

    // An empty view is a tensor like an empty upload; ops refuse it with the shape's error.
    let empty = GpuTensor::from_buffer(ctx, &buffer, 0, &[1, 2, 0, 4]).unwrap();
    assert!(empty.is_empty());
    let w = ctx.upload(&[0.5; 18], &[1, 2, 3, 3]).unwrap();
    let e = ctx
        .forward(&empty, &w, None, ConvParams::default())
        .unwrap_err();
    assert!(!matches!(e, Error::Internal(_)), "{e}");

    let fine = GpuTensor::from_buffer(ctx, &buffer, align, &shape).unwrap();
    assert_eq!((fine.offset(), fine.len()), (align, 32));

    // A buffer of another device: refused, not a wgpu panic or a device loss.
    let other = open_context(None).expect("a second GPU context");
    let foreign = storage_buffer(&other, bytes, rw());
    let e = GpuTensor::from_buffer(ctx, &foreign, 0, &shape).unwrap_err();
    assert!(matches!(e, Error::BadBuffer { .. }), "{e}");
    // The context still works afterwards.
    let x = ctx.upload(&[1.0; 32], &shape).unwrap();
    assert_eq!(ctx.read(&x).unwrap(), vec![1.0; 32]);
}

/// Runs `op` of `pb` into the middle of a caller's buffer of guards and checks the result and
/// that every guard survives.
fn check_record_into(ctx: &GpuContext, op: Op, pb: &ConvProblem, seed: u64) {
    let mut rng = SplitMix64::new(seed);
    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
    let dy = rng.tensor(pb.y_len());
    let (want, out_shape) = match op {
        Op::Forward => (reference::forward(pb, &x, &w, None).unwrap(), pb.y_shape()),
        Op::InputGrad => (reference::input_grad(pb, &dy, &w).unwrap(), pb.x_shape()),
        Op::WeightGrad => (reference::weight_grad(pb, &dy, &x).unwrap(), pb.w_shape()),
        other => panic!("not checked here: {other:?}"),
    };
    let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment);
    let out_bytes = want.len() as u64 * 4;
    // Guards before (one alignment) and after (one alignment) the output.
    let total = align + out_bytes + align;
    let mut init = vec![GUARD; (total / 4) as usize];
    let first = (align / 4) as usize;
    init[first..first + want.len()].fill(f32::NAN);
    let buffer = storage_buffer(ctx, total, rw());
    ctx.queue()
        .write_buffer(&buffer, 0, bytemuck::cast_slice(&init));
    let out = GpuTensor::from_buffer(ctx, &buffer, align, &out_shape).unwrap();

    let plan = ctx.planner().plan(op, pb, false).unwrap();
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
    let dyt = ctx.upload(&dy, &pb.y_shape()).unwrap();
    let operands: Vec<(Operand, &GpuTensor)> = match op {
        Op::Forward => vec![(Operand::X, &xt), (Operand::W, &wt)],
        Op::InputGrad => vec![(Operand::Dy, &dyt), (Operand::W, &wt)],
        _ => vec![(Operand::Dy, &dyt), (Operand::X, &xt)],
    };
    let mut rec = ctx.recorder();
    let written = rec.record_into(&plan, &operands, &out).unwrap();
    rec.submit().unwrap();
    assert_eq!(written.offset(), align);
    assert_close(
        &format!("{op:?} into a caller's buffer"),
        &ctx.read(&written).unwrap(),
        &want,
    );

    let whole = GpuTensor::from_buffer(ctx, &buffer, 0, &[(total / 4) as usize]).unwrap();
    let after = ctx.read(&whole).unwrap();
    let clobbered: Vec<usize> = (0..after.len())
        .filter(|&i| (i < first || i >= first + want.len()) && after[i] != GUARD)
        .collect();
    assert!(
        clobbered.is_empty(),
        "{op:?} wrote outside its output: elements {clobbered:?}"
    );
}

fn problem() -> ConvProblem {
    ConvProblem::new(
        &[2, 6, 11, 9],
        &[8, 3, 3, 3],
        ConvParams::default().padding(1, 1).stride(2, 1).groups(2),
    )
    .unwrap()
}

#[test]
fn ops_write_into_the_callers_buffer_and_nowhere_else() {
    let ctx = gpu().expect("GPU context");
    for (i, op) in [Op::Forward, Op::InputGrad, Op::WeightGrad]
        .into_iter()
        .enumerate()
    {
        check_record_into(ctx, op, &problem(), 10 + i as u64);
    }
}

#[test]
fn ops_run_in_tiles_write_into_the_callers_buffer_and_nowhere_else() {
    let adapter = gpu().expect("GPU context").limits().clone();
    let ctx = GpuContext::with_options(ContextOptions {
        poison_outputs: true,
        limits: LimitsChoice::Custom(Box::new(wgpu::Limits {
            max_storage_buffer_binding_size: 2048,
            ..adapter
        })),
        ..Default::default()
    })
    .unwrap();
    let pb = problem();
    for (i, op) in [Op::Forward, Op::InputGrad, Op::WeightGrad]
        .into_iter()
        .enumerate()
    {
        let plan = ctx.planner().plan(op, &pb, false).unwrap();
        assert!(
            matches!(plan.path, PlanPath::Tiled { .. }),
            "{op:?} should run in tiles under a 2 KiB binding"
        );
        check_record_into(&ctx, op, &pb, 20 + i as u64);
    }
}

#[test]
fn an_output_overlapping_an_input_or_of_the_wrong_shape_is_refused() {
    let ctx = gpu().expect("GPU context");
    let pb = problem();
    let mut rng = SplitMix64::new(3);
    let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment);
    let x_bytes = pb.x_len() as u64 * 4;
    let y_bytes = pb.y_len() as u64 * 4;
    // X, then Y starting inside X's last alignment block: they overlap.
    let y_offset = (x_bytes / align) * align;
    let buffer = storage_buffer(ctx, y_offset + y_bytes + x_bytes, rw());
    ctx.queue()
        .write_buffer(&buffer, 0, bytemuck::cast_slice(&rng.tensor(pb.x_len())));
    let x = GpuTensor::from_buffer(ctx, &buffer, 0, &pb.x_shape()).unwrap();
    let w = ctx.upload(&rng.tensor(pb.w_len()), &pb.w_shape()).unwrap();
    let overlapping = GpuTensor::from_buffer(ctx, &buffer, y_offset, &pb.y_shape()).unwrap();
    let mut rec = ctx.recorder();
    let e = rec
        .forward_into(&x, &w, None, pb.params, &overlapping)
        .unwrap_err();
    assert!(matches!(e, Error::BadBuffer { .. }), "{e}");
    assert!(e.to_string().contains("overlap"), "{e}");
    // In place on X itself.
    let e = rec.forward_into(&x, &w, None, pb.params, &x).unwrap_err();
    assert!(
        matches!(e, Error::BadBuffer { .. } | Error::ShapeMismatch { .. }),
        "{e}"
    );
    // The wrong shape.
    let wrong = ctx.upload(&rng.tensor(pb.x_len()), &pb.x_shape()).unwrap();
    let e = rec
        .forward_into(&x, &w, None, pb.params, &wrong)
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // The recorder is still usable after the refusals.
    let y = rec.forward(&x, &w, None, pb.params).unwrap();
    rec.submit().unwrap();
    assert_eq!(ctx.read(&y).unwrap().len(), pb.y_len());
}
