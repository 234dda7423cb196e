//! Finding an adapter: the wgpu instance (honouring wgpu's `WGPU_*` variables), the adapters it
//! sees, the one gpuconv picks, and a printable summary.

use crate::error::{Error, Result};

/// The adapter a context runs on, as reported by wgpu.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The summary of wgpu's adapter info.
    pub fn from_info(info: &wgpu::AdapterInfo) -> Self {
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

/// The backend names `WGPU_BACKEND` may list.
const BACKEND_NAMES: [&str; 9] = [
    "vulkan", "vk", "dx12", "d3d12", "metal", "mtl", "opengl", "gles", "gl",
];

/// Checks `WGPU_BACKEND`: wgpu silently ignores names it does not know, which leaves no backend
/// and a bare "no adapter"; gpuconv names the variable instead.
fn check_backend_variable() -> Result<()> {
    let Ok(value) = std::env::var("WGPU_BACKEND") else {
        return Ok(());
    };
    let known = value
        .split(',')
        .all(|b| BACKEND_NAMES.contains(&b.trim().to_lowercase().as_str()));
    if !known {
        return Err(Error::InvalidSetting {
            name: "WGPU_BACKEND",
            value,
            expected: "a comma-separated list of vulkan, metal, dx12, gl",
        });
    }
    Ok(())
}

/// The process's wgpu instance, created on first use honouring `WGPU_BACKEND` (checked: an
/// unknown backend name is an error naming it) and the other `WGPU_*` instance variables. Every
/// context gpuconv creates shares it, so a tensor or buffer of one context used on another is a
/// device mismatch that wgpu's validation reports (objects of different instances cannot be
/// told apart through wgpu's API: never pass a buffer of an instance the caller made itself to
/// a context on another).
pub fn instance() -> Result<wgpu::Instance> {
    static INSTANCE: std::sync::OnceLock<wgpu::Instance> = std::sync::OnceLock::new();
    check_backend_variable()?;
    Ok(INSTANCE
        .get_or_init(|| {
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
        })
        .clone())
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
                source: None,
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
            source: Some(e),
        })
}
