//! What can go wrong with a GPU, typed so that callers can branch on it: no
//! adapter or none that matches (fall back to the CPU), a problem too big for
//! one storage binding (split it, or use the CPU), wgpu failing (report it).
//! It reaches callers as [`crate::Error::Device`].

use crate::error::{BoxError, Error, Inner};

/// The compute device is not usable or failed. `adapter` fields read
/// `name (backend)` or `name`, as the message shows them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No Vulkan, Metal or DX12 adapter on this machine.
    #[error(
        "no Vulkan, Metal or DX12 adapter found (on Linux without a GPU, install Mesa's \
         lavapipe, e.g. the mesa-vulkan-drivers package)"
    )]
    NoAdapter,

    /// No adapter's name contains `filter` (case-insensitive).
    #[error("no adapter name contains {filter:?}; available: {}", available.join(", "))]
    AdapterNotFound {
        filter: String,
        /// The adapters found, as `name (backend)`.
        available: Vec<String>,
    },

    /// The adapter refused to open a device.
    #[error("{adapter}: cannot open device: {source}")]
    Open {
        adapter: String,
        source: wgpu::RequestDeviceError,
    },

    /// A kernel family's shaders or pipelines did not compile.
    #[error(
        "{adapter}: compiling the compute shaders failed: {}",
        compile_detail(source)
    )]
    Compile { adapter: String, source: Inner },

    /// An array of `bytes` does not fit one storage binding of `limit` bytes.
    #[error(
        "{adapter}: {what} needs {bytes} bytes in one storage binding, above the adapter's \
         limit of {limit} bytes"
    )]
    TooBig {
        adapter: String,
        what: &'static str,
        bytes: u64,
        limit: u64,
    },

    /// wgpu reported an error inside an error scope (validation, out of
    /// memory, internal).
    #[error(transparent)]
    Wgpu(wgpu::Error),

    /// wgpu reported errors outside every error scope (e.g. from another
    /// thread), in the order raised.
    #[error("{}", join(errors))]
    Uncaptured { errors: Vec<wgpu::Error> },

    /// Waiting for submitted work failed.
    #[error("{adapter}: waiting for the GPU failed: {source}")]
    Wait {
        adapter: String,
        source: wgpu::PollError,
    },

    /// Reading results back failed at `step` (`reading back a buffer`,
    /// `mapping a buffer`).
    #[error("{adapter}: {step} failed: {source}")]
    Readback {
        adapter: String,
        step: &'static str,
        source: BoxError,
    },

    /// A buffer map was dropped by the device without an answer.
    #[error("{adapter}: buffer map never completed")]
    MapLost { adapter: String },
}

impl DeviceError {
    /// True when there is no GPU to use (none at all, or none matching the
    /// requested name): the case a caller falls back to the CPU on.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DeviceError::NoAdapter | DeviceError::AdapterNotFound { .. }
        )
    }

    /// True when the device ran out of memory, in or out of an error scope.
    pub fn is_out_of_memory(&self) -> bool {
        let oom = |e: &wgpu::Error| matches!(e, wgpu::Error::OutOfMemory { .. });
        match self {
            DeviceError::Wgpu(e) => oom(e),
            DeviceError::Uncaptured { errors } => errors.iter().any(oom),
            _ => false,
        }
    }
}

/// A compile failure without a second "device: ": the wgpu message itself.
fn compile_detail(source: &Error) -> String {
    match source {
        Error::Device(d) => d.to_string(),
        other => other.to_string(),
    }
}

fn join(errors: &[wgpu::Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
