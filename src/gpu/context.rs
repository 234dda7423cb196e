//! The GPU context: adapter choice, device, pipeline cache, buffers and read-back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Spec};
use crate::gpu::plan::TileProfile;
use crate::gpu::timer::PassTimer;

static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How a context is built.
#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    /// Fill every output and scratch buffer with NaN before a kernel writes it, so elements a
    /// kernel fails to write show up in tests. Costs an extra write per call.
    pub poison_outputs: bool,
    /// Tile profile to use instead of the one for the adapter's device type (tests use it to
    /// run the hardware-GPU tiles on lavapipe).
    pub tile_profile: Option<TileProfile>,
}

/// The adapter a context runs on, as reported by wgpu.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    /// Adapter name (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub name: String,
    /// Backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Device type (DiscreteGpu, IntegratedGpu, Cpu, ...).
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
}

impl AdapterSummary {
    /// The summary of a wgpu adapter.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Self {
        Self::from_info(&adapter.get_info())
    }

    fn from_info(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

/// A wgpu device with gpuconv's pipelines. Build once and share (it is `Send + Sync`):
/// pipelines are compiled on first use and cached.
pub struct GpuContext {
    pub(crate) id: u64,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    adapter_info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pipelines: Mutex<HashMap<(Kernel, Spec), Arc<wgpu::ComputePipeline>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    pub(crate) options: ContextOptions,
    pub(crate) profile: TileProfile,
    pub(crate) timer: Mutex<Option<PassTimer>>,
    /// The open chain's encoder and the thread recording it (see `GpuContext::chain`).
    pub(crate) chain: Mutex<Option<(std::thread::ThreadId, wgpu::CommandEncoder)>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.adapter())
            .finish_non_exhaustive()
    }
}

/// Creates the wgpu instance, honouring `WGPU_BACKEND` and the other `WGPU_*` instance variables.
pub fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter the instance sees.
pub async fn enumerate_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    instance.enumerate_adapters(backends).await
}

/// The adapter gpuconv uses: the first whose name contains `WGPU_ADAPTER_NAME` (case-insensitive)
/// when that is set, else wgpu's choice for `WGPU_POWER_PREF` (default high performance).
pub async fn pick_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted_lower = wanted.to_lowercase();
        let adapters = enumerate_adapters(instance).await;
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lower))
            .ok_or_else(|| Error::NoAdapter {
                detail: format!(
                    " whose name contains WGPU_ADAPTER_NAME={wanted:?} (adapters seen: {names:?})"
                ),
            });
    }
    let power_preference =
        wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter {
            detail: format!(" ({e})"),
        })
}

impl GpuContext {
    /// Picks an adapter (see [`pick_adapter`]) and creates a device with the adapter's own limits.
    pub async fn new_async() -> Result<Self> {
        Self::with_options_async(ContextOptions::default()).await
    }

