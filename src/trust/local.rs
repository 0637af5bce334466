//! From aggregated interactions to the local-trust matrix C (DESIGN.md §3).
//!
//! Per layer k: c_k(i,j) = max(s_k(i,j),0) / Σ_j max(s_k(i,j),0); a row without
//! positive trust is dangling. Cheap layers keep only the fraction
//! f = β + (1-β)·min(1, v(i,j)/τ) of each edge, v being the costly-layer volume
//! between i and j in either direction; the removed share joins the row's
//! deficit and so follows the pre-trust vector, which is what stops a ring that
//! only praises itself in a free layer from keeping that trust. Layers combine
//! as C = Σ_k λ_k C_k.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::matrix::{PullBuilder, TrustMatrix};
use crate::error::{params, Error, Result};
use crate::graph::MultiGraph;

/// Which layers are scored, how much each weighs, and the corroboration rule.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalTrustConfig {
    /// (index into `MultiGraph::layers`, λ_k, cheap?) in a fixed order; λ sum to 1.
    pub layers: Vec<ScoredLayer>,
    /// Indices of costly layers whose volume corroborates cheap edges.
    pub costly: Vec<usize>,
    pub beta: f64,
    pub tau: f64,
    /// Consistency gate per layer index: rater i's edges keep the fraction
    /// g_i (see `topics::consistency_gate`), the rest follows pre-trust.
    pub gates: BTreeMap<usize, Vec<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredLayer {
    pub index: usize,
    pub weight: f64,
    pub cheap: bool,
}

impl LocalTrustConfig {
    /// Every layer of `g`, equally weighted, no corroboration.
    pub fn uniform(g: &MultiGraph) -> Self {
        let w = 1.0 / g.layers.len().max(1) as f64;
        LocalTrustConfig {
            layers: (0..g.layers.len())
                .map(|index| ScoredLayer {
                    index,
                    weight: w,
                    cheap: false,
                })
                .collect(),
            costly: Vec::new(),
            beta: 1.0,
            tau: 1.0,
            gates: BTreeMap::new(),
        }
    }

    /// The same rule restricted to one layer with weight 1 (per-layer and
    /// per-topic vectors).
    pub fn single(&self, index: usize) -> Self {
        let cheap = self.layers.iter().any(|l| l.index == index && l.cheap);
        LocalTrustConfig {
            layers: vec![ScoredLayer {
                index,
                weight: 1.0,
                cheap,
            }],
            ..self.clone()
        }
    }

    pub fn validate(&self, g: &MultiGraph) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::param(
                params::LAYERS,
                "no layer selected for scoring",
            ));
        }
        if !(0.0..=1.0).contains(&self.beta) {
            let got = self.beta;
            return Err(Error::param_value(
                params::BETA,
                format!("must be in [0, 1], got {got}"),
            ));
        }
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            let got = self.tau;
            return Err(Error::param_value(
                params::TAU,
                format!("must be positive and finite, got {got}"),
            ));
        }
        if self
            .gates
            .values()
            .any(|v| v.len() != g.n() || v.iter().any(|x| !(0.0..=1.0).contains(x)))
        {
            return Err(Error::param(
                params::GATES,
                "consistency gate must give every agent a factor in [0, 1]",
            ));
        }
        for l in &self.layers {
            if l.index >= g.layers.len() || !(l.weight >= 0.0 && l.weight.is_finite()) {
                return Err(Error::param(params::LAYERS, "invalid layer selection"));
            }
        }
        Ok(())
    }
}

/// Builds C (trust) and D (distrust, row-normalised negative trust, no deficit).
pub fn build_matrices(
    g: &MultiGraph,
    cfg: &LocalTrustConfig,
) -> Result<(TrustMatrix, TrustMatrix)> {
    cfg.validate(g)?;
    let n = g.n();
    // Each target's entries go straight into its slots of the matrices (a
    // counting sort, see `PullBuilder`): count them first, at most one per
    // positive (negative) stored pair of each scored layer.
    let (mut pos_slots, mut neg_slots) = (vec![0u32; n], vec![0u32; n]);
    for sl in &cfg.layers {
        let layer = &g.layers[sl.index];
        for (&j, &s) in layer.col.iter().zip(&layer.trust) {
            if s > 0.0 {
                pos_slots[j as usize] += 1;
            } else if s < 0.0 {
                neg_slots[j as usize] += 1;
            }
        }
    }
    let pos_entries = PullBuilder::new(pos_slots)?;
    let neg_entries = PullBuilder::new(neg_slots)?;
    let mut deficit = vec![0.0f64; n];
    // Blocks of sources on all threads. A block runs the layers in order,
    // so each deficit sums its layers in the same order as on one thread,
    // and each target's entries are put in order by `finish` whatever order
    // they arrive in. Of several errors, the first in (layer, source)
    // order is reported, the one a single thread would meet first.
    let errors: Vec<(usize, usize, Error)> = deficit
        .par_chunks_mut(SOURCES_PER_TASK)
        .enumerate()
        .filter_map(|(b, block)| {
            let i0 = b * SOURCES_PER_TASK;
            for (l, sl) in cfg.layers.iter().enumerate() {
                let gate = cfg.gates.get(&sl.index);
                for (k, d) in block.iter_mut().enumerate() {
                    let row = SourceRow {
                        g,
                        cfg,
                        layer: sl,
                        gate,
                        i: i0 + k,
                    };
                    if let Err(e) = row.fill(d, &pos_entries, &neg_entries) {
                        return Some((l, i0 + k, e));
                    }
                }
            }
            None
        })
        .collect();
    if let Some((_, _, e)) = errors.into_iter().min_by_key(|&(l, i, _)| (l, i)) {
        return Err(e);
    }
    let trust = pos_entries.finish(deficit)?;
    let distrust = neg_entries.finish(vec![0.0; n])?;
    Ok((trust, distrust))
}

