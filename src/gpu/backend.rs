//! The wgpu back end of the power iteration ([`TrustBackend`]).
//!
//! The whole iteration runs on the device, for a block of up to
//! [`MAX_BLOCK`] columns at once (columns interleaved, so one gathered source
//! serves every column):
//!
//! 1. `spmv_*` (shaders/spmv.wgsl): y = Cᵀ x for every column of the block in
//!    one pass over the matrix: rows of at most 64 entries one invocation
//!    each, longer rows cut into 1024-entry segments of 32 invocations each,
//!    whose partials `seg_reduce` and `long_finish` add up in a fixed order.
//! 2. `update_*` (shaders/power.wgsl): t' = (1-a)·y + ((1-a)·(d·t) + a)·p, the
//!    pre-scaled x' = t'·scale for the next gather, and per-invocation partial
//!    sums of |t' - t| and d·t'; `fold` adds them 64 at a time.
//! 3. `finalize`: per column group one workgroup adds the folded partials
//!    (strided sums, then a tree), counts the iteration, and freezes a column
//!    once its residual is below epsilon or it reached max_iter. A frozen
//!    column is copied through unchanged, so it ends exactly at the iteration
//!    that stopped it, as on the CPU.
//!
//! The host records [`READBACK_EVERY`] iterations per submission and then
//! reads back only the per-column state (16 bytes a column) to learn whether
//! every column has stopped; the vectors are read once, at the end (and, only
//! when a flat-tail rule is set, at each readback to rank them on the host).
//!
//! Accuracy (f32 on the device, f64 reference): every sum is
//! Neumaier-compensated and every merge of partial sums is a TwoSum, in an
//! order fixed by indices (no float atomics, so a given device gives the same
//! bits every run); per-source weights are folded into x once per iteration
//! instead of once per edge; `keep + alpha` is exactly 1 in f32 so the total
//! mass does not drift; initial values (start, pre-scaled start, dangling
//! mass, teleport coefficient) are computed in f64 on the host and rounded
//! once. docs/gpu.md has the measured error budget.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::device::{scoped, GpuContext, Kernels, Lanes};
use super::plan::{Plan, SHORT_MAX};
use crate::error::{Error, Result};
use crate::trust::engine::{
    check_columns, normalised_start, Column, IterParams, StopReason, TrustBackend, TrustVector,
};
use crate::trust::matrix::{EdgeWeights, TrustMatrix};
use crate::trust::scores::top_ids;

/// Iterations recorded per submission before the host looks at the residuals.
///
/// Why 8: columns stop on the device at the exact iteration, so a larger
/// interval costs nothing in accuracy, only up to 7 cheap iterations after the
/// last column froze (frozen column groups skip the matrix pass). Against that,
/// each readback is a full CPU-GPU round trip; 8 makes the round trip small
/// next to the work on every graph big enough to be worth a GPU.
pub const READBACK_EVERY: u32 = 8;

/// Most columns solved in one block (8 groups of `vec4<f32>`). More columns are
/// solved block after block; fewer are used when the agent count times the
/// block width would not fit one storage binding.
pub const MAX_BLOCK: usize = 32;

