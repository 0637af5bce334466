//! The exact method: multiple LPs (Conitzer & Sandholm, EC 2006), one per
//! follower reply profile (one reply per type), searched by branch and bound.
//!
//! 1. For every (type θ, reply j), the LP of that pair alone: infeasible
//!    means j is never a best response of θ, and the pair is dropped;
//!    otherwise its value U_θ(j) = max p_θ·x·R_θ(:, j) over the strategies
//!    where j is a best response bounds what θ replying j can add.
//! 2. Too many profiles left (Π_θ kept replies of θ beyond
//!    [`ExactConfig::max_profiles`]): refused, pointing to the search.
//! 3. Depth first over the types (fewest kept replies first), each type's
//!    replies by decreasing U: a prefix of the profile is solved as an LP
//!    over its types; it is cut when infeasible, or when its value plus the
//!    best U of every type after it cannot beat the best whole profile so far
//!    by more than a relative 1e-9. A whole profile's LP value is a
//!    candidate; the best is the strong Stackelberg equilibrium (ties between
//!    replies go to the leader because each LP keeps its profile's replies
//!    as weak best responses).
//!
//! The replies reported are the winning LP's profile, never an argmax at its
//! optimum: the optimum sits where the follower is indifferent, and an
//! argmax there lands on the wrong side of the tie.

use std::time::Instant;

use super::game::Game;
use super::lp::{best_strategy, LpPoint};
use super::result::{ExactStats, Method, Solution};
use crate::error::{params, Error, Message, Result};

/// Default of [`ExactConfig::max_profiles`]: a million profiles. The branch
/// and bound rarely solves more than a small fraction of them, but a game
/// this size whose bounds do not bite would take minutes of small LPs.
pub const DEFAULT_MAX_PROFILES: u64 = 1_000_000;

/// Parameters of the exact method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactConfig {
    /// Refuse games with more reply profiles than this after dropping the
    /// replies that are never best responses.
    pub max_profiles: u64,
}

impl Default for ExactConfig {
    fn default() -> Self {
        ExactConfig {
            max_profiles: DEFAULT_MAX_PROFILES,
        }
    }
}

/// The best whole profile so far: its strategy and its (type, reply) pairs.
type Incumbent = (Vec<f64>, Vec<(usize, usize)>);

/// One kept (reply, bound, the pair's own LP optimum) of a type.
struct Kept {
    reply: usize,
    bound: f64,
    point: LpPoint,
}

