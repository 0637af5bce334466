//! Trust percentiles and tiers from one score per agent (docs/mechanism.md,
//! "Trust-tiered contracts"). Both are functions of the ranks alone, with
//! ties treated alike, so they do not depend on the agents' order:
//!
//! - `L_i` agents score strictly below agent i and `E_i` (i included) score
//!   the same; of n agents,
//! - h_i = (L_i + E_i / 2) / n, the percentile rank (mid-rank for ties), in
//!   (0, 1);
//! - tier(i) = ⌊T · L_i / n⌋ (0-based, 0 = lowest trust): the quantile bucket
//!   where i's block of ties starts, so tied agents share a tier; a block
//!   that spans a whole bucket leaves the next tier empty.

/// Agents' percentiles and tiers, and each tier's members.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiering {
    /// h_i per agent, in the agents' order.
    pub percentile: Vec<f64>,
    /// Tier per agent (0 = lowest trust).
    pub tier_of: Vec<u32>,
    /// Per tier, its members in the agents' order.
    pub members: Vec<Vec<u32>>,
}

/// Percentiles and `tiers` tiers of `scores` (finite, one zero: see
/// `ScoreVector`). `tiers` ≥ 1 and `scores.len()` < 2³² are the caller's
/// checks.
pub fn assign(scores: &[f64], tiers: usize) -> Tiering {
    let n = scores.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    // Stable, so the result never depends on anything but the scores.
    order.sort_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
    let mut percentile = vec![0.0; n];
    let mut tier_of = vec![0u32; n];
    let mut start = 0;
    while start < n {
        let s = scores[order[start] as usize];
        let mut end = start + 1;
        while end < n && scores[order[end] as usize] == s {
            end += 1;
        }
        // Exact integers: 2·L + E over 2n.
        let h = (2 * start + (end - start)) as f64 / (2 * n) as f64;
        let t = (tiers as u128 * start as u128 / n as u128) as u32;
        for &i in &order[start..end] {
            percentile[i as usize] = h;
            tier_of[i as usize] = t;
        }
        start = end;
    }
    let mut members = vec![Vec::new(); tiers];
    for (i, &t) in tier_of.iter().enumerate() {
        members[t as usize].push(i as u32);
    }
    Tiering {
        percentile,
        tier_of,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_with_ties_kept_together() {
        // Eight distinct scores, four tiers: two agents each.
        let s: Vec<f64> = vec![8.0, 1.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0];
        let t = assign(&s, 4);
        assert_eq!(t.tier_of, [3, 0, 0, 3, 1, 2, 1, 2]);
        assert_eq!(t.members, [vec![1, 2], vec![4, 6], vec![5, 7], vec![0, 3]]);
        assert_eq!(t.percentile[1], 1.0 / 16.0);
        assert_eq!(t.percentile[0], 15.0 / 16.0);

        // Five tied at the bottom of eight: one tier (the first), h = 5/16;
        // the next block starts at L = 5, bucket ⌊4·5/8⌋ = 2, so tier 1 is
        // empty.
        let s = vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0];
        let t = assign(&s, 4);
        assert_eq!(t.tier_of, [0, 0, 0, 0, 0, 2, 3, 3]);
        assert!(t.members[1].is_empty());
        assert!(t.percentile[..5].iter().all(|&h| h == 5.0 / 16.0));
        assert_eq!(t.percentile[7], 15.0 / 16.0);

        // All tied: one tier, h = 1/2; one agent: h = 1/2.
        let t = assign(&[3.0; 5], 3);
        assert_eq!(t.tier_of, [0; 5]);
        assert!(t.percentile.iter().all(|&h| h == 0.5));
        assert_eq!(assign(&[1.0], 4).percentile, [0.5]);
        // More tiers than agents: tiers stay empty, the top agent tops out.
        let t = assign(&[1.0, 2.0], 5);
        assert_eq!(t.tier_of, [0, 2]);
        assert_eq!(t.members.len(), 5);
    }

    #[test]
    fn the_order_of_the_agents_does_not_matter() {
        let s = [0.3, 0.1, 0.3, 0.9, 0.1, 0.5, 0.7];
        let a = assign(&s, 3);
        let perm = [6, 2, 0, 5, 1, 4, 3];
        let p: Vec<f64> = perm.iter().map(|&i| s[i]).collect();
        let b = assign(&p, 3);
        for (k, &i) in perm.iter().enumerate() {
            assert_eq!(a.tier_of[i], b.tier_of[k]);
            assert_eq!(a.percentile[i], b.percentile[k]);
        }
    }
}
