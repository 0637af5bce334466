//! A trust matrix resident on the device: uploaded once, then read by every
//! solve against it (every column block, every pass) until dropped.

use super::block::UPDATE_ROWS;
use super::layout::ChunkU;
use super::plan::{Plan, PlanConfig};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::trust::{EdgeWeights, TrustMatrix};

/// The matrix's buffers and its partition into blocks and chunks.
#[derive(Debug)]
pub(crate) struct GpuMatrix {
    pub n: usize,
    pub per_edge: bool,
    pub plan: Plan,
    /// CSR offsets per target (n + 1 × u32).
    pub row_ptr: wgpu::Buffer,
    /// Per agent (deficit, per-source scale or 1), 2 × f32.
    pub rowinfo: wgpu::Buffer,
    pub segs: wgpu::Buffer,
    pub long_rows: wgpu::Buffer,
    /// Per update invocation, the first long row at or after its rows
    /// ([`Plan::long_next`]).
    pub long_next: wgpu::Buffer,
    pub blocks: wgpu::Buffer,
    /// Rows of the binned row blocks (`Plan::row_list`).
    pub row_list: wgpu::Buffer,
    /// Bound in place of the edge weights when weights are per source.
    pub no_weights: wgpu::Buffer,
    pub chunks: Vec<ChunkBuffers>,
}

/// One chunk: its entry arrays and its uniforms.
#[derive(Debug)]
pub(crate) struct ChunkBuffers {
    pub src: wgpu::Buffer,
    pub ew: Option<wgpu::Buffer>,
    /// For single columns: every block of the chunk.
    pub all_blocks: wgpu::Buffer,
    /// For batches: the segment blocks only (`spmv_rows` does the rows).
    pub seg_blocks: wgpu::Buffer,
    /// Workgroups of the two dispatches: all blocks, segment blocks.
    pub n_blocks: usize,
    pub n_seg_blocks: usize,
    /// Rows `spmv_rows` covers.
    pub rows: usize,
}

impl GpuMatrix {
    /// Plans and uploads `m`; fails with [`DeviceError::TooBig`] when a per-agent
    /// array cannot fit one storage binding.
    pub fn upload(ctx: &GpuContext, m: &TrustMatrix, cfg: PlanConfig) -> Result<Self> {
        let n = m.n();
        let mb = ctx.max_binding();
        let need = |what: &'static str, bytes: usize| {
            if bytes as u64 > mb {
                Err(ctx.too_big(what, bytes as u64))
            } else {
                Ok(())
            }
        };
        need("the row offsets", (n + 1) * 4)?;
        need("the per-agent deficit and scale", n * 8)?;
        let cap = (mb / 4).min(u32::MAX as u64) as u32;
        let plan = Plan::build(m.ptr(), cap, cfg);
        need("the long-row segment list", plan.segs.len() * 16)?;
        need("the block list", plan.blocks.len() * 16)?;
        need("the binned row list", plan.row_list.len() * 4)?;
        let long_next = plan.long_next(n, UPDATE_ROWS);
        need("the long-row index", long_next.len() * 4)?;
        let (scale, edge_w): (Vec<f32>, Option<Vec<f32>>) = match m.weights() {
            EdgeWeights::PerSource(s) => (s.iter().map(|&v| v as f32).collect(), None),
            EdgeWeights::PerEdge(w) => (vec![1.0; n], Some(w.iter().map(|&v| v as f32).collect())),
        };
        let rowinfo: Vec<[f32; 2]> = m
            .deficit()
            .iter()
            .zip(&scale)
            .map(|(&d, &s)| [d as f32, s])
            .collect();
        let none = wgpu::BufferUsages::empty();
        let src = m.sources();
        let chunks = plan
            .chunks
            .iter()
            .map(|c| {
                let (a, b) = (c.e0 as usize, c.e1 as usize);
                let uni = |block0| ChunkU {
                    block0,
                    block1: c.block1,
                    e_base: c.e0,
                    row0: c.row0,
                    row1: c.row1,
                    pad: [0; 3],
                };
                ChunkBuffers {
                    src: ctx.storage_init("chunk sources", bytemuck::cast_slice(&src[a..b]), none),
                    ew: edge_w.as_ref().map(|w| {
                        ctx.storage_init("chunk weights", bytemuck::cast_slice(&w[a..b]), none)
                    }),
                    all_blocks: ctx.uniform("chunk", bytemuck::bytes_of(&uni(c.block0))),
                    seg_blocks: ctx.uniform("chunk", bytemuck::bytes_of(&uni(c.seg_block0))),
                    n_blocks: (c.block1 - c.block0) as usize,
                    n_seg_blocks: (c.block1 - c.seg_block0) as usize,
                    rows: (c.row1 - c.row0) as usize,
                }
            })
            .collect();
        Ok(GpuMatrix {
            n,
            per_edge: edge_w.is_some(),
            row_ptr: ctx.storage_init("row_ptr", bytemuck::cast_slice(m.ptr()), none),
            rowinfo: ctx.storage_init("rowinfo", bytemuck::cast_slice(&rowinfo), none),
            segs: ctx.storage_init("segs", bytemuck::cast_slice(&plan.segs), none),
            long_rows: ctx.storage_init("long_rows", bytemuck::cast_slice(&plan.long_rows), none),
            long_next: ctx.storage_init("long_next", bytemuck::cast_slice(&long_next), none),
            blocks: ctx.storage_init("blocks", bytemuck::cast_slice(&plan.blocks), none),
            row_list: ctx.storage_init("row_list", bytemuck::cast_slice(&plan.row_list), none),
            no_weights: ctx.zeroed("no edge weights", 16, wgpu::BufferUsages::STORAGE),
            chunks,
            plan,
        })
    }
}
