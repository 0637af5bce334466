//! The linear program of a reply profile (Conitzer & Sandholm, EC 2006): the
//! best leader strategy at which each given type's given reply is a best
//! response.
//!
//! ```text
//! maximise   Σ_(θ,j) p_θ Σ_i x_i R_θ(i, j)
//! subject to Σ_i x_i (C_θ(i, j) − C_θ(i, j')) ≥ 0   for each (θ, j), each j' ≠ j
//!            Σ_i x_i = 1,  x ≥ 0
//! ```
//!
//! The exact method solves it for whole profiles and for prefixes of them
//! (the bound of a branch); the search polishes its best candidate's profile
//! with it. Each constraint row is divided by its largest coefficient (the
//! same constraint, better conditioned: microlp asks for coefficients within
//! six orders of magnitude), and coefficients below 1e-12 of a row's largest
//! are dropped (they move the row by less than that, far below microlp's
//! feasibility tolerance of 1e-7). A solution therefore makes each reply a
//! best response to within about 1e-7 of the type's payoff differences,
//! which the result reports as `max_regret`.

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::game::Game;
use crate::error::{Error, Result};

/// Coefficients below this fraction of their row's largest are dropped.
const DROP: f64 = 1e-12;

/// An optimal strategy of a profile's program and the leader's expected
/// utility there over the profile's types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LpPoint {
    pub x: Vec<f64>,
    pub value: f64,
}

/// Solves the program of `assign`, a list of (type, reply) pairs; None when
/// no strategy makes every reply a best response. An empty list is the
/// simplex itself (any point; value 0).
pub(crate) fn best_strategy(game: &Game, assign: &[(usize, usize)]) -> Result<Option<LpPoint>> {
    let (m, n) = (game.m(), game.n());
    let mut objective = vec![0.0; m];
    for &(t, j) in assign {
        let ty = &game.types()[t];
        for (i, o) in objective.iter_mut().enumerate() {
            *o += ty.prob * ty.leader_payoff()[i * n + j];
        }
    }
    let oscale = objective.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let mut p = Problem::new(OptimizationDirection::Maximize);
    let vars: Vec<_> = objective
        .iter()
        .map(|&o| {
            let c = if oscale > 0.0 { o / oscale } else { 0.0 };
            p.add_var(if c.abs() < DROP { 0.0 } else { c }, (0.0, 1.0))
        })
        .collect();
    p.add_constraint(
        vars.iter().map(|&v| (v, 1.0)).collect::<Vec<_>>(),
        ComparisonOp::Eq,
        1.0,
    );
    let mut row = vec![0.0; m];
    for &(t, j) in assign {
        let c = game.types()[t].follower_payoff();
        for other in (0..n).filter(|&o| o != j) {
            for (i, r) in row.iter_mut().enumerate() {
                *r = c[i * n + j] - c[i * n + other];
            }
            let big = row.iter().fold(0.0f64, |a, b| a.max(b.abs()));
            if big == 0.0 {
                continue; // the two replies are the same to this type
            }
            let terms: Vec<_> = vars
                .iter()
                .zip(&row)
                .filter(|(_, r)| r.abs() >= DROP * big)
                .map(|(&v, r)| (v, r / big))
                .collect();
            p.add_constraint(terms, ComparisonOp::Ge, 0.0);
        }
    }
    let lp_error = |source| Error::Lp {
        what: format!("reply profile of {} types", assign.len()),
        source,
    };
    let solution = match p.solve() {
        Ok(outcome) => outcome
            .into_solution()
            .map_err(|_| Error::internal("an LP without a time limit was interrupted"))?,
        Err(microlp::Error::Infeasible) => return Ok(None),
        Err(e) => return Err(lp_error(e)),
    };
    // Within the solver's tolerance x may stray below 0 or off Σ = 1 by
    // ~1e-9: clamped and renormalised it is a strategy.
    let mut x: Vec<f64> = vars
        .iter()
        .map(|&v| solution.var_value(v).max(0.0))
        .collect();
    let sum: f64 = x.iter().sum();
    if sum.is_nan() || sum <= 0.0 {
        return Err(Error::internal("an LP solution's strategy sums to zero"));
    }
    x.iter_mut().for_each(|v| *v /= sum);
    let value = assign
        .iter()
        .map(|&(t, j)| game.types()[t].prob * game.leader_utility(t, &x, j))
        .sum();
    Ok(Some(LpPoint { x, value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::stackelberg::game::tests::one_type;

    #[test]
    fn dobss_profiles() {
        let g = one_type(&[&[2.0, 4.0], &[1.0, 3.0]], &[&[1.0, 0.0], &[0.0, 2.0]]);
        // Follower b is a best response while x1 ≤ 2/3: the leader's best is
        // 4·2/3 + 3·1/3 = 11/3 at the boundary.
        let b = best_strategy(&g, &[(0, 1)]).unwrap().unwrap();
        assert!((b.value - 11.0 / 3.0).abs() < 1e-7, "{b:?}");
        assert!((b.x[0] - 2.0 / 3.0).abs() < 1e-7);
        let a = best_strategy(&g, &[(0, 0)]).unwrap().unwrap();
        assert!((a.value - 2.0).abs() < 1e-7, "{a:?}");
        let none = best_strategy(&g, &[]).unwrap().unwrap();
        assert_eq!(none.value, 0.0);
    }

    #[test]
    fn a_dominated_reply_is_infeasible() {
        // The follower's third action is worse than the second everywhere.
        let g = one_type(
            &[&[1.0, 2.0, 9.0], &[3.0, 4.0, 9.0]],
            &[&[0.0, 1.0, 0.5], &[1.0, 2.0, 1.5]],
        );
        assert_eq!(best_strategy(&g, &[(0, 2)]).unwrap(), None);
        assert!(best_strategy(&g, &[(0, 1)]).unwrap().is_some());
    }
}