/// Sources per parallel task of [`build_matrices`].
const SOURCES_PER_TASK: usize = 1 << 12;

/// One source's row of one scored layer.
struct SourceRow<'a> {
    g: &'a MultiGraph,
    cfg: &'a LocalTrustConfig,
    layer: &'a ScoredLayer,
    /// The layer's gate, if it has one (`cfg.gates`, looked up once per
    /// layer and block rather than per source).
    gate: Option<&'a Vec<f64>>,
    i: usize,
}

impl SourceRow<'_> {
    /// Puts the row's normalised entries into the matrices and adds what it
    /// leaves to the pre-trust (no positive trust, or trust cut by
    /// corroboration or a gate) to `d`, the source's deficit.
    fn fill(
        &self,
        d: &mut f64,
        pos_entries: &PullBuilder,
        neg_entries: &PullBuilder,
    ) -> Result<()> {
        let (g, cfg, sl, i) = (self.g, self.cfg, self.layer, self.i);
        let layer = &g.layers[sl.index];
        let lambda = sl.weight;
        let (mut pos, mut neg) = (0.0f64, 0.0f64);
        for (_, s, _) in layer.row(i) {
            if s > 0.0 {
                pos += s;
            } else if s < 0.0 {
                neg -= s;
            }
        }
        if !(pos.is_finite() && neg.is_finite()) {
            // Finite pair sums can still overflow across a row; dividing by
            // an infinite total would silently zero the rater's trust.
            return Err(Error::invalid(format!(
                "layer `{}`: the trust `{}` gives its ratees adds up to {:e}, beyond what a \
                 64-bit float holds (~1.8e308); scale the weights down",
                layer.name,
                g.agents.name(i as u32),
                if pos.is_finite() { -neg } else { pos }
            )));
        }
        if neg > 0.0 {
            for (j, s, _) in layer.row(i) {
                if s < 0.0 {
                    neg_entries.push(i as u32, j, lambda * (-s / neg))?;
                }
            }
        }
        if pos <= 0.0 {
            *d += lambda;
            return Ok(());
        }
        let gate = self.gate;
        let mut cut = 0.0f64;
        for (j, s, _) in layer.row(i) {
            if s <= 0.0 {
                continue;
            }
            let c = s / pos;
            let mut f = if sl.cheap {
                corroboration(g, cfg, i as u32, j)
            } else {
                1.0
            };
            if let Some(gate) = gate {
                f *= gate[i];
            }
            if f < 1.0 {
                cut += (1.0 - f) * c;
            }
            pos_entries.push(i as u32, j, lambda * f * c)?;
        }
        if cut > 0.0 {
            *d += lambda * cut;
        }
        Ok(())
    }
}

