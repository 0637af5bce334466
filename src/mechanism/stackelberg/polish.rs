//! The search's last step: from grid candidates to an exact equilibrium of
//! a reply profile.
//!
//! A candidate's replies were picked with the tie tolerance ε, so near a
//! boundary they may be replies that are only ε-best there. The polish takes
//! the distinct reply profiles of the best candidates (best first, at most
//! `SearchConfig::polish`) and solves each one's LP (`lp`): its optimum is
//! the best strategy at which every reply of the profile is a best response,
//! an exact strong Stackelberg equilibrium restricted to that profile. The
//! best optimum wins (the first on equal values).
//!
//! An ε-profile can be infeasible: two types each within ε of indifferent at
//! the candidate, on sides no single strategy reconciles. Then the profile
//! of exact best responses at the same candidate (tolerance 0, ties still
//! to the leader) is polished instead; the candidate itself satisfies it up
//! to f64 rounding, so its LP is feasible. Only if every LP fails is the
//! best candidate returned as it is, marked `unpolished`.

use super::eval::replies;
use super::game::Game;
use super::lp::best_strategy;
use super::search::Entry;
use crate::error::{Error, Result};

/// The polished result.
pub(crate) struct Polished {
    pub x: Vec<f64>,
    pub replies: Vec<usize>,
    /// Distinct profiles whose LP was solved.
    pub profiles: usize,
    /// False when no LP was feasible and `x` is a raw candidate.
    pub optimal: bool,
}

/// Polishes the reply profiles of `tops` (the best candidates of every
/// level, checked in f64), at most `limit` distinct ones.
pub(crate) fn polish(game: &Game, tops: &[Entry], limit: usize) -> Result<Polished> {
    let mut order: Vec<&Entry> = tops.iter().collect();
    order.sort_by(|a, b| Entry::order(a, b));
    let mut tried: Vec<&[usize]> = Vec::new();
    let mut best: Option<(f64, Vec<f64>, Vec<usize>)> = None;
    let mut consider = |value: f64, x: Vec<f64>, r: Vec<usize>| {
        if best.as_ref().is_none_or(|b| value > b.0) {
            best = Some((value, x, r));
        }
    };
    let mut strict_tried: Vec<Vec<usize>> = Vec::new();
    for e in order {
        if tried.len() == limit {
            break;
        }
        if tried.contains(&e.replies.as_slice()) {
            continue;
        }
        tried.push(&e.replies);
        if let Some(p) = best_strategy(game, &assignment(&e.replies))? {
            consider(p.value, p.x, e.replies.clone());
            continue;
        }
        // The exact best responses at the candidate, ties to the leader.
        let zero = vec![0.0; game.types().len()];
        let (_, strict) = replies(game, &e.x, &zero, &mut vec![0.0; game.n()]);
        let strict: Vec<usize> = strict.iter().map(|r| r.action).collect();
        if strict == e.replies || strict_tried.contains(&strict) {
            continue;
        }
        if let Some(p) = best_strategy(game, &assignment(&strict))? {
            consider(p.value, p.x, strict.clone());
        }
        strict_tried.push(strict);
    }
    let profiles = tried.len() + strict_tried.len();
    match best {
        Some((_, x, replies)) => Ok(Polished {
            x,
            replies,
            profiles,
            optimal: true,
        }),
        None => {
            let e = tops
                .iter()
                .min_by(|a, b| Entry::order(a, b))
                .ok_or_else(|| Error::internal("nothing to polish"))?;
            Ok(Polished {
                x: e.x.clone(),
                replies: e.replies.clone(),
                profiles,
                optimal: false,
            })
        }
    }
}

fn assignment(replies: &[usize]) -> Vec<(usize, usize)> {
    replies.iter().copied().enumerate().collect()
}
