//! The per-topic parts of MG-EigenTrust (DESIGN.md §3 "Topics", after the
//! DG-PAN paper): stake-weighted dynamic pre-trust with slashing, the
//! cross-topic cold-start prior, and the consistency gate. The iteration itself
//! is the engine's; these functions only shape its inputs.

use crate::error::{params, Error, Result};
use crate::graph::LayerGraph;

/// p = σ·p_seed + (1-σ)·stake/Σstake, with slashed agents removed from both
/// terms (a proven fraudster keeps no pre-trust at all). Without stake, or
/// with no stake left after slashing, p = the slashed-free seed.
pub fn dynamic_pretrust(
    seed: &[f64],
    stake: Option<&[f64]>,
    slashed: &[bool],
    sigma: f64,
) -> Result<Vec<f64>> {
    if !(0.0..=1.0).contains(&sigma) {
        return Err(Error::param_value(
            params::SIGMA,
            format!("must be in [0, 1], got {sigma}"),
        ));
    }
    let clean = |v: &[f64]| -> Option<Vec<f64>> {
        // Untouched distributions are returned as given, not renormalised, so
        // that no slashing leaves the seed bit-identical to plain scoring.
        let untouched = !v.iter().zip(slashed).any(|(x, s)| *s && *x != 0.0);
        if untouched && (v.iter().sum::<f64>() - 1.0).abs() < 1e-9 {
            return Some(v.to_vec());
        }
        let kept: Vec<f64> = v
            .iter()
            .zip(slashed)
            .map(|(x, s)| if *s { 0.0 } else { *x })
            .collect();
        let total: f64 = kept.iter().sum();
        (total > 0.0).then(|| kept.iter().map(|x| x / total).collect())
    };
    let seed = clean(seed)
        .ok_or_else(|| Error::invalid("every pre-trusted agent is slashed: no pre-trust left"))?;
    match stake.and_then(clean) {
        Some(st) => Ok(seed
            .iter()
            .zip(&st)
            .map(|(p, s)| sigma * p + (1.0 - sigma) * s)
            .collect()),
        None => Ok(seed),
    }
}

/// p'_k = normalise((1-ρ)·p_k + ρ·Σ_{l≠k} ŵ(k,l)·t_l), ŵ(k,·) being row k of
/// the similarity matrix without its diagonal, normalised to sum 1, so ρ is
/// exactly the share of the prior. A topic with no similar topic keeps p_k.
pub fn cold_start_prior(
    p: &[f64],
    k: usize,
    w: &[Vec<f64>],
    first: &[Vec<f64>],
    rho: f64,
) -> Vec<f64> {
    let total: f64 = (0..first.len()).filter(|&l| l != k).map(|l| w[k][l]).sum();
    if rho == 0.0 || total <= 0.0 {
        return p.to_vec();
    }
    let mut v: Vec<f64> = p.iter().map(|x| (1.0 - rho) * x).collect();
    for (l, t) in first.iter().enumerate() {
        if l == k || w[k][l] == 0.0 {
            continue;
        }
        let c = rho * w[k][l] / total;
        for (vi, ti) in v.iter_mut().zip(t) {
            *vi += c * ti;
        }
    }
    let s: f64 = v.iter().sum();
    v.iter().map(|x| x / s).collect()
}

/// Uniform similarity: every other topic counts equally.
pub fn uniform_similarity(topics: usize) -> Vec<Vec<f64>> {
    vec![vec![1.0; topics]; topics]
}

