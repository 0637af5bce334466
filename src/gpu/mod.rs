//! wgpu compute back ends (DESIGN.md §3, §6), one folder per kernel family.
//!
//! - `context`: the opened device, shared by every family (limits, buffer
//!   helpers, readback, error scopes, a pipeline cache per family);
//! - `adapters`: finding and describing adapters (`trustmesh devices`);
//! - `error`: [`DeviceError`], what callers branch on when a GPU fails;
//! - `trust/`: the trust iteration ([`GpuBackend`]), shaders in
//!   `shaders/trust/`;
//! - `mechanism/`: Stackelberg best responses for the mechanism search
//!   ([`mechanism::GpuGame`]), shaders in `shaders/mechanism/`.
//!
//! A new family adds `gpu/<family>/` and `shaders/<family>/` and implements
//! `context::KernelFamily`; nothing here or in the other families changes.
//! docs/architecture.md, docs/gpu.md and docs/mechanism.md say more.

pub mod adapters;
pub mod context;
pub mod error;
pub mod mechanism;
pub mod trust;

pub use adapters::{list_adapters, AdapterSummary};
pub use context::GpuContext;
pub use error::DeviceError;
pub use trust::{GpuBackend, PlanConfig, MAX_BLOCK, READBACK_EVERY};
