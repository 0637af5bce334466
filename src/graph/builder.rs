//! Deterministic aggregation of contributions into per-layer CSR.
//!
//! Floating-point addition is not associative, so a hash aggregate whose
//! grouping or partitioning depends on threads or files gives scores that
//! differ in the last bits between runs. We sort every contribution by
//! (layer, src, dst, value, volume) under IEEE total order and then sum each
//! group front to back: the sorted sequence is unique for a given multiset of
//! rows, so the sums are too, whatever the input order or thread count.
//!
//! Memory: a contribution is a 24-byte [`Entry`] plus its layer (4 bytes) in
//! a parallel array. Layers are separated by an in-place bucket permutation
//! (no copy of the rows; the layer array is freed after it), each layer
//! sorted in place, and each group's sum written over the group's first
//! entry. The summed pairs then move into the layers' CSR arrays a chunk at
//! a time from the end, each chunk's memory given back as soon as it is
//! copied, so the contributions and the CSR (20 bytes per pair) never both
//! hold the same pairs: the peak is the contributions themselves.

use rayon::prelude::*;

use super::{AgentIndex, LayerGraph, MultiGraph};
use crate::error::{Error, Result};

/// One interaction's contribution to a (src, dst) pair of some layer:
/// `trust` = weight·outcome·decay, `volume` = weight·decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub src: u32,
    pub dst: u32,
    pub trust: f64,
    pub volume: f64,
}

impl Entry {
    fn cmp_key(&self, o: &Self) -> std::cmp::Ordering {
        (self.src, self.dst)
            .cmp(&(o.src, o.dst))
            .then(self.trust.total_cmp(&o.trust))
            .then(self.volume.total_cmp(&o.volume))
    }
}

/// Collects contributions, then builds a [`MultiGraph`].
#[derive(Debug)]
pub struct GraphBuilder {
    agents: AgentIndex,
    layer_names: Vec<String>,
    entries: Vec<Entry>,
    /// Index into `layer_names` of each entry.
    layer: Vec<u32>,
}

impl GraphBuilder {
    /// `layer_names` fixes the order of layers in the graph (and so in every
    /// later sum over layers).
    pub fn new(agents: AgentIndex, layer_names: Vec<String>) -> Self {
        Self::from_entries(agents, layer_names, Vec::new(), Vec::new())
    }

    /// Takes contributions already collected: `layer[i]` is the index into
    /// `layer_names` of `entries[i]`.
    pub fn from_entries(
        agents: AgentIndex,
        layer_names: Vec<String>,
        entries: Vec<Entry>,
        layer: Vec<u32>,
    ) -> Self {
        GraphBuilder {
            agents,
            layer_names,
            entries,
            layer,
        }
    }

    pub fn agents(&self) -> &AgentIndex {
        &self.agents
    }

    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
        self.layer.reserve(n);
    }

    /// Adds one interaction's contribution: `trust` = weight·outcome·decay,
    /// `volume` = weight·decay.
    pub fn push(&mut self, layer: u32, src: u32, dst: u32, trust: f64, volume: f64) {
        debug_assert!((layer as usize) < self.layer_names.len());
        self.entries.push(Entry {
            src,
            dst,
            trust,
            volume,
        });
        self.layer.push(layer);
    }

    pub fn build(self) -> Result<MultiGraph> {
        let GraphBuilder {
            agents,
            layer_names,
            mut entries,
            layer,
        } = self;
        if entries.len() != layer.len() || layer.iter().any(|&l| l as usize >= layer_names.len()) {
            return Err(Error::internal(
                "graph builder: contributions and their layers disagree",
            ));
        }
        let n = agents.len();
        let bounds = partition_by_layer(&mut entries, layer, layer_names.len());
        let mut pairs = Vec::with_capacity(bounds.len());
        for (name, &(a, b)) in layer_names.iter().zip(&bounds) {
            pairs.push(sum_pairs(&agents, name, &mut entries[a..b])?);
        }
        // Last layer first: each layer's pairs end the array once the layers
        // after it are handed over, so they can be moved out from the end.
        let mut layers = Vec::with_capacity(bounds.len());
        for ((name, &(a, _)), &w) in layer_names.into_iter().zip(&bounds).zip(&pairs).rev() {
            entries.truncate(a + w);
            entries.shrink_to_fit();
            layers.push(into_csr(name, &mut entries, a, n, HANDOVER_CHUNK));
        }
        layers.reverse();
        Ok(MultiGraph { agents, layers })
    }
}

/// Pairs moved into the CSR arrays per step of [`into_csr`] (24 MB of
/// contributions given back each time).
const HANDOVER_CHUNK: usize = 1 << 20;

/// Permutes `entries` in place so that each layer's entries are contiguous,
/// layer 0 first (an American-flag pass: every entry moves at most once);
/// returns each layer's range. The order within a layer is arbitrary: the
/// layer is sorted next.
fn partition_by_layer(
    entries: &mut [Entry],
    mut layer: Vec<u32>,
    layers: usize,
) -> Vec<(usize, usize)> {
    let mut count = vec![0usize; layers];
    for &l in &layer {
        count[l as usize] += 1;
    }
    let mut bounds = Vec::with_capacity(layers);
    let mut start = 0;
    for c in &count {
        bounds.push((start, start + c));
        start += c;
    }
    if layers > 1 {
        // next[k]: the first slot of bucket k not yet holding a layer-k entry.
        let mut next: Vec<usize> = bounds.iter().map(|b| b.0).collect();
        for k in 0..layers {
            let end = bounds[k].1;
            while next[k] < end {
                let i = next[k];
                let l = layer[i] as usize;
                if l == k {
                    next[k] += 1;
                } else {
                    // Send entry i home; whatever it displaces is examined next.
                    let j = next[l];
                    entries.swap(i, j);
                    layer.swap(i, j);
                    next[l] += 1;
                }
            }
        }
    }
    bounds
}

