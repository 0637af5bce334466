//! The search: grids of leader strategies, each candidate's best responses
//! for every type evaluated on a device, refining grids around the best, and
//! an LP polish of the best candidates' reply profiles.
//!
//! 1. Level 0 is the whole simplex's grid with N divisions (`grid`, or the
//!    largest N with at most [`FIRST_BUDGET`] candidates).
//! 2. A device gives, per candidate of a level, an upper bound on its value
//!    ([`Bounds`]): the CPU the f64 value itself (slack 0), the GPU an f32
//!    value computed with a tie band wide enough that it can only overstate
//!    the f64 value, by at most `slack` (see `gpu::mechanism`).
//! 3. The level's best [`SearchConfig::centers`] × [`POOL`] candidates by
//!    f64 value (ties: lowest index) are found exactly from the bounds:
//!    candidates are re-checked in f64 by decreasing bound until no bound
//!    plus slack can reach the current last of the best. The CPU and the GPU
//!    thus pick the same candidates, bit for bit, whatever f32 did near a
//!    tie. Of those, the best of each distinct reply profile is kept (at most
//!    `centers`).
//! 4. The next level shrinks the grid towards each kept candidate so far
//!    (the best per profile) (the radius a few previous spacings), until the spacing reaches
//!    [`MIN_SPACING`] (f32 resolves a coordinate to ~6e-8; the polish, not
//!    the grid, supplies the last digits) or [`SearchConfig::max_levels`].
//! 5. Polish (`polish`): the reply profiles of the best candidates of all
//!    levels, best first, each solved as an LP; the best optimum is the
//!    result, an exact equilibrium of its profile.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::eval::{level_values, replies, tie_tolerances, DEFAULT_EPSILON};
use super::game::Game;
use super::grid::{compositions, grid_for, Level, MAX_GRID, MAX_LEVEL};
use super::polish::polish;
use super::result::{Method, SearchStats, Solution};
use crate::error::{params, Error, Result};
use crate::gpu::GpuContext;

/// Candidates of the first level when no grid is given: 128k, e.g. N = 14
/// for m = 8 (116,280 candidates).
pub const FIRST_BUDGET: u64 = 1 << 17;

/// Candidates of each refinement level, shared by its centers.
pub const LEVEL_BUDGET: u64 = 1 << 17;

/// Largest automatic grid (m = 2 would otherwise take N = 131,071).
pub const MAX_AUTO_GRID: u32 = 1 << 16;

/// A refinement spans this many of the previous level's spacings.
pub const RADIUS: f64 = 4.0;

/// Refinement stops once a grid's spacing is this fine.
pub const MIN_SPACING: f64 = 1e-6;

/// Defaults of [`SearchConfig`].
pub const DEFAULT_CENTERS: usize = 8;
pub const DEFAULT_MAX_LEVELS: u32 = 32;
pub const DEFAULT_POLISH: usize = 16;

/// Parameters of the search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// Divisions of the first grid; None picks the largest with at most
    /// [`FIRST_BUDGET`] candidates.
    pub grid: Option<u32>,
    /// Relative tie tolerance: replies within ε · (the type's largest
    /// follower payoff magnitude) of the best are ties, which go to the
    /// leader.
    pub epsilon: f64,
    /// Candidates refined around at each level (the best of as many
    /// distinct reply profiles).
    pub centers: usize,
    /// Refinement levels after the first grid, at most.
    pub max_levels: u32,
    /// Distinct reply profiles polished, at most.
    pub polish: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            grid: None,
            epsilon: DEFAULT_EPSILON,
            centers: DEFAULT_CENTERS,
            max_levels: DEFAULT_MAX_LEVELS,
            polish: DEFAULT_POLISH,
        }
    }
}

