//! Recording is explicit: a recorder is a value the caller holds and submits. These tests check
//! that a dropped recorder or a panic while recording leaves the context usable, that unsubmitted
//! and abandoned outputs cannot be read or used elsewhere, that recorders on several threads do
//! not interfere, and that ops recorded into the caller's own encoder run in order with the
//! caller's commands.

mod common;

use common::*;
use gpuconv::cpu::reference;
use gpuconv::error::Pending;
use gpuconv::{ConvParams, ConvProblem, Error};

fn problem() -> ConvProblem {
    ConvProblem::new(
        &[2, 4, 9, 9],
        &[6, 4, 3, 3],
        ConvParams::default().padding(1, 1),
    )
    .unwrap()
}

#[test]
fn a_dropped_recorder_leaves_the_context_usable_and_its_outputs_abandoned() {
    let ctx = gpu().expect("GPU context");
    let pb = problem();
    let mut rng = SplitMix64::new(1);
    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
    let abandoned = {
        let mut rec = ctx.recorder();
        let y = rec.forward(&xt, &wt, None, pb.params).unwrap();
        // Not submitted yet: reading it is refused, not a read of unwritten memory.
        let e = ctx.read(&y).unwrap_err();
        assert!(
            matches!(
                e,
                Error::TensorNotReady {
                    pending: Pending::Unsubmitted,
                    ..
                }
            ),
            "{e}"
        );
        y
    };
    let e = ctx.read(&abandoned).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TensorNotReady {
                pending: Pending::Abandoned,
                ..
            }
        ),
        "{e}"
    );
    let e = ctx.bias_grad(&abandoned).unwrap_err();
    assert!(matches!(e, Error::TensorNotReady { .. }), "{e}");
    // The context works as before.
    let y = ctx.forward(&xt, &wt, None, pb.params).unwrap();
    assert_close(
        "after a dropped recorder",
        &ctx.read(&y).unwrap(),
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
}

#[test]
fn a_panic_while_recording_leaves_the_context_usable() {
    let ctx = gpu().expect("GPU context");
    let pb = problem();
    let mut rng = SplitMix64::new(2);
    let (x, w, dy) = (
        rng.tensor(pb.x_len()),
        rng.tensor(pb.w_len()),
        rng.tensor(pb.y_len()),
    );
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
    let dyt = ctx.upload(&dy, &pb.y_shape()).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut rec = ctx.recorder();
        rec.forward(&xt, &wt, None, pb.params).unwrap();
        rec.weight_grad(&dyt, &xt, &pb.w_shape(), pb.params)
            .unwrap();
        panic!("the caller's code panics mid-recording");
    }));
    assert!(caught.is_err());
    let mut rec = ctx.recorder();
    let dw = rec
        .weight_grad(&dyt, &xt, &pb.w_shape(), pb.params)
        .unwrap();
    let dx = rec.input_grad(&dyt, &wt, &pb.x_shape(), pb.params).unwrap();
    rec.submit().unwrap();
    assert_close(
        "dw after a panic",
        &ctx.read(&dw).unwrap(),
        &reference::weight_grad(&pb, &dy, &x).unwrap(),
    );
    assert_close(
        "dx after a panic",
        &ctx.read(&dx).unwrap(),
        &reference::input_grad(&pb, &dy, &w).unwrap(),
    );
}

#[test]
fn an_unsubmitted_output_cannot_feed_another_recorder() {
    let ctx = gpu().expect("GPU context");
    let pb = problem();
    let mut rng = SplitMix64::new(3);
    let xt = ctx.upload(&rng.tensor(pb.x_len()), &pb.x_shape()).unwrap();
    let wt = ctx.upload(&rng.tensor(pb.w_len()), &pb.w_shape()).unwrap();
    let mut first = ctx.recorder();
    let y = first.forward(&xt, &wt, None, pb.params).unwrap();
    let mut second = ctx.recorder();
    let e = second.bias_grad(&y).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TensorNotReady {
                pending: Pending::Unsubmitted,
                ..
            }
        ),
        "{e}"
    );
    // Within its own recorder it chains; once submitted, anyone may use it.
    first.bias_grad(&y).unwrap();
    first.submit().unwrap();
    second.bias_grad(&y).unwrap();
    second.submit().unwrap().wait().unwrap();
}

#[test]
fn recorders_on_several_threads_do_not_interfere() {
    let ctx = gpu().expect("GPU context");
    let pb = problem();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            scope.spawn(move || {
                let mut rng = SplitMix64::new(50 + t);
                for _ in 0..3 {
                    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
                    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
                    let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
                    let mut rec = ctx.timed_recorder();
                    let y = rec.forward(&xt, &wt, None, pb.params).unwrap();
                    let db = rec.bias_grad(&y).unwrap();
                    rec.submit().unwrap().device_time_ms().unwrap();
                    let want = reference::forward(&pb, &x, &w, None).unwrap();
                    assert_close("threaded forward", &ctx.read(&y).unwrap(), &want);
                    assert_close(
                        "threaded bias grad",
                        &ctx.read(&db).unwrap(),
                        &reference::bias_grad(&pb.y_shape(), &want).unwrap(),
                    );
                }
            });
        }
    });
}

#[test]
fn ops_recorded_into_the_callers_encoder_run_in_order_with_its_commands() {
    let ctx = gpu().expect("GPU context");
    let pb = problem();
    let mut rng = SplitMix64::new(4);
    let (x, w, x2) = (
        rng.tensor(pb.x_len()),
        rng.tensor(pb.w_len()),
        rng.tensor(pb.x_len()),
    );
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
    let other = ctx.upload(&x2, &pb.x_shape()).unwrap();
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    let (y1, y2) = {
        let mut rec = ctx.recorder_for(&mut encoder);
        let y1 = rec.forward(&xt, &wt, None, pb.params).unwrap();
        rec.finish().unwrap();
        // The caller's own command between gpuconv's: overwrite X with other data.
        encoder.copy_buffer_to_buffer(other.buffer(), 0, xt.buffer(), 0, other.bytes());
        let mut rec = ctx.recorder_for(&mut encoder);
        let y2 = rec.forward(&xt, &wt, None, pb.params).unwrap();
        rec.finish().unwrap();
        (y1, y2)
    };
    ctx.queue().submit([encoder.finish()]);
    assert_close(
        "before the caller's copy",
        &ctx.read(&y1).unwrap(),
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
    assert_close(
        "after the caller's copy",
        &ctx.read(&y2).unwrap(),
        &reference::forward(&pb, &x2, &w, None).unwrap(),
    );
}

/// Compiles only while gpuconv's futures are `Send`, so they run on multi-threaded executors
/// (no lock guard is held across an await).
#[allow(dead_code)]
fn futures_are_send(
    ctx: &gpuconv::GpuContext,
    t: &gpuconv::gpu::GpuTensor,
    a: gpuconv::wgpu::Adapter,
) {
    fn send<T: Send>(_: T) {}
    send(gpuconv::GpuContext::new_async());
    send(gpuconv::GpuContext::from_adapter(a, Default::default()));
    send(ctx.read_async(t));
    let p = ConvParams::default();
    send(ctx.conv2d_forward_async(&[], &[], &[], &[], None, p));
    send(ctx.conv2d_input_grad_async(&[], &[], &[], &[], &[], p));
    send(ctx.conv2d_weight_grad_async(&[], &[], &[], &[], &[], p));
    send(ctx.conv2d_bias_grad_async(&[], &[]));
}
