//! gpuconv inside an application's own wgpu program: the application creates the device, fills
//! its own buffers with its own compute pass, records gpuconv's forward and weight gradient into
//! its own command encoder between its passes (the forward writing into the application's own
//! output buffer), submits once and reads the results itself.
//!
//! `cargo run --release --example embed`

use gpuconv::gpu::{ContextOptions, GpuTensor};
use gpuconv::wgpu;
use gpuconv::{ConvParams, GpuContext};

/// The application's own kernel: fills `data` with a smooth pattern.
const FILL: &str = r#"
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i < arrayLength(&data) { data[i] = sin(f32(i) * 0.37) + 0.25 * cos(f32(i) * 1.3); }
}
"#;

/// Runs the example; returns the largest difference from gpuconv's own host-slice ops.
pub fn run() -> Result<f32, Box<dyn std::error::Error>> {
    // 1. The application's device.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("application device"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;
    println!("application device on {}", adapter.get_info().name);

    // 2. gpuconv on that device.
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), ContextOptions::default())?;

    // 3. The application's buffers: X and W share one buffer (W at an aligned offset), and Y
    //    goes into a buffer the application reads back itself.
    let (x_shape, w_shape) = ([1usize, 3, 12, 12], [4usize, 3, 3, 3]);
    let params = ConvParams::default().padding(1, 1);
    let x_len = x_shape.iter().product::<usize>();
    let w_len = w_shape.iter().product::<usize>();
    let align = u64::from(device.limits().min_storage_buffer_offset_alignment);
    let w_offset = (x_len as u64 * 4).div_ceil(align) * align;
    let inputs = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("application inputs"),
        size: w_offset + w_len as u64 * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let y_len = 4 * 12 * 12;
    let outputs = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("application outputs"),
        size: y_len as u64 * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let x = GpuTensor::from_buffer(&ctx, &inputs, 0, &x_shape)?;
    let w = GpuTensor::from_buffer(&ctx, &inputs, w_offset, &w_shape)?;
    let y_view = GpuTensor::from_buffer(&ctx, &outputs, 0, &[1, 4, 12, 12])?;

    // 4. One encoder: the application's fill pass, gpuconv's ops, then the application's copy.
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("fill"),
        source: wgpu::ShaderSource::Wgsl(FILL.into()),
    });
    let fill = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("fill"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("fill"),
        layout: &fill.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: inputs.as_entire_binding(),
        }],
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("application readback"),
        size: (y_len + w_len) as u64 * 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&fill);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups((inputs.size() / 4).div_ceil(64) as u32, 1, 1);
    }
    let mut rec = ctx.recorder_for(&mut encoder);
    let y = rec.forward_into(&x, &w, None, params, &y_view)?;
    let dw = rec.weight_grad(&y, &x, &w_shape, params)?;
    rec.finish()?;
    encoder.copy_buffer_to_buffer(&outputs, 0, &readback, 0, y_len as u64 * 4);
    encoder.copy_buffer_to_buffer(
        dw.buffer(),
        dw.offset(),
        &readback,
        y_len as u64 * 4,
        w_len as u64 * 4,
    );
    queue.submit([encoder.finish()]);

    // 5. The application reads its own buffer.
    let slice = readback.slice(..);
    slice.map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let values: Vec<f32> = bytemuck::cast_slice(&slice.get_mapped_range()?).to_vec();
    let (y_app, dw_app) = values.split_at(y_len);

    // Check against gpuconv's own host-slice ops on the same inputs.
    let host = |i: usize| (i as f32 * 0.37).sin() + 0.25 * (i as f32 * 1.3).cos();
    let xs: Vec<f32> = (0..x_len).map(host).collect();
    let first_w = (w_offset / 4) as usize;
    let ws: Vec<f32> = (first_w..first_w + w_len).map(host).collect();
    let y_ref = ctx.conv2d_forward(&xs, &x_shape, &ws, &w_shape, None, params)?;
    let dw_ref =
        ctx.conv2d_weight_grad(&y_ref, &[1, 4, 12, 12], &xs, &x_shape, &w_shape, params)?;
    let diff = y_app
        .iter()
        .zip(&y_ref)
        .chain(dw_app.iter().zip(&dw_ref))
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    println!("y[0..4] = {:?}", &y_app[..4]);
    println!("dw[0..4] = {:?}", &dw_app[..4]);
    println!("largest difference from gpuconv's host-slice ops: {diff:e}");
    Ok(diff)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().map(|_| ())
}