impl SearchConfig {
    /// The first grid's divisions for `game` (checked against [`MAX_LEVEL`]).
    pub fn first_grid(&self, game: &Game) -> Result<u32> {
        let m = game.m();
        let grid = match self.grid {
            None => grid_for(m, FIRST_BUDGET, MAX_AUTO_GRID),
            Some(0) => return Err(Error::param_value(params::GRID, "must be at least 1")),
            Some(g) => g,
        };
        if grid > MAX_GRID {
            return Err(Error::param_value(
                params::GRID,
                format!("{grid} is more than the {MAX_GRID} divisions a grid may have"),
            ));
        }
        match compositions(grid, m) {
            Some(c) if c <= MAX_LEVEL => Ok(grid),
            c => Err(Error::param_value(
                params::GRID,
                format!(
                    "{grid} over {m} leader actions gives {} candidates, more than the {MAX_LEVEL} \
                     one grid may hold; use at most {}",
                    c.map_or("over 1.8e19".to_string(), |c| c.to_string()),
                    grid_for(m, MAX_LEVEL, MAX_GRID)
                ),
            )),
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.epsilon >= 0.0 && self.epsilon < 1.0) {
            return Err(Error::param_value(
                params::SEARCH_EPSILON,
                format!("must be in [0, 1), got {}", self.epsilon),
            ));
        }
        if self.centers == 0 || self.polish == 0 {
            return Err(Error::param_value(
                params::SEARCH_WIDTH,
                "and search.polish must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Where the candidates are evaluated.
#[derive(Debug, Clone)]
pub enum Device {
    /// f64 on every CPU thread (rayon): the reference.
    Cpu,
    /// f32 in the mechanism kernel family on an opened GPU.
    Gpu(Arc<GpuContext>),
}

/// Per candidate of a level, an upper bound on its f64 value:
/// value ≤ `upper` + `slack`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    pub upper: Vec<f64>,
    pub slack: f64,
}

/// A device's evaluation of whole levels.
pub(crate) trait LevelBounds {
    /// The device, in words.
    fn device(&self) -> String;
    /// One bound per candidate of `level`, in its order.
    fn bounds(&self, level: &Level) -> Result<Bounds>;
}

/// The CPU reference: the f64 values themselves.
pub(crate) struct CpuBounds<'g> {
    pub game: &'g Game,
    pub ties: Vec<f64>,
}

impl LevelBounds for CpuBounds<'_> {
    fn device(&self) -> String {
        format!("cpu ({} threads, f64)", rayon::current_num_threads())
    }

    fn bounds(&self, level: &Level) -> Result<Bounds> {
        Ok(Bounds {
            upper: level_values(self.game, level, &self.ties),
            slack: 0.0,
        })
    }
}

/// The evaluator of `device` for `game`.
pub(crate) fn evaluator<'g>(
    game: &'g Game,
    epsilon: f64,
    device: &Device,
) -> Result<Box<dyn LevelBounds + 'g>> {
    Ok(match device {
        Device::Cpu => Box::new(CpuBounds {
            game,
            ties: tie_tolerances(game, epsilon),
        }),
        Device::Gpu(ctx) => Box::new(crate::gpu::mechanism::GpuGame::load(
            Arc::clone(ctx),
            game,
            epsilon,
        )?),
    })
}

/// The bounds `device` gives for the candidates of `level` (what the search
/// selects from; exposed so that devices can be compared on the same
/// candidates).
pub fn level_bounds(game: &Game, level: &Level, epsilon: f64, device: &Device) -> Result<Bounds> {
    evaluator(game, epsilon, device)?.bounds(level)
}

/// A candidate checked in f64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub value: f64,
    pub level: u32,
    pub index: u64,
    pub x: Vec<f64>,
    pub replies: Vec<usize>,
}

impl Entry {
    /// Best first: higher value, then earlier level, then lower index.
    pub fn order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
        b.value
            .total_cmp(&a.value)
            .then(a.level.cmp(&b.level))
            .then(a.index.cmp(&b.index))
    }
}

/// A level's best `centers × POOL` candidates are checked in f64, and the
/// best of each distinct reply profile among them kept: refining around
/// several profiles, not one basin's neighbours, finds optima that a coarse
/// grid ranked a little lower.
const POOL: usize = 8;

/// Candidates re-checked per parallel step of [`select_top`].
const RECHECK_CHUNK: usize = 256;

