//! The iteration loop: every column block of every batch advances in the same
//! submissions, and the host reads the small per-column states of one
//! submission while the device already runs the next.
//!
//! Columns stop on the device (see [`super::block`]), so the host only has to
//! learn when every column of a block has stopped. It records
//! [`READBACK_EVERY`] iterations of every active block per submission and
//! copies each block's column states to a readback buffer; without a
//! flat-tail rule it submits batch k + 1 before mapping batch k's states, so
//! the device never waits for the host's round trip. A block whose columns
//! all stopped runs at most one more batch, in which its matrix passes are
//! skipped and its iterate is copied through unchanged.

use super::block::{block_bytes, block_shape, Block};
use super::kernels::{Lanes, TrustKernels};
use super::layout::{ColStateU, STOP_FLAT_TAIL};
use super::matrix::GpuMatrix;
use crate::error::{params, Error, Result};
use crate::gpu::GpuContext;
use crate::trust::engine::{
    all_solved, check_batches, check_columns, normalised_start, Batch, IterParams, StopReason,
    TrustVector,
};
use crate::trust::scores::top_ids;
use crate::trust::TrustMatrix;

/// Iterations recorded per submission before the host looks at the states.
///
/// Why 8: columns stop on the device at the exact iteration, so a larger
/// interval costs nothing in accuracy, only cheap copy-through iterations
/// after the last column froze. Against that, each readback is a CPU-GPU
/// round trip, which the pipelining hides as long as a batch of iterations
/// takes longer than the round trip.
pub const READBACK_EVERY: u32 = 8;

/// Device memory the blocks of one wave may take together (at least one block
/// always runs). Blocks of small matrices then run side by side, while a
/// large graph's blocks run one after another instead of exhausting memory.
const WAVE_BYTES: u64 = 1 << 30;

