//! One block of up to [`MAX_BLOCK`] columns solved together against a
//! resident matrix: its buffers, its bind groups, and how it records one
//! iteration.
//!
//! Per iteration (shaders/trust/):
//! 1. `spmv`, once per matrix chunk: y = Cᵀ x for every column of the block
//!    in one pass over the matrix (row blocks with lanes fitted to their rows;
//!    long-row segments).
//! 2. `update`: t' = (1-a)·y + ((1-a)·(d·t) + a)·p, where a long row's y is
//!    the sum of its segments, the pre-scaled x' = t'·scale for the next
//!    gather, and partial sums of |t' - t| and d·t' per 128 rows; `fold`
//!    merges them 32 at a time when there are many.
//! 3. `finalize`: per column group one workgroup adds the last partials,
//!    counts the iteration, and freezes a column once its residual is below
//!    epsilon or it reached max_iter. A frozen column is copied through
//!    unchanged, so it ends exactly at the iteration that stopped it.

use rayon::prelude::*;

use super::kernels::{Lanes, TrustKernels};
use super::layout::{ColStateU, ParamsU, STOP_CONVERGED, STOP_FLAT_TAIL, STOP_MAX_ITER};
use super::matrix::GpuMatrix;
use super::plan::WG;
use super::profile::{Stage, Stamps};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::trust::engine::{Column, IterParams, StopReason, TrustVector};
use crate::trust::{EdgeWeights, TrustMatrix};

/// Most columns solved in one block (8 groups of `vec4<f32>`). More columns
/// are solved block after block; fewer are used when the agent count times
/// the block width would not fit one storage binding.
pub const MAX_BLOCK: usize = 32;

/// Rows per invocation of the update kernel, as in shaders/trust/common.wgsl.
pub(crate) const UPDATE_ROWS: usize = 4;
/// Items one chunk tree merges into a partial, as in shaders/trust/common.wgsl.
const TREE: usize = 32;
/// Most update partials per group that finalize reads itself (at most 16 per
/// invocation, read coalesced); beyond that a fold pass merges them by
/// `TREE` first. Why: below it a pass saved is worth more than the serial
/// reads (a pass costs several microseconds of launch and barrier even when
/// it has nothing to do), above it one workgroup's serial reads would grow
/// with the graph.
const FINAL_DIRECT: usize = 16 * WG as usize;

/// Work decomposition of a block with `groups` column groups over `n` rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    /// `groups` rounded up to a power of two (invocation lid serves group lid % gp).
    pub gp: usize,
    /// Rows (items) per workgroup of the (item, group)-mapped kernels.
    pub rows_per_wg: usize,
    /// Invocations of the update kernel per group.
    pub n_items: usize,
    /// Update partials per group, and the fold's (0: no fold pass).
    pub n_part0: usize,
    pub n_part1: usize,
}

impl Grid {
    pub fn new(n: usize, groups: usize) -> Grid {
        let gp = groups.next_power_of_two();
        let n_items = n.div_ceil(UPDATE_ROWS);
        let n_part0 = n_items.div_ceil(TREE);
        Grid {
            gp,
            rows_per_wg: WG as usize / gp,
            n_items,
            n_part0,
            n_part1: if n_part0 > FINAL_DIRECT {
                n_part0.div_ceil(TREE)
            } else {
                0
            },
        }
    }
}

/// Lane width and block width for `m`: the widest block whose per-block
/// arrays each fit one storage binding.
pub(crate) fn block_shape(ctx: &GpuContext, m: &GpuMatrix) -> Result<(Lanes, usize)> {
    let limit = ctx.max_binding() as usize;
    let nseg = m.plan.segs.len().max(1);
    let fits = |lanes: usize, groups: usize| {
        let v = 4 * lanes * groups;
        let grid = Grid::new(m.n, groups);
        m.n * v <= limit && nseg * 2 * v <= limit && (grid.n_part0 + grid.n_part1) * 4 * v <= limit
    };
    if let Some(g) = (1..=MAX_BLOCK / 4).rev().find(|&g| fits(4, g)) {
        return Ok((Lanes::Four, 4 * g));
    }
    if fits(1, 1) {
        return Ok((Lanes::One, 1));
    }
    Err(ctx.too_big("one trust vector", m.n as u64 * 4))
}

/// Device memory a block of `width` columns at `lanes` takes on `m`, bytes.
pub(crate) fn block_bytes(m: &GpuMatrix, lanes: Lanes, width: usize) -> u64 {
    let groups = width.div_ceil(lanes.count());
    let stride = (groups * lanes.count()) as u64;
    let grid = Grid::new(m.n, groups);
    let vec = m.n as u64 * stride * 4;
    let vectors = if m.per_edge { 5 } else { 7 }; // t×2, (x×2), pre, acc, readback
    vectors * vec
        + m.plan.segs.len() as u64 * 2 * stride * 4
        + (grid.n_part0 + grid.n_part1) as u64 * 4 * stride * 4
}

