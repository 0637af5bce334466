//! Best responses in f64: the CPU reference of the search, and the re-check
//! of the GPU's finalists.
//!
//! One **evaluation** is one (candidate leader strategy x, follower type θ)
//! pair: the type's n expected utilities u_j = Σ_i x_i·C_θ(i, j) (m·n
//! multiply-adds), the best of them, the replies within the tie tolerance of
//! it, and the leader's utility Σ_i x_i·R_θ(i, j) of each such reply, the
//! highest of which is the type's reply (the lowest index on an exact tie).
//! A candidate's value is Σ_θ p_θ times its type's leader utility, so a
//! candidate costs one evaluation per type.

use rayon::prelude::*;

use super::game::Game;
use super::grid::Level;

/// Default relative tie tolerance: a reply within ε · (the type's largest
/// follower payoff magnitude) of the best counts as a best response. Large
/// enough to absorb f64 rounding at an exact indifference (x = 2/3 is not a
/// double), small enough to change no reply the game does not tie.
pub const DEFAULT_EPSILON: f64 = 1e-9;

/// One type's reply at one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    /// The follower action.
    pub action: usize,
    /// The leader's expected utility against it (not weighted by the type's
    /// probability).
    pub leader: f64,
    /// The type's own expected utility.
    pub follower: f64,
}

/// Absolute tie tolerance per type: `epsilon` × the type's follower scale.
pub fn tie_tolerances(game: &Game, epsilon: f64) -> Vec<f64> {
    (0..game.types().len())
        .map(|t| epsilon * game.follower_scale(t))
        .collect()
}

/// Type `t`'s reply at `x` with absolute tie tolerance `tie`; `u` is scratch
/// of at least n values.
pub fn reply(game: &Game, t: usize, x: &[f64], tie: f64, u: &mut [f64]) -> Reply {
    let n = game.n();
    let ty = &game.types()[t];
    let (c, r) = (ty.follower_payoff(), ty.leader_payoff());
    let u = &mut u[..n];
    u.fill(0.0);
    for (i, &xi) in x.iter().enumerate() {
        // Adding 0·c changes no sum (payoffs are finite): skipping it is
        // exact, and the grid's candidates are mostly zeros at large m.
        if xi == 0.0 {
            continue;
        }
        for (uj, &cij) in u.iter_mut().zip(&c[i * n..(i + 1) * n]) {
            *uj += xi * cij;
        }
    }
    let best = u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let cut = best - tie;
    let mut pick = Reply {
        action: 0,
        leader: f64::NEG_INFINITY,
        follower: 0.0,
    };
    for (j, &uj) in u.iter().enumerate() {
        if uj >= cut {
            let v: f64 = x.iter().enumerate().map(|(i, &xi)| xi * r[i * n + j]).sum();
            if v > pick.leader {
                pick = Reply {
                    action: j,
                    leader: v,
                    follower: uj,
                };
            }
        }
    }
    pick
}

/// Every type's reply at `x` and the leader's value Σ_θ p_θ · leader utility.
pub fn replies(game: &Game, x: &[f64], ties: &[f64], u: &mut [f64]) -> (f64, Vec<Reply>) {
    let mut value = 0.0;
    let out: Vec<Reply> = game
        .types()
        .iter()
        .enumerate()
        .map(|(t, ty)| {
            let r = reply(game, t, x, ties[t], u);
            value += ty.prob * r.leader;
            r
        })
        .collect();
    (value, out)
}

/// The value of candidate x (see [`replies`]) without keeping the replies.
fn value(game: &Game, x: &[f64], ties: &[f64], u: &mut [f64]) -> f64 {
    game.types()
        .iter()
        .enumerate()
        .map(|(t, ty)| ty.prob * reply(game, t, x, ties[t], u).leader)
        .sum()
}

/// Candidates per rayon task: enough to amortise the composition walk's
/// unranking, small enough to balance two to a hundred threads.
const CHUNK: u64 = 512;

/// The value of every candidate of `level`, in its order, on all threads.
/// Each candidate is computed by one thread in a fixed order, so the values
/// do not depend on the thread count.
pub fn level_values(game: &Game, level: &Level, ties: &[f64]) -> Vec<f64> {
    let len = level.len();
    let mut out = vec![0.0; len as usize];
    out.par_chunks_mut(CHUNK as usize)
        .enumerate()
        .for_each(|(c, slot)| {
            let mut u = vec![0.0; game.n()];
            let first = c as u64 * CHUNK;
            level.for_each(first, slot.len() as u64, |k, x| {
                slot[(k - first) as usize] = value(game, x, ties, &mut u);
            });
        });
    out
}

/// Every (candidate, type) reply of `level`, candidate-major: the reference
/// the GPU's per-type replies are compared with.
pub fn level_replies(game: &Game, level: &Level, ties: &[f64]) -> Vec<Reply> {
    let types = game.types().len();
    let mut out = vec![
        Reply {
            action: 0,
            leader: 0.0,
            follower: 0.0
        };
        level.len() as usize * types
    ];
    out.par_chunks_mut(CHUNK as usize * types)
        .enumerate()
        .for_each(|(c, slot)| {
            let mut u = vec![0.0; game.n()];
            let first = c as u64 * CHUNK;
            level.for_each(first, (slot.len() / types) as u64, |k, x| {
                let at = (k - first) as usize * types;
                for (t, s) in slot[at..at + types].iter_mut().enumerate() {
                    *s = reply(game, t, x, ties[t], &mut u);
                }
            });
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::stackelberg::game::tests::one_type;

    #[test]
    fn ties_go_to_the_leader_and_nothing_else_does() {
        // DOBSS's game: at x = (2/3, 1/3) the follower is indifferent, but
        // 1 - 1/3 rounds up in binary and leaves `a` ahead by one ulp.
        let g = one_type(&[&[2.0, 4.0], &[1.0, 3.0]], &[&[1.0, 0.0], &[0.0, 2.0]]);
        let mut u = [0.0; 2];
        let x = [1.0 - 1.0 / 3.0, 1.0 / 3.0];
        assert!(g.follower_utility(0, &x, 0) > g.follower_utility(0, &x, 1));
        let r = reply(&g, 0, &x, DEFAULT_EPSILON, &mut u);
        assert_eq!(r.action, 1);
        assert!((r.leader - 11.0 / 3.0).abs() < 1e-12);
        // A strict best response ignores the leader: at x1 = 0.7 `a` is best.
        let r = reply(&g, 0, &[0.7, 0.3], DEFAULT_EPSILON, &mut u);
        assert_eq!((r.action, r.follower), (0, 0.7));
        // With no tolerance the rounding decides, against the leader.
        assert_eq!(reply(&g, 0, &x, 0.0, &mut u).action, 0);
    }

    #[test]
    fn equal_leader_values_pick_the_lowest_action() {
        let g = one_type(&[&[1.0, 1.0, 0.0]], &[&[5.0, 5.0, 5.0]]);
        let mut u = [0.0; 3];
        let r = reply(&g, 0, &[1.0], 0.0, &mut u);
        assert_eq!((r.action, r.leader), (0, 1.0));
    }
}
