//! Every GPU op against the f64 reference over a seeded sweep of problems that covers each
//! parameter class and kernel path. Outputs are poisoned with NaN before every run.

mod common;

use common::*;
use gpuconv::cpu::reference;
use gpuconv::gpu::SplitK;
use gpuconv::{ConvParams, ConvProblem};

#[test]
fn named_cases_match_reference() {
    let mut rng = SplitMix64::new(0x5eed_0001);
    for case in named_cases() {
        check_all_ops(&case, &mut rng);
    }
}

#[test]
fn random_sweep_matches_reference() {
    let seed = 0x5eed_0002;
    eprintln!("random sweep seed {seed:#x}");
    let mut rng = SplitMix64::new(seed);
    for i in 0..220 {
        let case = random_case(&mut rng, i);
        check_all_ops(&case, &mut rng);
    }
}

#[test]
fn forward_without_bias_matches_reference() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(7);
    let params = ConvParams::default().padding(1, 1);
    let pb = ConvProblem::new(&[2, 3, 6, 5], &[4, 3, 3, 3], params).unwrap();
    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
    let y = ctx
        .conv2d_forward(&x, &pb.x_shape(), &w, &pb.w_shape(), None, params)
        .unwrap();
    assert_close(
        "forward, no bias",
        &y,
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
}

#[test]
fn split_k_is_exact_for_uneven_splits_and_repeats_bit_for_bit() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(11);
    let params = ConvParams::default().padding(1, 1).stride(1, 2);
    let pb = ConvProblem::new(&[3, 4, 13, 17], &[6, 4, 3, 3], params).unwrap();
    let red_len = pb.n * pb.p * pb.q; // 3·13·9 = 351: prime factors 3, 3, 3, 13
    let (x, dy) = (rng.tensor(pb.x_len()), rng.tensor(pb.y_len()));
    let want = reference::weight_grad(&pb, &dy, &x).unwrap();
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let dyt = ctx.upload(&dy, &pb.y_shape()).unwrap();
    for splits in [1, 2, 4, 5, 7, 16, 64, red_len] {
        let split = SplitK::with_splits(red_len, splits);
        assert!(split.splits * split.split_len >= red_len);
        let first = weight_grad_with_splits(ctx, &dyt, &xt, &pb, splits);
        assert_close(&format!("weight-grad with {splits} splits"), &first, &want);
        let again = weight_grad_with_splits(ctx, &dyt, &xt, &pb, splits);
        assert!(
            first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "weight-grad with {splits} splits differs between two runs"
        );
    }
}

#[test]
fn chained_ops_stay_on_device() {
    // forward → input-grad → weight-grad without reading back in between, once op by op and
    // once recorded into a single submission.
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(21);
    let params = ConvParams::default().padding(1, 1).stride(2, 2);
    let pb = ConvProblem::new(&[2, 3, 9, 8], &[5, 3, 3, 3], params).unwrap();
    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
    let op_by_op = || -> gpuconv::Result<_> {
        let yt = ctx.forward(&xt, &wt, None, params)?;
        let dxt = ctx.input_grad(&yt, &wt, &pb.x_shape(), params)?;
        let dwt = ctx.weight_grad(&yt, &xt, &pb.w_shape(), params)?;
        let dbt = ctx.bias_grad(&yt)?;
        Ok((yt, dxt, dwt, dbt))
    };
    let one_submission = || -> gpuconv::Result<_> {
        let mut rec = ctx.recorder();
        let yt = rec.forward(&xt, &wt, None, params)?;
        let dxt = rec.input_grad(&yt, &wt, &pb.x_shape(), params)?;
        let dwt = rec.weight_grad(&yt, &xt, &pb.w_shape(), params)?;
        let dbt = rec.bias_grad(&yt)?;
        rec.submit()?;
        Ok((yt, dxt, dwt, dbt))
    };
    let y = reference::forward(&pb, &x, &w, None).unwrap();
    for (how, (yt, dxt, dwt, dbt)) in [
        ("op by op", op_by_op().unwrap()),
        ("one submission", one_submission().unwrap()),
    ] {
        assert_close(&format!("{how}: forward"), &ctx.read(&yt).unwrap(), &y);
        assert_close(
            &format!("{how}: dx"),
            &ctx.read(&dxt).unwrap(),
            &reference::input_grad(&pb, &y, &w).unwrap(),
        );
        assert_close(
            &format!("{how}: dw"),
            &ctx.read(&dwt).unwrap(),
            &reference::weight_grad(&pb, &y, &x).unwrap(),
        );
        assert_close(
            &format!("{how}: db"),
            &ctx.read(&dbt).unwrap(),
            &reference::bias_grad(&pb.y_shape(), &y).unwrap(),
        );
    }
}