/// Invocations per workgroup, as in shaders/sum.wgsl.
const WG: usize = 256;
/// Rows per invocation of the update kernel, as in shaders/sum.wgsl.
const UPDATE_ROWS: usize = 4;
/// Partials per invocation of the fold kernel, as in shaders/sum.wgsl.
const FOLD: usize = 64;
/// Invocations per long-row segment and column group, as in shaders/spmv.wgsl.
const SEG_LANES: usize = 32;
/// Most bytes of lane partials one segment needs: SEG_LANES lanes × 8 column
/// groups × two `vec4<f32>`.
const LANE_PART_BYTES_PER_SEG: u64 = (SEG_LANES * (MAX_BLOCK / 4) * 2 * 16) as u64;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ParamsU {
    n: u32,
    groups: u32,
    gp: u32,
    rows_per_wg: u32,
    rowblocks: u32,
    n_long: u32,
    short_max: u32,
    width: u32,
    alpha: f32,
    keep: f32,
    epsilon: f32,
    max_iter: u32,
    /// 1.0, opaque to the shader compiler (see shaders/sum.wgsl).
    one: f32,
    n_part0: u32,
    n_part1: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ChunkU {
    row0: u32,
    row1: u32,
    e_base: u32,
    seg0: u32,
    seg1: u32,
    pad: [u32; 3],
}

/// Mirror of `ColState` in shaders/power.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
struct ColStateU {
    iterations: u32,
    stop: u32,
    residual: f32,
    mass: f32,
}

const STOP_CONVERGED: u32 = 1;
const STOP_FLAT_TAIL: u32 = 2;
const STOP_MAX_ITER: u32 = 3;

/// The GPU back end: f32 power iteration in wgpu compute shaders.
#[derive(Debug, Clone)]
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
}

impl GpuBackend {
    /// Opens an adapter (see [`GpuContext::new`]).
    pub fn new(adapter_filter: Option<&str>) -> Result<Self> {
        Ok(GpuBackend {
            ctx: Arc::new(GpuContext::new(adapter_filter)?),
        })
    }

    /// Uses an already opened device (shared pipelines, lowered limits in tests).
    pub fn from_context(ctx: Arc<GpuContext>) -> Self {
        GpuBackend { ctx }
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
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

    fn solve(
        &self,
        matrix: &TrustMatrix,
        columns: &[Column],
        params: &IterParams,
    ) -> Result<Vec<TrustVector>> {
        params.validate()?;
        check_columns(matrix, columns)?;
        let starts = columns
            .iter()
            .enumerate()
            .map(|(id, c)| {
                c.start
                    .as_deref()
                    .map(|s| normalised_start(s, id))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        if columns.is_empty() {
            return Ok(Vec::new());
        }
        if matrix.n() == 0 {
            // Nothing to iterate: the first step has residual 0, as on the CPU.
            return Ok(columns
                .iter()
                .map(|_| TrustVector {
                    scores: Vec::new(),
                    iterations: 1,
                    residual: 0.0,
                    stop: StopReason::Converged,
                })
                .collect());
        }
        let ctx = &*self.ctx;
        let out = scoped(&ctx.device, || {
            let mb = MatrixBuffers::upload(ctx, matrix)?;
            let (lanes, width) = block_shape(ctx, &mb)?;
            let mut out = Vec::with_capacity(columns.len());
            let ids: Vec<usize> = (0..columns.len()).collect();
            for group in ids.chunks(width) {
                let lanes = if group.len() == 1 { Lanes::One } else { lanes };
                let block = Block::new(ctx, &mb, matrix, columns, &starts, group, lanes, params)?;
                out.extend(block.run(ctx, &mb, params)?);
            }
            Ok(out)
        })?;
        if let Some(e) = ctx.take_uncaptured() {
            return Err(Error::Device(e));
        }
        Ok(out)
    }
}

/// Same rule and message as the CPU back end.
fn storage(ctx: &GpuContext, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    // Zero-sized bindings are invalid; an empty array gets one unused element.
    let pad = [0u8; 16];
    let contents = if bytes.is_empty() { &pad[..] } else { bytes };
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | usage,
        })
}

fn zeroed(ctx: &GpuContext, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    // wgpu zero-fills new buffers before first use.
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(16),
        usage,
        mapped_at_creation: false,
    })
}

fn too_big(ctx: &GpuContext, what: &str, bytes: u64) -> Error {
    Error::Device(format!(
        "{}: {what} needs {bytes} bytes in one storage binding, above the adapter's limit of {} bytes",
        ctx.adapter_info().name,
        ctx.max_binding()
    ))
}

/// The matrix on the device, shared by every column block of a solve.
struct MatrixBuffers {
    n: usize,
    plan: Plan,
    per_edge: bool,
    row_ptr: wgpu::Buffer,
    rowinfo: wgpu::Buffer,
    segs: wgpu::Buffer,
    long_rows: wgpu::Buffer,
    chunks: Vec<ChunkBuffers>,
}