    /// Blocking form of [`GpuContext::new_async`].
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async())
    }

    /// Blocking form of [`GpuContext::with_options_async`].
    pub fn with_options(options: ContextOptions) -> Result<Self> {
        pollster::block_on(Self::with_options_async(options))
    }

    /// Like [`GpuContext::new_async`] with explicit options.
    pub async fn with_options_async(options: ContextOptions) -> Result<Self> {
        let instance = instance();
        let adapter = pick_adapter(&instance).await?;
        Self::from_adapter(adapter, options).await
    }

    /// Builds a context on a given adapter, requesting all of its limits (not wgpu's defaults).
    pub async fn from_adapter(adapter: wgpu::Adapter, options: ContextOptions) -> Result<Self> {
        let adapter_info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gpuconv"),
                // Timestamp queries give device-side timings (GpuContext::device_time_ms).
                required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: adapter_info.name.clone(),
                message: e.to_string(),
            })?;
        // wgpu's default handler panics; errors outside our scopes are kept and reported instead.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let profile = options
            .tile_profile
            .unwrap_or_else(|| TileProfile::for_device_type(adapter_info.device_type));
        Ok(GpuContext {
            id: NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed),
            device,
            queue,
            adapter_info,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
            profile,
            timer: Mutex::new(None),
            chain: Mutex::new(None),
            options,
        })
    }

    /// The adapter this context runs on.
    pub fn adapter(&self) -> AdapterSummary {
        AdapterSummary::from_info(&self.adapter_info)
    }

    /// The tile profile the ops start from (see [`crate::gpu::plan`]).
    pub fn tile_profile(&self) -> &TileProfile {
        &self.profile
    }

    /// The device limits in force (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The wgpu device, for callers that mix gpuconv with their own work.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The compiled pipeline for `kernel` at `spec`, built on first use.
    pub(crate) fn pipeline(
        &self,
        kernel: Kernel,
        spec: Spec,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| Error::Gpu("pipeline cache lock poisoned".into()))?;
        if let Some(p) = cache.get(&(kernel, spec)) {
            return Ok(p.clone());
        }
        let pipeline = self.scoped(|| {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.file_name()),
                source: wgpu::ShaderSource::Wgsl(kernel.source(spec).into()),
            };
            let module = match shader_checks_override() {
                // SAFETY: an experiment switch (benches/NOTES.md, "H200"): every loop in
                // gpuconv's kernels is counted, every divisor is a problem size that
                // ConvProblem keeps non-zero, and every index is clamped in the kernel.
                Some(checks) => unsafe { self.device.create_shader_module_trusted(desc, checks) },
                None => self.device.create_shader_module(desc),
            };
            let constants = kernel.constants(spec);
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.file_name()),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: true,
                    },
                    cache: None,
                })
        })?;
        let pipeline = Arc::new(pipeline);
        cache.insert((kernel, spec), pipeline.clone());
        Ok(pipeline)
    }

    /// Runs `f` inside validation and out-of-memory error scopes; a wgpu error becomes `Error::Gpu`.
    pub(crate) fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu(e.to_string()));
        }
        self.take_uncaptured()?;
        Ok(out)
    }

    fn take_uncaptured(&self) -> Result<()> {
        let mut errors = self
            .uncaptured
            .lock()
            .map_err(|_| Error::Gpu("error sink lock poisoned".into()))?;
        if errors.is_empty() {
            Ok(())
        } else {
            let msg = errors.join("; ");
            errors.clear();
            Err(Error::Gpu(msg))
        }
    }

    /// Checks a storage buffer of `bytes` against the device limits.
    pub(crate) fn check_buffer_size(&self, what: &str, bytes: u64) -> Result<()> {
        let checks = [
            (self.limits.max_buffer_size, "buffer (max_buffer_size)"),
            (
                self.limits.max_storage_buffer_binding_size,
                "storage binding (max_storage_buffer_binding_size)",
            ),
        ];
        for (limit, limit_name) in checks {
            if bytes > limit {
                return Err(Error::BufferTooLarge {
                    what: what.to_string(),
                    bytes,
                    limit,
                    limit_name,
                    adapter: self.adapter_info.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// An empty storage buffer for `len` f32s (at least 4 bytes), checked against the limits.
    fn empty_storage_buffer(&self, what: &str, len: usize) -> Result<wgpu::Buffer> {
        let bytes = (len.max(1) * 4) as u64;
        self.check_buffer_size(what, bytes)?;
        self.scoped(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// A storage buffer for `len` f32s, poisoned with NaN when the context asks.
    pub(crate) fn storage_buffer(&self, what: &str, len: usize) -> Result<wgpu::Buffer> {
        let buffer = self.empty_storage_buffer(what, len)?;
        if self.options.poison_outputs {
            let nan = vec![f32::NAN; len.max(1)];
            self.queue
                .write_buffer(&buffer, 0, bytemuck::cast_slice(&nan));
        }
        Ok(buffer)
    }

    /// A storage buffer holding `data`.
    pub(crate) fn storage_buffer_from(&self, what: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        let buffer = self.empty_storage_buffer(what, data.len())?;
        if !data.is_empty() {
            self.queue
                .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(buffer)
    }

    /// A uniform buffer holding `value`.
    pub(crate) fn uniform_buffer<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gpuconv uniform"),
            size: std::mem::size_of::<T>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue
            .write_buffer(&buffer, 0, bytemuck::bytes_of(value));
        buffer
    }

    /// Copies `len` f32s out of `buffer`. Submits the copy, then waits for the GPU.
    pub(crate) async fn read_buffer(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(buffer, (len * 4) as u64).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The first `bytes` bytes of `buffer` (which needs COPY_SRC), through a staging buffer.
    pub(crate) async fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        if self.in_chain_on_this_thread()? {
            return Err(Error::Invalid(
                "cannot read a tensor inside GpuContext::chain: its ops are submitted when the \
                 chain closure returns; read after it"
                    .into(),
            ));
        }
        let staging = self.scoped(|| {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("gpuconv read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("read-back"),
                });
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
            self.queue.submit([encoder.finish()]);
            staging
        })?;
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            // The receiver only disappears if the caller's future was dropped; nothing to report then.
            let _ = sender.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        match receiver.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(Error::Gpu(format!(
                    "mapping the read-back buffer failed: {e}"
                )))
            }
            None => return Err(Error::Gpu("read-back was cancelled".into())),
        }
        let data = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("read-back mapping: {e}")))?;
            view.to_vec()
        };
        staging.unmap();
        self.take_uncaptured()?;
        Ok(data)
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        self.take_uncaptured()
    }
}

/// `GPUCONV_SHADER_CHECKS` turns off wgpu's injected shader checks, to measure what they cost:
/// `no-loop-bound` (loop bounding), `no-div` (guarded integer division), `trusted` (both),
/// `none` (those and bounds checks). Unset or anything else: every check stays on.
fn shader_checks_override() -> Option<wgpu::ShaderRuntimeChecks> {
    let mut checks = wgpu::ShaderRuntimeChecks::checked();
    match std::env::var("GPUCONV_SHADER_CHECKS").ok()?.as_str() {
        "no-loop-bound" => checks.force_loop_bounding = false,
        "no-div" => checks.int_div_checks = false,
        "trusted" => {
            checks.force_loop_bounding = false;
            checks.int_div_checks = false;
        }
        "none" => {
            checks.force_loop_bounding = false;
            checks.int_div_checks = false;
            checks.bounds_checks = false;
        }
        _ => return None,
    }
    Some(checks)
}