#[test]
fn grid_beyond_65535_workgroups_in_one_dimension() {
    // 1·1·2100·2100 output pixels / 64 rows per workgroup = 68 907 workgroups > 65 535.
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(31);
    let params = ConvParams::default();
    let pb = ConvProblem::new(&[1, 1, 2100, 2100], &[1, 1, 1, 1], params).unwrap();
    let (x, w, dy) = (
        rng.tensor(pb.x_len()),
        rng.tensor(1),
        rng.tensor(pb.y_len()),
    );
    let y = ctx
        .conv2d_forward(&x, &pb.x_shape(), &w, &pb.w_shape(), None, params)
        .unwrap();
    assert_close(
        "large-grid forward",
        &y,
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
    let dx = ctx
        .conv2d_input_grad(&dy, &pb.y_shape(), &w, &pb.w_shape(), &pb.x_shape(), params)
        .unwrap();
    assert_close(
        "large-grid input-grad",
        &dx,
        &reference::input_grad(&pb, &dy, &w).unwrap(),
    );
    // Bias gradient with one workgroup per channel: 70 000 channels.
    let dy_shape = [1, 70_000, 1, 2];
    let dy = rng.tensor(140_000);
    let db = ctx.conv2d_bias_grad(&dy, &dy_shape).unwrap();
    assert_close(
        "large-grid bias-grad",
        &db,
        &reference::bias_grad(&dy_shape, &dy).unwrap(),
    );
}

#[test]
fn context_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<gpuconv::GpuContext>();
    assert_send_sync::<gpuconv::GpuTensor>();
    let ctx = gpu().expect("GPU context");
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            scope.spawn(move || {
                let mut rng = SplitMix64::new(100 + t);
                let params = ConvParams::default().padding(1, 1);
                let pb = ConvProblem::new(&[1, 3, 8, 8], &[4, 3, 3, 3], params).unwrap();
                for _ in 0..5 {
                    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
                    let y = ctx
                        .conv2d_forward(&x, &pb.x_shape(), &w, &pb.w_shape(), None, params)
                        .unwrap();
                    assert_close(
                        "threaded forward",
                        &y,
                        &reference::forward(&pb, &x, &w, None).unwrap(),
                    );
                }
            });
        }
    });
}

#[test]
fn async_entry_points_match_blocking_ones() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(41);
    let params = ConvParams::default().padding(1, 1);
    let pb = ConvProblem::new(&[1, 2, 5, 5], &[3, 2, 3, 3], params).unwrap();
    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
    let got = pollster::block_on(ctx.conv2d_forward_async(
        &x,
        &pb.x_shape(),
        &w,
        &pb.w_shape(),
        None,
        params,
    ))
    .unwrap();
    assert_close(
        "async forward",
        &got,
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
}

#[test]
fn device_timing_brackets_the_ops_it_ran() {
    let ctx = gpu().expect("GPU context");
    let mut rng = SplitMix64::new(13);
    let params = ConvParams::default().padding(1, 1);
    let pb = ConvProblem::new(&[2, 8, 20, 20], &[16, 8, 3, 3], params).unwrap();
    let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
    let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
    let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
    ctx.wait().unwrap();
    let start = std::time::Instant::now();
    let mut rec = ctx.timed_recorder();
    let y = rec.forward(&xt, &wt, None, params).unwrap();
    let ms = rec.submit().unwrap().device_time_ms().unwrap();
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_close(
        "timed forward",
        &ctx.read(&y).unwrap(),
        &reference::forward(&pb, &x, &w, None).unwrap(),
    );
    match ms {
        Some(ms) => assert!(
            ms > 0.0 && ms <= wall_ms,
            "device time {ms} ms must be positive and within the {wall_ms} ms wall time"
        ),
        None => assert!(
            !ctx.has_device_timing(),
            "the device offers timestamps but no time came back"
        ),
    }
    // Nothing recorded: no device time; an untimed recorder reports none either.
    assert_eq!(
        ctx.timed_recorder()
            .submit()
            .unwrap()
            .device_time_ms()
            .unwrap(),
        None
    );
    let mut rec = ctx.recorder();
    rec.forward(&xt, &wt, None, params).unwrap();
    assert_eq!(rec.submit().unwrap().device_time_ms().unwrap(), None);
}
