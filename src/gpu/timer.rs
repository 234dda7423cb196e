//! Device-side timing: while [`GpuContext::device_time_ms`] runs, every compute pass the ops
//! record writes a timestamp at its start and end; the sum of the pass durations is the GPU time,
//! free of submit and wait overheads. Adapters without timestamp queries report `None`, and
//! callers fall back to wall-clock submit-and-wait.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Passes one timing scope can record (two queries each).
const MAX_PASSES: u32 = 64;

/// The query set of an open timing scope and the next free pass slot.
pub(crate) struct PassTimer {
    query_set: wgpu::QuerySet,
    next_pass: u32,
}

impl GpuContext {
    /// Whether the device has timestamp queries (lavapipe and most GPUs do).
    pub fn has_device_timing(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Runs `f`, which records ops on this context, waits for them, and returns `f`'s result
    /// with the summed device time of the compute passes it recorded, in milliseconds. `None`
    /// when the device has no timestamp queries or `f` recorded more than 64 passes. Passes
    /// other threads record on this context meanwhile are counted too: time from one thread.
    pub fn device_time_ms<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>)> {
        if !self.has_device_timing() {
            let out = f()?;
            self.wait()?;
            return Ok((out, None));
        }
        let query_set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("gpuconv pass timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * MAX_PASSES,
        });
        *self.lock_timer()? = Some(PassTimer {
            query_set: query_set.clone(),
            next_pass: 0,
        });
        let out = f();
        let timer = self.lock_timer()?.take();
        let out = out?;
        let passes = timer.map_or(0, |t| t.next_pass);
        if passes > MAX_PASSES {
            self.wait()?;
            return Ok((out, None));
        }
        if passes == 0 {
            self.wait()?;
            return Ok((out, Some(0.0)));
        }
        let bytes = u64::from(2 * passes) * 8;
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gpuconv timestamp resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gpuconv timestamp resolve"),
            });
        encoder.resolve_query_set(&query_set, 0..2 * passes, &resolve, 0);
        self.queue.submit([encoder.finish()]);
        let raw: Vec<u64> =
            bytemuck::pod_collect_to_vec(&pollster::block_on(self.read_bytes(&resolve, bytes))?);
        let ticks: u64 = raw
            .chunks_exact(2)
            .map(|pair| pair[1].saturating_sub(pair[0]))
            .sum();
        let ns = ticks as f64 * f64::from(self.queue.get_timestamp_period());
        Ok((out, Some(ns / 1e6)))
    }

    /// The timestamp writes for the next compute pass, when a timing scope is open and has room.
    pub(crate) fn next_pass_timestamps(&self) -> Option<(wgpu::QuerySet, u32)> {
        let mut guard = self.timer.lock().ok()?;
        let timer = guard.as_mut()?;
        let slot = timer.next_pass;
        timer.next_pass += 1;
        (slot < MAX_PASSES).then(|| (timer.query_set.clone(), 2 * slot))
    }

    fn lock_timer(&self) -> Result<std::sync::MutexGuard<'_, Option<PassTimer>>> {
        self.timer
            .lock()
            .map_err(|_| Error::Gpu("timer lock poisoned".into()))
    }
}