struct ChunkBuffers {
    src: wgpu::Buffer,
    ew: Option<wgpu::Buffer>,
    uniform: wgpu::Buffer,
    rows: u32,
    segs: u32,
}

impl MatrixBuffers {
    fn upload(ctx: &GpuContext, m: &TrustMatrix) -> Result<Self> {
        let n = m.n();
        let mb = ctx.max_binding();
        let need = |what: &str, bytes: usize| {
            if bytes as u64 > mb {
                Err(too_big(ctx, what, bytes as u64))
            } else {
                Ok(())
            }
        };
        need("the row offsets", (n + 1) * 4)?;
        need("the per-agent deficit and scale", n * 8)?;
        let cap = (mb / 4).min(u32::MAX as u64) as u32;
        let seg_cap = (mb / LANE_PART_BYTES_PER_SEG).clamp(1, u32::MAX as u64) as u32;
        let plan = Plan::build(m.ptr(), cap.max(SHORT_MAX), seg_cap);
        need("the long-row segment list", plan.segs.len() * 16)?;
        let u = wgpu::BufferUsages::empty();
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
        let src = m.sources();
        let chunks = plan
            .chunks
            .iter()
            .map(|c| {
                let (a, b) = (c.e0 as usize, c.e1 as usize);
                let uni = ChunkU {
                    row0: c.row0,
                    row1: c.row1,
                    e_base: c.e0,
                    seg0: c.seg0,
                    seg1: c.seg1,
                    pad: [0; 3],
                };
                ChunkBuffers {
                    src: storage(ctx, "chunk sources", bytemuck::cast_slice(&src[a..b]), u),
                    ew: edge_w
                        .as_ref()
                        .map(|w| storage(ctx, "chunk weights", bytemuck::cast_slice(&w[a..b]), u)),
                    uniform: ctx
                        .device
                        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some("chunk"),
                            contents: bytemuck::bytes_of(&uni),
                            usage: wgpu::BufferUsages::UNIFORM,
                        }),
                    rows: c.row1 - c.row0,
                    segs: c.seg1 - c.seg0,
                }
            })
            .collect();
        Ok(MatrixBuffers {
            n,
            per_edge: edge_w.is_some(),
            row_ptr: storage(ctx, "row_ptr", bytemuck::cast_slice(m.ptr()), u),
            rowinfo: storage(ctx, "rowinfo", bytemuck::cast_slice(&rowinfo), u),
            segs: storage(ctx, "segs", bytemuck::cast_slice(&plan.segs), u),
            long_rows: storage(ctx, "long_rows", bytemuck::cast_slice(&plan.long_rows), u),
            chunks,
            plan,
        })
    }
}

/// Work decomposition of a block with `groups` column groups over `n` rows.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// `groups` rounded up to a power of two (invocation lid serves group lid % gp).
    gp: usize,
    /// Rows (items) per workgroup of the (item, group)-mapped kernels.
    rows_per_wg: usize,
    /// Workgroups of the update kernel.
    rowblocks: usize,
    /// Update partials per group, and what is left of them after folding.
    n_part0: usize,
    n_part1: usize,
}

impl Grid {
    fn new(n: usize, groups: usize) -> Grid {
        let gp = groups.next_power_of_two();
        let rows_per_wg = WG / gp;
        let n_part0 = n.div_ceil(UPDATE_ROWS);
        let rowblocks = n_part0.div_ceil(rows_per_wg);
        Grid {
            gp,
            rows_per_wg,
            rowblocks,
            n_part0,
            n_part1: n_part0.div_ceil(FOLD),
        }
    }
}