/// Solves `batches` against resident matrices.
pub(crate) fn solve_batches(
    ctx: &GpuContext,
    fam: &TrustKernels,
    hosts: &[&TrustMatrix],
    mats: &[GpuMatrix],
    batches: &[Batch<'_>],
    params: &IterParams,
) -> Result<Vec<Vec<TrustVector>>> {
    params.validate()?;
    check_f32_alpha(params.alpha)?;
    check_batches(hosts.len(), batches)?;
    let mut starts = Vec::with_capacity(batches.len());
    for b in batches {
        check_columns(hosts[b.matrix], b.columns)?;
        starts.push(
            b.columns
                .iter()
                .enumerate()
                .map(|(id, c)| {
                    c.start
                        .as_deref()
                        .map(|s| normalised_start(s, id))
                        .transpose()
                })
                .collect::<Result<Vec<_>>>()?,
        );
    }
    let mut out: Vec<Vec<Option<TrustVector>>> = batches
        .iter()
        .map(|b| vec![None; b.columns.len()])
        .collect();
    // Work items: (batch, column ids, lanes), with their memory.
    let mut todo = Vec::new();
    for (bi, b) in batches.iter().enumerate() {
        let gm = &mats[b.matrix];
        if gm.n == 0 {
            // Nothing to iterate: the first step has residual 0, as on the CPU.
            for slot in &mut out[bi] {
                *slot = Some(TrustVector {
                    scores: Vec::new(),
                    iterations: 1,
                    residual: 0.0,
                    stop: StopReason::Converged,
                });
            }
            continue;
        }
        let (lanes, width) = block_shape(ctx, gm)?;
        let ids: Vec<usize> = (0..b.columns.len()).collect();
        for group in ids.chunks(width) {
            let lanes = if group.len() == 1 { Lanes::One } else { lanes };
            todo.push((
                bi,
                group.to_vec(),
                lanes,
                block_bytes(gm, lanes, group.len()),
            ));
        }
    }
    let mut rest = &todo[..];
    while !rest.is_empty() {
        let mut bytes = 0;
        let take = rest
            .iter()
            .take_while(|w| {
                bytes += w.3;
                bytes <= WAVE_BYTES
            })
            .count()
            .max(1);
        let (wave, tail) = rest.split_at(take);
        rest = tail;
        let mut blocks = Vec::with_capacity(wave.len());
        for (bi, ids, lanes, _) in wave {
            let b = &batches[*bi];
            blocks.push(Block::new(
                ctx,
                fam,
                &mats[b.matrix],
                hosts[b.matrix],
                *bi,
                b.matrix,
                b.columns,
                &starts[*bi],
                ids,
                *lanes,
                params,
            )?);
        }
        for (block, vectors) in run_wave(ctx, fam, mats, &mut blocks, params)?
            .into_iter()
            .enumerate()
        {
            let b = &blocks[block];
            for (id, v) in b.ids.iter().zip(vectors) {
                out[b.batch][*id] = Some(v);
            }
        }
    }
    all_solved(out)
}

/// The device iterates with keep = f32(1 - a) and alpha = 1 - keep (so that
/// they sum to exactly 1); for a tiny a that alpha is far from a, or 0, and
/// every bound computed with a would be wrong. Such an a needs the f64 CPU.
fn check_f32_alpha(alpha: f64) -> Result<()> {
    let keep = (1.0 - alpha) as f32;
    let used = f64::from(1.0 - keep);
    if (used - alpha).abs() > 1e-3 * alpha {
        return Err(Error::param(
            params::ALPHA,
            format!(
                "{alpha:e} is too small for the GPU's f32 arithmetic, which would use {used:e}; \
                 use the CPU back end"
            ),
        ));
    }
    Ok(())
}

/// A submitted batch of iterations: its index, the readback slot its states
/// went to, and the blocks it recorded.
struct InFlight {
    submission: wgpu::SubmissionIndex,
    slot: usize,
    blocks: Vec<usize>,
}

/// Host-side flat-tail tracking per column: last sampled top order, and the
/// iterations it has been unchanged for.
type Tops = Vec<(Vec<u32>, u32)>;

/// Runs every block of a wave until all its columns stopped; returns each
/// block's vectors.
fn run_wave(
    ctx: &GpuContext,
    fam: &TrustKernels,
    mats: &[GpuMatrix],
    blocks: &mut [Block],
    params: &IterParams,
) -> Result<Vec<Vec<TrustVector>>> {
    let interval = match params.flat_tail {
        Some(ft) => ft.iterations.clamp(1, READBACK_EVERY),
        None => READBACK_EVERY,
    };
    // A flat-tail decision made on the host must reach the device before the
    // next batch, so that mode reads each batch before recording the next.
    let pipelined = params.flat_tail.is_none();
    let limit = params.max_iter as u64 + 2 * interval as u64;
    let mut active: Vec<usize> = (0..blocks.len()).collect();
    let mut finals: Vec<Option<Vec<ColStateU>>> = vec![None; blocks.len()];
    let mut tops: Vec<Tops> = blocks
        .iter()
        .map(|b| vec![(Vec::new(), 0); b.ids.len()])
        .collect();
    let mut pending: Option<InFlight> = None;
    let mut slot = 0;
    while !active.is_empty() {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("power iteration"),
                timestamp_writes: None,
            });
            // Iteration by iteration across blocks: blocks share no written
            // buffer, so the device may overlap one block's passes with
            // another's.
            for _ in 0..interval {
                for &b in &active {
                    let gm = &mats[blocks[b].matrix];
                    blocks[b].record(ctx, fam, gm, &mut pass, None);
                }
            }
        }
        for &b in &active {
            blocks[b].copy_states(&mut enc, slot);
            if !pipelined {
                blocks[b].copy_vectors(&mut enc);
            }
        }
        let current = InFlight {
            submission: ctx.queue.submit([enc.finish()]),
            slot,
            blocks: active.clone(),
        };
        slot = 1 - slot;
        let ready = if pipelined {
            pending.replace(current)
        } else {
            Some(current)
        };
        if let Some(f) = ready {
            let done = check(ctx, blocks, &f, params, &mut tops, &mut finals)?;
            active.retain(|b| !done.contains(b));
        }
        if let Some(b) = active.iter().find(|&&b| blocks[b].recorded > limit) {
            return Err(Error::internal(format!(
                "{}: columns still running after {} iterations (max_iter {}); \
                 the device state is inconsistent",
                ctx.adapter_info().name,
                blocks[*b].recorded,
                params.max_iter
            )));
        }
    }
    // Every block is done; read all final iterates in one submission.
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    for b in blocks.iter() {
        b.copy_vectors(&mut enc);
    }
    let sub = ctx.queue.submit([enc.finish()]);
    let rbs: Vec<&wgpu::Buffer> = blocks.iter().map(|b| b.vectors_rb()).collect();
    let bytes = ctx.read_buffers(&rbs, Some(sub))?;
    blocks
        .iter()
        .zip(bytes)
        .zip(finals)
        .map(|((b, t), st)| {
            let st = st.ok_or_else(|| Error::internal("a GPU block without final state"))?;
            let t: Vec<f32> = bytemuck::pod_collect_to_vec(&t);
            b.results(&st, &t)
        })
        .collect()
}