/// Sorts one layer's entries and sums each (src, dst) group front to back,
/// writing the sums over the front of `items`; returns how many pairs.
fn sum_pairs(agents: &AgentIndex, name: &str, items: &mut [Entry]) -> Result<usize> {
    items.par_sort_unstable_by(|a, b| a.cmp_key(b));
    // Group sums written over the groups' first slots, in order.
    let mut w = 0;
    let mut e = 0;
    while e < items.len() {
        let first = items[e];
        let (mut s, mut v) = (0.0f64, 0.0f64);
        while e < items.len() && (items[e].src, items[e].dst) == (first.src, first.dst) {
            s += items[e].trust;
            v += items[e].volume;
            e += 1;
        }
        if !(s.is_finite() && v.is_finite()) {
            // Each contribution is finite (weights are checked on read), but
            // their sum can overflow; a non-finite trust would turn every
            // score into NaN.
            return Err(Error::invalid(format!(
                "layer `{name}`: the interactions from `{}` to `{}` add up to trust {s:e} and \
                 volume {v:e}, beyond what a 64-bit float holds (~1.8e308); scale the weights down",
                agents.name(first.src),
                agents.name(first.dst)
            )));
        }
        items[w] = Entry {
            trust: s,
            volume: v,
            ..first
        };
        w += 1;
    }
    if w > u32::MAX as usize {
        return Err(Error::invalid(format!(
            "layer `{name}` has more than {} distinct (src, dst) pairs",
            u32::MAX
        )));
    }
    Ok(w)
}

/// Moves the summed pairs `entries[a..]` (sorted by (src, dst)) into a
/// layer's CSR, truncating `entries` to `a`. Chunks move from the end, and
/// each chunk's memory is returned to the allocator once copied (for arrays
/// this large, a shrinking reallocation unmaps the tail in place), while the
/// CSR arrays are zeroed allocations whose pages only count once written.
fn into_csr(
    name: String,
    entries: &mut Vec<Entry>,
    a: usize,
    n: usize,
    chunk: usize,
) -> LayerGraph {
    let w = entries.len() - a;
    let mut row_ptr = vec![0u32; n + 1];
    for p in &entries[a..] {
        row_ptr[p.src as usize + 1] += 1;
    }
    for i in 0..n {
        row_ptr[i + 1] += row_ptr[i];
    }
    let mut col = vec![0u32; w];
    let mut trust = vec![0f64; w];
    let mut volume = vec![0f64; w];
    let mut end = entries.len();
    while end > a {
        let start = end.saturating_sub(chunk).max(a);
        let lo = start - a;
        for (k, p) in entries[start..end].iter().enumerate() {
            col[lo + k] = p.dst;
            trust[lo + k] = p.trust;
            volume[lo + k] = p.volume;
        }
        entries.truncate(start);
        entries.shrink_to_fit();
        end = start;
    }
    LayerGraph {
        name,
        row_ptr,
        col,
        trust,
        volume,
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
    fn handover_in_small_chunks_keeps_every_pair_in_place() {
        // Pairs of rows 0..4 behind 3 entries of another layer; chunks of 2
        // leave a partial chunk at the front.
        let e = |src, dst, t| Entry {
            src,
            dst,
            trust: t,
            volume: 1.0,
        };
        let mut entries = vec![e(9, 9, 0.0), e(9, 9, 0.0), e(9, 9, 0.0)];
        let pairs = [
            e(0, 1, 1.0),
            e(0, 3, 2.0),
            e(2, 0, 3.0),
            e(3, 1, 4.0),
            e(3, 2, 5.0),
        ];
        entries.extend(pairs);
        let g = into_csr("x".into(), &mut entries, 3, 4, 2);
        assert_eq!(entries.len(), 3);
        assert_eq!(g.row_ptr, vec![0, 2, 2, 3, 5]);
        assert_eq!(g.col, vec![1, 3, 0, 1, 2]);
        assert_eq!(g.trust, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(g.volume, vec![1.0; 5]);
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
    fn layers_are_separated_whatever_their_order() {
        // Layers interleaved and out of order; every row lands in its layer.
        let rows: Vec<_> = (0..60u32)
            .map(|i| ((i * 7) % 3 % 2, i % 3, (i + 1) % 3, i as f64, 1.0))
            .collect();
        let g = build(&rows);
        for (k, layer) in g.layers.iter().enumerate() {
            let want: f64 = rows.iter().filter(|r| r.0 == k as u32).map(|r| r.3).sum();
            let got: f64 = layer.trust.iter().sum();
            assert_eq!(got, want, "layer {k}");
            let count = rows.iter().filter(|r| r.0 == k as u32).count() as f64;
            assert_eq!(layer.volume.iter().sum::<f64>(), count);
        }
        let ends = partition_by_layer(
            &mut [Entry {
                src: 0,
                dst: 0,
                trust: 0.0,
                volume: 0.0,
            }; 5],
            vec![2, 0, 2, 1, 0],
            4,
        );
        assert_eq!(ends, vec![(0, 2), (2, 3), (3, 5), (5, 5)]);
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
