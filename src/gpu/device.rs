//! The one owner of the wgpu instance, adapter, device and queue, and of the
//! compiled compute pipelines.
//!
//! Why one place: creating a device and compiling pipelines costs far more than
//! a small solve (hundreds of milliseconds on lavapipe), so a [`GpuContext`] is
//! built once and shared (`Arc`) by every solve; and every limit the back end
//! plans against (binding size, buffer size, dispatch size) is read here, so a
//! test can lower it in one place ([`GpuContext::with_max_binding`]).
//!
//! Only Vulkan, Metal and DX12 are enabled: the GL back end has no storage
//! buffers big enough to matter, and probing EGL on a headless machine only
//! prints warnings.

use std::borrow::Cow;
use std::fmt;
use std::sync::{mpsc, Arc, Mutex};

use crate::error::{Error, Result};

/// Back ends probed for adapters (never GL).
pub const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN
    .union(wgpu::Backends::METAL)
    .union(wgpu::Backends::DX12);

/// Smallest storage-binding limit [`GpuContext::with_max_binding`] accepts: a
/// binding must hold the per-invocation partials of one long-row segment
/// (256 invocations × 2 × 16 bytes) and a chunk at least one short row.
pub const MIN_BINDING: u64 = 16 << 10;

const SUM_WGSL: &str = include_str!("../../shaders/sum.wgsl");
const SPMV_WGSL: &str = include_str!("../../shaders/spmv.wgsl");
const POWER_WGSL: &str = include_str!("../../shaders/power.wgsl");

/// How many columns one shader value carries: `f32` (one column, no padding,
/// for the common single-vector solve) or `vec4<f32>` (four interleaved
/// columns, one 16-byte load per gathered source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lanes {
    One,
    Four,
}

impl Lanes {
    pub(crate) fn count(self) -> usize {
        match self {
            Lanes::One => 1,
            Lanes::Four => 4,
        }
    }

    /// WGSL prelude that specialises the shared shader text to this width.
    fn prelude(self) -> &'static str {
        match self {
            Lanes::One => {
                "alias V = f32;\nconst LANES: u32 = 1u;\n\
                 fn lane(v: V, l: u32) -> f32 { return v; }\n\
                 fn with_lane(v: V, l: u32, x: f32) -> V { return x; }\n"
            }
            Lanes::Four => {
                "alias V = vec4<f32>;\nconst LANES: u32 = 4u;\n\
                 fn lane(v: V, l: u32) -> f32 { return v[l]; }\n\
                 fn with_lane(v: V, l: u32, x: f32) -> V { var r = v; r[l] = x; return r; }\n"
            }
        }
    }
}

/// The compiled pipelines of one lane width (see shaders/*.wgsl).
#[derive(Debug)]
pub(crate) struct Kernels {
    pub spmv_short_ps: wgpu::ComputePipeline,
    pub spmv_short_pe: wgpu::ComputePipeline,
    pub spmv_long_ps: wgpu::ComputePipeline,
    pub spmv_long_pe: wgpu::ComputePipeline,
    pub seg_reduce: wgpu::ComputePipeline,
    pub long_finish: wgpu::ComputePipeline,
    pub update_ps: wgpu::ComputePipeline,
    pub update_pe: wgpu::ComputePipeline,
    pub fold: wgpu::ComputePipeline,
    pub finalize: wgpu::ComputePipeline,
}

impl Kernels {
    fn build(device: &wgpu::Device, lanes: Lanes) -> Self {
        let module = |name: &str, family: &str| {
            let text = format!("{}\n{}\n{}", lanes.prelude(), SUM_WGSL, family);
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(text)),
            })
        };
        let spmv = module("spmv.wgsl", SPMV_WGSL);
        let power = module("power.wgsl", POWER_WGSL);
        let pipe = |m: &wgpu::ShaderModule, entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: m,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    // Every workgroup variable is written before it is read.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        };
        Kernels {
            spmv_short_ps: pipe(&spmv, "spmv_short_ps"),
            spmv_short_pe: pipe(&spmv, "spmv_short_pe"),
            spmv_long_ps: pipe(&spmv, "spmv_long_ps"),
            spmv_long_pe: pipe(&spmv, "spmv_long_pe"),
            seg_reduce: pipe(&spmv, "seg_reduce"),
            long_finish: pipe(&spmv, "long_finish"),
            update_ps: pipe(&power, "update_ps"),
            update_pe: pipe(&power, "update_pe"),
            fold: pipe(&power, "fold"),
            finalize: pipe(&power, "finalize"),
        }
    }
}

/// An opened GPU: adapter, device, queue and cached pipelines.
pub struct GpuContext {
    // Kept alive for the lifetime of the device.
    _instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    max_binding: u64,
    /// Errors that escaped every error scope (e.g. raised on another thread).
    uncaptured: Arc<Mutex<Vec<String>>>,
    kernels_one: Kernels,
    kernels_four: Kernels,
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("max_binding", &self.max_binding)
            .finish()
    }
}

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

fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = BACKENDS;
    desc.flags = wgpu::InstanceFlags::from_env_or_default();
    wgpu::Instance::new(desc)
}

fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(BACKENDS));
    // Stable: keeps the platform's order within a device type.
    adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
    adapters
}

impl GpuContext {
    /// Opens the preferred adapter (discrete > integrated > virtual > CPU), or
    /// the first whose name contains `adapter_filter` (case-insensitive), and
    /// compiles the pipelines.
    ///
    /// The device is created with the adapter's own limits, so storage
    /// bindings and buffers can be as large as the hardware allows, and with no
    /// optional features (the kernels need none).
    pub fn new(adapter_filter: Option<&str>) -> Result<Self> {
        let instance = new_instance();
        let adapters = enumerate(&instance);
        if adapters.is_empty() {
            return Err(Error::Device(
                "no Vulkan, Metal or DX12 adapter found (on Linux without a GPU, install Mesa's \
                 lavapipe, e.g. the mesa-vulkan-drivers package)"
                    .into(),
            ));
        }
        let names: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({})", i.name, i.backend)
            })
            .collect();
        let adapter = match adapter_filter {
            None => adapters.into_iter().next(),
            Some(f) => {
                let f = f.to_lowercase();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&f))
            }
        }
        .ok_or_else(|| {
            Error::Device(format!(
                "no adapter name contains {:?}; available: {}",
                adapter_filter.unwrap_or_default(),
                names.join(", ")
            ))
        })?;
        let info = adapter.get_info();
        let desc = wgpu::DeviceDescriptor {
            label: Some("trustmesh"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::Device(format!(
                "{} ({}): cannot open device: {e}",
                info.name, info.backend
            ))
        })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let limits = device.limits();
        let (kernels_one, kernels_four) = scoped(&device, || {
            Ok((
                Kernels::build(&device, Lanes::One),
                Kernels::build(&device, Lanes::Four),
            ))
        })
        .map_err(|e| {
            let why = match e {
                Error::Device(m) => m,
                other => other.to_string(),
            };
            Error::Device(format!(
                "{}: compiling the compute shaders failed: {why}",
                info.name
            ))
        })?;
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        Ok(GpuContext {
            _instance: instance,
            adapter,
            device,
            queue,
            info,
            limits,
            max_binding,
            uncaptured,
            kernels_one,
            kernels_four,
        })
    }

    /// Lowers the largest storage binding (and buffer) the back end will plan
    /// for, so tests can exercise the split-matrix path on small graphs. Values
    /// are clamped to [`MIN_BINDING`]..=the device limit and rounded down to a
    /// multiple of 16 bytes.
    pub fn with_max_binding(mut self, bytes: u64) -> Self {
        let device_max = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        self.max_binding = (bytes.clamp(MIN_BINDING, device_max.max(MIN_BINDING)) / 16) * 16;
        self
    }

    /// The largest storage binding the back end plans for, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.max_binding
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Summary of the opened adapter, as [`list_adapters`] prints it.
    pub fn summary(&self) -> AdapterSummary {
        AdapterSummary::of(&self.adapter)
    }

    pub(crate) fn kernels(&self, lanes: Lanes) -> &Kernels {
        match lanes {
            Lanes::One => &self.kernels_one,
            Lanes::Four => &self.kernels_four,
        }
    }

    /// Workgroups per dispatch dimension.
    pub(crate) fn max_workgroups(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension.max(1)
    }

    /// Takes errors that escaped the error scopes since the last call.
    pub(crate) fn take_uncaptured(&self) -> Option<String> {
        let mut v = self.uncaptured.lock().ok()?;
        if v.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut *v).join("; "))
        }
    }

    /// Blocks until the queue is idle.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| {
                Error::Device(format!(
                    "{}: waiting for the GPU failed: {e}",
                    self.info.name
                ))
            })
    }

    /// Maps `buffer` (MAP_READ, already filled by a submitted copy) and returns
    /// its bytes.
    pub(crate) fn read_buffer(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
        let slice = buffer.slice(..);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::Device(format!(
                    "{}: reading back a buffer failed: {e}",
                    self.info.name
                )))
            }
            Err(_) => {
                return Err(Error::Device(format!(
                    "{}: buffer map never completed",
                    self.info.name
                )))
            }
        }
        let bytes = {
            let view = slice.get_mapped_range().map_err(|e| {
                Error::Device(format!("{}: mapping a buffer failed: {e}", self.info.name))
            })?;
            view.to_vec()
        };
        buffer.unmap();
        Ok(bytes)
    }
}

/// Runs `f` inside validation, out-of-memory and internal error scopes and
/// turns the first captured error into [`Error::Device`]: without scopes wgpu
/// would panic on a validation error, and a library must not.
pub(crate) fn scoped<T>(device: &wgpu::Device, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let errors = [
        pollster::block_on(validation.pop()),
        pollster::block_on(oom.pop()),
        pollster::block_on(internal.pop()),
    ];
    if let Some(e) = errors.into_iter().flatten().next() {
        return Err(Error::Device(e.to_string()));
    }
    out
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
    fn of(adapter: &wgpu::Adapter) -> Self {
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
/// [`GpuContext::new`] prefers them. Empty when there is none.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let instance = new_instance();
    enumerate(&instance)
        .iter()
        .map(AdapterSummary::of)
        .collect()
}
