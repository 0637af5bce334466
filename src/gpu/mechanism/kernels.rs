//! The mechanism family's pipelines, compiled once per context (see
//! [`crate::gpu::GpuContext::family`]): one kernel, with and without the
//! per-type detail output (a pipeline-overridable constant, as the trust
//! family's variants are).

use super::layout::{BEST_RESPONSE_WGSL, SLOTS};
use crate::error::Result;
use crate::gpu::context::{bind_group_layout, GpuContext, KernelFamily};

#[derive(Debug)]
pub(crate) struct MechanismKernels {
    pub layout: wgpu::BindGroupLayout,
    /// [values only, values and per-type replies].
    pub evaluate: [wgpu::ComputePipeline; 2],
}

impl KernelFamily for MechanismKernels {
    fn build(ctx: &GpuContext) -> Result<Self> {
        let device = &ctx.device;
        let layout = bind_group_layout(device, "mechanism best response", &SLOTS);
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = ctx.shader(
            "mechanism/best_response.wgsl",
            BEST_RESPONSE_WGSL.to_string(),
        );
        let evaluate = [false, true].map(|detail| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("evaluate"),
                layout: Some(&pl),
                module: &module,
                entry_point: Some("evaluate"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[("DETAIL", detail as u8 as f64)],
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        });
        Ok(MechanismKernels { layout, evaluate })
    }
}
