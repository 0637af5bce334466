//! How a peer picks a provider among the candidates that answered its query.
//!
//! EigenTrust's probabilistic selection (Kamvar, Schlosser, Garcia-Molina,
//! WWW 2003, §5 "Probabilistic peer selection" and the simulations of §7):
//! download from a candidate with probability proportional to its global
//! trust, and with a fixed probability (the paper's 10%) pick uniformly among
//! the candidates whose trust is zero instead, so newcomers can earn
//! reputation at all. Always taking the most trusted candidate would pile all
//! load on a few peers and never let a zero-trust peer be tried.

/// The paper's exploration share: 10% of choices go to zero-trust candidates.
pub const DEFAULT_EXPLORATION: f64 = 0.1;

/// How a peer turns trust into a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rule {
    /// With probability proportional to trust ([`choose`]), the EigenTrust
    /// paper's rule: load spreads, a modest edge in trust is a modest edge
    /// in business.
    #[default]
    Proportional,
    /// The most trusted candidate ([`choose_top`]), as a ranking shown to a
    /// user or an orchestrator picking the best-rated agent does: a small
    /// edge in trust wins the query.
    Top,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Proportional => "proportional",
            Rule::Top => "top",
        }
    }

    /// The chosen candidate under this rule; see [`choose`].
    pub fn pick(
        self,
        candidates: &[usize],
        trust: Option<&[f64]>,
        exploration: f64,
        u_explore: f64,
        u_pick: f64,
    ) -> usize {
        match self {
            Rule::Proportional => choose(candidates, trust, exploration, u_explore, u_pick),
            Rule::Top => choose_top(candidates, trust, exploration, u_explore, u_pick),
        }
    }
}

/// As [`choose`] (exploration, uniform without trust), but otherwise the
/// candidate of highest trust; ties go to the earliest in `candidates`,
/// which callers draw in random order.
pub fn choose_top(
    candidates: &[usize],
    trust: Option<&[f64]>,
    exploration: f64,
    u_explore: f64,
    u_pick: f64,
) -> usize {
    let Some(t) = trust else {
        return choose(candidates, None, exploration, u_explore, u_pick);
    };
    if u_explore < exploration || candidates.iter().all(|&c| t[c] <= 0.0) {
        return choose(candidates, trust, exploration, u_explore, u_pick);
    }
    let mut best = candidates[0];
    for &c in &candidates[1..] {
        if t[c] > t[best] {
            best = c;
        }
    }
    best
}

/// The chosen candidate (an element of `candidates`, which is not empty).
///
/// `trust` is the model's global trust vector over all peers, `None` for the
/// `random` model (uniform choice, no exploration). `u_explore` and `u_pick`
/// are uniform in [0, 1); both are always drawn by the caller, whatever the
/// rule needs, so every model consumes the random stream alike and models
/// compared on one seed see the same queries and candidates.
///
/// With trust: with probability `exploration`, uniform among the candidates
/// whose trust is exactly 0 (the power iteration keeps exact zeros for peers
/// no trusted peer rates positively) when there are any; otherwise, or when
/// there are none, proportional to trust; uniform when all candidates have
/// zero trust.
pub fn choose(
    candidates: &[usize],
    trust: Option<&[f64]>,
    exploration: f64,
    u_explore: f64,
    u_pick: f64,
) -> usize {
    let uniform = |set: &[usize]| set[((u_pick * set.len() as f64) as usize).min(set.len() - 1)];
    let Some(t) = trust else {
        return uniform(candidates);
    };
    if u_explore < exploration {
        let zero: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&c| t[c] == 0.0)
            .collect();
        if !zero.is_empty() {
            return uniform(&zero);
        }
    }
    let total: f64 = candidates.iter().map(|&c| t[c].max(0.0)).sum();
    if total <= 0.0 {
        return uniform(candidates);
    }
    let target = u_pick * total;
    let mut sum = 0.0;
    let mut last = candidates[0];
    for &c in candidates {
        let w = t[c].max(0.0);
        if w > 0.0 {
            sum += w;
            last = c;
            if sum > target {
                return c;
            }
        }
    }
    // Rounding can leave the running sum a hair under the target.
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_uniform_over_candidates() {
        let c = [4, 7, 9];
        assert_eq!(choose(&c, None, 0.1, 0.0, 0.0), 4);
        assert_eq!(choose(&c, None, 0.1, 0.0, 0.5), 7);
        assert_eq!(choose(&c, None, 0.1, 0.0, 0.999), 9);
    }

    #[test]
    fn proportional_to_trust_and_exploration_goes_to_zero_trust() {
        let t = [0.0, 0.25, 0.75, 0.0];
        let c = [0, 1, 2, 3];
        // No exploration: 0.25 of the mass on 1, 0.75 on 2, none on zeros.
        assert_eq!(choose(&c, Some(&t), 0.1, 0.5, 0.2), 1);
        assert_eq!(choose(&c, Some(&t), 0.1, 0.5, 0.3), 2);
        assert_eq!(choose(&c, Some(&t), 0.1, 0.5, 0.999_999), 2);
        // Exploration: uniform over the zero-trust candidates 0 and 3.
        assert_eq!(choose(&c, Some(&t), 0.1, 0.05, 0.2), 0);
        assert_eq!(choose(&c, Some(&t), 0.1, 0.05, 0.7), 3);
        // Exploring with no zero-trust candidate falls back to trust.
        assert_eq!(choose(&[1, 2], Some(&t), 0.1, 0.05, 0.1), 1);
        // All candidates at zero trust: uniform.
        assert_eq!(choose(&[0, 3], Some(&t), 0.1, 0.5, 0.6), 3);
    }

    #[test]
    fn top_takes_the_most_trusted_and_explores_alike() {
        let t = [0.0, 0.25, 0.75, 0.0, 0.75];
        let c = [0, 1, 2, 3, 4];
        // Whatever u_pick: the highest trust, the first of a tie.
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(Rule::Top.pick(&c, Some(&t), 0.1, 0.5, u), 2);
        }
        assert_eq!(Rule::Top.pick(&[4, 2], Some(&t), 0.1, 0.5, 0.0), 4);
        // Exploration and the no-trust cases follow the proportional rule.
        assert_eq!(Rule::Top.pick(&c, Some(&t), 0.1, 0.05, 0.7), 3);
        assert_eq!(Rule::Top.pick(&[0, 3], Some(&t), 0.1, 0.5, 0.6), 3);
        assert_eq!(Rule::Top.pick(&c, None, 0.1, 0.5, 0.5), 2);
    }
}