/// The `k` best candidates of `level` by f64 value (ties: lowest index),
/// from bounds that may understate values by up to `slack`, and how many
/// candidates were checked in f64 to find them.
pub(crate) fn select_top(
    game: &Game,
    ties: &[f64],
    level: &Level,
    level_no: u32,
    bounds: &Bounds,
    k: usize,
) -> Result<(Vec<Entry>, u64)> {
    let upper = &bounds.upper;
    if upper.len() as u64 != level.len() || upper.iter().any(|v| v.is_nan()) {
        return Err(Error::internal(format!(
            "a device returned {} values for a level of {} candidates, or a NaN",
            upper.len(),
            level.len()
        )));
    }
    let check = |idx: &[u32]| -> Vec<Entry> {
        idx.par_iter()
            .map_init(
                || (vec![0.0; game.n()], vec![0.0; game.m()]),
                |(u, x), &i| {
                    level.candidate(i as u64, x);
                    let (value, r) = replies(game, x, ties, u);
                    Entry {
                        value,
                        level: level_no,
                        index: i as u64,
                        x: x.clone(),
                        replies: r.iter().map(|r| r.action).collect(),
                    }
                },
            )
            .collect()
    };
    let by_bound = |a: &u32, b: &u32| {
        upper[*b as usize]
            .total_cmp(&upper[*a as usize])
            .then(a.cmp(b))
    };
    let len = upper.len();
    let k = k.min(len);
    let mut idx: Vec<u32> = (0..len as u32).collect();
    if k < len {
        idx.select_nth_unstable_by(k - 1, by_bound);
    }
    idx.truncate(k);
    let mut top = check(&idx);
    top.sort_by(Entry::order);
    // Every other candidate whose bound can reach the k-th value found.
    let floor = top.last().map_or(f64::NEG_INFINITY, |e| e.value);
    let mut done = vec![false; len];
    for &i in &idx {
        done[i as usize] = true;
    }
    let mut rest: Vec<u32> = (0..len as u32)
        .filter(|&i| !done[i as usize] && upper[i as usize] + bounds.slack >= floor)
        .collect();
    rest.sort_unstable_by(by_bound);
    let mut checked = k as u64;
    for chunk in rest.chunks(RECHECK_CHUNK) {
        let kth = top.last().map_or(f64::NEG_INFINITY, |e| e.value);
        if upper[chunk[0] as usize] + bounds.slack < kth {
            break; // sorted by bound: nothing later can enter
        }
        top.extend(check(chunk));
        checked += chunk.len() as u64;
        top.sort_by(Entry::order);
        top.truncate(k);
    }
    Ok((top, checked))
}

/// The `k` best of `entries`, one per distinct reply profile (the best of
/// each; distinct profiles are distinct strategies too).
fn distinct(mut entries: Vec<Entry>, k: usize) -> Vec<Entry> {
    entries.sort_by(Entry::order);
    let mut out: Vec<Entry> = Vec::with_capacity(k);
    for e in entries {
        if out.len() == k {
            break;
        }
        if !out.iter().any(|o| o.replies == e.replies) {
            out.push(e);
        }
    }
    out
}

