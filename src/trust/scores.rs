//! Scores as a value other stages consume: agent names, scores, ranks.

use crate::graph::AgentIndex;

/// One trust vector over named agents.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub agents: Vec<String>,
    pub scores: Vec<f64>,
}

impl Scores {
    pub fn new(agents: &AgentIndex, scores: Vec<f64>) -> Self {
        Scores {
            agents: agents.names().map(String::from).collect(),
            scores,
        }
    }

    /// 1-based rank per agent: highest score first, ties by agent id (the canonical name
    /// order), so ranks are a total order and reproducible.
    pub fn ranks(&self) -> Vec<u32> {
        ranks(&self.scores)
    }

    /// Indices of agents, best first.
    pub fn order(&self) -> Vec<usize> {
        order(&self.scores)
    }
}

/// Indices best first, ties by index.
pub fn order(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Ids of the `top` highest of n scores, best first, ties by id, without
/// sorting all n (the flat-tail rule runs this every iteration).
pub fn top_ids(n: usize, top: usize, score: impl Fn(usize) -> f64) -> Vec<u32> {
    let cmp = |a: &u32, b: &u32| {
        score(*b as usize)
            .total_cmp(&score(*a as usize))
            .then(a.cmp(b))
    };
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let top = top.min(n);
    if top < n {
        idx.select_nth_unstable_by(top, cmp);
        idx.truncate(top);
    }
    idx.sort_unstable_by(cmp);
    idx
}

/// As [`top_ids`], looking only at scores of at least `floor`; `None` when
/// fewer than `top` (or `n`, if smaller) scores reach it. When the caller
/// knows at least `top` scores reach the floor, the result is exactly
/// [`top_ids`]'s: the top is among them, and they are ordered alike.
pub fn top_ids_from(
    n: usize,
    top: usize,
    floor: f64,
    score: impl Fn(usize) -> f64,
) -> Option<Vec<u32>> {
    let top = top.min(n);
    let mut idx: Vec<u32> = (0..n as u32)
        .filter(|&i| score(i as usize) >= floor)
        .collect();
    if idx.len() < top {
        return None;
    }
    let cmp = |a: &u32, b: &u32| {
        score(*b as usize)
            .total_cmp(&score(*a as usize))
            .then(a.cmp(b))
    };
    if top < idx.len() {
        idx.select_nth_unstable_by(top, cmp);
        idx.truncate(top);
    }
    idx.sort_unstable_by(cmp);
    Some(idx)
}

/// 1-based ranks, ties by index.
pub fn ranks(scores: &[f64]) -> Vec<u32> {
    let mut r = vec![0u32; scores.len()];
    for (pos, i) in order(scores).into_iter().enumerate() {
        r[i] = pos as u32 + 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_from_a_floor_is_the_top() {
        let v: Vec<f64> = (0..500)
            .map(|i| ((i * 7919) % 503) as f64 / 503.0)
            .collect();
        let full = top_ids(v.len(), 20, |i| v[i]);
        let nth = v[*full.last().unwrap() as usize];
        for floor in [nth, nth - 0.01, 0.0] {
            assert_eq!(
                top_ids_from(v.len(), 20, floor, |i| v[i]),
                Some(full.clone())
            );
        }
        assert_eq!(top_ids_from(v.len(), 20, nth + 1e-9, |i| v[i]), None);
    }

    #[test]
    fn ranks_break_ties_by_id() {
        assert_eq!(ranks(&[0.2, 0.5, 0.2, 0.1]), vec![2, 1, 3, 4]);
        let s = [0.2, 0.5, 0.2, 0.1, 0.9];
        assert_eq!(top_ids(5, 3, |i| s[i]), vec![4, 1, 0]);
        assert_eq!(top_ids(5, 9, |i| s[i]), vec![4, 1, 0, 2, 3]);
    }
}