/// f = β + (1-β)·min(1, v(i,j)/τ), v summed over costly layers in order, i→j then j→i.
fn corroboration(g: &MultiGraph, cfg: &LocalTrustConfig, i: u32, j: u32) -> f64 {
    let mut v = 0.0f64;
    for &k in &cfg.costly {
        let l = &g.layers[k];
        v += l.volume_of(i, j);
        v += l.volume_of(j, i);
    }
    cfg.beta + (1.0 - cfg.beta) * (v / cfg.tau).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{AgentIndex, GraphBuilder};

    fn graph(rows: &[(u32, u32, u32, f64, f64)], layers: &[&str]) -> MultiGraph {
        let agents = AgentIndex::from_names(["a", "b", "c", "d"]);
        let mut b = GraphBuilder::new(agents, layers.iter().map(|s| s.to_string()).collect());
        for &(l, s, d, t, v) in rows {
            b.push(l, s, d, t, v);
        }
        b.build().unwrap()
    }

    fn dense(m: &TrustMatrix) -> Vec<Vec<f64>> {
        let n = m.n();
        let mut c = vec![vec![0.0; n]; n];
        for (j, w) in m.ptr().windows(2).enumerate() {
            for e in w[0] as usize..w[1] as usize {
                c[m.sources()[e] as usize][j] += m.weight(e);
            }
        }
        c
    }

    #[test]
    fn a_row_whose_total_overflows_is_an_error_naming_the_rater() {
        // Each pair is finite; the row's total is not, which would divide
        // every edge of `b` down to zero.
        let g = graph(&[(0, 1, 0, 1e308, 1e308), (0, 1, 2, 1e308, 1e308)], &["x"]);
        let e = build_matrices(&g, &LocalTrustConfig::uniform(&g)).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("layer `x`: the trust `b` gives"), "{e}");
        assert!(e.contains("inf"), "{e}");
    }

    #[test]
    fn of_several_overflowing_rows_the_first_in_layer_then_source_order_is_reported() {
        // Sources in different parallel blocks: layer `y` (the second) has
        // an overflowing row at source 5, layer `x` at sources 9000 and
        // 6000; a single thread meets x's 6000 first.
        let n = 3 * SOURCES_PER_TASK;
        let agents = AgentIndex::from_names((0..n).map(|i| format!("r{i}")));
        let id = |i: usize| agents.id(&format!("r{i}")).unwrap();
        let mut b = GraphBuilder::new(agents.clone(), vec!["x".into(), "y".into()]);
        for (l, src) in [(1, 5), (0, 9000), (0, 6000)] {
            b.push(l, id(src), id(src + 1), 1e308, 1.0);
            b.push(l, id(src), id(src + 2), 1e308, 1.0);
        }
        let g = b.build().unwrap();
        for threads in [1, 2, 4] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let e = pool
                .install(|| build_matrices(&g, &LocalTrustConfig::uniform(&g)))
                .unwrap_err()
                .to_string();
            assert!(e.contains("layer `x`: the trust `r6000` gives"), "{e}");
        }
    }

    #[test]
    fn rows_normalise_positive_trust_and_dangle_otherwise() {
        // a->b 3, a->c 1, a->d -2 ; b->a -1 only (dangling) ; c, d no rows.
        let g = graph(
            &[
                (0, 0, 1, 3.0, 3.0),
                (0, 0, 2, 1.0, 1.0),
                (0, 0, 3, -2.0, 2.0),
                (0, 1, 0, -1.0, 1.0),
            ],
            &["x"],
        );
        let (c, d) = build_matrices(&g, &LocalTrustConfig::uniform(&g)).unwrap();
        let c = dense(&c);
        assert_eq!(c[0], vec![0.0, 0.75, 0.25, 0.0]);
        let mut deficit = vec![0.0, 1.0, 1.0, 1.0];
        deficit[0] = 0.0;
        let (cm, _) = build_matrices(&g, &LocalTrustConfig::uniform(&g)).unwrap();
        assert_eq!(cm.deficit(), deficit.as_slice());
        let d = dense(&d);
        assert_eq!(d[0], vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(d[1], vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn two_layers_combine_by_weight() {
        // layer x: a->b ; layer y: a->c. λ = 0.25 / 0.75
        let g = graph(&[(0, 0, 1, 1.0, 1.0), (1, 0, 2, 2.0, 2.0)], &["x", "y"]);
        let cfg = LocalTrustConfig {
            layers: vec![
                ScoredLayer {
                    index: 0,
                    weight: 0.25,
                    cheap: false,
                },
                ScoredLayer {
                    index: 1,
                    weight: 0.75,
                    cheap: false,
                },
            ],
            costly: vec![],
            beta: 1.0,
            tau: 1.0,
            gates: BTreeMap::new(),
        };
        let (c, _) = build_matrices(&g, &cfg).unwrap();
        assert_eq!(dense(&c)[0], vec![0.0, 0.25, 0.75, 0.0]);
        // b, c, d dangle in both layers: deficit 0.25 + 0.75.
        assert_eq!(c.deficit(), &[0.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn cheap_edges_keep_beta_plus_corroborated_share() {
        // review (cheap): a->b, a->c equally. payment (costly): b->a volume 0.5 (reverse direction counts).
        let g = graph(
            &[
                (0, 0, 1, 1.0, 1.0),
                (0, 0, 2, 1.0, 1.0),
                (1, 1, 0, 1.0, 0.5),
            ],
            &["review", "payment"],
        );
        let cfg = LocalTrustConfig {
            layers: vec![ScoredLayer {
                index: 0,
                weight: 1.0,
                cheap: true,
            }],
            costly: vec![1],
            beta: 0.2,
            tau: 1.0,
            gates: BTreeMap::new(),
        };
        let (c, _) = build_matrices(&g, &cfg).unwrap();
        let fb = 0.2 + 0.8 * 0.5;
        let fc = 0.2;
        assert_eq!(dense(&c)[0], vec![0.0, fb * 0.5, fc * 0.5, 0.0]);
        let cut = (1.0 - fb) * 0.5 + (1.0 - fc) * 0.5;
        assert_eq!(c.deficit()[0], cut);
    }
}
