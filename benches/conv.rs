//! Criterion benches over the same matrix as `gpuconv bench`: every suite shape × forward,
//! input-grad, weight-grad × CPU fast path and GPU (inputs resident, submit + wait).
//! `cargo bench` runs all; `cargo bench -- resnet-3x3-28` filters. The GPU group is skipped
//! with a message when no adapter exists (a benchmark is no test).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpuconv::cpu::fast;
use gpuconv::rng::SplitMix64;
use gpuconv::suite::default_suite;
use gpuconv::GpuContext;

fn conv(c: &mut Criterion) {
    let gpu = match GpuContext::new() {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            eprintln!("GPU benches skipped: {e}");
            None
        }
    };
    for shape in default_suite() {
        let pb = shape.problem().expect("suite shapes are valid");
        let mut rng = SplitMix64::new(1);
        let (x, w, dy) = (
            rng.tensor(pb.x_len()),
            rng.tensor(pb.w_len()),
            rng.tensor(pb.y_len()),
        );
        let mut group = c.benchmark_group(shape.name.clone());
        group
            .sample_size(10)
            .throughput(Throughput::Elements(pb.flops() as u64));
        group.bench_function("cpu/forward", |b| {
            b.iter(|| fast::forward(&pb, &x, &w, None).unwrap())
        });
        group.bench_function("cpu/input-grad", |b| {
            b.iter(|| fast::input_grad(&pb, &dy, &w).unwrap())
        });
        group.bench_function("cpu/weight-grad", |b| {
            b.iter(|| fast::weight_grad(&pb, &dy, &x).unwrap())
        });
        if let Some(ctx) = &gpu {
            let xt = ctx.upload(&x, &pb.x_shape()).unwrap();
            let wt = ctx.upload(&w, &pb.w_shape()).unwrap();
            let dyt = ctx.upload(&dy, &pb.y_shape()).unwrap();
            let p = pb.params;
            group.bench_function("gpu/forward", |b| {
                b.iter(|| {
                    let y = ctx.forward(&xt, &wt, None, p).unwrap();
                    ctx.wait().unwrap();
                    y
                })
            });
            group.bench_function("gpu/input-grad", |b| {
                b.iter(|| {
                    let dx = ctx.input_grad(&dyt, &wt, &pb.x_shape(), p).unwrap();
                    ctx.wait().unwrap();
                    dx
                })
            });
            group.bench_function("gpu/weight-grad", |b| {
                b.iter(|| {
                    let dw = ctx.weight_grad(&dyt, &xt, &pb.w_shape(), p).unwrap();
                    ctx.wait().unwrap();
                    dw
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, conv);
criterion_main!(benches);
