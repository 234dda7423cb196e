//! The GPU context: a device (gpuconv's own or the caller's), its planner, the pipeline cache,
//! the scratch pool, and buffers in and out.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result, TensorRole};
use crate::gpu::adapter::{instance, pick_adapter, AdapterSummary};
use crate::gpu::config::{Overrides, ShaderChecks};
use crate::gpu::kernels::{EpilogueSpec, Kernel, Spec};
use crate::gpu::plan::{Planner, TileProfile};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a context or a recorder.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// wgpu's GL backend shares one GL context per adapter and panics when a thread waits more than
/// 6 s for it (a long pipeline link or wait on llvmpipe holds it that long). Every gpuconv call
/// into a GL device, and every drop of a buffer gpuconv owns there, holds this lock instead, so
/// gpuconv's threads queue here and never reach wgpu's timeout. Re-entrant: scopes nest.
static GL_SERIAL: parking_lot::ReentrantMutex<()> = parking_lot::const_reentrant_mutex(());

/// Held while calling into a device that needs serialising (`None` elsewhere).
pub(crate) type SerialGuard = Option<parking_lot::ReentrantMutexGuard<'static, ()>>;

/// Whether calls into a device of this adapter are serialised with [`GL_SERIAL`].
fn needs_serial(info: &wgpu::AdapterInfo) -> bool {
    info.backend == wgpu::Backend::Gl
}

/// The serialising lock when `serial` (a GL device), else nothing.
pub(crate) fn serial_guard(serial: bool) -> SerialGuard {
    serial.then(|| GL_SERIAL.lock())
}

/// Locks `m`, recovering the data if a panic poisoned it (every value behind gpuconv's mutexes
/// stays valid across a panic: caches and pools).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which limits a context asks its device for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LimitsChoice {
    /// Everything the adapter offers.
    #[default]
    Adapter,
    /// Only what WebGPU guarantees on every device (wgpu's defaults: 16 KiB workgroup storage,
    /// 256 invocations per workgroup, 128 MiB storage bindings, 8 storage buffers per stage,
    /// 65535 workgroups per dimension), to prove the kernels run anywhere.
    WebGpuMinimum,
    /// These limits (each at most the adapter's): e.g. a small storage binding, to run the
    /// tiled paths on small problems.
    Custom(Box<wgpu::Limits>),
}

/// How a context is built.
#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    /// Fill every output and scratch buffer with NaN before a kernel writes it, so elements a
    /// kernel fails to write show up in tests. Costs an extra write per buffer.
    pub poison_outputs: bool,
    /// Tile profile to use instead of the one for the adapter's device type (tests use it to
    /// run the hardware-GPU tiles on lavapipe).
    pub tile_profile: Option<TileProfile>,
    /// Forced tiles and the shader-check mode.
    pub overrides: Overrides,
    /// The limits to request (ignored by [`GpuContext::from_device`], which reads the device's).
    pub limits: LimitsChoice,
    /// A tuning cache file: the context starts with this adapter's choices from it, and
    /// [`GpuContext::tune`] writes its choices there (`gpu::tune`).
    pub tune_cache: Option<std::path::PathBuf>,
}

/// A compiled kernel and the bind group layout built from its interface.
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// Everything that changes a shader module or pipeline: the pipeline cache's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PipelineKey {
    kernel: Kernel,
    spec: Spec,
    epilogue: EpilogueSpec,
    checks: ShaderChecks,
}

/// A wgpu device with gpuconv's pipelines. Build once and share (it is `Send + Sync`):
/// pipelines are compiled on first use and cached. Work is recorded with a
/// [`Recorder`](crate::gpu::Recorder); each op method here records one op and submits it.
pub struct GpuContext {
    pub(crate) id: u64,
    /// `device`, `queue` and `zeros` are dropped in `Drop`, serialised on GL.
    pub(crate) device: ManuallyDrop<wgpu::Device>,
    pub(crate) queue: ManuallyDrop<wgpu::Queue>,
    pub(crate) adapter_info: wgpu::AdapterInfo,
    pub(crate) planner: Planner,
    pub(crate) options: ContextOptions,
    /// Whether calls into the device are serialised (GL; see [`GL_SERIAL`]).
    pub(crate) serial: bool,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    scratch_pool: Mutex<Vec<wgpu::Buffer>>,
    /// The tuned plan choices (`gpu::tune`).
    pub(crate) tuned: Mutex<crate::gpu::tune::TuneCache>,
    /// Bound where a kernel needs a buffer it never reads (the forward without a bias).
    pub(crate) zeros: ManuallyDrop<wgpu::Buffer>,
    /// Errors outside gpuconv's error scopes, collected when gpuconv owns the device.
    uncaptured: Option<Arc<Mutex<Vec<wgpu::Error>>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.adapter())
            .finish_non_exhaustive()
    }
}

