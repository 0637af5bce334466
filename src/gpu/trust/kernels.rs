//! The trust kernel family: its pipelines, compiled once per context
//! (see [`crate::gpu::GpuContext`]), for both value widths.
//!
//! Variants that differ in one branch are one kernel with a pipeline-
//! overridable constant (`PER_EDGE` in spmv.wgsl, `SCALED` in power.wgsl);
//! the value width differs in type, which WGSL cannot override, so it is a
//! short prelude that defines `V`.

use super::layout::{
    bind_group_layout, COMMON_WGSL, POWER_SLOTS, POWER_WGSL, SPMV_SLOTS, SPMV_WGSL,
};
use crate::error::Result;
use crate::gpu::context::{compose_wgsl, GpuContext, KernelFamily};

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

/// The full text of one of the family's modules at one width, for a device
/// without subgroups.
pub(crate) fn compose(lanes: Lanes, parts: &[&str]) -> String {
    compose_with(lanes, 0, parts)
}

/// The same with subgroups of at least `sg` invocations (0: none).
pub(crate) fn compose_with(lanes: Lanes, sg: u32, parts: &[&str]) -> String {
    compose_wgsl(
        &format!("{}{}", lanes.prelude(), subgroup_prelude(sg)),
        parts,
    )
}

/// The pipelines of one value width.
#[derive(Debug)]
pub(crate) struct Kernels {
    /// y = Cᵀ x over row and segment blocks; [per-source, per-edge weights].
    pub spmv: [wgpu::ComputePipeline; 2],
    /// y = Cᵀ x over short rows, one invocation per (row, group); same.
    pub spmv_rows: [wgpu::ComputePipeline; 2],
    /// [per-source weights (writes x'), per-edge weights].
    pub update: [wgpu::ComputePipeline; 2],
    pub fold: wgpu::ComputePipeline,
    pub finalize: wgpu::ComputePipeline,
}

/// The trust family: bind group layouts shared by both widths, and the
/// pipelines of each width.
#[derive(Debug)]
pub(crate) struct TrustKernels {
    pub spmv_layout: wgpu::BindGroupLayout,
    pub power_layout: wgpu::BindGroupLayout,
    one: Kernels,
    four: Kernels,
}

impl TrustKernels {
    pub(crate) fn get(&self, lanes: Lanes) -> &Kernels {
        match lanes {
            Lanes::One => &self.one,
            Lanes::Four => &self.four,
        }
    }
}

/// Environment variable that switches the product kernels' gather-ahead
/// variant off (`0`) or on (`1`, the default): four index loads and gathers
/// in flight per lane before they are added, in the same order. Both product
/// kernels take the same setting, so a column is the same bits alone or in a
/// batch; a compiler may round the unrolled loop differently in the last bit
/// (lavapipe does), so the two settings agree to f32 accuracy, not bit for
/// bit. On by default since it measured faster on an H100 (docs/benchmarks.md,
/// 2026-11-26: cnr-2000 1.5× at K = 1 and 1.2× per vector at K = 32; the
/// 200M-edge graph 3% faster at K = 1, 5% slower at K = 32).
pub const GATHER_AHEAD_ENV: &str = "TRUSTMESH_GPU_GATHER_AHEAD";

/// Whether [`GATHER_AHEAD_ENV`] allows the gather-ahead variant.
pub fn gather_ahead_from_env() -> Result<bool> {
    env_flag(GATHER_AHEAD_ENV, true)
}

/// Environment variable that switches the product kernels' subgroup tree on
/// (`1`, where the adapter has subgroups) or off (`0`, the default): a row's
/// lanes merge through subgroup shuffles instead of workgroup memory and
/// barriers whenever its lanes fit the adapter's smallest subgroup. The same
/// merges in the same order, so the same bits. Off by default because it
/// measured slower on an H100 (10% on the 200M-edge graph, even on
/// cnr-2000; docs/benchmarks.md).
pub const SUBGROUPS_ENV: &str = "TRUSTMESH_GPU_SUBGROUPS";

