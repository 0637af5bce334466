//! A general Bayesian Stackelberg game, validated: every error names the
//! field at fault the way the JSON form spells it
//! (`types[1].follower_payoff[0]: expected 3 values, found 2`), whether the
//! game came from a file ([`super::json`]) or was built in Rust.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Largest number of entries one payoff matrix family may hold (types × m × n):
/// 16M entries is 128 MiB per family in f64, far beyond what either method
/// can solve, and it keeps a hostile file from allocating without bound.
pub const MAX_ENTRIES: usize = 1 << 24;

/// Largest payoff magnitude: sums and differences of payoffs (expected
/// utilities, LP rows) must stay far from f64's overflow at 1.8e308.
pub const MAX_PAYOFF: f64 = 1e100;

/// How far the type probabilities may sum from 1 (JSON decimals such as
/// 0.1 + 0.2 + 0.7 are not exactly 1 in binary).
pub const PROB_TOLERANCE: f64 = 1e-9;

/// One follower type as given: matrices are rows per leader action, each
/// with one value per follower action.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSpec {
    pub name: String,
    pub prob: f64,
    pub leader_payoff: Vec<Vec<f64>>,
    pub follower_payoff: Vec<Vec<f64>>,
}

/// A validated follower type; payoffs are stored row-major, entry (i, j) at
/// `i * n + j` (leader action i, follower action j).
#[derive(Debug, Clone, PartialEq)]
pub struct FollowerType {
    pub name: String,
    pub prob: f64,
    leader: Vec<f64>,
    follower: Vec<f64>,
}

impl FollowerType {
    /// The leader's payoffs, m × n row-major.
    pub fn leader_payoff(&self) -> &[f64] {
        &self.leader
    }

    /// The follower's payoffs, m × n row-major.
    pub fn follower_payoff(&self) -> &[f64] {
        &self.follower
    }
}

/// A Bayesian Stackelberg game: the leader commits to a mixed strategy over
/// `leader_actions`; a follower of type θ (probability `prob`) observes it
/// and replies with one of `follower_actions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Game {
    leader_actions: Vec<String>,
    follower_actions: Vec<String>,
    types: Vec<FollowerType>,
}

impl Game {
    /// Validates and builds a game: non-empty lists of unique, non-empty
    /// names; m × n finite payoffs per type; probabilities finite, not
    /// negative, summing to 1 within [`PROB_TOLERANCE`].
    pub fn new(
        leader_actions: Vec<String>,
        follower_actions: Vec<String>,
        types: Vec<TypeSpec>,
    ) -> Result<Self> {
        names("leader_actions", &leader_actions, "action")?;
        names("follower_actions", &follower_actions, "action")?;
        if types.is_empty() {
            return Err(field("types", "expected at least one follower type"));
        }
        let type_names: Vec<String> = types.iter().map(|t| t.name.clone()).collect();
        names_at(&type_names, |k| format!("types[{k}].name"))?;
        let (m, n) = (leader_actions.len(), follower_actions.len());
        let entries = m.saturating_mul(n).saturating_mul(types.len());
        if entries > MAX_ENTRIES {
            return Err(Error::invalid(format!(
                "the game has {m} leader actions × {n} follower actions × {} types = {entries} \
                 payoff entries per player, more than the {MAX_ENTRIES} supported",
                types.len()
            )));
        }
        let mut out = Vec::with_capacity(types.len());
        let mut total = 0.0;
        for (k, t) in types.into_iter().enumerate() {
            let at = format!("types[{k}]");
            if !t.prob.is_finite() {
                return Err(field(
                    &format!("{at}.prob"),
                    format!("{} is not a finite number", t.prob),
                ));
            }
            if t.prob < 0.0 {
                return Err(field(
                    &format!("{at}.prob"),
                    format!("{} is negative; a probability is in [0, 1]", t.prob),
                ));
            }
            total += t.prob;
            let leader = matrix(&format!("{at}.leader_payoff"), &t.leader_payoff, m, n)?;
            let follower = matrix(&format!("{at}.follower_payoff"), &t.follower_payoff, m, n)?;
            out.push(FollowerType {
                name: t.name,
                prob: t.prob,
                leader,
                follower,
            });
        }
        if (total - 1.0).abs() > PROB_TOLERANCE {
            return Err(field(
                "types[*].prob",
                format!("the probabilities sum to {total}; they must sum to 1 (within {PROB_TOLERANCE:e})"),
            ));
        }
        Ok(Game {
            leader_actions,
            follower_actions,
            types: out,
        })
    }

