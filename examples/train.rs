//! A small CNN learns to tell horizontal from vertical bars, trained entirely on the GPU.
//!
//! conv1 (1→8 channels, 3×3, padding 1) with bias and ReLU fused into its kernel, then conv2
//! (8→2, 8×8, no padding: the two logits) with its bias fused, a softmax cross-entropy loss and
//! SGD. gpuconv records the forward and backward convolutions; the loss and the weight update
//! are the example's own WGSL kernels on the context's device, recorded into the same command
//! encoder between gpuconv's ops: one submission per step, and nothing is read back but the
//! per-epoch loss and accuracy.
//!
//! `cargo run --release --example train`

use gpuconv::gpu::GpuTensor;
use gpuconv::rng::SplitMix64;
use gpuconv::wgpu;
use gpuconv::{Activation, ConvParams, Epilogue, GpuContext, Saved};

/// Images per batch, batches per epoch, image side, epochs, learning rate.
const BATCH: usize = 64;
const BATCHES: usize = 4;
const SIDE: usize = 8;
const EPOCHS: usize = 30;
const LEARNING_RATE: f32 = 0.3;
const HIDDEN: usize = 8;

/// The example's loss: softmax cross-entropy over each image's two logits. Writes dL/dlogits
/// (averaged over the batch) and, per image, its loss and whether it was classified right.
const LOSS: &str = r#"
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<f32>;
@group(0) @binding(2) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = id.x;
    if n >= BATCH { return; }
    let a = logits[2u * n];
    let b = logits[2u * n + 1u];
    let m = max(a, b);
    let ea = exp(a - m);
    let eb = exp(b - m);
    let pa = ea / (ea + eb);
    let pb = eb / (ea + eb);
    let vertical = labels[n] > 0.5;
    let inv = 1.0 / f32(BATCH);
    dlogits[2u * n] = (pa - select(1.0, 0.0, vertical)) * inv;
    dlogits[2u * n + 1u] = (pb - select(0.0, 1.0, vertical)) * inv;
    stats[2u * n] = -log(max(select(pa, pb, vertical), 1e-30));
    stats[2u * n + 1u] = select(0.0, 1.0, (b > a) == vertical);
}
"#;

/// The example's optimiser: param -= lr·grad.
const SGD: &str = r#"
struct Step { lr: f32, len: u32 }
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < step.len { param[id.x] -= step.lr * grad[id.x]; }
}
"#;

/// A batch of images with a bar each (horizontal: label 0, vertical: label 1), plus noise.
fn batch(rng: &mut SplitMix64) -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0f32; BATCH * SIDE * SIDE];
    let mut labels = vec![0f32; BATCH];
    for (n, label) in labels.iter_mut().enumerate() {
        let vertical = rng.range(0, 2) == 1;
        let line = rng.range(0, SIDE);
        let start = rng.range(0, 3);
        let len = rng.range(4, SIDE - start + 1);
        let img = &mut x[n * SIDE * SIDE..(n + 1) * SIDE * SIDE];
        for v in img.iter_mut() {
            *v = 0.3 * (rng.next_f64() as f32 - 0.5);
        }
        for t in start..start + len {
            let (r, c) = if vertical { (t, line) } else { (line, t) };
            img[r * SIDE + c] += 1.0;
        }
        *label = f32::from(u8::from(vertical));
    }
    (x, labels)
}

/// One of the example's own compute pipelines.
fn pipeline(device: &wgpu::Device, label: &str, source: &str) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// A binding of a tensor's range.
fn entry(binding: u32, t: &GpuTensor) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: t.buffer(),
            offset: t.offset(),
            size: wgpu::BufferSize::new(t.bytes()),
        }),
    }
}

/// What training reached: the loss and accuracy of each epoch, and the accuracy on a fresh
/// batch after training.
pub struct Trained {
    /// Mean loss per epoch.
    pub losses: Vec<f32>,
    /// Training accuracy per epoch.
    pub accuracies: Vec<f32>,
    /// Accuracy on images never trained on.
    pub test_accuracy: f32,
}