/// Whether [`SUBGROUPS_ENV`] asks for the subgroup tree.
pub fn subgroups_from_env() -> Result<bool> {
    env_flag(SUBGROUPS_ENV, false)
}

/// A 0/1 switch from the environment, `default` when unset.
pub(crate) fn env_flag(name: &'static str, default: bool) -> Result<bool> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.as_str() {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(crate::error::Error::param(
                name,
                format!("{name}={v}: expected 0 or 1"),
            )),
        },
    }
}

/// The subgroup size the product kernels may rely on: the adapter's smallest
/// subgroup when the device has subgroups and [`SUBGROUPS_ENV`] allows them,
/// else 0 (the workgroup tree everywhere).
pub(crate) fn subgroup_size(ctx: &GpuContext) -> Result<u32> {
    let has = ctx.device.features().contains(wgpu::Features::SUBGROUP);
    Ok(if has && subgroups_from_env()? {
        ctx.adapter_info().subgroup_min_size
    } else {
        0
    })
}

/// `shuffle_down` for the product kernels: a subgroup shuffle, or a
/// stand-in that the kernels never call when the subgroup size is 0 (a
/// device without subgroups must not see the builtin). naga (wgpu 30) takes
/// subgroup builtins without WGSL's `enable subgroups;`, which it rejects as
/// unsupported; the device feature is what allows them.
fn subgroup_prelude(sg: u32) -> &'static str {
    if sg > 0 {
        "fn shuffle_down(v: V, d: u32) -> V { return subgroupShuffleDown(v, d); }\n"
    } else {
        "fn shuffle_down(v: V, d: u32) -> V { return v; }\n"
    }
}

impl KernelFamily for TrustKernels {
    fn build(ctx: &GpuContext) -> Result<Self> {
        let ahead = gather_ahead_from_env()? as u8 as f64;
        let sg = subgroup_size(ctx)?;
        let device = &ctx.device;
        let spmv_layout = bind_group_layout(device, "trust spmv", &SPMV_SLOTS);
        let power_layout = bind_group_layout(device, "trust power", &POWER_SLOTS);
        let pipeline_layout = |bgl: &wgpu::BindGroupLayout| {
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(bgl)],
                immediate_size: 0,
            })
        };
        let spmv_pl = pipeline_layout(&spmv_layout);
        let power_pl = pipeline_layout(&power_layout);
        let width = |lanes: Lanes| {
            let spmv = ctx.shader(
                "trust/spmv.wgsl",
                compose_with(lanes, sg, &[COMMON_WGSL, SPMV_WGSL]),
            );
            let power = ctx.shader(
                "trust/power.wgsl",
                compose(lanes, &[COMMON_WGSL, POWER_WGSL]),
            );
            let pipe = |layout: &wgpu::PipelineLayout,
                        m: &wgpu::ShaderModule,
                        entry: &str,
                        constants: &[(&str, f64)]| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(layout),
                    module: m,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        // Every workgroup variable is written before it is read.
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                })
            };
            Kernels {
                spmv: [false, true].map(|pe| {
                    pipe(
                        &spmv_pl,
                        &spmv,
                        "spmv",
                        &[
                            ("PER_EDGE", pe as u8 as f64),
                            ("GATHER_AHEAD", ahead),
                            ("SG_MIN", sg as f64),
                        ],
                    )
                }),
                spmv_rows: [false, true].map(|pe| {
                    pipe(
                        &spmv_pl,
                        &spmv,
                        "spmv_rows",
                        &[("PER_EDGE", pe as u8 as f64), ("GATHER_AHEAD", ahead)],
                    )
                }),
                update: [true, false]
                    .map(|sc| pipe(&power_pl, &power, "update", &[("SCALED", sc as u8 as f64)])),
                fold: pipe(&power_pl, &power, "fold", &[]),
                finalize: pipe(&power_pl, &power, "finalize", &[]),
            }
        };
        Ok(TrustKernels {
            one: width(Lanes::One),
            four: width(Lanes::Four),
            spmv_layout,
            power_layout,
        })
    }
}