/// Searches `game` for a strong Stackelberg equilibrium on `device`.
pub fn search(game: &Game, cfg: &SearchConfig, device: &Device) -> Result<Solution> {
    let started = Instant::now();
    cfg.validate()?;
    let grid0 = cfg.first_grid(game)?;
    let eval = evaluator(game, cfg.epsilon, device)?;
    let ties = tie_tolerances(game, cfg.epsilon);
    let m = game.m();
    let refine_grid = grid_for(m, (LEVEL_BUDGET / cfg.centers as u64).max(1), grid0);
    let mut level = Level::full(m, grid0)?;
    let mut spacing = 1.0 / grid0 as f64;
    let mut lambda = 1.0;
    let mut board: Vec<Entry> = Vec::new();
    let mut tops: Vec<Entry> = Vec::new();
    let mut evaluated = 0u64;
    let mut rechecked = 0u64;
    let mut levels = 0u32;
    loop {
        let b = eval.bounds(&level)?;
        let (pool, checked) = select_top(game, &ties, &level, levels, &b, cfg.centers * POOL)?;
        rechecked += checked;
        let top = distinct(pool, cfg.centers);
        evaluated += level.len();
        levels += 1;
        tops.extend_from_slice(&top);
        board.extend_from_slice(&top);
        board = distinct(board, cfg.centers);
        if levels > cfg.max_levels || spacing <= MIN_SPACING || m == 1 {
            break;
        }
        // At least halved, so that a coarse refinement grid still zooms in.
        lambda = (RADIUS * spacing).min(0.5 * lambda);
        // No finer than MIN_SPACING, no coarser than the refinement budget.
        let grid = refine_grid.min((lambda / MIN_SPACING).ceil() as u32);
        if grid < 2 {
            break;
        }
        let centers: Vec<Vec<f64>> = board.iter().map(|e| e.x.clone()).collect();
        level = Level::around(m, grid, lambda, &centers)?;
        spacing = lambda / grid as f64;
    }
    let best = board
        .first()
        .ok_or_else(|| Error::internal("the search evaluated no candidate"))?;
    let candidate_value = best.value;
    let p = polish(game, &tops, cfg.polish)?;
    let mut s = Solution::at(game, Method::Search, p.x, &p.replies);
    s.candidates_evaluated = evaluated;
    s.seconds = started.elapsed().as_secs_f64();
    s.search = Some(SearchStats {
        device: eval.device(),
        grid: grid0,
        levels,
        epsilon: cfg.epsilon,
        candidate_value,
        candidates_rechecked: rechecked,
        profiles_polished: p.profiles,
        polish: if p.optimal { "optimal" } else { "unpolished" },
    });
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::stackelberg::game::tests::one_type;

    /// Bounds that overstate values by up to `slack` (an imprecise device)
    /// select the same top candidates as the exact values.
    #[test]
    fn loose_bounds_select_the_exact_top() {
        let g = one_type(
            &[&[2.0, 0.0, 0.0], &[1.0, 0.0, 0.0], &[0.5, 3.0, 1.0]],
            &[&[0.0, 2.0, 5.0], &[0.0, -1.0, -4.0], &[1.0, 0.0, 2.0]],
        );
        let ties = tie_tolerances(&g, DEFAULT_EPSILON);
        let level = Level::full(3, 30).unwrap();
        let exact = level_values(&g, &level, &ties);
        let want = select_top(
            &g,
            &ties,
            &level,
            0,
            &Bounds {
                upper: exact.clone(),
                slack: 0.0,
            },
            5,
        )
        .unwrap()
        .0;
        // Overstate by a pseudo-random amount in [0, 0.3].
        let mut s = 7u64;
        let loose: Vec<f64> = exact
            .iter()
            .map(|v| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v + 0.3 * ((s >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect();
        let got = select_top(
            &g,
            &ties,
            &level,
            0,
            &Bounds {
                upper: loose.iter().map(|v| v - 0.3).collect(),
                slack: 0.3,
            },
            5,
        )
        .unwrap();
        assert!(got.1 >= 5);
        let got = got.0;
        assert_eq!(got, want);
        assert_eq!(want.len(), 5);
        assert!(want.windows(2).all(|w| w[0].value >= w[1].value));
    }

    #[test]
    fn grid_errors_name_the_grid() {
        let g = one_type(&[&[1.0], &[2.0], &[3.0]], &[&[1.0], &[1.0], &[1.0]]);
        let cfg = |grid| SearchConfig {
            grid: Some(grid),
            ..Default::default()
        };
        assert_eq!(cfg(20).first_grid(&g).unwrap(), 20);
        let two = one_type(&[&[1.0], &[2.0]], &[&[1.0], &[1.0]]);
        assert_eq!(cfg(1 << 20).first_grid(&two).unwrap(), 1 << 20);
        let e = cfg((1 << 20) + 1).first_grid(&two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "grid 1048577 is more than the 1048576 divisions a grid may have"
        );
        let e = cfg(0).first_grid(&g).unwrap_err();
        assert_eq!(e.to_string(), "grid must be at least 1");
        let e = cfg(100_000).first_grid(&g).unwrap_err();
        assert_eq!(e.as_param().unwrap().name, params::GRID);
        assert!(e.to_string().contains("use at most 8190"), "{e}");
    }
}
