//! Warm re-solves: when scores move, only the tiers whose members' inputs
//! changed are evaluated again.
//!
//! A tier's table (expected successes at every reward) is a function of its
//! members' model inputs alone, in order: a_i = h_i·capability_i and
//! k_i = a_i / (2·cost_i) (see `model`), and of the reward grid. A previous
//! solution's table is reused for the same tier when the grid and that list
//! are equal to the bit, so the result is the cold solve's, bit for bit. Who
//! the members are does not matter, only their inputs; a score that moves
//! without changing any rank changes no percentile and no tier, and the
//! re-solve evaluates nothing. The leader's choice (cheap) is always redone,
//! so the task value and the budget may change between solves too.

use std::sync::Arc;

use rayon::prelude::*;

use crate::error::Result;

use super::model::{expected_successes, Member};
use super::scores::ScoreVector;
use super::solve::{Problem, Solution};

/// A tier's members' inputs and its expected successes per reward step.
#[derive(Debug)]
pub struct TierTable {
    pub members: Vec<Member>,
    pub successes: Vec<f64>,
}

impl TierTable {
    fn same_inputs(&self, members: &[Member]) -> bool {
        self.members.len() == members.len()
            && self
                .members
                .iter()
                .zip(members)
                .all(|(a, b)| a.same_bits(b))
    }
}

impl Problem {
    /// The best schedule for `scores`, reusing the tier tables of `previous`
    /// (a solution of this problem or of one with the same reward grid) where
    /// a tier's members' inputs did not change. Equal to [`Problem::solve`]
    /// to the bit; [`Solution::evaluated`] says which tiers were computed.
    pub fn resolve(&self, previous: &Solution, scores: &ScoreVector) -> Result<Solution> {
        self.solve_from(scores, Some(previous))
    }
}

/// Every tier's table, from `previous` where its inputs are unchanged, and
/// per tier whether it was computed. Tables to compute are computed in
/// parallel (and each in parallel over its members).
pub(super) fn tables(
    members: Vec<Vec<Member>>,
    grid: &[f64],
    previous: Option<&Solution>,
) -> (Vec<Arc<TierTable>>, Vec<bool>) {
    let same_grid = previous.is_some_and(|p| {
        p.grid.len() == grid.len()
            && p.grid
                .iter()
                .zip(grid)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    });
    let reusable = |t: usize, m: &[Member]| -> Option<Arc<TierTable>> {
        let p = previous.filter(|_| same_grid)?;
        p.tables.get(t).filter(|old| old.same_inputs(m)).cloned()
    };
    let out: Vec<(Arc<TierTable>, bool)> = members
        .into_par_iter()
        .enumerate()
        .map(|(t, m)| match reusable(t, &m) {
            Some(old) => (old, false),
            None => {
                let successes = expected_successes(&m, grid);
                (
                    Arc::new(TierTable {
                        members: m,
                        successes,
                    }),
                    true,
                )
            }
        })
        .collect();
    out.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::contract::synthetic::market;
    use crate::mechanism::contract::ContractParams;

    fn problem(n: usize) -> (Problem, ScoreVector) {
        let (agents, scores) = market(n, 11).unwrap();
        let p = ContractParams {
            budget: Some(n as f64 * 4.0),
            ..Default::default()
        };
        (Problem::new(agents, p).unwrap(), scores)
    }

    fn with_scores(s: &ScoreVector, f: impl FnOnce(&mut Vec<f64>)) -> ScoreVector {
        let mut v = s.scores().to_vec();
        f(&mut v);
        ScoreVector::new(s.agents().to_vec(), v).unwrap()
    }

    /// Re-solves evaluate exactly the tiers whose inputs changed, and equal a
    /// cold solve to the bit.
    #[test]
    fn only_changed_tiers_are_evaluated() {
        let (pr, s0) = problem(5000);
        let cold0 = pr.solve(&s0).unwrap();
        assert_eq!(cold0.evaluated, [true; 4]);
        assert_eq!(cold0.search.tiers_evaluated, 4);

        let check = |prev: &Solution, s: &ScoreVector, want: [bool; 4]| -> Solution {
            let warm = pr.resolve(prev, s).unwrap();
            assert_eq!(warm.evaluated, want);
            let cold = pr.solve(s).unwrap();
            assert_eq!(
                warm.result_json().unwrap()["tiers"],
                cold.result_json().unwrap()["tiers"]
            );
            let (mut w, mut c) = (warm.result_json().unwrap(), cold.result_json().unwrap());
            w["search"]["tiers_evaluated"] = 0.into();
            c["search"]["tiers_evaluated"] = 0.into();
            assert_eq!(w, c);
            for (a, b) in warm.tables.iter().zip(&cold.tables) {
                let bits =
                    |t: &TierTable| t.successes.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(a), bits(b));
            }
            warm
        };

        // Scores doubled: no rank moves, nothing is evaluated (the score
        // bounds in the result still move).
        let doubled = with_scores(&s0, |v| v.iter_mut().for_each(|x| *x *= 2.0));
        let w = check(&cold0, &doubled, [false; 4]);
        assert_eq!(
            w.tiers[3].score_max,
            cold0.tiers[3].score_max.map(|x| x * 2.0)
        );

        // Two agents of the top tier swap scores: that tier alone.
        let top: Vec<usize> = (0..5000).filter(|&i| cold0.tier_of[i] == 3).collect();
        let (i, j) = (top[0], top[1]);
        assert_ne!(s0.scores()[i], s0.scores()[j]);
        let swapped = with_scores(&s0, |v| v.swap(i, j));
        check(&cold0, &swapped, [false, false, false, true]);

        // The lowest-scored agent of tier 1 (0-based) jumps to the top: every
        // agent above it moves down one rank, so tiers 1..=3 change; the
        // agents below it keep their ranks, and tier 0 its inputs.
        let low = (0..5000)
            .filter(|&i| cold0.tier_of[i] == 1)
            .min_by(|&a, &b| s0.scores()[a].total_cmp(&s0.scores()[b]))
            .unwrap();
        let jumped = with_scores(&s0, |v| v[low] = 10.0);
        let w = check(&cold0, &jumped, [false, true, true, true]);
        // And from that solution back again.
        check(&w, &s0, [false, true, true, true]);

        // Another grid: nothing can be reused.
        let (agents, _) = market(5000, 11).unwrap();
        let other = Problem::new(
            agents,
            ContractParams {
                reward_steps: 16,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(other.resolve(&cold0, &s0).unwrap().evaluated, [true; 4]);
    }
}