/// Trains the network; prints one line per epoch.
pub fn run() -> Result<Trained, Box<dyn std::error::Error>> {
    let ctx = GpuContext::new()?;
    println!("training on {}", ctx.adapter());
    let device = ctx.device();
    let mut rng = SplitMix64::new(2026);

    // Parameters, uniform in ±1/√fan_in.
    let init = |rng: &mut SplitMix64, len: usize, fan_in: usize| -> Vec<f32> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        (0..len)
            .map(|_| bound * (2.0 * rng.next_f64() as f32 - 1.0))
            .collect()
    };
    let w1_shape = [HIDDEN, 1, 3, 3];
    let w2_shape = [2, HIDDEN, SIDE, SIDE];
    let w1 = ctx.upload(&init(&mut rng, HIDDEN * 9, 9), &w1_shape)?;
    let b1 = ctx.upload(&init(&mut rng, HIDDEN, 9), &[HIDDEN])?;
    let fan2 = HIDDEN * SIDE * SIDE;
    let w2 = ctx.upload(&init(&mut rng, 2 * fan2, fan2), &w2_shape)?;
    let b2 = ctx.upload(&init(&mut rng, 2, fan2), &[2])?;
    let conv1 = ConvParams::default().padding(1, 1);
    let conv2 = ConvParams::default();
    let x_shape = [BATCH, 1, SIDE, SIDE];
    let h_shape = [BATCH, HIDDEN, SIDE, SIDE];

    // Training data on the GPU once; the loss writes its statistics into a tensor of its own.
    let data: Vec<(GpuTensor, GpuTensor)> = (0..BATCHES)
        .map(|_| {
            let (x, labels) = batch(&mut rng);
            Ok((ctx.upload(&x, &x_shape)?, ctx.upload(&labels, &[BATCH])?))
        })
        .collect::<gpuconv::Result<_>>()?;
    let stats = ctx.upload(&vec![0.0; 2 * BATCH * BATCHES], &[BATCHES, BATCH, 2])?;
    let stats_views: Vec<GpuTensor> = (0..BATCHES)
        .map(|i| {
            let offset = (i * 2 * BATCH * 4) as u64;
            GpuTensor::from_buffer(&ctx, stats.buffer(), offset, &[BATCH, 2])
        })
        .collect::<gpuconv::Result<_>>()?;

    let loss_pipe = pipeline(device, "loss", &LOSS.replace("BATCH", &format!("{BATCH}u")));
    let sgd_pipe = pipeline(device, "sgd", SGD);
    let step_uniforms: Vec<wgpu::Buffer> = [&w1, &b1, &w2, &b2]
        .iter()
        .map(|p| {
            let bytes: Vec<u8> = [LEARNING_RATE.to_bits(), p.len() as u32]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            let buf = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("sgd step"),
                size: 8,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue().write_buffer(&buf, 0, &bytes);
            buf
        })
        .collect();
    let relu = Epilogue::new(Activation::Relu);

    let mut trained = Trained {
        losses: Vec::new(),
        accuracies: Vec::new(),
        test_accuracy: 0.0,
    };
    for epoch in 0..EPOCHS {
        for ((x, labels), stats) in data.iter().zip(&stats_views) {
            let mut encoder = device.create_command_encoder(&Default::default());
            // Forward: conv1 + bias + ReLU fused, conv2 + bias.
            let mut rec = ctx.recorder_for(&mut encoder);
            let h = rec.forward_fused(x, &w1, Some(&b1), None, &relu, conv1)?;
            let logits = rec.forward(&h, &w2, Some(&b2), conv2)?;
            let dlogits = ctx.upload(&[0.0; 2 * BATCH], &[BATCH, 2, 1, 1])?;
            rec.finish()?;
            // The example's loss kernel, between gpuconv's passes.
            let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("loss"),
                layout: &loss_pipe.get_bind_group_layout(0),
                entries: &[
                    entry(0, &logits),
                    entry(1, labels),
                    entry(2, &dlogits),
                    entry(3, stats),
                ],
            });
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&loss_pipe);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(BATCH.div_ceil(64) as u32, 1, 1);
            }
            // Backward: conv2's gradients, then through the ReLU (from its saved output) to
            // conv1's.
            let mut rec = ctx.recorder_for(&mut encoder);
            let db2 = rec.bias_grad(&dlogits)?;
            let dw2 = rec.weight_grad(&dlogits, &h, &w2_shape, conv2)?;
            let dh = rec.input_grad(&dlogits, &w2, &h_shape, conv2)?;
            let dpre = rec.activation_grad(&dh, &h, Activation::Relu, Saved::Output, 1.0)?;
            let db1 = rec.bias_grad(&dpre)?;
            let dw1 = rec.weight_grad(&dpre, x, &w1_shape, conv1)?;
            rec.finish()?;
            // The example's SGD kernel on every parameter.
            for ((param, grad), uniform) in [(&w1, &dw1), (&b1, &db1), (&w2, &dw2), (&b2, &db2)]
                .into_iter()
                .zip(&step_uniforms)
            {
                let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("sgd"),
                    layout: &sgd_pipe.get_bind_group_layout(0),
                    entries: &[
                        entry(0, param),
                        entry(1, grad),
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: uniform.as_entire_binding(),
                        },
                    ],
                });
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&sgd_pipe);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(param.len().div_ceil(64) as u32, 1, 1);
            }
            ctx.queue().submit([encoder.finish()]);
        }
        // One read per epoch: every batch's losses and hits.
        let s = ctx.read(&stats)?;
        let images = (BATCH * BATCHES) as f32;
        let loss = s.iter().step_by(2).sum::<f32>() / images;
        let accuracy = s.iter().skip(1).step_by(2).sum::<f32>() / images;
        println!(
            "epoch {:2}: loss {loss:.4}, accuracy {:.1} %",
            epoch + 1,
            100.0 * accuracy
        );
        trained.losses.push(loss);
        trained.accuracies.push(accuracy);
    }

    // Fresh images, forward only, classified on the host.
    let (x, labels) = batch(&mut rng);
    let xt = ctx.upload(&x, &x_shape)?;
    let mut rec = ctx.recorder();
    let h = rec.forward_fused(&xt, &w1, Some(&b1), None, &relu, conv1)?;
    let logits = rec.forward(&h, &w2, Some(&b2), conv2)?;
    rec.submit()?;
    let logits = ctx.read(&logits)?;
    let hits = labels
        .iter()
        .enumerate()
        .filter(|&(n, &l)| (logits[2 * n + 1] > logits[2 * n]) == (l > 0.5))
        .count();
    trained.test_accuracy = hits as f32 / BATCH as f32;
    println!(
        "accuracy on {BATCH} unseen images: {:.1} % (chance: 50 %)",
        100.0 * trained.test_accuracy
    );
    Ok(trained)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().map(|_| ())
}