/// Reads the states of a finished batch; returns the blocks whose columns
/// have all stopped (their states go to `finals`). With a flat-tail rule it
/// also ranks the read-back vectors and freezes the columns whose top order
/// held long enough.
fn check(
    ctx: &GpuContext,
    blocks: &[Block],
    f: &InFlight,
    params: &IterParams,
    tops: &mut [Tops],
    finals: &mut [Option<Vec<ColStateU>>],
) -> Result<Vec<usize>> {
    let mut rbs: Vec<&wgpu::Buffer> = f
        .blocks
        .iter()
        .map(|&b| blocks[b].states_rb(f.slot))
        .collect();
    if params.flat_tail.is_some() {
        rbs.extend(f.blocks.iter().map(|&b| blocks[b].vectors_rb()));
    }
    let bytes = ctx.read_buffers(&rbs, Some(f.submission.clone()))?;
    let (state_bytes, vector_bytes) = bytes.split_at(f.blocks.len());
    let mut done = Vec::new();
    for (i, &b) in f.blocks.iter().enumerate() {
        let mut states: Vec<ColStateU> = bytemuck::pod_collect_to_vec(&state_bytes[i]);
        if let Some(ft) = params.flat_tail {
            let block = &blocks[b];
            let t: Vec<f32> = bytemuck::pod_collect_to_vec(&vector_bytes[i]);
            let interval = ft.iterations.clamp(1, READBACK_EVERY);
            let mut changed = false;
            for (k, s) in states.iter_mut().enumerate() {
                if s.stop != 0 {
                    continue;
                }
                let top = top_ids(block.n(), ft.top, |i| block.score(&t, i, k) as f64);
                let (prev, stable) = &mut tops[b][k];
                if *prev == top {
                    *stable += interval;
                } else {
                    *prev = top;
                    *stable = 0;
                }
                if *stable >= ft.iterations {
                    s.stop = STOP_FLAT_TAIL;
                    changed = true;
                }
            }
            if changed {
                block.freeze(ctx, &states);
            }
        }
        if states.iter().all(|s| s.stop != 0) {
            finals[b] = Some(states);
            done.push(b);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphas_f32_cannot_hold_are_rejected() {
        check_f32_alpha(0.15).unwrap();
        check_f32_alpha(1.0).unwrap();
        check_f32_alpha(1e-3).unwrap();
        for tiny in [1e-9, 3e-8, 1e-6] {
            let e = check_f32_alpha(tiny).unwrap_err();
            assert_eq!(e.as_param().map(|p| p.name), Some(params::ALPHA), "{e}");
            assert!(e.to_string().contains("CPU back end"), "{e}");
        }
    }
}
