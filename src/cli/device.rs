//! Device selection: `--device` (one device, or a list for `bench`) and
//! `--adapter`, and the one function that turns a choice into a back end.

use std::sync::Arc;

use clap::{Args, ValueEnum};

use trustmesh::gpu::{GpuBackend, GpuContext};
use trustmesh::trust::{CpuBackend, TrustBackend};

/// A compute device as the user names it: `cpu` is the f64 reference path,
/// `gpu` the wgpu path (f32), `auto` a hardware GPU when there is one, else
/// the CPU. (No doc comments on the variants: clap would show them by
/// switching `--help` to its long layout.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Auto,
    Cpu,
    Gpu,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

/// `--device` and `--adapter` of a command that runs on one device.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct DeviceArgs {
    /// Compute device.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

impl DeviceArgs {
    pub fn backend(&self) -> trustmesh::Result<Box<dyn TrustBackend>> {
        backend(self.device, self.adapter.adapter.as_deref())
    }
}

/// `--adapter`, shared by every command that may open a GPU.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct AdapterArg {
    /// GPU adapter whose name contains this (see `trustmesh devices`).
    #[arg(long)]
    pub adapter: Option<String>,
}

/// A device in a list of devices to compare (`bench --device cpu,gpu`):
/// `auto` would stand for one of the others, so it is not accepted there.
pub fn concrete_device(s: &str) -> Result<Device, String> {
    match Device::from_str(s, false) {
        Ok(d @ (Device::Cpu | Device::Gpu)) => Ok(d),
        _ => Err("expected cpu or gpu".to_string()),
    }
}

/// The one place a device choice becomes a back end (see [`gpu_context`]).
pub fn backend(device: Device, adapter: Option<&str>) -> trustmesh::Result<Box<dyn TrustBackend>> {
    Ok(match gpu_context(device, adapter)? {
        Some(ctx) => Box::new(GpuBackend::from_context(ctx)?),
        None => Box::new(CpuBackend),
    })
}

/// The one place a device choice becomes an opened GPU, or None for the
/// CPU. `gpu` must get a GPU (any adapter, software ones included); `auto`
/// takes a hardware GPU when there is one and otherwise says in one line why
/// it uses the CPU. A software adapter (lavapipe, WARP) counts as no GPU for
/// `auto`: the CPU path is faster than an emulated GPU and is the exact f64
/// reference.
pub fn gpu_context(
    device: Device,
    adapter: Option<&str>,
) -> trustmesh::Result<Option<Arc<GpuContext>>> {
    match device {
        Device::Cpu => Ok(None),
        Device::Gpu => Ok(Some(Arc::new(GpuContext::new(adapter)?))),
        Device::Auto => match GpuContext::new(adapter) {
            Ok(ctx) if ctx.adapter_info().device_type != wgpu::DeviceType::Cpu => {
                Ok(Some(Arc::new(ctx)))
            }
            Ok(ctx) => {
                eprintln!(
                    "trustmesh: only a software GPU adapter ({}) found; using the CPU (--device gpu forces it)",
                    ctx.adapter_info().name
                );
                Ok(None)
            }
            Err(e) => {
                eprintln!("trustmesh: no usable GPU ({e}); using the CPU");
                Ok(None)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_alike() {
        for d in [Device::Auto, Device::Cpu, Device::Gpu] {
            assert_eq!(Device::from_str(&d.to_string(), false), Ok(d));
        }
        assert_eq!(concrete_device("gpu"), Ok(Device::Gpu));
        assert!(concrete_device("auto").is_err());
        assert!(concrete_device("tpu").is_err());
    }

    #[test]
    fn cpu_needs_no_adapter() {
        let b = backend(Device::Cpu, Some("no-such-adapter")).unwrap();
        assert!(b.name().starts_with("cpu"), "{}", b.name());
    }
}