/// Lane width and block width: the widest block whose per-block arrays each
/// fit one storage binding.
fn block_shape(ctx: &GpuContext, mb: &MatrixBuffers) -> Result<(Lanes, usize)> {
    let limit = ctx.max_binding() as usize;
    let nseg = mb.plan.segs.len().max(1);
    let fits = |lanes: usize, groups: usize| {
        let v = 4 * lanes * groups;
        let grid = Grid::new(mb.n, groups);
        mb.n * v <= limit && nseg * 2 * v <= limit && grid.n_part0 * 4 * v <= limit
    };
    if let Some(g) = (1..=MAX_BLOCK / 4).rev().find(|&g| fits(4, g)) {
        return Ok((Lanes::Four, 4 * g));
    }
    if fits(1, 1) {
        return Ok((Lanes::One, 1));
    }
    Err(too_big(ctx, "one trust vector", mb.n as u64 * 4))
}

/// Splits `count` workgroups over x and y.
fn grid(count: usize, max: u32) -> (u32, u32) {
    let x = count.min(max as usize).max(1);
    (x as u32, count.div_ceil(x) as u32)
}

type SpmvGroups = (wgpu::BindGroup, Option<(wgpu::BindGroup, wgpu::BindGroup)>);

/// One block of columns being solved together.
struct Block {
    lanes: Lanes,
    width: usize,
    groups: usize,
    grid: Grid,
    /// t ping-pong buffers; after an even number of iterations the current one is t[0].
    t: [wgpu::Buffer; 2],
    colv: wgpu::Buffer,
    cols: wgpu::Buffer,
    cols_rb: wgpu::Buffer,
    vec_rb: wgpu::Buffer,
    /// Per parity, per chunk: short-row bind group, and the long-row and
    /// segment-reduce bind groups when the chunk has segments.
    spmv: [Vec<SpmvGroups>; 2],
    finish: Option<wgpu::BindGroup>,
    update: [wgpu::BindGroup; 2],
    fold: wgpu::BindGroup,
    finalize: wgpu::BindGroup,
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ctx: &GpuContext,
        mb: &MatrixBuffers,
        m: &TrustMatrix,
        columns: &[Column],
        starts: &[Option<Vec<f64>>],
        ids: &[usize],
        lanes: Lanes,
        params: &IterParams,
    ) -> Result<Self> {
        let n = mb.n;
        let width = ids.len();
        let l = lanes.count();
        let groups = width.div_ceil(l);
        let grid = Grid::new(n, groups);
        let stride = groups * l;
        let keep = 1.0 - params.alpha;
        // keep + alpha == 1 exactly in f32, so an iteration preserves the
        // total mass up to rounding instead of drifting it by ~2e-7.
        let keep_f = keep as f32;
        let alpha_f = 1.0 - keep_f;
        let scale = match m.weights() {
            EdgeWeights::PerSource(s) => Some(s),
            EdgeWeights::PerEdge(_) => None,
        };
        let mut t0 = vec![0f32; n * stride];
        let mut p = vec![0f32; n * stride];
        let mut x0 = vec![0f32; if scale.is_some() { n * stride } else { 0 }];
        let mut colv = vec![0f32; 2 * stride];
        for (k, &id) in ids.iter().enumerate() {
            let pre = &columns[id].pretrust;
            let start = starts[id].as_deref().unwrap_or(pre);
            let mut mass = 0.0f64;
            for i in 0..n {
                t0[i * stride + k] = start[i] as f32;
                p[i * stride + k] = pre[i] as f32;
                if let Some(s) = scale {
                    x0[i * stride + k] = (start[i] * s[i]) as f32;
                }
                mass += m.deficit()[i] * start[i];
            }
            colv[k] = (keep * mass + params.alpha) as f32;
        }
        for f in &mut colv[stride + width..] {
            *f = 1.0;
        }
        let uni = ParamsU {
            n: n as u32,
            groups: groups as u32,
            gp: grid.gp as u32,
            rows_per_wg: grid.rows_per_wg as u32,
            rowblocks: grid.rowblocks as u32,
            n_long: mb.plan.long_rows.len() as u32,
            short_max: SHORT_MAX,
            width: width as u32,
            alpha: alpha_f,
            keep: keep_f,
            epsilon: params.epsilon as f32,
            max_iter: params.max_iter,
            one: 1.0,
            n_part0: grid.n_part0 as u32,
            n_part1: grid.n_part1 as u32,
            pad: 0,
        };
        let cp = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let vbytes = (n * stride * 4) as u64;
        let params_buf = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&uni),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let st = wgpu::BufferUsages::STORAGE;
        let t = [
            storage(ctx, "t0", bytemuck::cast_slice(&t0), cp),
            zeroed(ctx, "t1", vbytes, st | cp),
        ];
        let x = scale.map(|_| {
            [
                storage(ctx, "x0", bytemuck::cast_slice(&x0), cp),
                zeroed(ctx, "x1", vbytes, st | cp),
            ]
        });
        let pre = storage(ctx, "pretrust", bytemuck::cast_slice(&p), cp);
        let placeholder = zeroed(ctx, "unused x", 16, st);
        let acc = zeroed(ctx, "acc", vbytes, st);
        let seg_part = zeroed(
            ctx,
            "seg_part",
            (mb.plan.segs.len() * 2 * stride * 4) as u64,
            st,
        );
        let part0 = zeroed(ctx, "part0", (grid.n_part0 * 4 * stride * 4) as u64, st);
        let part1 = zeroed(ctx, "part1", (grid.n_part1 * 4 * stride * 4) as u64, st);
        let most_segs = mb.chunks.iter().map(|c| c.segs as usize).max().unwrap_or(0);
        let lane_part = zeroed(
            ctx,
            "lane_part",
            (most_segs * SEG_LANES * 2 * stride * 4) as u64,
            st,
        );
        let colv_buf = storage(ctx, "colv", bytemuck::cast_slice(&colv), cp);
        let cols_init = vec![ColStateU::default(); width];
        let cols = storage(ctx, "cols", bytemuck::cast_slice(&cols_init), cp);
        let rb = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let cols_rb = zeroed(ctx, "cols readback", (width * 16) as u64, rb);
        let vec_rb = zeroed(ctx, "vector readback", vbytes, rb);

        let k = ctx.kernels(lanes);
        let bg = |pipe: &wgpu::ComputePipeline, entries: &[(u32, &wgpu::Buffer)]| {
            let entries: Vec<wgpu::BindGroupEntry> = entries
                .iter()
                .map(|&(binding, b)| wgpu::BindGroupEntry {
                    binding,
                    resource: b.as_entire_binding(),
                })
                .collect();
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipe.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let (short_pipe, long_pipe, update_pipe) = pipes(k, mb.per_edge);
        let spmv = [0usize, 1].map(|parity| {
            let xcur = match &x {
                Some(x) => &x[parity],
                None => &t[parity],
            };
            mb.chunks
                .iter()
                .map(|c| {
                    let mut short = vec![
                        (0, &params_buf),
                        (1, &c.uniform),
                        (2, &mb.row_ptr),
                        (3, &c.src),
                        (5, xcur),
                        (6, &colv_buf),
                        (7, &acc),
                    ];
                    let mut long = vec![
                        (0, &params_buf),
                        (1, &c.uniform),
                        (3, &c.src),
                        (5, xcur),
                        (6, &colv_buf),
                        (8, &mb.segs),
                        (11, &lane_part),
                    ];
                    if let Some(ew) = &c.ew {
                        short.push((4, ew));
                        long.push((4, ew));
                    }
                    let reduce = [
                        (0, &params_buf),
                        (1, &c.uniform),
                        (6, &colv_buf),
                        (9, &seg_part),
                        (11, &lane_part),
                    ];
                    let long =
                        (c.segs > 0).then(|| (bg(long_pipe, &long), bg(&k.seg_reduce, &reduce)));
                    (bg(short_pipe, &short), long)
                })
                .collect()
        });
        let finish = (!mb.plan.long_rows.is_empty()).then(|| {
            bg(
                &k.long_finish,
                &[
                    (0, &params_buf),
                    (6, &colv_buf),
                    (7, &acc),
                    (9, &seg_part),
                    (10, &mb.long_rows),
                ],
            )
        });
        let update = [0usize, 1].map(|parity| {
            let mut e = vec![
                (0, &params_buf),
                (1, &acc),
                (2, &pre),
                (3, &mb.rowinfo),
                (4, &t[parity]),
                (5, &t[1 - parity]),
                (7, &colv_buf),
                (8, &part0),
            ];
            e.push((6, x.as_ref().map_or(&placeholder, |x| &x[1 - parity])));
            bg(update_pipe, &e)
        });
        let fold = bg(&k.fold, &[(0, &params_buf), (8, &part0), (9, &part1)]);
        let finalize = bg(
            &k.finalize,
            &[(0, &params_buf), (7, &colv_buf), (9, &part1), (10, &cols)],
        );
        Ok(Block {
            lanes,
            width,
            groups,
            grid,
            t,
            colv: colv_buf,
            cols,
            cols_rb,
            vec_rb,
            spmv,
            finish,
            update,
            fold,
            finalize,
        })
    }

    /// Records one iteration reading t[parity] and writing t[1 - parity].
    fn record(
        &self,
        ctx: &GpuContext,
        mb: &MatrixBuffers,
        pass: &mut wgpu::ComputePass<'_>,
        parity: usize,
    ) {
        let k = ctx.kernels(self.lanes);
        let (short_pipe, long_pipe, update_pipe) = pipes(k, mb.per_edge);
        let max = ctx.max_workgroups();
        let rows_per_wg = self.grid.rows_per_wg;
        let dispatch = |pass: &mut wgpu::ComputePass<'_>, count: usize| {
            if count > 0 {
                let (x, y) = grid(count, max);
                pass.dispatch_workgroups(x, y, 1);
            }
        };
        for (c, (short, long)) in mb.chunks.iter().zip(&self.spmv[parity]) {
            if c.rows > 0 {
                pass.set_pipeline(short_pipe);
                pass.set_bind_group(0, short, &[]);
                dispatch(pass, (c.rows as usize).div_ceil(rows_per_wg));
            }
            if let Some((long, reduce)) = long {
                pass.set_pipeline(long_pipe);
                pass.set_bind_group(0, long, &[]);
                let segs_per_wg = WG / (SEG_LANES * self.grid.gp);
                dispatch(pass, (c.segs as usize).div_ceil(segs_per_wg));
                pass.set_pipeline(&k.seg_reduce);
                pass.set_bind_group(0, reduce, &[]);
                dispatch(pass, (c.segs as usize).div_ceil(rows_per_wg));
            }
        }
        if let Some(finish) = &self.finish {
            pass.set_pipeline(&k.long_finish);
            pass.set_bind_group(0, finish, &[]);
            dispatch(pass, mb.plan.long_rows.len().div_ceil(rows_per_wg));
        }
        pass.set_pipeline(update_pipe);
        pass.set_bind_group(0, &self.update[parity], &[]);
        dispatch(pass, self.grid.rowblocks);
        pass.set_pipeline(&k.fold);
        pass.set_bind_group(0, &self.fold, &[]);
        dispatch(pass, self.grid.n_part1.div_ceil(rows_per_wg));
        pass.set_pipeline(&k.finalize);
        pass.set_bind_group(0, &self.finalize, &[]);
        pass.dispatch_workgroups(self.groups as u32, 1, 1);
    }

    fn run(
        &self,
        ctx: &GpuContext,
        mb: &MatrixBuffers,
        params: &IterParams,
    ) -> Result<Vec<TrustVector>> {
        let n = mb.n;
        let stride = self.groups * self.lanes.count();
        let interval = match params.flat_tail {
            Some(ft) => ft.iterations.clamp(1, READBACK_EVERY),
            None => READBACK_EVERY,
        };
        // Host-side flat-tail tracking per column: last sampled top order, and
        // iterations it has been unchanged for.
        let mut tops: Vec<(Vec<u32>, u32)> = vec![(Vec::new(), 0); self.width];
        let mut parity = 0usize;
        let mut recorded = 0u64;
        loop {
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("power iteration"),
                    timestamp_writes: None,
                });
                for _ in 0..interval {
                    self.record(ctx, mb, &mut pass, parity);
                    parity = 1 - parity;
                }
            }
            recorded += interval as u64;
            enc.copy_buffer_to_buffer(&self.cols, 0, &self.cols_rb, 0, (self.width * 16) as u64);
            if params.flat_tail.is_some() {
                enc.copy_buffer_to_buffer(
                    &self.t[parity],
                    0,
                    &self.vec_rb,
                    0,
                    (n * stride * 4) as u64,
                );
            }
            ctx.queue.submit([enc.finish()]);
            let mut states: Vec<ColStateU> =
                bytemuck::pod_collect_to_vec(&ctx.read_buffer(&self.cols_rb)?);
            if let Some(ft) = params.flat_tail {
                let t: Vec<f32> = bytemuck::pod_collect_to_vec(&ctx.read_buffer(&self.vec_rb)?);
                let mut changed = false;
                for (k, s) in states.iter_mut().enumerate() {
                    if s.stop != 0 {
                        continue;
                    }
                    let top = top_ids(n, ft.top, |i| t[i * stride + k] as f64);
                    let (prev, stable) = &mut tops[k];
                    if *prev == top {
                        *stable += interval;
                    } else {
                        *prev = top;
                        *stable = 0;
                    }
                    if *stable >= ft.iterations {
                        s.stop = STOP_FLAT_TAIL;
                        ctx.queue.write_buffer(
                            &self.cols,
                            (k * 16) as u64,
                            bytemuck::bytes_of(&*s),
                        );
                        changed = true;
                    }
                }
                if changed {
                    let frozen: Vec<f32> = (0..stride)
                        .map(|k| {
                            if k >= self.width || states[k].stop != 0 {
                                1.0
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    ctx.queue.write_buffer(
                        &self.colv,
                        (stride * 4) as u64,
                        bytemuck::cast_slice(&frozen),
                    );
                }
            }
            if states.iter().all(|s| s.stop != 0) {
                return self.collect(ctx, n, stride, parity, &states);
            }
            if recorded > params.max_iter as u64 + READBACK_EVERY as u64 {
                return Err(Error::Device(format!(
                    "{}: columns still running after {recorded} iterations (max_iter {}); \
                     the device state is inconsistent",
                    ctx.adapter_info().name,
                    params.max_iter
                )));
            }
        }
    }

    fn collect(
        &self,
        ctx: &GpuContext,
        n: usize,
        stride: usize,
        parity: usize,
        states: &[ColStateU],
    ) -> Result<Vec<TrustVector>> {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(&self.t[parity], 0, &self.vec_rb, 0, (n * stride * 4) as u64);
        ctx.queue.submit([enc.finish()]);
        let t: Vec<f32> = bytemuck::pod_collect_to_vec(&ctx.read_buffer(&self.vec_rb)?);
        Ok(states
            .iter()
            .enumerate()
            .map(|(k, s)| TrustVector {
                scores: (0..n).map(|i| t[i * stride + k] as f64).collect(),
                iterations: s.iterations,
                residual: s.residual as f64,
                stop: match s.stop {
                    STOP_CONVERGED => StopReason::Converged,
                    STOP_FLAT_TAIL => StopReason::FlatTail,
                    STOP_MAX_ITER => StopReason::MaxIter,
                    _ => StopReason::MaxIter,
                },
            })
            .collect())
    }
}

fn pipes(
    k: &Kernels,
    per_edge: bool,
) -> (
    &wgpu::ComputePipeline,
    &wgpu::ComputePipeline,
    &wgpu::ComputePipeline,
) {
    if per_edge {
        (&k.spmv_short_pe, &k.spmv_long_pe, &k.update_pe)
    } else {
        (&k.spmv_short_ps, &k.spmv_long_ps, &k.update_ps)
    }
}