    /// m: the leader's actions.
    pub fn m(&self) -> usize {
        self.leader_actions.len()
    }

    /// n: the follower's actions.
    pub fn n(&self) -> usize {
        self.follower_actions.len()
    }

    pub fn leader_actions(&self) -> &[String] {
        &self.leader_actions
    }

    pub fn follower_actions(&self) -> &[String] {
        &self.follower_actions
    }

    pub fn types(&self) -> &[FollowerType] {
        &self.types
    }

    /// The largest payoff magnitude of type `t`'s follower matrix, or 1 when
    /// the matrix is all zeros: the scale the tie tolerance ε is relative to.
    pub fn follower_scale(&self, t: usize) -> f64 {
        scale(&self.types[t].follower)
    }

    /// The largest payoff magnitude of type `t`'s leader matrix (1 when zero).
    pub fn leader_scale(&self, t: usize) -> f64 {
        scale(&self.types[t].leader)
    }

    /// The leader's expected utility against type `t` replying `j` at `x`.
    pub fn leader_utility(&self, t: usize, x: &[f64], j: usize) -> f64 {
        column_dot(&self.types[t].leader, self.n(), x, j)
    }

    /// Type `t`'s expected utility from reply `j` at leader strategy `x`.
    pub fn follower_utility(&self, t: usize, x: &[f64], j: usize) -> f64 {
        column_dot(&self.types[t].follower, self.n(), x, j)
    }

    /// The leader's expected utility at `x` when each type θ replies
    /// `replies[θ]`: Σ_θ p_θ · Σ_i x_i · R_θ(i, replies[θ]).
    pub fn value(&self, x: &[f64], replies: &[usize]) -> f64 {
        replies
            .iter()
            .enumerate()
            .map(|(t, &j)| self.types[t].prob * self.leader_utility(t, x, j))
            .sum()
    }
}

fn scale(v: &[f64]) -> f64 {
    let s = v.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    if s > 0.0 {
        s
    } else {
        1.0
    }
}

/// Σ_i x_i · a(i, j) of a row-major matrix with `n` columns.
fn column_dot(a: &[f64], n: usize, x: &[f64], j: usize) -> f64 {
    x.iter().enumerate().map(|(i, &xi)| xi * a[i * n + j]).sum()
}

/// `{path}: {message}`, the form every game error takes.
pub(crate) fn field(path: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{path}: {message}"))
}

/// A non-empty list of non-empty, unique names.
fn names(list: &str, v: &[String], what: &str) -> Result<()> {
    if v.is_empty() {
        return Err(field(list, format!("expected at least one {what}")));
    }
    names_at(v, |k| format!("{list}[{k}]"))
}

fn names_at(v: &[String], at: impl Fn(usize) -> String) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(v.len());
    for (k, name) in v.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(field(&at(k), "empty name"));
        }
        if let Some(first) = seen.insert(name, k) {
            return Err(field(
                &at(k),
                format!("duplicate name {name:?} (same as {})", at(first)),
            ));
        }
    }
    Ok(())
}

