use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{GpuError, Result};

/// A device and its queue, plus what every kernel launcher needs from them.
pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub report: AdapterReport,
    pub(super) pipelines: Mutex<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
    /// Parsed WGSL per shader file, shared by all of its entry points.
    pub(super) modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pub(super) lost: Arc<Mutex<Option<String>>>,
    /// The first GPU error no error scope caught (wgpu's default would panic natively).
    pub(super) uncaptured: Arc<Mutex<Option<String>>>,
}

/// What the adapter is and what it allows: shown by `varlab info` and on the page.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// The adapter reports itself as a CPU / fallback implementation (lavapipe, SwiftShader).
    pub is_software: bool,
    pub timestamps: bool,
    pub features: Vec<String>,
    pub limits: LimitsReport,
}

/// The limits the kernels care about, as granted to the device.
#[derive(Clone, Debug, Serialize)]
pub struct LimitsReport {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroup_size_y: u32,
    pub max_compute_workgroup_size_z: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

/// The environment variable that caps the storage binding size of every native context
/// ([`Context::cap_storage_binding`]), in bytes: to try an adapter's smaller limits.
pub const BINDING_CAP_VAR: &str = "VARLAB_MAX_STORAGE_BINDING";

/// The cap [`BINDING_CAP_VAR`] sets, if any (never in the browser).
fn binding_cap_from_env() -> Result<Option<u64>> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Ok(text) = std::env::var(BINDING_CAP_VAR) {
        return match text.trim().parse::<u64>() {
            Ok(bytes) if bytes >= 4 => Ok(Some(bytes)),
            _ => Err(GpuError::Validation {
                what: format!("the environment variable {BINDING_CAP_VAR}"),
                message: format!("'{text}' is not a number of bytes (at least 4)"),
            }),
        };
    }
    Ok(None)
}

impl Context {
    /// Finds an adapter (software ones included) and opens a device with the largest limits
    /// the adapter offers. Fails with [`GpuError::NoAdapter`] when there is none.
    pub async fn new() -> Result<Context> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = match instance.request_adapter(&options).await {
            Ok(adapter) => adapter,
            Err(first) => {
                // Some platforms only expose a software adapter when asked for it explicitly.
                let fallback = wgpu::RequestAdapterOptions {
                    force_fallback_adapter: true,
                    ..options
                };
                instance
                    .request_adapter(&fallback)
                    .await
                    .map_err(|_| GpuError::NoAdapter(first.to_string()))?
            }
        };
        Self::from_adapter(&adapter).await
    }

    /// Opens a device on a given adapter.
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Context> {
        let info = adapter.get_info();
        let offered = adapter.features();
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        let required_features = offered & wanted;
        // Ask for everything the adapter allows: storage buffers above the 128/256 MiB
        // defaults matter for datasets kept resident on the device.
        let required_limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("varlab"),
            required_features,
            required_limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            adapter
                .request_device(&desc)
                .await
                .map_err(|e| GpuError::RequestDevice {
                    adapter: info.name.clone(),
                    message: e.to_string(),
                })?;

        let lost = Arc::new(Mutex::new(None));
        let lost_in_callback = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lost_in_callback.lock().unwrap() = Some(format!("{reason:?}: {message}"));
        });

        let uncaptured = Arc::new(Mutex::new(None));
        let uncaptured_in_handler = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            let mut slot = uncaptured_in_handler.lock().unwrap();
            if slot.is_none() {
                *slot = Some(error.to_string());
            }
        }));

        let limits = device.limits();
        let features = device.features();
        let report = AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            is_software: info.device_type == wgpu::DeviceType::Cpu,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
            limits: LimitsReport {
                max_buffer_size: limits.max_buffer_size,
                max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
                max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
                max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
                max_compute_workgroup_size_x: limits.max_compute_workgroup_size_x,
                max_compute_workgroup_size_y: limits.max_compute_workgroup_size_y,
                max_compute_workgroup_size_z: limits.max_compute_workgroup_size_z,
                max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            },
        };
        let mut ctx = Context {
            device,
            queue,
            report,
            pipelines: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
            lost,
            uncaptured,
        };
        if let Some(cap) = binding_cap_from_env()? {
            ctx.cap_storage_binding(cap);
        }
        Ok(ctx)
    }

    /// Lowers the storage binding size this context allows to `bytes` (never raises it), as
    /// on an adapter that allows no more: datasets are then split over more bindings, and
    /// larger buffers are refused. The report shows the capped limit. For tests; natively
    /// also set by the environment variable [`BINDING_CAP_VAR`].
    pub fn cap_storage_binding(&mut self, bytes: u64) {
        let limit = &mut self.report.limits.max_storage_buffer_binding_size;
        *limit = (*limit).min(bytes);
    }

    /// `Err(DeviceLost)` once the device is gone; `Err(Validation)` once the GPU has reported
    /// an error that no error scope caught (results after it cannot be trusted).
    pub fn check_alive(&self) -> Result<()> {
        if let Some(reason) = self.lost.lock().unwrap().as_ref() {
            return Err(GpuError::DeviceLost(reason.clone()));
        }
        if let Some(message) = self.uncaptured.lock().unwrap().as_ref() {
            return Err(GpuError::Validation {
                what: "an earlier GPU command".into(),
                message: message.clone(),
            });
        }
        Ok(())
    }

    /// Refuses a workgroup count above the per-dimension limit, naming the limit.
    pub fn check_workgroups(&self, what: &str, count: u64) -> Result<u32> {
        let allowed = self.report.limits.max_compute_workgroups_per_dimension;
        if count > allowed as u64 {
            return Err(GpuError::LimitExceeded {
                limit: "max_compute_workgroups_per_dimension",
                what: what.to_string(),
                requested: count,
                allowed: allowed as u64,
            });
        }
        Ok(count as u32)
    }
}
