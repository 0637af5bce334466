//! The mechanism kernel family: the best responses of a Bayesian
//! Stackelberg game's follower types to a level of candidate leader
//! strategies (`mechanism::stackelberg::grid`), one invocation per
//! candidate, in f32 (shaders/mechanism/best_response.wgsl).
//!
//! - `layout`: host mirror of the kernel's uniform, its slot table;
//! - `kernels`: the family's pipelines, compiled once per context.
//!
//! **Why f32.** A candidate costs m·n multiply-adds per type; consumer and
//! most data-centre GPUs run f64 at 1/32 to 1/64 of the f32 rate (lavapipe
//! has SHADER_F64, but a real GPU's f64 would forfeit the ≥ 1e9
//! evaluations/s this kernel exists for). The search only needs the GPU to
//! rank candidates; the replies and values it reports come from the CPU's f64
//! re-check of the finalists and from an LP.
//!
//! **Why the GPU and the CPU agree.** Payoffs are normalised per type (values
//! in [-1, 1]), so the f32 error of a type's utility is at most (m + 8)·2⁻²⁴
//! (m products and sums, and the candidate's own rounding; the constants
//! below take four times that). The kernel widens the tie band by twice that
//! bound, so every reply the f64 reference counts as a tie is one on the GPU
//! too, and the GPU's pick is worth at least the CPU's pick: each value it
//! writes overstates the f64 value, or understates it by at most
//! [`GpuGame::slack`]. The search re-checks candidates in f64 by decreasing
//! GPU value until none can beat its current finalists, so both devices
//! select the same candidates and report the same result, bit for bit.

mod kernels;
mod layout;

use std::sync::Arc;

use self::kernels::MechanismKernels;
use self::layout::ParamsU;
use super::context::scoped;
use super::GpuContext;
use crate::error::{params, Error, Result};
use crate::mechanism::stackelberg::grid::Level;
use crate::mechanism::stackelberg::search::{Bounds, LevelBounds};
use crate::mechanism::stackelberg::Game;

/// Most leader actions the kernel handles (its private arrays' size).
pub const MAX_M: u32 = 32;
/// Most follower actions the kernel handles.
pub const MAX_N: u32 = 128;

/// Unit roundoff of f32.
const U32: f64 = 1.0 / (1u64 << 24) as f64;

/// Candidates per dispatch at most (64 MiB of values).
const MAX_CHUNK: u64 = 1 << 24;

/// Invocations per workgroup (`WG` in the shader).
const WG: u64 = 64;

/// A game resident on the device, ready to evaluate levels of candidates.
#[derive(Debug)]
pub struct GpuGame {
    ctx: Arc<GpuContext>,
    fam: Arc<MechanismKernels>,
    m: usize,
    n: usize,
    types: usize,
    payoffs: wgpu::Buffer,
    weights: wgpu::Buffer,
    /// Σ_θ p_θ · leader scale_θ: a normalised value times this is in the
    /// game's units.
    value_scale: f64,
    leader_scales: Vec<f64>,
    follower_scales: Vec<f64>,
    /// ε: the CPU's tie band, relative (also the kernel's in `replies`).
    epsilon: f64,
    /// ε widened by twice the f32 error bound of a utility.
    tie_wide: f32,
    /// How far a value may understate the f64 value, in the game's units.
    slack: f64,
}

/// One (candidate, type) reply as the GPU computed it, in the game's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuReply {
    pub action: usize,
    pub leader: f64,
    pub follower: f64,
}

