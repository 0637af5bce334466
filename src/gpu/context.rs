//! The one owner of the wgpu instance, adapter, device and queue, and of what
//! every kernel family shares: limits, buffer helpers, readback, error scopes,
//! shader composition and a cache of compiled pipelines per family.
//!
//! Why one place: opening a device and compiling pipelines costs far more than
//! a small solve (hundreds of milliseconds on lavapipe), so a [`GpuContext`] is
//! built once and shared (`Arc`) by every solve; every limit the kernels plan
//! against (binding size, buffer size, dispatch size) is read here, so a test
//! can lower it in one place ([`GpuContext::with_max_binding`]). A kernel
//! family (`gpu/trust/`, later `gpu/mechanism/`) implements [`KernelFamily`]
//! and gets its pipelines compiled once per context through
//! [`GpuContext::family`]; adding a family touches nothing here.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{mpsc, Arc, Mutex};

use wgpu::util::DeviceExt;

use super::adapters::{enumerate, new_instance, AdapterSummary};
use super::error::DeviceError;
use crate::error::{Error, Result};

/// Smallest storage-binding limit [`GpuContext::with_max_binding`] accepts: a
/// chunk must hold at least one long-row segment of entries.
pub const MIN_BINDING: u64 = 16 << 10;

/// Shared by every family: compensated sums (shaders/common/sum.wgsl).
const COMMON_SUM_WGSL: &str = include_str!("../../shaders/common/sum.wgsl");

/// A set of compute pipelines compiled together, once per context.
pub(crate) trait KernelFamily: Send + Sync + Sized + 'static {
    /// Compiles the family's pipelines on `ctx`'s device.
    fn build(ctx: &GpuContext) -> Result<Self>;
}

/// An opened GPU: adapter, device, queue and the families compiled on it.
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
    uncaptured: Arc<Mutex<Vec<wgpu::Error>>>,
    /// Compiled kernel families, by type.
    families: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

/// Timestamp queries between dispatches of one pass (kernel profiling only).
const TIMING_FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("max_binding", &self.max_binding)
            .finish()
    }
}

impl GpuContext {
    /// Opens the preferred adapter (discrete > integrated > virtual > CPU), or
    /// the first whose name contains `adapter_filter` (case-insensitive).
    ///
    /// The device is created with the adapter's own limits, so storage
    /// bindings and buffers can be as large as the hardware allows. The
    /// kernels need no optional feature: subgroups are requested where
    /// offered (the product kernels' faster tree, same bits), timestamp
    /// queries only so `bench --profile-kernels` can time each kernel.
    /// Kernel families are compiled on first use.
    pub fn new(adapter_filter: Option<&str>) -> Result<Self> {
        let instance = new_instance();
        let adapters = enumerate(&instance);
        if adapters.is_empty() {
            return Err(DeviceError::NoAdapter.into());
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
        .ok_or_else(|| DeviceError::AdapterNotFound {
            filter: adapter_filter.unwrap_or_default().to_string(),
            available: names,
        })?;
        let info = adapter.get_info();
        let desc = wgpu::DeviceDescriptor {
            label: Some("trustmesh"),
            required_features: adapter.features() & (TIMING_FEATURES | wgpu::Features::SUBGROUP),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|source| {
                DeviceError::Open {
                    adapter: format!("{} ({})", info.name, info.backend),
                    source,
                }
            })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e);
            }
        }));
        let limits = device.limits();
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
            families: Mutex::new(HashMap::new()),
        })
    }

    /// Lowers the largest storage binding (and buffer) the kernels will plan
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

    /// The largest storage binding the kernels plan for, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.max_binding
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Whether kernels can be timed one by one (timestamps inside passes).
    pub(crate) fn can_time_kernels(&self) -> bool {
        self.device.features().contains(TIMING_FEATURES)
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Summary of the opened adapter, as [`super::list_adapters`] prints it.
    pub fn summary(&self) -> AdapterSummary {
        AdapterSummary::of(&self.adapter)
    }

    /// The pipelines of family `F`, compiled on first use and then shared.
    pub(crate) fn family<F: KernelFamily>(&self) -> Result<Arc<F>> {
        let key = TypeId::of::<F>();
        if let Some(f) = self.lock_families()?.get(&key) {
            return downcast(Arc::clone(f));
        }
        // Compiled outside the lock: two threads may both compile on a race,
        // and the first to insert wins; compiling twice is only wasted work.
        let built: Arc<dyn Any + Send + Sync> =
            Arc::new(scoped(&self.device, || F::build(self)).map_err(|e| {
                DeviceError::Compile {
                    adapter: self.info.name.clone(),
                    source: crate::error::Inner::new(e),
                }
            })?);
        let f = Arc::clone(self.lock_families()?.entry(key).or_insert(built));
        downcast(f)
    }

    fn lock_families(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<TypeId, Arc<dyn Any + Send + Sync>>>> {
        self.families
            .lock()
            .map_err(|_| Error::internal("pipeline cache poisoned by a panic"))
    }

    /// Compiles WGSL text (see [`compose_wgsl`]).
    pub(crate) fn shader(&self, label: &str, text: String) -> wgpu::ShaderModule {
        self.device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(text)),
            })
    }

    /// A storage buffer holding `bytes` (one unused element when empty:
    /// zero-sized bindings are invalid), with `extra` usages.
    pub(crate) fn storage_init(
        &self,
        label: &str,
        bytes: &[u8],
        extra: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let pad = [0u8; 16];
        let contents = if bytes.is_empty() { &pad[..] } else { bytes };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE | extra,
            })
    }

    /// A zero-filled buffer of at least 16 bytes (wgpu zero-fills new buffers
    /// before first use).
    pub(crate) fn zeroed(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(16),
            usage,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding `bytes`.
    pub(crate) fn uniform(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Workgroups per dispatch dimension.
    pub(crate) fn max_workgroups(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension.max(1)
    }

    /// Dispatches `count` workgroups, split over x and y when one dimension
    /// cannot hold them (kernels rebuild the linear index with `wg_index`).
    pub(crate) fn dispatch_linear(&self, pass: &mut wgpu::ComputePass<'_>, count: usize) {
        if count == 0 {
            return;
        }
        let x = count.min(self.max_workgroups() as usize);
        pass.dispatch_workgroups(x as u32, count.div_ceil(x) as u32, 1);
    }

    /// Fails with the errors that escaped the error scopes since the last call.
    pub(crate) fn check_uncaptured(&self) -> Result<()> {
        let Ok(mut v) = self.uncaptured.lock() else {
            return Ok(());
        };
        if v.is_empty() {
            return Ok(());
        }
        let errors = std::mem::take(&mut *v);
        Err(DeviceError::Uncaptured { errors }.into())
    }

    /// Blocks until `submission` (or, with `None`, everything submitted) has
    /// finished on the device.
    pub(crate) fn wait(&self, submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: submission,
                timeout: None,
            })
            .map(|_| ())
            .map_err(|source| {
                DeviceError::Wait {
                    adapter: self.info.name.clone(),
                    source,
                }
                .into()
            })
    }

    /// Maps `buffers` (MAP_READ, filled by `submission` or earlier) and
    /// returns their bytes, waiting only for that submission: later ones keep
    /// the device busy meanwhile.
    pub(crate) fn read_buffers(
        &self,
        buffers: &[&wgpu::Buffer],
        submission: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<Vec<u8>>> {
        let receivers: Vec<_> = buffers
            .iter()
            .map(|b| {
                let (tx, rx) = mpsc::channel();
                b.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send(r);
                });
                rx
            })
            .collect();
        self.wait(submission)?;
        let mut out = Vec::with_capacity(buffers.len());
        for (b, rx) in buffers.iter().zip(receivers) {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.readback_error("reading back a buffer", e)),
                Err(_) => {
                    return Err(DeviceError::MapLost {
                        adapter: self.info.name.clone(),
                    }
                    .into())
                }
            }
            let bytes = {
                let view = b
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| self.readback_error("mapping a buffer", e))?;
                view.to_vec()
            };
            b.unmap();
            out.push(bytes);
        }
        Ok(out)
    }

    fn readback_error(&self, step: &'static str, e: impl Into<crate::error::BoxError>) -> Error {
        DeviceError::Readback {
            adapter: self.info.name.clone(),
            step,
            source: e.into(),
        }
        .into()
    }
}

