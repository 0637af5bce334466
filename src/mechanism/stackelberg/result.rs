//! What a solve returns and how it reads as JSON (docs/mechanism.md).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::game::Game;

/// Which method produced a solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Exact,
    Search,
}

/// A leader strategy, serialised as `{"action": probability, …}` in the
/// game's action order.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub actions: Vec<String>,
    pub probs: Vec<f64>,
}

impl Serialize for Strategy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.actions.len()))?;
        for (a, p) in self.actions.iter().zip(&self.probs) {
            map.serialize_entry(a, p)?;
        }
        map.end()
    }
}

/// One follower type at the solution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeOutcome {
    pub name: String,
    pub prob: f64,
    /// The type's reply (a follower action's name).
    pub response: String,
    #[serde(skip)]
    pub response_index: usize,
    /// The type's expected utility from its reply.
    pub follower_utility: f64,
    /// The leader's expected utility against this type (not weighted by
    /// its probability).
    pub leader_utility: f64,
}

/// Figures of the exact method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExactStats {
    /// Σ_θ n: every (type, reply) pair.
    pub replies: usize,
    /// Pairs left after dropping replies that are never a best response.
    pub replies_kept: usize,
    /// Reply profiles the kept pairs form (Π_θ kept replies of θ).
    pub profiles: f64,
    /// Linear programs solved: one per kept pair's bound, one per profile
    /// prefix the branch and bound explored.
    pub lps_solved: u64,
}

/// Figures of the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchStats {
    /// The device that evaluated the candidates.
    pub device: String,
    /// Divisions of the first (whole-simplex) grid.
    pub grid: u32,
    /// Grid levels evaluated (the first and its refinements).
    pub levels: u32,
    /// The relative tie tolerance ε.
    pub epsilon: f64,
    /// The best candidate's value before the polish.
    pub candidate_value: f64,
    /// Candidates whose replies were computed again in f64 to select each
    /// level's best exactly (on the GPU, those whose f32 bound could reach
    /// them; on the CPU about the best 64 per level).
    pub candidates_rechecked: u64,
    /// Reply profiles the polish solved an LP for.
    pub profiles_polished: usize,
    /// `optimal`: the result is the optimum of a polished profile's LP;
    /// `unpolished`: every polish LP was infeasible and the result is the
    /// best candidate itself (see docs/mechanism.md).
    pub polish: &'static str,
}

/// A strong Stackelberg equilibrium (or the search's best estimate of one):
/// the leader's strategy, each type's reply and the utilities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Solution {
    pub method: Method,
    pub leader_strategy: Strategy,
    /// The leader's expected utility Σ_θ p_θ · (leader utility against θ).
    pub leader_utility: f64,
    pub types: Vec<TypeOutcome>,
    /// The most any type would gain by switching from its reported reply at
    /// the reported strategy: 0 up to the LP's tolerance (about 1e-7 of the
    /// payoffs) for a polished or exact solution.
    pub max_regret: f64,
    /// Search: candidate strategies evaluated (each one evaluation per
    /// type); exact: linear programs solved.
    pub candidates_evaluated: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchStats>,
}

impl Solution {
    /// A solution at strategy `x` with reply `replies[θ]` per type; the
    /// statistics are filled in by the method.
    pub(crate) fn at(game: &Game, method: Method, x: Vec<f64>, replies: &[usize]) -> Self {
        let types = game
            .types()
            .iter()
            .enumerate()
            .map(|(t, ty)| TypeOutcome {
                name: ty.name.clone(),
                prob: ty.prob,
                response: game.follower_actions()[replies[t]].clone(),
                response_index: replies[t],
                follower_utility: game.follower_utility(t, &x, replies[t]),
                leader_utility: game.leader_utility(t, &x, replies[t]),
            })
            .collect::<Vec<_>>();
        let max_regret = types
            .iter()
            .enumerate()
            .map(|(t, o)| {
                (0..game.n())
                    .map(|j| game.follower_utility(t, &x, j) - o.follower_utility)
                    .fold(0.0f64, f64::max)
            })
            .fold(0.0f64, f64::max);
        Solution {
            method,
            leader_utility: game.value(&x, replies),
            leader_strategy: Strategy {
                actions: game.leader_actions().to_vec(),
                probs: x,
            },
            types,
            max_regret,
            candidates_evaluated: 0,
            seconds: 0.0,
            exact: None,
            search: None,
        }
    }

    /// The leader's mixed strategy, in the game's action order.
    pub fn strategy(&self) -> &[f64] {
        &self.leader_strategy.probs
    }

    /// Each type's reply, as a follower action index.
    pub fn responses(&self) -> Vec<usize> {
        self.types.iter().map(|t| t.response_index).collect()
    }
}

/// `--method both`: the two solutions and how far the search fell short.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub method: &'static str,
    pub exact: Solution,
    pub search: Solution,
    /// exact.leader_utility − search.leader_utility (≥ 0 up to the LPs'
    /// tolerance).
    pub gap: f64,
}

impl Comparison {
    pub fn new(exact: Solution, search: Solution) -> Self {
        Comparison {
            method: "both",
            gap: exact.leader_utility - search.leader_utility,
            exact,
            search,
        }
    }
}