/// Solves `game` exactly (to the LPs' tolerance).
pub fn solve_exact(game: &Game, cfg: &ExactConfig) -> Result<Solution> {
    let started = Instant::now();
    let types = game.types().len();
    let mut lps = 0u64;
    let mut kept: Vec<Vec<Kept>> = Vec::with_capacity(types);
    for t in 0..types {
        let mut k = Vec::new();
        for j in 0..game.n() {
            lps += 1;
            if let Some(point) = best_strategy(game, &[(t, j)])? {
                k.push(Kept {
                    reply: j,
                    bound: point.value,
                    point,
                });
            }
        }
        if k.is_empty() {
            // Some reply is a best response at every strategy.
            return Err(Error::internal(format!(
                "no reply of type {} is ever a best response",
                game.types()[t].name
            )));
        }
        k.sort_by(|a, b| b.bound.total_cmp(&a.bound).then(a.reply.cmp(&b.reply)));
        kept.push(k);
    }
    let profiles: f64 = kept.iter().map(|k| k.len() as f64).product();
    if profiles > cfg.max_profiles as f64 {
        return Err(Error::param(
            params::METHOD,
            Message::new()
                .text(format!(
                    "the exact method would have to search {profiles:.3e} follower reply profiles \
                     (after dropping the replies no type ever best-responds with), more than its \
                     bound of {}; use ",
                    cfg.max_profiles
                ))
                .param(params::METHOD)
                .text(" search"),
        ));
    }
    // Types with fewest kept replies first: they branch least, and their
    // constraints cut the branches below them.
    let mut order: Vec<usize> = (0..types).collect();
    order.sort_by_key(|&t| (kept[t].len(), t));
    let mut rest = vec![0.0; types + 1];
    for d in (0..types).rev() {
        rest[d] = rest[d + 1] + kept[order[d]][0].bound;
    }
    let value_scale: f64 = (0..types)
        .map(|t| game.types()[t].prob * game.leader_scale(t))
        .sum();
    let tol = 1e-9 * value_scale.max(f64::MIN_POSITIVE);

    let mut best = f64::NEG_INFINITY;
    let mut best_point: Option<Incumbent> = None;
    let mut cursor = vec![0usize; types];
    let mut prefix = vec![0.0; types + 1];
    let mut assign: Vec<(usize, usize)> = Vec::with_capacity(types);
    let mut depth = 0;
    loop {
        let t = order[depth];
        let mut descended = false;
        while cursor[depth] < kept[t].len() {
            let k = &kept[t][cursor[depth]];
            cursor[depth] += 1;
            if prefix[depth] + k.bound + rest[depth + 1] <= best + tol {
                // Replies are by decreasing bound: none after this one can win.
                cursor[depth] = kept[t].len();
                break;
            }
            assign.push((t, k.reply));
            let point = if depth == 0 {
                Some(k.point.clone())
            } else {
                lps += 1;
                best_strategy(game, &assign)?
            };
            match point {
                Some(p) if p.value + rest[depth + 1] > best + tol => {
                    if depth + 1 == types {
                        best = p.value;
                        best_point = Some((p.x, assign.clone()));
                        assign.pop();
                    } else {
                        prefix[depth + 1] = p.value;
                        depth += 1;
                        cursor[depth] = 0;
                        descended = true;
                        break;
                    }
                }
                _ => {
                    assign.pop();
                }
            }
        }
        if descended {
            continue;
        }
        if depth == 0 {
            break;
        }
        depth -= 1;
        assign.pop();
    }
    let (x, profile) = best_point
        .ok_or_else(|| Error::internal("the exact method found no feasible reply profile"))?;
    let mut replies = vec![0; types];
    for (t, j) in profile {
        replies[t] = j;
    }
    let mut s = Solution::at(game, Method::Exact, x, &replies);
    s.candidates_evaluated = lps;
    s.seconds = started.elapsed().as_secs_f64();
    s.exact = Some(ExactStats {
        replies: types * game.n(),
        replies_kept: kept.iter().map(Vec::len).sum(),
        profiles,
        lps_solved: lps,
    });
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::stackelberg::game::tests::one_type;

    #[test]
    fn published_single_type_values() {
        // OpenSpiel's stackelberg_lp tests.
        let g = one_type(&[&[2.0, 4.0], &[1.0, 3.0]], &[&[1.0, 0.0], &[0.0, 1.0]]);
        let s = solve_exact(&g, &ExactConfig::default()).unwrap();
        assert!((s.leader_utility - 3.5).abs() < 1e-7, "{s:?}");
        assert_eq!(s.responses(), [1]);
        let g = one_type(
            &[&[2.0, 0.0, 0.0], &[1.0, 0.0, 0.0]],
            &[&[0.0, 2.0, 5.0], &[0.0, -1.0, -4.0]],
        );
        let s = solve_exact(&g, &ExactConfig::default()).unwrap();
        assert!((s.leader_utility - 4.0 / 3.0).abs() < 1e-7, "{s:?}");
        assert_eq!(s.responses(), [0]);
        assert!(s.max_regret < 1e-6);
    }

    #[test]
    fn too_many_profiles_point_to_the_search() {
        let g = one_type(&[&[2.0, 4.0], &[1.0, 3.0]], &[&[1.0, 0.0], &[0.0, 1.0]]);
        let e = solve_exact(&g, &ExactConfig { max_profiles: 1 }).unwrap_err();
        assert_eq!(e.as_param().map(|p| p.name), Some(params::METHOD));
        assert!(
            e.to_string().ends_with("bound of 1; use method search"),
            "{e}"
        );
    }
}
