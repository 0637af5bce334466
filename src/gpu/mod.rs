//! wgpu compute back end of the trust iteration (DESIGN.md §3, §6).
//!
//! `device` owns the adapter, device, queue and compiled pipelines; `backend`
//! implements [`crate::trust::TrustBackend`] on top of it; `plan` is the
//! host-side row binning and matrix splitting the kernels rely on. Kernels are
//! in `shaders/*.wgsl`, compiled into the binary. docs/gpu.md explains the
//! design.

pub mod backend;
pub mod device;
mod plan;

pub use backend::{GpuBackend, MAX_BLOCK, READBACK_EVERY};
pub use device::{list_adapters, AdapterSummary, GpuContext};
