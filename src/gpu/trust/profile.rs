//! Per-kernel timing of the power iteration (`trustmesh bench
//! --profile-kernels`): where an iteration's time goes on a given device.
//!
//! Why a separate path from [`super::solve`]: the solve loop pipelines its
//! submissions and stops columns on the device, which is what makes it fast
//! and what makes per-kernel times meaningless to read from it. Here one block
//! runs a fixed number of iterations in one pass with a timestamp after each
//! stage, after a warm-up submission. Timestamps inside a pass need the
//! `TIMESTAMP_QUERY_INSIDE_PASSES` feature; devices without it say so.

use super::block::{block_shape, Block};
use super::kernels::{Lanes, TrustKernels};
use super::matrix::GpuMatrix;
use super::plan::PlanConfig;
use crate::error::{Error, Result};
use crate::gpu::context::scoped;
use crate::gpu::GpuContext;
use crate::trust::engine::{Column, IterParams};
use crate::trust::{pretrust, TrustMatrix};

/// The stages of one iteration, in recording order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// y = Cᵀx: every chunk's row blocks and long-row segments.
    Product,
    /// `update`: the new iterate (long rows' products from their segment
    /// sums), its pre-scaled copy and the update partials.
    Update,
    /// `fold` and `finalize`: residual and dangling mass, stopping rule.
    Reduce,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Product, Stage::Update, Stage::Reduce];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Product => "product (spmv)",
            Stage::Update => "update",
            Stage::Reduce => "reduce (fold, finalize)",
        }
    }
}

/// Timestamps written inside one compute pass, each labelled with the stage
/// it ends (the first one only marks the start).
pub(crate) struct Stamps {
    set: wgpu::QuerySet,
    capacity: u32,
    stages: Vec<Option<Stage>>,
}

impl Stamps {
    fn new(ctx: &GpuContext, capacity: u32) -> Self {
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: capacity,
        });
        Stamps {
            set,
            capacity,
            stages: Vec::with_capacity(capacity as usize),
        }
    }

    /// Writes the next timestamp, marking the end of `stage` (or the start).
    pub fn mark(&mut self, pass: &mut wgpu::ComputePass<'_>, stage: impl Into<Option<Stage>>) {
        let i = self.stages.len() as u32;
        if i < self.capacity {
            pass.write_timestamp(&self.set, i);
            self.stages.push(stage.into());
        }
    }
}

/// Milliseconds per iteration of each stage (and of the whole iteration).
#[derive(Debug, Clone, PartialEq)]
pub struct StageTimes {
    pub iterations: u32,
    pub stages: Vec<(Stage, f64)>,
    pub whole_ms: f64,
}

/// Most iterations timed in one pass: 4 timestamps each, within wgpu's
/// 4096 queries per set.
const MOST_ITERS: u32 = 1000;

