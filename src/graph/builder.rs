//! Deterministic aggregation of contributions into per-layer CSR.
//!
//! Floating-point addition is not associative, so a hash aggregate whose
//! grouping or partitioning depends on threads or files gives scores that
//! differ in the last bits between runs. We sort every contribution by
//! (layer, src, dst, value, volume) under IEEE total order and then sum each
//! group front to back: the sorted sequence is unique for a given multiset of
//! rows, so the sums are too, whatever the input order or thread count.

use rayon::prelude::*;

use super::{AgentIndex, LayerGraph, MultiGraph};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
struct Contribution {
    layer: u32,
    src: u32,
    dst: u32,
    trust: f64,
    volume: f64,
}

impl Contribution {
    fn cmp_key(&self, o: &Self) -> std::cmp::Ordering {
        (self.layer, self.src, self.dst)
            .cmp(&(o.layer, o.src, o.dst))
            .then(self.trust.total_cmp(&o.trust))
            .then(self.volume.total_cmp(&o.volume))
    }
}

/// Collects contributions, then builds a [`MultiGraph`].
#[derive(Debug)]
pub struct GraphBuilder {
    agents: AgentIndex,
    layer_names: Vec<String>,
    items: Vec<Contribution>,
}

impl GraphBuilder {
    /// `layer_names` fixes the order of layers in the graph (and so in every
    /// later sum over layers).
    pub fn new(agents: AgentIndex, layer_names: Vec<String>) -> Self {
        GraphBuilder {
            agents,
            layer_names,
            items: Vec::new(),
        }
    }

    pub fn agents(&self) -> &AgentIndex {
        &self.agents
    }

    pub fn reserve(&mut self, n: usize) {
        self.items.reserve(n);
    }

    /// Adds one interaction's contribution: `trust` = weight·outcome·decay,
    /// `volume` = weight·decay.
    pub fn push(&mut self, layer: u32, src: u32, dst: u32, trust: f64, volume: f64) {
        debug_assert!((layer as usize) < self.layer_names.len());
        self.items.push(Contribution {
            layer,
            src,
            dst,
            trust,
            volume,
        });
    }

    pub fn build(mut self) -> Result<MultiGraph> {
        let n = self.agents.len();
        self.items.par_sort_unstable_by(|a, b| a.cmp_key(b));
        let mut layers: Vec<LayerGraph> = self
            .layer_names
            .iter()
            .map(|name| LayerGraph {
                name: name.clone(),
                row_ptr: vec![0; n + 1],
                col: Vec::new(),
                trust: Vec::new(),
                volume: Vec::new(),
            })
            .collect();
        let items = &self.items;
        let mut e = 0;
        while e < items.len() {
            let first = items[e];
            let (mut s, mut v) = (0.0f64, 0.0f64);
            while e < items.len()
                && (items[e].layer, items[e].src, items[e].dst)
                    == (first.layer, first.src, first.dst)
            {
                s += items[e].trust;
                v += items[e].volume;
                e += 1;
            }
            let layer = &mut layers[first.layer as usize];
            if !(s.is_finite() && v.is_finite()) {
                // Each contribution is finite (weights are checked on read),
                // but their sum can overflow; a non-finite trust would turn
                // every score into NaN.
                return Err(Error::invalid(format!(
                    "layer `{}`: the interactions from `{}` to `{}` add up to trust {s:e} and \
                     volume {v:e}, beyond what a 64-bit float holds (~1.8e308); scale the weights down",
                    layer.name,
                    self.agents.name(first.src),
                    self.agents.name(first.dst)
                )));
            }
            if layer.col.len() >= u32::MAX as usize {
                return Err(Error::invalid(format!(
                    "layer `{}` has more than {} distinct (src, dst) pairs",
                    layer.name,
                    u32::MAX
                )));
            }
            layer.row_ptr[first.src as usize + 1] += 1;
            layer.col.push(first.dst);
            layer.trust.push(s);
            layer.volume.push(v);
        }
        for layer in &mut layers {
            for i in 0..n {
                layer.row_ptr[i + 1] += layer.row_ptr[i];
            }
        }
        Ok(MultiGraph {
            agents: self.agents,
            layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(rows: &[(u32, u32, u32, f64, f64)]) -> MultiGraph {
        let agents = AgentIndex::from_names(["a", "b", "c"]);
        let mut b = GraphBuilder::new(agents, vec!["x".into(), "y".into()]);
        for &(l, s, d, t, v) in rows {
            b.push(l, s, d, t, v);
        }
        b.build().unwrap()
    }

    #[test]
    fn sums_per_layer_and_pair() {
        let g = build(&[
            (0, 0, 1, 1.0, 2.0),
            (0, 0, 1, -0.5, 1.0),
            (1, 0, 1, 0.25, 1.0),
            (0, 2, 0, 1.0, 1.0),
            (0, 0, 2, 1.0, 1.0),
        ]);
        let x = &g.layers[0];
        assert_eq!(x.row_ptr, vec![0, 2, 2, 3]);
        assert_eq!(x.col, vec![1, 2, 0]);
        assert_eq!(x.trust, vec![0.5, 1.0, 1.0]);
        assert_eq!(x.volume, vec![3.0, 1.0, 1.0]);
        assert_eq!(x.volume_of(0, 2), 1.0);
        assert_eq!(x.volume_of(1, 2), 0.0);
        let y = &g.layers[1];
        assert_eq!(y.col, vec![1]);
        assert_eq!(y.trust, vec![0.25]);
    }

    #[test]
    fn overflowing_sums_are_errors_naming_the_pair() {
        let agents = AgentIndex::from_names(["a", "b"]);
        let mut b = GraphBuilder::new(agents, vec!["pay".into()]);
        b.push(0, 0, 1, 1e308, 1e308);
        b.push(0, 0, 1, 1e308, 1e308);
        let e = b.build().unwrap_err().to_string();
        assert!(
            e.contains("layer `pay`: the interactions from `a` to `b`"),
            "{e}"
        );
        assert!(e.contains("inf"), "{e}");
    }

    #[test]
    fn sums_do_not_depend_on_input_order() {
        // Values chosen so that naive left-to-right sums differ by order.
        let vals: [f64; 6] = [1e16, 1.0, -1e16, 3.0, 1e-3, 2.5e15];
        let rows: Vec<_> = vals.iter().map(|&v| (0, 0, 1, v, v.abs())).collect();
        let mut rev = rows.clone();
        rev.reverse();
        let mut rot = rows.clone();
        rot.rotate_left(2);
        let g0 = build(&rows);
        assert_eq!(g0.layers[0].trust, build(&rev).layers[0].trust);
        assert_eq!(g0.layers[0].trust, build(&rot).layers[0].trust);
    }
}