impl Drop for GpuContext {
    fn drop(&mut self) {
        let _serial = self.serial();
        lock(&self.pipelines).clear();
        lock(&self.scratch_pool).clear();
        // SAFETY: each is dropped only here, once, and not used after.
        unsafe {
            ManuallyDrop::drop(&mut self.zeros);
            ManuallyDrop::drop(&mut self.queue);
            ManuallyDrop::drop(&mut self.device);
        }
    }
}

/// Scratch buffers the pool keeps between calls.
const POOL_KEPT: usize = 8;

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
    ///
    /// Every such context in a process shares one instance and one adapter: on GL the adapter
    /// is one GL context, which wgpu lets only one thread use at a time, and gpuconv serialises
    /// its calls on it.
    pub async fn with_options_async(options: ContextOptions) -> Result<Self> {
        static ADAPTER: Mutex<Option<wgpu::Adapter>> = Mutex::new(None);
        let instance = instance()?;
        let adapter = {
            // Picking makes the GL context current: serialised like every other GL call.
            let _serial = serial_guard(true);
            let mut cached = lock(&ADAPTER);
            match &*cached {
                Some(a) => a.clone(),
                None => {
                    // Native wgpu resolves the request at once; blocking here keeps the guards
                    // out of the future (it stays Send).
                    let picked = pollster::block_on(pick_adapter(&instance))?;
                    cached.insert(picked).clone()
                }
            }
        };
        Self::from_adapter(adapter, options).await
    }

    /// Builds a context with its own device on `adapter`, requesting the limits `options`
    /// choose and, where the adapter has them, timestamp queries.
    pub async fn from_adapter(adapter: wgpu::Adapter, options: ContextOptions) -> Result<Self> {
        let adapter_info = adapter.get_info();
        let limits = match &options.limits {
            LimitsChoice::Adapter => adapter.limits(),
            LimitsChoice::WebGpuMinimum => wgpu::Limits::default(),
            LimitsChoice::Custom(limits) => (**limits).clone(),
        };
        // Native wgpu requests the device when called; the future is already resolved, so the
        // serialising lock is not held across the await (the future stays Send).
        let requested = {
            let _serial = serial_guard(needs_serial(&adapter_info));
            adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("gpuconv"),
                // Timestamp queries give device-side timings (Submission::device_time_ms).
                required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
                required_limits: limits,
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
        };
        let (device, queue) = requested.await.map_err(|source| Error::RequestDevice {
            adapter: adapter_info.name.clone(),
            source,
        })?;
        // wgpu's default handler panics; errors outside gpuconv's scopes are kept and reported.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).push(e);
        }));
        Self::build(device, queue, adapter_info, options, Some(uncaptured))
    }

    /// Builds a context over a device and queue the application created: gpuconv's work runs
    /// on them alongside the application's, with the device's own limits and features. The tile
    /// profile comes from `options.tile_profile` or the device's adapter info. The device's
    /// uncaptured-error handler stays the application's: gpuconv catches its own errors in
    /// error scopes.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: ContextOptions,
    ) -> Result<Self> {
        let info = device.adapter_info();
        Self::build(device, queue, info, options, None)
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: wgpu::AdapterInfo,
        options: ContextOptions,
        uncaptured: Option<Arc<Mutex<Vec<wgpu::Error>>>>,
    ) -> Result<Self> {
        let limits = device.limits();
        let profile = options
            .tile_profile
            .unwrap_or_else(|| TileProfile::for_device_type(adapter_info.device_type));
        let planner = Planner {
            profile,
            overrides: options.overrides,
            limits,
            max_loop_trips: crate::gpu::plan::loop_budget(&adapter_info),
        };
        let serial = needs_serial(&adapter_info);
        let guard = serial_guard(serial);
        let zeros = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("gpuconv zeros"),
            contents: &[0u8; 256],
            usage: wgpu::BufferUsages::STORAGE,
        });
        let ctx = GpuContext {
            id: next_id(),
            device: ManuallyDrop::new(device),
            queue: ManuallyDrop::new(queue),
            adapter_info,
            planner,
            options,
            serial,
            pipelines: Mutex::new(HashMap::new()),
            scratch_pool: Mutex::new(Vec::new()),
            tuned: Mutex::new(Default::default()),
            zeros: ManuallyDrop::new(zeros),
            uncaptured,
        };
        drop(guard);
        ctx.take_uncaptured("creating the context")?;
        ctx.load_tune_cache()?;
        Ok(ctx)
    }

    /// The adapter this context runs on.
    pub fn adapter(&self) -> AdapterSummary {
        AdapterSummary::from_info(&self.adapter_info)
    }

    /// The tile profile the planner starts from (see [`crate::gpu::plan::profile`]).
    pub fn tile_profile(&self) -> &TileProfile {
        &self.planner.profile
    }

    /// The planner: the plan of any op on this context, without running it.
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// The device limits in force.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.planner.limits
    }

    /// The wgpu device, for callers that mix gpuconv with their own work.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Whether the device has timestamp queries (lavapipe and most GPUs do).
    pub fn has_device_timing(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The compiled pipeline for `kernel` at `spec`, built on first use, with an explicit
    /// layout from the kernel's interface.
    pub(crate) fn pipeline(
        &self,
        kernel: Kernel,
        spec: Spec,
        epilogue: EpilogueSpec,
    ) -> Result<Arc<Pipeline>> {
        let checks = self.options.overrides.shader_checks;
        let key = PipelineKey {
            kernel,
            spec,
            epilogue,
            checks,
        };
        if let Some(p) = lock(&self.pipelines).get(&key) {
            return Ok(p.clone());
        }
        // Built outside the lock: two threads may both build one, and one of them is kept.
        let pipeline = self.scoped("building a pipeline", || {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.file_name()),
                source: wgpu::ShaderSource::Wgsl(kernel.source(spec, epilogue).into()),
            };
            let module = match checks.runtime_checks() {
                // SAFETY: ShaderChecks documents the switch: every loop in gpuconv's kernels is
                // counted, every divisor is a problem size ConvProblem keeps non-zero, and every
                // index is clamped in the kernel, so the dropped checks never fire.
                Some(checks) => unsafe { self.device.create_shader_module_trusted(desc, checks) },
                None => self.device.create_shader_module(desc),
            };
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(kernel.file_name()),
                    entries: &kernel.layout_entries(),
                });
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(kernel.file_name()),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            let constants = kernel.constants(spec);
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.file_name()),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: true,
                    },
                    cache: None,
                });
            Pipeline { pipeline, layout }
        })?;
        let pipeline = Arc::new(pipeline);
        lock(&self.pipelines).insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Runs `f` inside validation and out-of-memory error scopes (this thread's); a wgpu error
    /// becomes [`Error::Wgpu`] saying it happened `during`.
    pub(crate) fn scoped<T>(&self, during: &'static str, f: impl FnOnce() -> T) -> Result<T> {
        let _serial = self.serial();
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(source) = v.or(o) {
            return Err(Error::Wgpu { during, source });
        }
        self.take_uncaptured(during)?;
        Ok(out)
    }

    /// The serialising lock on a GL device (see [`GL_SERIAL`]).
    pub(crate) fn serial(&self) -> SerialGuard {
        serial_guard(self.serial)
    }

    /// The first error wgpu reported outside any scope since the last call, if any.
    pub(crate) fn take_uncaptured(&self, during: &'static str) -> Result<()> {
        let Some(sink) = &self.uncaptured else {
            return Ok(());
        };
        let mut errors = lock(sink);
        if errors.is_empty() {
            return Ok(());
        }
        let first = errors.remove(0);
        errors.clear();
        Err(Error::Wgpu {
            during,
            source: first,
        })
    }

    /// Checks a buffer of `bytes` for `what` against the device's largest buffer.
    pub(crate) fn check_buffer_size(&self, what: &str, bytes: u128) -> Result<u64> {
        let limit = self.planner.limits.max_buffer_size;
        match u64::try_from(bytes) {
            Ok(b) if b <= limit => Ok(b),
            _ => Err(Error::BufferTooLarge {
                what: what.to_string(),
                bytes,
                limit,
                limit_name: "buffer (max_buffer_size)",
                adapter: self.adapter_info.name.clone(),
            }),
        }
    }

    /// A new storage buffer of `bytes` (at least 4) for `what`, checked against the limits,
    /// poisoned with NaN when the context asks.
    pub(crate) fn storage_buffer(&self, what: &str, bytes: u128) -> Result<wgpu::Buffer> {
        let bytes = self.check_buffer_size(what, bytes.max(4).next_multiple_of(4))?;
        let buffer = self.scoped("allocating a buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.poison(&buffer, bytes)?;
        Ok(buffer)
    }

    /// Fills `bytes` of `buffer` with NaN when the context poisons outputs (applied at the next
    /// submission, before its commands run).
    pub(crate) fn poison(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<()> {
        if !self.options.poison_outputs {
            return Ok(());
        }
        let len = usize::try_from(bytes / 4).map_err(|_| Error::TooLarge {
            what: "poisoned buffer".into(),
            value: bytes.into(),
            limit: usize::MAX as u128,
        })?;
        let nan = crate::cpu::alloc::filled(len, f32::NAN, "NaN fill of a poisoned buffer")?;
        let _serial = self.serial();
        self.queue
            .write_buffer(buffer, 0, bytemuck::cast_slice(&nan));
        Ok(())
    }

    /// A scratch buffer of at least `bytes` from the pool (or new), poisoned when asked.
    pub(crate) fn take_scratch(&self, what: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let pooled = {
            let mut pool = lock(&self.scratch_pool);
            let pick = (0..pool.len())
                .filter(|&i| pool[i].size() >= bytes)
                .min_by_key(|&i| pool[i].size());
            pick.map(|i| pool.swap_remove(i))
        };
        match pooled {
            Some(b) => {
                self.poison(&b, bytes)?;
                Ok(b)
            }
            None => self.storage_buffer(what, bytes.into()),
        }
    }

    /// Returns scratch buffers to the pool. Work already recorded with them runs before any
    /// later submission that reuses them (one queue runs its submissions in order).
    pub(crate) fn return_scratch(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        // Truncating the pool drops buffers.
        let _serial = self.serial();
        let mut pool = lock(&self.scratch_pool);
        pool.extend(buffers);
        pool.sort_by_key(|b| std::cmp::Reverse(b.size()));
        pool.truncate(POOL_KEPT);
    }

    /// Checks that `buffer` (with STORAGE usage) belongs to this context's device: binding it
    /// here is a validation error otherwise, caught in a scope.
    pub(crate) fn check_own_buffer(&self, buffer: &wgpu::Buffer) -> Result<()> {
        let bad = |reason: &str| Error::BadBuffer {
            role: TensorRole::Input,
            reason: reason.to_string(),
        };
        if buffer.size() < 4 {
            return Err(bad("it holds no element"));
        }
        let bound = self.scoped("checking a caller's buffer", || {
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("gpuconv buffer check"),
                    entries: &[wgpu::BindGroupLayoutEntry {
                        binding: 0,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: true },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    }],
                });
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("gpuconv buffer check"),
                layout: &layout,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: 0,
                        size: wgpu::BufferSize::new(4),
                    }),
                }],
            })
        });
        match bound {
            Ok(_) => Ok(()),
            Err(Error::Wgpu { .. }) => Err(bad("it belongs to another device")),
            Err(e) => Err(e),
        }
    }

    /// A uniform buffer holding `bytes`.
    pub(crate) fn uniform_buffer(&self, bytes: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("gpuconv uniform"),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// A new storage buffer holding `data`, for tensor `role` (named in a size error).
    pub(crate) fn buffer_from(&self, role: TensorRole, data: &[f32]) -> Result<wgpu::Buffer> {
        let what = role.to_string();
        let bytes = self.check_buffer_size(&what, data.len() as u128 * 4)?;
        let buffer = self.scoped("allocating a buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&what),
                size: bytes.max(4),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        if !data.is_empty() {
            let _serial = self.serial();
            self.queue
                .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(buffer)
    }

    /// `bytes` bytes of `buffer` from `offset` (which needs COPY_SRC), through a staging buffer;
    /// waits for the GPU.
    pub(crate) async fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.scoped("reading back", || {
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
            encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, bytes);
            self.queue.submit([encoder.finish()]);
            staging
        })?;
        let data = self.map_read(&staging).await;
        let _serial = self.serial();
        drop(staging);
        data
    }

    /// Maps `staging` (MAP_READ), waits for the GPU, and copies its contents out.
    pub(crate) async fn map_read(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            // The receiver only disappears if the caller's future was dropped; nothing to report then.
            let _ = sender.send(r);
        });
        {
            let _serial = self.serial();
            self.device.poll(wgpu::PollType::wait_indefinitely())?;
        }
        match receiver.receive().await {
            Some(result) => result?,
            None => return Err(Error::ReadCancelled),
        }
        let _serial = self.serial();
        let data = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Internal(format!("read-back mapping: {e}")))?;
            let mut out = crate::cpu::alloc::vec_with_capacity(view.len(), "read-back copy")?;
            out.extend_from_slice(&view);
            out
        };
        staging.unmap();
        self.take_uncaptured("reading back")?;
        Ok(data)
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<()> {
        let _serial = self.serial();
        self.device.poll(wgpu::PollType::wait_indefinitely())?;
        self.take_uncaptured("waiting for the GPU")
    }
}
