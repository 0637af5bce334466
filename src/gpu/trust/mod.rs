//! The trust kernel family: the power iteration of DESIGN.md §3 in wgpu
//! compute shaders (shaders/trust/), behind [`crate::trust::TrustBackend`].
//!
//! - `plan`: host-side partition of a matrix into workgroup blocks, long-row
//!   segments and binding-sized chunks (no device needed, unit-tested);
//! - `layout`: host mirrors of the shader structs and the bind group layouts;
//! - `kernels`: the family's pipelines, compiled once per context;
//! - `matrix`: a matrix resident on the device;
//! - `block`: one block of columns, its buffers and one recorded iteration;
//! - `solve`: the iteration loop over many blocks and matrices;
//! - `profile`: per-kernel timing of an iteration (`bench --profile-kernels`).
//!
//! docs/gpu.md explains the design and its measurements.

mod block;
mod kernels;
mod layout;
mod matrix;
mod plan;
mod profile;
mod solve;

use std::sync::Arc;

pub use block::MAX_BLOCK;
pub use kernels::{gather_ahead_from_env, subgroups_from_env, GATHER_AHEAD_ENV, SUBGROUPS_ENV};
pub use plan::{LayoutStats, PlanConfig, DEFAULT_PER_LANE};
pub use profile::{Stage, StageTimes};
pub use solve::READBACK_EVERY;

use self::kernels::TrustKernels;
use self::matrix::GpuMatrix;
use super::context::scoped;
use super::GpuContext;
use crate::error::Result;
use crate::trust::engine::{Batch, IterParams, LoadedMatrices, TrustBackend, TrustVector};
use crate::trust::TrustMatrix;

/// Environment variable that overrides [`PlanConfig::per_lane`], for tuning
/// on a new device (`trustmesh bench` reports the value in use).
pub const PER_LANE_ENV: &str = "TRUSTMESH_GPU_PER_LANE";

/// Environment variable that forces binned row blocks ([`PlanConfig::binned`])
/// off (`0`) or on (`1`); unset, the plan chooses by the matrix's idle lanes
/// ([`plan::AUTO_BIN_IDLE`]). A knob to measure the two layouts against each
/// other on new hardware.
pub const BINNED_ENV: &str = "TRUSTMESH_GPU_BINNED";

/// The GPU back end: f32 power iteration in wgpu compute shaders.
#[derive(Debug, Clone)]
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    plan: PlanConfig,
}

impl GpuBackend {
    /// Opens an adapter (see [`GpuContext::new`]).
    pub fn new(adapter_filter: Option<&str>) -> Result<Self> {
        Self::from_context(Arc::new(GpuContext::new(adapter_filter)?))
    }

    /// Uses an already opened device (shared pipelines, lowered limits in
    /// tests). Reads [`PER_LANE_ENV`] and [`BINNED_ENV`] when set.
    pub fn from_context(ctx: Arc<GpuContext>) -> Result<Self> {
        Ok(GpuBackend {
            ctx,
            plan: PlanConfig::from_env()?,
        })
    }

    /// The same device with another partition tuning.
    pub fn with_plan(mut self, plan: PlanConfig) -> Self {
        self.plan = plan;
        self
    }

    pub fn plan(&self) -> PlanConfig {
        self.plan
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Times `iters` iterations of `k` columns on `m` kernel by kernel (a
    /// diagnostic: the solve itself never waits on timestamps).
    pub fn profile_kernels(&self, m: &TrustMatrix, k: usize, iters: u32) -> Result<StageTimes> {
        let ctx = &*self.ctx;
        let fam = ctx.family::<TrustKernels>()?;
        let out = profile::profile(ctx, &fam, m, self.plan, k, iters)?;
        ctx.check_uncaptured()?;
        Ok(out)
    }
}

impl TrustBackend for GpuBackend {
    fn name(&self) -> String {
        let i = self.ctx.adapter_info();
        format!("{} ({}, f32)", i.name, i.backend)
    }

    fn default_epsilon(&self) -> f64 {
        1e-6
    }

    fn precision(&self) -> &'static str {
        "f32"
    }

    fn load<'m>(&self, matrices: &[&'m TrustMatrix]) -> Result<Box<dyn LoadedMatrices + 'm>> {
        let ctx = &*self.ctx;
        let fam = ctx.family::<TrustKernels>()?;
        let mats = scoped(&ctx.device, || {
            matrices
                .iter()
                .map(|m| GpuMatrix::upload(ctx, m, self.plan))
                .collect::<Result<Vec<_>>>()
        })?;
        ctx.check_uncaptured()?;
        Ok(Box::new(GpuLoaded {
            ctx: Arc::clone(&self.ctx),
            fam,
            hosts: matrices.to_vec(),
            mats,
        }))
    }
}

/// Matrices resident on the device.
struct GpuLoaded<'m> {
    ctx: Arc<GpuContext>,
    fam: Arc<TrustKernels>,
    /// The host matrices: deficits and weights for each block's initial values.
    hosts: Vec<&'m TrustMatrix>,
    mats: Vec<GpuMatrix>,
}

impl LoadedMatrices for GpuLoaded<'_> {
    fn len(&self) -> usize {
        self.mats.len()
    }

    fn solve_many(
        &self,
        batches: &[Batch<'_>],
        params: &IterParams,
    ) -> Result<Vec<Vec<TrustVector>>> {
        let ctx = &*self.ctx;
        let out = scoped(&ctx.device, || {
            solve::solve_batches(ctx, &self.fam, &self.hosts, &self.mats, batches, params)
        })?;
        ctx.check_uncaptured()?;
        Ok(out)
    }
}