/// Consistency gate g_i in [0, 1] per rater, for one topic.
///
/// o(i,j) = s(i,j)/v(i,j) is i's weighted mean outcome on j (pairs with zero
/// volume have no opinion). For each ratee j with at least two raters, the
/// consensus seen by rater i is the mean of the *other* raters' o(·,j) (leave
/// one out, so a rater cannot pull the consensus towards itself), and
///
/// ```text
/// g_i = 1 - mean_j |o(i,j) - consensus_{-i}(j)| / 2
/// ```
///
/// over those ratees; a rater with no such ratee has g_i = 1.
pub fn consistency_gate(layer: &LayerGraph, n: usize) -> Vec<f64> {
    let opinion = |e: usize| (layer.volume[e] > 0.0).then(|| layer.trust[e] / layer.volume[e]);
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0u32; n];
    for i in 0..n {
        for e in layer.row_ptr[i] as usize..layer.row_ptr[i + 1] as usize {
            if let Some(o) = opinion(e) {
                let j = layer.col[e] as usize;
                sum[j] += o;
                count[j] += 1;
            }
        }
    }
    (0..n)
        .map(|i| {
            let (mut dis, mut m) = (0.0f64, 0u32);
            for e in layer.row_ptr[i] as usize..layer.row_ptr[i + 1] as usize {
                let j = layer.col[e] as usize;
                if let (Some(o), true) = (opinion(e), count[j] >= 2) {
                    let consensus = (sum[j] - o) / (count[j] - 1) as f64;
                    dis += (o - consensus).abs() / 2.0;
                    m += 1;
                }
            }
            if m == 0 {
                1.0
            } else {
                (1.0 - dis / m as f64).clamp(0.0, 1.0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{AgentIndex, GraphBuilder};

    #[test]
    fn stake_mixes_with_seed_and_slashing_removes_mass() {
        let seed = vec![0.25; 4];
        let stake = vec![3.0, 1.0, 0.0, 4.0];
        let p = dynamic_pretrust(&seed, Some(&stake), &[false; 4], 0.5).unwrap();
        assert_eq!(
            p,
            vec![
                0.125 + 0.5 * 0.375,
                0.125 + 0.5 * 0.125,
                0.125,
                0.125 + 0.5 * 0.5
            ]
        );
        let slashed = [false, false, false, true];
        let p = dynamic_pretrust(&seed, Some(&stake), &slashed, 0.5).unwrap();
        assert_eq!(p[3], 0.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(p[0], 0.5 / 3.0 + 0.5 * 0.75);
        // No stake left: seed only.
        let p = dynamic_pretrust(&seed, Some(&[0.0, 0.0, 0.0, 5.0]), &slashed, 0.5).unwrap();
        assert_eq!(p, vec![1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0]);
        assert!(dynamic_pretrust(&[1.0, 0.0], None, &[true, false], 0.5).is_err());
    }

    #[test]
    fn prior_blends_other_topics() {
        let p = vec![0.5, 0.5, 0.0];
        let first = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 0.0, 1.0],
            vec![0.0, 1.0, 0.0],
        ];
        let w = vec![vec![1.0, 3.0, 1.0], vec![1.0; 3], vec![1.0; 3]];
        let v = cold_start_prior(&p, 0, &w, &first, 0.2);
        // 0.8·p + 0.2·(0.75·t1 + 0.25·t2)
        assert_eq!(v, vec![0.4, 0.4 + 0.2 * 0.25, 0.2 * 0.75]);
        assert_eq!(cold_start_prior(&p, 0, &w, &first[..1], 0.2), p);
    }

    #[test]
    fn rater_who_contradicts_everyone_loses_weight() {
        // Ratees x, y are rated +1 by a, b, c; d rates both -1.
        let agents = AgentIndex::from_names(["a", "b", "c", "d", "x", "y"]);
        let mut g = GraphBuilder::new(agents, vec!["t".into()]);
        for r in 0..4u32 {
            let o = if r == 3 { -1.0 } else { 1.0 };
            for ratee in [4u32, 5] {
                g.push(0, r, ratee, o, 1.0);
            }
        }
        let g = g.build().unwrap();
        let gate = consistency_gate(&g.layers[0], 6);
        // a: consensus of others on x = (1 + 1 - 1)/3 = 1/3 → |1 - 1/3|/2 = 1/3 → g = 2/3.
        assert!((gate[0] - 2.0 / 3.0).abs() < 1e-15);
        // d: consensus 1 → |-1 - 1|/2 = 1 → g = 0.
        assert_eq!(gate[3], 0.0);
        assert_eq!(gate[4], 1.0);
    }
}
