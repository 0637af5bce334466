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
            agents: agents.names().to_vec(),
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
    fn ranks_break_ties_by_id() {
        assert_eq!(ranks(&[0.2, 0.5, 0.2, 0.1]), vec![2, 1, 3, 4]);
    }
}