/// A block of columns being solved.
pub(crate) struct Block {
    /// Which batch and which of its columns this block solves.
    pub batch: usize,
    pub ids: Vec<usize>,
    /// Index of the matrix in the loaded set.
    pub matrix: usize,
    lanes: Lanes,
    width: usize,
    groups: usize,
    grid: Grid,
    n: usize,
    /// t ping-pong buffers; the current iterate is t[parity].
    t: [wgpu::Buffer; 2],
    colv: wgpu::Buffer,
    cols: wgpu::Buffer,
    /// Two readback buffers for the column states, so the host can read one
    /// batch's states while the next batch runs.
    cols_rb: [wgpu::Buffer; 2],
    vec_rb: wgpu::Buffer,
    /// Per parity: one matrix-pass bind group per chunk, and the update one.
    spmv: [Vec<wgpu::BindGroup>; 2],
    power: [wgpu::BindGroup; 2],
    pub parity: usize,
    /// Iterations recorded so far (including those after every column froze).
    pub recorded: u64,
}

impl Block {
    /// Allocates and fills the block's buffers. `starts[id]` is column id's
    /// normalised warm start, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        fam: &TrustKernels,
        gm: &GpuMatrix,
        m: &TrustMatrix,
        batch: usize,
        matrix: usize,
        columns: &[Column],
        starts: &[Option<Vec<f64>>],
        ids: &[usize],
        lanes: Lanes,
        params: &IterParams,
    ) -> Result<Self> {
        let n = gm.n;
        let width = ids.len();
        let groups = width.div_ceil(lanes.count());
        let stride = groups * lanes.count();
        let grid = Grid::new(n, groups);
        let init = initial_values(m, columns, starts, ids, stride, params);
        let uni = ParamsU {
            n: n as u32,
            groups: groups as u32,
            gp: grid.gp as u32,
            rows_per_wg: grid.rows_per_wg as u32,
            n_long: gm.plan.long_rows.len() as u32,
            width: width as u32,
            max_iter: params.max_iter,
            n_part0: grid.n_part0 as u32,
            n_part1: grid.n_part1 as u32,
            alpha: init.alpha,
            keep: init.keep,
            epsilon: params.epsilon as f32,
            one: 1.0,
            per_lane: gm.plan.per_lane,
            pad: [0; 2],
        };
        let st = wgpu::BufferUsages::STORAGE;
        let cp = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let vbytes = (n * stride * 4) as u64;
        let params_buf = ctx.uniform("params", bytemuck::bytes_of(&uni));
        let t = [
            ctx.storage_init("t0", bytemuck::cast_slice(&init.t0), cp),
            ctx.zeroed("t1", vbytes, st | cp),
        ];
        let x = init.x0.as_ref().map(|x0| {
            [
                ctx.storage_init("x0", bytemuck::cast_slice(x0), cp),
                ctx.zeroed("x1", vbytes, st | cp),
            ]
        });
        let pre = ctx.storage_init("pretrust", bytemuck::cast_slice(&init.p), cp);
        let no_x = ctx.zeroed("no x", 16, st);
        let acc = ctx.zeroed("acc", vbytes, st);
        let seg_bytes = (gm.plan.segs.len() * 2 * stride * 4) as u64;
        let seg_part = ctx.zeroed("seg_part", seg_bytes, st);
        let part_bytes = (grid.n_part0 + grid.n_part1) * 4 * stride * 4;
        let parts = ctx.zeroed("parts", part_bytes as u64, st);
        let colv = ctx.storage_init("colv", bytemuck::cast_slice(&init.colv), cp);
        let cols_init = vec![ColStateU::default(); width];
        let cols = ctx.storage_init("cols", bytemuck::cast_slice(&cols_init), cp);
        let rb = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let cols_rb = [0, 1].map(|_| ctx.zeroed("cols readback", (width * 16) as u64, rb));
        let vec_rb = ctx.zeroed("vector readback", vbytes, rb);

        let bind = |layout: &wgpu::BindGroupLayout, buffers: &[&wgpu::Buffer]| {
            ctx.bind_buffers(layout, buffers)
        };
        // Entry order is the binding order of layout::SPMV_SLOTS / POWER_SLOTS.
        let spmv = [0usize, 1].map(|parity| {
            let gathered = x.as_ref().map_or(&t[parity], |x| &x[parity]);
            gm.chunks
                .iter()
                .map(|c| {
                    bind(
                        &fam.spmv_layout,
                        &[
                            &params_buf,
                            match lanes {
                                Lanes::One => &c.all_blocks,
                                Lanes::Four => &c.seg_blocks,
                            },
                            &gm.row_ptr,
                            &c.src,
                            c.ew.as_ref().unwrap_or(&gm.no_weights),
                            gathered,
                            &colv,
                            &acc,
                            &gm.segs,
                            &seg_part,
                            &gm.blocks,
                            &gm.row_list,
                        ],
                    )
                })
                .collect()
        });
        let power = [0usize, 1].map(|parity| {
            bind(
                &fam.power_layout,
                &[
                    &params_buf,
                    &acc,
                    &pre,
                    &gm.rowinfo,
                    &t[parity],
                    &t[1 - parity],
                    x.as_ref().map_or(&no_x, |x| &x[1 - parity]),
                    &colv,
                    &parts,
                    &cols,
                    &seg_part,
                    &gm.long_rows,
                    &gm.long_next,
                ],
            )
        });
        Ok(Block {
            batch,
            ids: ids.to_vec(),
            matrix,
            lanes,
            width,
            groups,
            grid,
            n,
            t,
            colv,
            cols,
            cols_rb,
            vec_rb,
            spmv,
            power,
            parity: 0,
            recorded: 0,
        })
    }

    fn stride(&self) -> usize {
        self.groups * self.lanes.count()
    }

    /// Records one iteration reading t[parity] and writing t[1 - parity];
    /// with `stamps`, a timestamp after each stage (kernel profiling).
    pub fn record(
        &mut self,
        ctx: &GpuContext,
        fam: &TrustKernels,
        gm: &GpuMatrix,
        pass: &mut wgpu::ComputePass<'_>,
        mut stamps: Option<&mut Stamps>,
    ) {
        let mut mark = |pass: &mut wgpu::ComputePass<'_>, stage: Stage| {
            if let Some(s) = stamps.as_deref_mut() {
                s.mark(pass, stage);
            }
        };
        let k = fam.get(self.lanes);
        let weights = gm.per_edge as usize;
        let spmv = &self.spmv[self.parity];
        for (c, bg) in gm.chunks.iter().zip(spmv) {
            pass.set_bind_group(0, bg, &[]);
            // One column: every block with lanes side by side. Several:
            // rows one invocation per (row, group), segments as blocks.
            let blocks = match self.lanes {
                Lanes::One => c.n_blocks,
                Lanes::Four => {
                    if c.rows > 0 {
                        pass.set_pipeline(&k.spmv_rows[weights]);
                        ctx.dispatch_linear(pass, c.rows.div_ceil(self.grid.rows_per_wg));
                    }
                    c.n_seg_blocks
                }
            };
            if blocks > 0 {
                pass.set_pipeline(&k.spmv[weights]);
                ctx.dispatch_linear(pass, blocks);
            }
        }
        mark(pass, Stage::Product);
        pass.set_bind_group(0, &self.power[self.parity], &[]);
        pass.set_pipeline(&k.update[weights]);
        ctx.dispatch_linear(pass, self.grid.n_items.div_ceil(self.grid.rows_per_wg));
        mark(pass, Stage::Update);
        if self.grid.n_part1 > 0 {
            pass.set_pipeline(&k.fold);
            ctx.dispatch_linear(pass, self.grid.n_part0.div_ceil(self.grid.rows_per_wg));
        }
        pass.set_pipeline(&k.finalize);
        pass.dispatch_workgroups(self.groups as u32, 1, 1);
        mark(pass, Stage::Reduce);
        self.parity = 1 - self.parity;
        self.recorded += 1;
    }

    /// Copies the column states into readback buffer `slot`.
    pub fn copy_states(&self, enc: &mut wgpu::CommandEncoder, slot: usize) {
        enc.copy_buffer_to_buffer(&self.cols, 0, &self.cols_rb[slot], 0, self.state_bytes());
    }

    /// Copies the current iterate into the vector readback buffer.
    pub fn copy_vectors(&self, enc: &mut wgpu::CommandEncoder) {
        let bytes = (self.n * self.stride() * 4) as u64;
        enc.copy_buffer_to_buffer(&self.t[self.parity], 0, &self.vec_rb, 0, bytes);
    }

    fn state_bytes(&self) -> u64 {
        (self.width * std::mem::size_of::<ColStateU>()) as u64
    }

    pub fn states_rb(&self, slot: usize) -> &wgpu::Buffer {
        &self.cols_rb[slot]
    }

    pub fn vectors_rb(&self) -> &wgpu::Buffer {
        &self.vec_rb
    }

    /// Column k's score of agent i in read-back vector bytes.
    pub fn score(&self, t: &[f32], i: usize, k: usize) -> f32 {
        t[i * self.stride() + k]
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Marks columns stopped by the host (flat tail) on the device: writes
    /// their state and freezes them.
    pub fn freeze(&self, ctx: &GpuContext, states: &[ColStateU]) {
        for (k, s) in states.iter().enumerate() {
            if s.stop == STOP_FLAT_TAIL {
                ctx.queue
                    .write_buffer(&self.cols, (k * 16) as u64, bytemuck::bytes_of(s));
            }
        }
        let stride = self.stride();
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

    /// The block's columns from their final states and the read-back iterate.
    pub fn results(&self, states: &[ColStateU], t: &[f32]) -> Result<Vec<TrustVector>> {
        states
            .par_iter()
            .enumerate()
            .map(|(k, s)| {
                let stop = match s.stop {
                    STOP_CONVERGED => StopReason::Converged,
                    STOP_FLAT_TAIL => StopReason::FlatTail,
                    STOP_MAX_ITER => StopReason::MaxIter,
                    other => {
                        return Err(Error::internal(format!(
                            "GPU column {k} stopped with unknown code {other}"
                        )))
                    }
                };
                Ok(TrustVector {
                    scores: (0..self.n).map(|i| self.score(t, i, k) as f64).collect(),
                    iterations: s.iterations,
                    residual: s.residual as f64,
                    stop,
                })
            })
            .collect()
    }
}

/// Host-computed initial state of a block, rounded to f32 once.
struct Initial {
    t0: Vec<f32>,
    p: Vec<f32>,
    /// t0 · scale (per-source weights only).
    x0: Option<Vec<f32>>,
    /// [0, stride) teleport coefficient, [stride, 2 stride) frozen flag.
    colv: Vec<f32>,
    keep: f32,
    alpha: f32,
}

/// Interleaves the block's start and pre-trust vectors, and computes in f64
/// what the first iteration needs: x(0) = t(0)·scale, the dangling mass and
/// the teleport coefficient.
fn initial_values(
    m: &TrustMatrix,
    columns: &[Column],
    starts: &[Option<Vec<f64>>],
    ids: &[usize],
    stride: usize,
    params: &IterParams,
) -> Initial {
    let n = m.n();
    let width = ids.len();
    let keep = 1.0 - params.alpha;
    // keep + alpha == 1 exactly in f32, so an iteration preserves the total
    // mass up to rounding instead of drifting it by ~2e-7.
    let keep_f = keep as f32;
    let alpha_f = 1.0 - keep_f;
    let scale = match m.weights() {
        EdgeWeights::PerSource(s) => Some(s),
        EdgeWeights::PerEdge(_) => None,
    };
    let vecs: Vec<(&[f64], &[f64])> = ids
        .iter()
        .map(|&id| {
            let pre = columns[id].pretrust.as_slice();
            (starts[id].as_deref().unwrap_or(pre), pre)
        })
        .collect();
    let mut t0 = vec![0f32; n * stride];
    let mut p = vec![0f32; n * stride];
    t0.par_chunks_mut(stride.max(1))
        .zip(p.par_chunks_mut(stride.max(1)))
        .enumerate()
        .for_each(|(i, (tr, pr))| {
            for (k, (start, pre)) in vecs.iter().enumerate() {
                tr[k] = start[i] as f32;
                pr[k] = pre[i] as f32;
            }
        });
    let x0 = scale.map(|s| {
        let mut x0 = vec![0f32; n * stride];
        x0.par_chunks_mut(stride.max(1))
            .enumerate()
            .for_each(|(i, xr)| {
                for (k, (start, _)) in vecs.iter().enumerate() {
                    xr[k] = (start[i] * s[i]) as f32;
                }
            });
        x0
    });
    let mut colv = vec![0f32; 2 * stride];
    // Each column's mass is one sequential sum, so its bits do not depend on
    // the thread count.
    let coefs: Vec<f32> = vecs
        .par_iter()
        .map(|(start, _)| {
            let mass: f64 = m.deficit().iter().zip(*start).map(|(d, s)| d * s).sum();
            (keep * mass + params.alpha) as f32
        })
        .collect();
    colv[..width].copy_from_slice(&coefs);
    for f in &mut colv[stride + width..] {
        *f = 1.0;
    }
    Initial {
        t0,
        p,
        x0,
        colv,
        keep: keep_f,
        alpha: alpha_f,
    }
}
