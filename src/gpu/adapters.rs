//! Finding adapters: which back ends are probed, in which order adapters are
//! preferred, and the summary `trustmesh devices` prints.
//!
//! Only Vulkan, Metal and DX12 are enabled: the GL back end has no storage
//! buffers big enough to matter, and probing EGL on a headless machine only
//! prints warnings.

use std::fmt;

/// Back ends probed for adapters (never GL).
pub const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN
    .union(wgpu::Backends::METAL)
    .union(wgpu::Backends::DX12);

/// Preference order when no filter is given: real GPUs first.
fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

pub(crate) fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = BACKENDS;
    desc.flags = wgpu::InstanceFlags::from_env_or_default();
    wgpu::Instance::new(desc)
}

/// Every adapter of `instance`, in preference order.
pub(crate) fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(BACKENDS));
    // Stable: keeps the platform's order within a device type.
    adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
    adapters
}

/// One adapter as `trustmesh devices` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
    /// Largest storage buffer binding, bytes (the matrix is split above it).
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    /// Optional features the adapter offers, kebab-case.
    pub features: Vec<String>,
}

impl AdapterSummary {
    pub(crate) fn of(adapter: &wgpu::Adapter) -> Self {
        let i = adapter.get_info();
        let l = adapter.limits();
        let features = adapter
            .features()
            .iter()
            .map(|f| {
                f.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{f:?}"))
            })
            .collect();
        AdapterSummary {
            name: i.name,
            backend: i.backend.to_string(),
            device_type: format!("{:?}", i.device_type),
            driver: i.driver,
            driver_info: i.driver_info,
            vendor: i.vendor,
            device: i.device,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            features,
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} [{}, {}]", self.name, self.backend, self.device_type)?;
        writeln!(
            f,
            "  driver: {} {} (vendor {:#06x}, device {:#06x})",
            self.driver, self.driver_info, self.vendor, self.device
        )?;
        writeln!(
            f,
            "  limits: storage binding {}, buffer {}, {} storage buffers/stage, \
             {} B workgroup memory, {} invocations/workgroup, {} workgroups/dim",
            mib(self.max_storage_buffer_binding_size),
            mib(self.max_buffer_size),
            self.max_storage_buffers_per_shader_stage,
            self.max_compute_workgroup_storage_size,
            self.max_compute_invocations_per_workgroup,
            self.max_compute_workgroups_per_dimension
        )?;
        if self.features.is_empty() {
            write!(f, "  features: none")
        } else {
            write!(f, "  features: {}", self.features.join(", "))
        }
    }
}

/// Every Vulkan/Metal/DX12 adapter on this machine, in the order
/// [`super::GpuContext::new`] prefers them. Empty when there is none.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let instance = new_instance();
    enumerate(&instance)
        .iter()
        .map(AdapterSummary::of)
        .collect()
}