impl GpuGame {
    /// Uploads `game` normalised (see the module documentation), with tie
    /// tolerance `epsilon` relative to each type's follower scale.
    pub fn load(ctx: Arc<GpuContext>, game: &Game, epsilon: f64) -> Result<Self> {
        let (m, n, types) = (game.m(), game.n(), game.types().len());
        if m > MAX_M as usize || n > MAX_N as usize {
            return Err(Error::param(
                params::DEVICE,
                crate::error::Message::new()
                    .text(format!(
                        "the GPU search kernel handles at most {MAX_M} leader and {MAX_N} follower \
                         actions, and this game has {m} and {n}; use "
                    ))
                    .param(params::DEVICE)
                    .text(" cpu"),
            ));
        }
        let leader_scales: Vec<f64> = (0..types).map(|t| game.leader_scale(t)).collect();
        let follower_scales: Vec<f64> = (0..types).map(|t| game.follower_scale(t)).collect();
        let value_scale: f64 = game
            .types()
            .iter()
            .zip(&leader_scales)
            .map(|(t, s)| t.prob * s)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let mut payoffs = Vec::with_capacity(types * 2 * m * n);
        for (t, ty) in game.types().iter().enumerate() {
            payoffs.extend(
                ty.follower_payoff()
                    .iter()
                    .map(|v| (v / follower_scales[t]) as f32),
            );
            payoffs.extend(
                ty.leader_payoff()
                    .iter()
                    .map(|v| (v / leader_scales[t]) as f32),
            );
        }
        let weights: Vec<f32> = game
            .types()
            .iter()
            .zip(&leader_scales)
            .map(|(t, s)| (t.prob * s / value_scale) as f32)
            .collect();
        let bytes = (payoffs.len() * 4) as u64;
        if bytes > ctx.max_binding() {
            return Err(ctx.too_big("the payoff matrices", bytes));
        }
        let fam = ctx.family::<MechanismKernels>()?;
        let none = wgpu::BufferUsages::empty();
        let (payoffs, weights) = scoped(&ctx.device, || {
            Ok((
                ctx.storage_init("mechanism payoffs", bytemuck::cast_slice(&payoffs), none),
                ctx.storage_init("mechanism weights", bytemuck::cast_slice(&weights), none),
            ))
        })?;
        ctx.check_uncaptured()?;
        let utility_error = 4.0 * (m as f64 + 8.0) * U32;
        let value_error = 4.0 * (m as f64 + types as f64 + 10.0) * U32;
        Ok(GpuGame {
            ctx,
            fam,
            m,
            n,
            types,
            payoffs,
            weights,
            value_scale,
            leader_scales,
            follower_scales,
            epsilon,
            tie_wide: (epsilon + 2.0 * utility_error) as f32,
            slack: value_error * value_scale,
        })
    }

    /// How far a value of [`LevelBounds::bounds`] may understate the f64
    /// value of its candidate, in the game's units.
    pub fn slack(&self) -> f64 {
        self.slack
    }

    /// Each (candidate, type) reply of `level`, candidate-major, computed in
    /// f32 with the CPU's own tie band ε (not widened): what tests compare
    /// with `eval::level_replies`.
    pub fn replies(&self, level: &Level) -> Result<Vec<GpuReply>> {
        let (_, detail) = self.run(level, self.epsilon as f32, true)?;
        Ok(detail
            .chunks_exact(4)
            .enumerate()
            .map(|(k, d)| {
                let t = k % self.types;
                GpuReply {
                    action: d[0] as usize,
                    leader: f32::from_bits(d[1]) as f64 * self.leader_scales[t],
                    follower: f32::from_bits(d[2]) as f64 * self.follower_scales[t],
                }
            })
            .collect())
    }

