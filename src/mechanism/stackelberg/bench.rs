//! Best-response evaluations per second (`trustmesh bench --best-response`).
//!
//! One evaluation is one (candidate leader strategy, follower type) pair, as
//! `eval` defines it: n expected utilities of m terms each, the best, the
//! ties within ε and the leader's utility of each tie. A level of candidates
//! costs (candidates × types) evaluations. The figure is a whole level's
//! evaluation as the search runs it: on the CPU all threads in f64; on the
//! GPU the dispatches, their submission and the read-back of one value per
//! candidate (the composition of the candidates happens on the device).
//! The first, untimed level compiles pipelines and warms caches; the level
//! then grows until one takes at least a quarter of `min_seconds`, and is
//! repeated until `min_seconds` have passed.

use std::time::Instant;

use serde::Serialize;

use super::eval::DEFAULT_EPSILON;
use super::game::{Game, TypeSpec};
use super::grid::{grid_for, Level, MAX_GRID, MAX_LEVEL};
use super::search::{evaluator, Device};
use crate::error::{Error, Result};
use crate::graph::synthetic::SplitMix64;

/// The game shape of `trustmesh bench --best-response` without a value:
/// m = 8 leader actions, n = 16 follower actions, 64 types.
pub const DEFAULT_SHAPE: (usize, usize, usize) = (8, 16, 64);

/// Seed of the benchmark's random game.
pub const DEFAULT_SEED: u64 = 1;

/// One measured device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    pub device: String,
    pub m: usize,
    pub n: usize,
    pub types: usize,
    /// Candidates per timed level.
    pub candidates: u64,
    /// Evaluations timed in all (levels × candidates × types).
    pub evaluations: u64,
    pub seconds: f64,
    pub evaluations_per_second: f64,
}

/// A seeded random game: payoffs uniform in [−10, 10], type probabilities
/// proportional to uniform draws in [0.5, 1.5).
pub fn random_game(m: usize, n: usize, types: usize, seed: u64) -> Result<Game> {
    let mut rng = SplitMix64::new(seed);
    let draws: Vec<f64> = (0..types).map(|_| 0.5 + rng.next_f64()).collect();
    let total: f64 = draws.iter().sum();
    let matrix = |rng: &mut SplitMix64| -> Vec<Vec<f64>> {
        (0..m)
            .map(|_| (0..n).map(|_| 20.0 * rng.next_f64() - 10.0).collect())
            .collect()
    };
    let specs = draws
        .iter()
        .enumerate()
        .map(|(t, d)| TypeSpec {
            name: format!("type{t}"),
            prob: d / total,
            leader_payoff: matrix(&mut rng),
            follower_payoff: matrix(&mut rng),
        })
        .collect();
    Game::new(
        (0..m).map(|i| format!("l{i}")).collect(),
        (0..n).map(|j| format!("f{j}")).collect(),
        specs,
    )
}

/// Best-response evaluations per second of `device` on `game`.
pub fn evaluation_rate(game: &Game, device: &Device, min_seconds: f64) -> Result<Rate> {
    let eval = evaluator(game, DEFAULT_EPSILON, device)?;
    let types = game.types().len() as u64;
    let level_of =
        |candidates: u64| Level::full(game.m(), grid_for(game.m(), candidates, MAX_GRID));
    let mut level = level_of(1 << 12)?;
    eval.bounds(&level)?; // warm-up: pipelines, caches
    loop {
        let t = Instant::now();
        std::hint::black_box(eval.bounds(&level)?);
        let secs = t.elapsed().as_secs_f64();
        if secs >= min_seconds / 4.0 || level.len() * 4 > MAX_LEVEL {
            break;
        }
        let next = level_of(level.len() * 4)?;
        if next.len() == level.len() {
            break; // m = 1: one candidate whatever the grid
        }
        level = next;
    }
    let (mut runs, started) = (0u64, Instant::now());
    while runs == 0 || started.elapsed().as_secs_f64() < min_seconds {
        std::hint::black_box(eval.bounds(&level)?);
        runs += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    if seconds <= 0.0 {
        return Err(Error::Measure("no time elapsed".into()));
    }
    let evaluations = runs * level.len() * types;
    Ok(Rate {
        device: eval.device(),
        m: game.m(),
        n: game.n(),
        types: types as usize,
        candidates: level.len(),
        evaluations,
        seconds,
        evaluations_per_second: evaluations as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_rate_is_measured() {
        let g = random_game(3, 4, 2, 5).unwrap();
        assert_eq!(g, random_game(3, 4, 2, 5).unwrap(), "seeded");
        let r = evaluation_rate(&g, &Device::Cpu, 0.05).unwrap();
        assert!(r.evaluations_per_second > 0.0 && r.seconds >= 0.05, "{r:?}");
        assert_eq!(r.evaluations % (2 * r.candidates), 0);
    }
}