impl GpuContext {
    /// The error for a buffer of `bytes` beyond this device's binding limit.
    pub(crate) fn too_big(&self, what: &'static str, bytes: u64) -> Error {
        DeviceError::TooBig {
            adapter: self.adapter_info().name.clone(),
            what,
            bytes,
            limit: self.max_binding(),
        }
        .into()
    }

    /// A bind group that binds `buffers` whole to bindings 0, 1, … in order
    /// (each family's slot tables list its bindings in that order).
    pub(crate) fn bind_buffers(
        &self,
        layout: &wgpu::BindGroupLayout,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(binding, b)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        })
    }
}

/// How a kernel module declares a binding (slot tables are (binding, kind)
/// lists, one per module, checked against the WGSL by each family's tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

/// The slot table a parsed WGSL module declares, by binding (what each
/// family's tests compare with its table).
#[cfg(test)]
pub(crate) fn declared_slots(m: &naga::Module) -> Vec<(u32, Slot)> {
    let mut found = Vec::new();
    for (_, g) in m.global_variables.iter() {
        let Some(rb) = &g.binding else { continue };
        assert_eq!(rb.group, 0, "every binding is in group 0");
        let slot = match g.space {
            naga::AddressSpace::Uniform => Slot::Uniform,
            naga::AddressSpace::Storage { access } => {
                if access.contains(naga::StorageAccess::STORE) {
                    Slot::ReadWrite
                } else {
                    Slot::Read
                }
            }
            other => panic!("unexpected address space {other:?}"),
        };
        found.push((rb.binding, slot));
    }
    found.sort_by_key(|s| s.0);
    found
}

/// An explicit bind group layout from a slot table. Explicit rather than
/// derived from the shader: a derived layout holds only what an entry point
/// uses, so one bind group could not serve two entry points, and an
/// override that removes a use would change the layout.
pub(crate) fn bind_group_layout(
    device: &wgpu::Device,
    label: &str,
    slots: &[(u32, Slot)],
) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
        .iter()
        .map(|&(binding, slot)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: match slot {
                    Slot::Uniform => wgpu::BufferBindingType::Uniform,
                    Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                    Slot::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

/// The text of a shader module: the family's `prelude` (which defines the
/// value type `V` the shared helpers work on), the shared compensated-sum
/// helpers, then the family's own files in order.
pub(crate) fn compose_wgsl(prelude: &str, parts: &[&str]) -> String {
    let mut text = String::from(prelude);
    for p in std::iter::once(&COMMON_SUM_WGSL).chain(parts) {
        text.push('\n');
        text.push_str(p);
    }
    text
}

fn downcast<F: KernelFamily>(f: Arc<dyn Any + Send + Sync>) -> Result<Arc<F>> {
    f.downcast::<F>()
        .map_err(|_| Error::internal("pipeline cache holds the wrong type for a family"))
}

/// Runs `f` inside validation, out-of-memory and internal error scopes and
/// turns the first captured error into [`DeviceError::Wgpu`]: without scopes wgpu
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
        return Err(DeviceError::Wgpu(e).into());
    }
    out
}