/// Times `iters` iterations of a block of `k` uniform columns on `m`, stage by
/// stage.
pub(crate) fn profile(
    ctx: &GpuContext,
    fam: &TrustKernels,
    m: &TrustMatrix,
    plan: PlanConfig,
    k: usize,
    iters: u32,
) -> Result<StageTimes> {
    if !ctx.can_time_kernels() {
        return Err(Error::Measure(format!(
            "{}: no timestamp queries inside passes on this adapter; \
             kernels cannot be timed one by one",
            ctx.adapter_info().name
        )));
    }
    let iters = iters.clamp(1, MOST_ITERS);
    scoped(&ctx.device, || {
        let gm = GpuMatrix::upload(ctx, m, plan)?;
        let (lanes, width) = block_shape(ctx, &gm)?;
        let k = k.clamp(1, width);
        let lanes = if k == 1 { Lanes::One } else { lanes };
        let columns: Vec<Column> = (0..k)
            .map(|_| Column::new(pretrust::uniform(m.n())))
            .collect();
        let starts = vec![None; k];
        let ids: Vec<usize> = (0..k).collect();
        // Every column runs every iteration: a residual never below epsilon.
        let params = IterParams {
            epsilon: f64::MIN_POSITIVE,
            max_iter: u32::MAX,
            ..Default::default()
        };
        let mut block = Block::new(
            ctx, fam, &gm, m, 0, 0, &columns, &starts, &ids, lanes, &params,
        )?;
        let run = |block: &mut Block, n: u32, stamps: Option<&mut Stamps>| {
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            let resolved = stamps.map(|s| {
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("profiled iterations"),
                        timestamp_writes: None,
                    });
                    s.mark(&mut pass, None);
                    for _ in 0..n {
                        block.record(ctx, fam, &gm, &mut pass, Some(s));
                    }
                }
                let bytes = 8 * s.stages.len() as u64;
                let resolve = ctx.zeroed(
                    "timestamps",
                    bytes,
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                );
                let rb = ctx.zeroed(
                    "timestamps readback",
                    bytes,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                );
                enc.resolve_query_set(&s.set, 0..s.stages.len() as u32, &resolve, 0);
                enc.copy_buffer_to_buffer(&resolve, 0, &rb, 0, bytes);
                rb
            });
            if resolved.is_none() {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("warm-up iterations"),
                    timestamp_writes: None,
                });
                for _ in 0..n {
                    block.record(ctx, fam, &gm, &mut pass, None);
                }
            }
            let sub = ctx.queue.submit([enc.finish()]);
            match resolved {
                Some(rb) => Ok(Some(ctx.read_buffers(&[&rb], Some(sub))?.remove(0))),
                None => ctx.wait(Some(sub)).map(|_| None),
            }
        };
        run(&mut block, 2, None)?;
        let mut stamps = Stamps::new(ctx, 1 + 4 * iters);
        let bytes = run(&mut block, iters, Some(&mut stamps))?
            .ok_or_else(|| Error::internal("profiled run without timestamps"))?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        let ns = ctx.queue.get_timestamp_period() as f64;
        Ok(stage_times(&ticks, &stamps.stages, ns, iters))
    })
}

/// Sums the gaps between consecutive timestamps by the stage each one ends.
fn stage_times(
    ticks: &[u64],
    stages: &[Option<Stage>],
    ns_per_tick: f64,
    iters: u32,
) -> StageTimes {
    let per_iter_ms = |t: u64| t as f64 * ns_per_tick / 1e6 / iters as f64;
    let mut sums = [0u64; 4];
    for (w, stage) in ticks.windows(2).zip(&stages[1..]) {
        if let Some(s) = stage {
            let i = Stage::ALL.iter().position(|x| x == s).unwrap_or(0);
            // A device's counter may be unordered across stages: never negative.
            sums[i] += w[1].saturating_sub(w[0]);
        }
    }
    let whole = match (ticks.first(), ticks.last()) {
        (Some(a), Some(b)) => b.saturating_sub(*a),
        _ => 0,
    };
    StageTimes {
        iterations: iters,
        stages: Stage::ALL
            .iter()
            .zip(sums)
            .map(|(s, t)| (*s, per_iter_ms(t)))
            .collect(),
        whole_ms: per_iter_ms(whole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_summed_by_the_stage_they_end() {
        let s = [
            None,
            Some(Stage::Product),
            Some(Stage::Update),
            Some(Stage::Reduce),
            Some(Stage::Product),
            Some(Stage::Update),
            Some(Stage::Reduce),
        ];
        // Two iterations, 1 ns per tick: product 10 + 30, update 5 + 7,
        // reduce 1 + 3 (a counter step back counts as 0).
        let t = [100, 110, 115, 116, 146, 153, 156];
        let r = stage_times(&t, &s, 1e6, 2);
        let ms: Vec<f64> = r.stages.iter().map(|x| x.1).collect();
        assert_eq!(ms, vec![20.0, 6.0, 2.0]);
        assert_eq!(r.whole_ms, 28.0);
        let back = [100, 90, 95, 96, 97, 98, 99];
        assert_eq!(stage_times(&back, &s, 1.0, 1).stages[0].1, 1e-6);
    }
}