    /// Runs the kernel over `level`: the normalised value of every candidate
    /// and, with `detail`, the four words of every (candidate, type) reply.
    fn run(&self, level: &Level, tie: f32, detail: bool) -> Result<(Vec<f32>, Vec<u32>)> {
        let ctx = &*self.ctx;
        let len = level.len();
        if level.m() != self.m || level.per_center() > u32::MAX as u64 || len > u32::MAX as u64 {
            return Err(Error::internal(format!(
                "a level of {len} candidates in {} dimensions for a game of {} leader actions",
                level.m(),
                self.m
            )));
        }
        let centers: Vec<f32> = level.offsets().iter().map(|&v| v as f32).collect();
        // Entries the walk never reads may exceed u32 (they are saturated);
        // those it reads are at most per_center.
        let counts: Vec<u32> = level
            .counts()
            .iter()
            .map(|&c| c.min(u32::MAX as u64) as u32)
            .collect();
        for (what, bytes) in [
            ("the candidate centers", centers.len() * 4),
            ("the grid's composition counts", counts.len() * 4),
        ] {
            if bytes as u64 > ctx.max_binding() {
                return Err(ctx.too_big(what, bytes as u64));
            }
        }
        let per_candidate = 4 + if detail { 16 * self.types as u64 } else { 0 };
        let chunk = (ctx.max_binding() / per_candidate).clamp(1, MAX_CHUNK);
        let pipeline = &self.fam.evaluate[detail as usize];
        let out = scoped(&ctx.device, || {
            let none = wgpu::BufferUsages::empty();
            let centers =
                ctx.storage_init("mechanism centers", bytemuck::cast_slice(&centers), none);
            let counts = ctx.storage_init("mechanism counts", bytemuck::cast_slice(&counts), none);
            let mut values: Vec<f32> = Vec::with_capacity(len as usize);
            let mut words: Vec<u32> = Vec::new();
            let mut first = 0u64;
            while first < len {
                let size = chunk.min(len - first);
                let p = ParamsU {
                    m: self.m as u32,
                    n: self.n as u32,
                    types: self.types as u32,
                    grid: level.grid(),
                    per_center: level.per_center() as u32,
                    first: first as u32,
                    len: size as u32,
                    count_cols: level.grid() + 1,
                    lambda: level.lambda() as f32,
                    inv_grid: (1.0 / level.grid() as f64) as f32,
                    tie,
                    pad: 0,
                };
                let uniform = ctx.uniform("mechanism params", bytemuck::bytes_of(&p));
                let out_use = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
                let rb_use = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
                let vbytes = size * 4;
                let dbytes = if detail {
                    size * 16 * self.types as u64
                } else {
                    16
                };
                let vbuf = ctx.zeroed("mechanism values", vbytes, out_use);
                let dbuf = ctx.zeroed("mechanism detail", dbytes, out_use);
                let vrb = ctx.zeroed("mechanism values readback", vbytes, rb_use);
                let drb = ctx.zeroed("mechanism detail readback", dbytes, rb_use);
                let bound = [
                    &uniform,
                    &self.payoffs,
                    &self.weights,
                    &centers,
                    &counts,
                    &vbuf,
                    &dbuf,
                ];
                let bind = ctx.bind_buffers(&self.fam.layout, &bound);
                let mut enc = ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("best responses"),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, &bind, &[]);
                    ctx.dispatch_linear(&mut pass, size.div_ceil(WG) as usize);
                }
                enc.copy_buffer_to_buffer(&vbuf, 0, &vrb, 0, vbytes);
                if detail {
                    enc.copy_buffer_to_buffer(&dbuf, 0, &drb, 0, dbytes);
                }
                let sub = ctx.queue.submit([enc.finish()]);
                let read: Vec<&wgpu::Buffer> = if detail { vec![&vrb, &drb] } else { vec![&vrb] };
                let bytes = ctx.read_buffers(&read, Some(sub))?;
                values.extend(
                    bytes[0][..vbytes as usize]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                if detail {
                    words.extend(
                        bytes[1][..dbytes as usize]
                            .chunks_exact(4)
                            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                }
                first += size;
            }
            Ok((values, words))
        })?;
        ctx.check_uncaptured()?;
        Ok(out)
    }
}

impl LevelBounds for GpuGame {
    fn device(&self) -> String {
        let i = self.ctx.adapter_info();
        format!("{} ({}, f32)", i.name, i.backend)
    }

    fn bounds(&self, level: &Level) -> Result<Bounds> {
        let (values, _) = self.run(level, self.tie_wide, false)?;
        Ok(Bounds {
            upper: values
                .into_iter()
                .map(|v| v as f64 * self.value_scale)
                .collect(),
            slack: self.slack,
        })
    }
}