/// m rows of n finite values, flattened row-major.
fn matrix(path: &str, rows: &[Vec<f64>], m: usize, n: usize) -> Result<Vec<f64>> {
    if rows.len() != m {
        return Err(field(
            path,
            format!(
                "expected {m} rows, found {} (one per leader action)",
                rows.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(m * n);
    for (i, row) in rows.iter().enumerate() {
        if row.len() != n {
            return Err(field(
                &format!("{path}[{i}]"),
                format!(
                    "expected {n} values, found {} (one per follower action)",
                    row.len()
                ),
            ));
        }
        for (j, &v) in row.iter().enumerate() {
            if !v.is_finite() {
                return Err(field(
                    &format!("{path}[{i}][{j}]"),
                    format!("{v} is not a finite number"),
                ));
            }
            if v.abs() > MAX_PAYOFF {
                return Err(field(
                    &format!("{path}[{i}][{j}]"),
                    format!("{v:e} is beyond ±{MAX_PAYOFF:e}, the largest payoff magnitude"),
                ));
            }
        }
        out.extend_from_slice(row);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// A single-type game from plain matrices (the tests' shorthand).
    pub(crate) fn one_type(leader: &[&[f64]], follower: &[&[f64]]) -> Game {
        let m = leader.len();
        let n = leader[0].len();
        Game::new(
            (0..m).map(|i| format!("l{i}")).collect(),
            (0..n).map(|j| format!("f{j}")).collect(),
            vec![TypeSpec {
                name: "only".into(),
                prob: 1.0,
                leader_payoff: leader.iter().map(|r| r.to_vec()).collect(),
                follower_payoff: follower.iter().map(|r| r.to_vec()).collect(),
            }],
        )
        .unwrap()
    }

    fn spec(name: &str, prob: f64) -> TypeSpec {
        TypeSpec {
            name: name.into(),
            prob,
            leader_payoff: vec![vec![1.0, 2.0], vec![3.0, 4.0]],
            follower_payoff: vec![vec![0.0, 1.0], vec![1.0, 0.0]],
        }
    }

    fn err(l: &[&str], f: &[&str], t: Vec<TypeSpec>) -> String {
        Game::new(s(l), s(f), t).unwrap_err().to_string()
    }

    #[test]
    fn valid_games_keep_their_values() {
        let g = Game::new(
            s(&["a", "b"]),
            s(&["x", "y"]),
            vec![spec("t", 0.25), spec("u", 0.75)],
        )
        .unwrap();
        assert_eq!((g.m(), g.n(), g.types().len()), (2, 2, 2));
        assert_eq!(g.types()[1].leader_payoff(), &[1.0, 2.0, 3.0, 4.0]);
        let x = [0.25, 0.75];
        assert_eq!(g.leader_utility(0, &x, 1), 0.25 * 2.0 + 0.75 * 4.0);
        assert_eq!(g.follower_utility(0, &x, 0), 0.75);
        assert_eq!(g.value(&x, &[1, 1]), 3.5);
        assert_eq!(g.follower_scale(0), 1.0);
        assert_eq!(g.leader_scale(0), 4.0);
    }

    #[test]
    fn every_malformed_field_is_named() {
        let ab = &["a", "b"];
        assert_eq!(
            err(&[], ab, vec![spec("t", 1.0)]),
            "leader_actions: expected at least one action"
        );
        assert_eq!(
            err(ab, &[], vec![spec("t", 1.0)]),
            "follower_actions: expected at least one action"
        );
        assert_eq!(
            err(ab, ab, vec![]),
            "types: expected at least one follower type"
        );
        assert_eq!(
            err(&["a", "b", "a"], ab, vec![spec("t", 1.0)]),
            "leader_actions[2]: duplicate name \"a\" (same as leader_actions[0])"
        );
        assert_eq!(
            err(ab, &["x", " "], vec![spec("t", 1.0)]),
            "follower_actions[1]: empty name"
        );
        assert_eq!(
            err(ab, ab, vec![spec("t", 0.5), spec("t", 0.5)]),
            "types[1].name: duplicate name \"t\" (same as types[0].name)"
        );
        assert_eq!(
            err(ab, ab, vec![spec("t", 0.5), spec("u", -0.1)]),
            "types[1].prob: -0.1 is negative; a probability is in [0, 1]"
        );
        assert!(err(ab, ab, vec![spec("t", f64::NAN)]).starts_with("types[0].prob: NaN"));
        assert_eq!(
            err(ab, ab, vec![spec("t", 0.5), spec("u", 0.4)]),
            "types[*].prob: the probabilities sum to 0.9; they must sum to 1 (within 1e-9)"
        );
        let mut short = spec("u", 0.5);
        short.follower_payoff[0].pop();
        assert_eq!(
            err(ab, ab, vec![spec("t", 0.5), short]),
            "types[1].follower_payoff[0]: expected 2 values, found 1 (one per follower action)"
        );
        let mut rows = spec("t", 1.0);
        rows.leader_payoff.push(vec![0.0, 0.0]);
        assert_eq!(
            err(ab, ab, vec![rows]),
            "types[0].leader_payoff: expected 2 rows, found 3 (one per leader action)"
        );
        let mut huge = spec("t", 1.0);
        huge.follower_payoff[0][1] = -2e100;
        assert_eq!(
            err(ab, ab, vec![huge]),
            "types[0].follower_payoff[0][1]: -2e100 is beyond ±1e100, the largest payoff magnitude"
        );
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut t = spec("t", 1.0);
            t.leader_payoff[1][0] = bad;
            assert_eq!(
                err(ab, ab, vec![t]),
                format!("types[0].leader_payoff[1][0]: {bad} is not a finite number")
            );
        }
    }
}
