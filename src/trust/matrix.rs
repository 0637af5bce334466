//! The combined local-trust matrix in the form the power iteration reads.
//!
//! Stored by target ("pull" form, i.e. Cᵀ in CSR): each output score is one
//! sequential sum written by one thread, which is what makes the CPU path
//! deterministic without atomics and lets the GPU assign rows to lanes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::graph::synthetic::WeightedGraph;

/// Edge weights of a [`TrustMatrix`].
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeWeights {
    /// Every edge out of source i has the same weight `scale[i]` (true for
    /// unweighted graphs, where c(i,j) = 1/outdeg(i)). The iteration then reads
    /// 4 bytes per edge instead of 12: it pre-multiplies t(i) by `scale[i]`.
    PerSource(Vec<f64>),
    /// Explicit weight per stored entry, aligned with `src`.
    PerEdge(Vec<f64>),
}

/// C (n × n, row-substochastic) stored as Cᵀ in CSR, plus each row's deficit.
///
/// `deficit[i] = 1 - Σ_j C(i,j)` is the share of agent i's trust that is not
/// placed on any edge (no positive trust in a layer, or cut by the cheap-layer
/// rule); it follows the pre-trust vector, as in the original EigenTrust rule
/// for rows without trust. It is computed structurally, so a full row has a
/// deficit of exactly 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustMatrix {
    n: usize,
    /// Per target j: entries `ptr[j]..ptr[j+1]` of `src` (and of the weights).
    ptr: Vec<u32>,
    src: Vec<u32>,
    weights: EdgeWeights,
    deficit: Vec<f64>,
}

/// A synthetic graph's matrix, as [`TrustMatrix::from_entries`] builds it.
impl TryFrom<WeightedGraph> for TrustMatrix {
    type Error = Error;

    fn try_from(g: WeightedGraph) -> Result<Self> {
        Self::from_entries(g.n, g.entries, g.deficit)
    }
}

impl TrustMatrix {
    /// Builds the pull form from forward entries (i, j, C(i,j)).
    ///
    /// Duplicate (i, j) pairs (one per layer) are summed in increasing order
    /// of their values, so the sum does not depend on the order given.
    /// Entries with a weight of exactly zero are dropped.
    pub fn from_entries(
        n: usize,
        mut entries: Vec<(u32, u32, f64)>,
        deficit: Vec<f64>,
    ) -> Result<Self> {
        if deficit.len() != n {
            return Err(Error::invalid("deficit length differs from agent count"));
        }
        if entries.len() >= u32::MAX as usize {
            return Err(Error::invalid(format!(
                "more than {} edges in the combined trust matrix",
                u32::MAX
            )));
        }
        if entries
            .iter()
            .any(|&(i, j, _)| i as usize >= n || j as usize >= n)
        {
            return Err(Error::invalid(
                "trust matrix entry refers to an agent id out of range",
            ));
        }
        let mut slots = vec![0u32; n];
        for &(_, j, _) in &entries {
            slots[j as usize] += 1;
        }
        let b = PullBuilder::new(slots)?;
        for (i, j, c) in entries.drain(..) {
            b.push(i, j, c)?;
        }
        b.finish(deficit)
    }

    /// Rebuilds a matrix from its stored parts (as [`Self::ptr`],
    /// [`Self::sources`], [`Self::weights`] and [`Self::deficit`] return
    /// them), checking every invariant the back ends rely on: offsets
    /// non-decreasing from 0 to the entry count, sources in range, weights and
    /// deficits finite and non-negative.
    pub fn from_parts(
        n: usize,
        ptr: Vec<u32>,
        src: Vec<u32>,
        weights: EdgeWeights,
        deficit: Vec<f64>,
    ) -> Result<Self> {
        let bad = |what: &str| Err(Error::invalid(format!("trust matrix: {what}")));
        if ptr.len() != n + 1 || ptr[0] != 0 || ptr[n] as usize != src.len() {
            return bad("row offsets do not match the agent and entry counts");
        }
        if ptr.windows(2).any(|w| w[0] > w[1]) {
            return bad("row offsets decrease");
        }
        if src.iter().any(|&i| i as usize >= n) {
            return bad("an entry's source is out of range");
        }
        let w = match &weights {
            EdgeWeights::PerSource(s) if s.len() == n => s,
            EdgeWeights::PerEdge(w) if w.len() == src.len() => w,
            _ => return bad("weight count does not match"),
        };
        if deficit.len() != n {
            return bad("deficit length differs from agent count");
        }
        if w.iter()
            .chain(&deficit)
            .any(|x| !(x.is_finite() && *x >= 0.0))
        {
            return bad("a weight or deficit is negative or not finite");
        }
        Ok(TrustMatrix {
            n,
            ptr,
            src,
            weights,
            deficit,
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn nnz(&self) -> usize {
        self.src.len()
    }

    /// Per target offsets into [`Self::sources`].
    pub fn ptr(&self) -> &[u32] {
        &self.ptr
    }

    pub fn sources(&self) -> &[u32] {
        &self.src
    }

    pub fn weights(&self) -> &EdgeWeights {
        &self.weights
    }

    pub fn deficit(&self) -> &[f64] {
        &self.deficit
    }

    /// Weight of entry `e` (which has source `self.sources()[e]`).
    #[inline]
    pub fn weight(&self, e: usize) -> f64 {
        match &self.weights {
            EdgeWeights::PerSource(s) => s[self.src[e] as usize],
            EdgeWeights::PerEdge(w) => w[e],
        }
    }

    /// y = Cᵀ x for one vector, sequential and in entry order (the reference
    /// order every back end must match up to rounding).
    pub fn mul_transpose(&self, x: &[f64]) -> Vec<f64> {
        (0..self.n)
            .into_par_iter()
            .map(|j| {
                let mut acc = 0.0;
                for e in self.ptr[j] as usize..self.ptr[j + 1] as usize {
                    acc += self.weight(e) * x[self.src[e] as usize];
                }
                acc
            })
            .collect()
    }
}

/// Builds a [`TrustMatrix`] from forward entries (i, j, C(i,j)) given in any
/// order, by a counting sort on targets: each target's entries go straight
/// into its own slots of the final arrays (12 bytes per entry, no list of
/// (i, j, c) triples to sort), then each target's slots are sorted by
/// (source, value) and duplicates of a pair (one per layer) summed in that
/// order. Value order (IEEE total order) is unique for a given multiset of
/// entries, so the sums do not depend on the order entries were pushed in.
/// Entries with a weight of exactly zero are dropped.
pub(crate) struct PullBuilder {
    /// Per target j: its slots are `start[j]..start[j + 1]`.
    start: Vec<u32>,
    /// Per target: slots taken so far. Atomic, as are the slots, so that
    /// sources are pushed from all threads; [`PullBuilder::finish`] orders
    /// each target's entries, so the order they arrive in does not matter.
    filled: Vec<AtomicU32>,
    src: Vec<AtomicU32>,
    /// Bits of the f64 weights.
    w: Vec<AtomicU64>,
}

/// Targets per parallel task of [`PullBuilder::finish`].
const TARGETS_PER_TASK: usize = 1 << 12;

impl PullBuilder {
    /// `slots[j]`: at most how many entries target j will receive.
    pub fn new(slots: Vec<u32>) -> Result<Self> {
        let n = slots.len();
        let mut start = Vec::with_capacity(n + 1);
        let mut total = 0u64;
        start.push(0u32);
        for &c in &slots {
            total += c as u64;
            start.push(u32::try_from(total).map_err(|_| {
                Error::invalid(format!(
                    "more than {} edges in the combined trust matrix",
                    u32::MAX
                ))
            })?);
        }
        drop(slots);
        let zeros = |n: usize| (0..n).map(|_| AtomicU32::new(0)).collect();
        Ok(PullBuilder {
            start,
            filled: zeros(n),
            src: zeros(total as usize),
            w: (0..total).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Adds C(i, j) = c.
    pub fn push(&self, i: u32, j: u32, c: f64) -> Result<()> {
        if c == 0.0 {
            return Ok(());
        }
        let j = j as usize;
        // Slots are handed out once each; what a slot holds is read only
        // after the pushing threads are joined.
        let at = self.start[j] as u64 + self.filled[j].fetch_add(1, Ordering::Relaxed) as u64;
        if at >= self.start[j + 1] as u64 {
            return Err(Error::internal(
                "trust matrix: a target received more entries than counted",
            ));
        }
        self.src[at as usize].store(i, Ordering::Relaxed);
        self.w[at as usize].store(c.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// Sums duplicates per target, closes the gaps between targets and
    /// checks the weights' form.
    pub fn finish(self, deficit: Vec<f64>) -> Result<TrustMatrix> {
        let PullBuilder {
            start,
            filled,
            src,
            w,
        } = self;
        // Same layouts: these collect in place, without a second copy.
        let mut filled: Vec<u32> = filled.into_iter().map(AtomicU32::into_inner).collect();
        let mut src: Vec<u32> = src.into_iter().map(AtomicU32::into_inner).collect();
        let mut w: Vec<f64> = w
            .into_iter()
            .map(|x| f64::from_bits(x.into_inner()))
            .collect();
        let n = filled.len();
        if deficit.len() != n {
            return Err(Error::invalid("deficit length differs from agent count"));
        }
        // Blocks of targets, each with its own disjoint part of the arrays.
        let mut blocks = Vec::with_capacity(n.div_ceil(TARGETS_PER_TASK));
        let (mut s_rest, mut w_rest) = (&mut src[..], &mut w[..]);
        for (k, f) in filled.chunks_mut(TARGETS_PER_TASK).enumerate() {
            let j0 = k * TARGETS_PER_TASK;
            let len = (start[j0 + f.len()] - start[j0]) as usize;
            let (s, s1) = std::mem::take(&mut s_rest).split_at_mut(len);
            let (ww, w1) = std::mem::take(&mut w_rest).split_at_mut(len);
            (s_rest, w_rest) = (s1, w1);
            blocks.push((j0, f, s, ww));
        }
        blocks.into_par_iter().for_each(|(j0, f, s, ww)| {
            let base = start[j0];
            let mut buf: Vec<(u32, f64)> = Vec::new();
            for (d, count) in f.iter_mut().enumerate() {
                let a = (start[j0 + d] - base) as usize;
                let seg = a..a + *count as usize;
                buf.clear();
                buf.extend(s[seg.clone()].iter().copied().zip(ww[seg].iter().copied()));
                buf.sort_unstable_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
                let mut m = 0;
                let mut k = 0;
                while k < buf.len() {
                    let (i, mut c) = buf[k];
                    k += 1;
                    while k < buf.len() && buf[k].0 == i {
                        c += buf[k].1;
                        k += 1;
                    }
                    s[a + m] = i;
                    ww[a + m] = c;
                    m += 1;
                }
                *count = m as u32;
            }
        });
        // Close the gaps (slots counted but not filled, duplicates summed).
        let mut ptr = vec![0u32; n + 1];
        let mut to = 0usize;
        for j in 0..n {
            let (from, len) = (start[j] as usize, filled[j] as usize);
            if from != to {
                src.copy_within(from..from + len, to);
                w.copy_within(from..from + len, to);
            }
            to += len;
            ptr[j + 1] = to as u32;
        }
        drop((start, filled));
        src.truncate(to);
        src.shrink_to_fit();
        w.truncate(to);
        w.shrink_to_fit();
        let weights = uniform_per_source(n, &src, &w)
            .map(EdgeWeights::PerSource)
            .unwrap_or(EdgeWeights::PerEdge(w));
        Ok(TrustMatrix {
            n,
            ptr,
            src,
            weights,
            deficit,
        })
    }
}

/// Returns per-source weights if every source's entries share one value.
fn uniform_per_source(n: usize, src: &[u32], w: &[f64]) -> Option<Vec<f64>> {
    let mut scale = vec![f64::NAN; n];
    for (&i, &c) in src.iter().zip(w) {
        let s = &mut scale[i as usize];
        if s.is_nan() {
            *s = c;
        } else if s.to_bits() != c.to_bits() {
            return None;
        }
    }
    for s in &mut scale {
        if s.is_nan() {
            *s = 0.0;
        }
    }
    Some(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_form_and_duplicates() {
        let m = TrustMatrix::from_entries(
            3,
            vec![
                (0, 1, 0.5),
                (0, 2, 0.5),
                (1, 2, 0.25),
                (1, 2, 0.75),
                (2, 0, 0.0),
            ],
            vec![0.0, 0.0, 1.0],
        )
        .unwrap();
        assert_eq!(m.ptr(), &[0, 0, 1, 3]);
        assert_eq!(m.sources(), &[0, 0, 1]);
        assert_eq!(m.weights(), &EdgeWeights::PerSource(vec![0.5, 1.0, 0.0]));
        assert_eq!(m.mul_transpose(&[1.0, 2.0, 4.0]), vec![0.0, 0.5, 2.5]);
    }

    #[test]
    fn duplicates_sum_the_same_in_any_order() {
        // Left to right, 1 + 1e-16 + 1e-16 rounds to 1; smallest first it
        // does not.
        let vals = [1.0, 1e-16, 1e-16];
        let sum = |order: [usize; 3]| {
            let e = order.iter().map(|&k| (0u32, 1u32, vals[k])).collect();
            let m = TrustMatrix::from_entries(2, e, vec![0.0, 1.0]).unwrap();
            m.mul_transpose(&[1.0, 0.0])[1]
        };
        let want = (1e-16 + 1e-16) + 1.0;
        assert_ne!(want, 1.0);
        for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]] {
            assert_eq!(sum(order), want, "{order:?}");
        }
    }

    #[test]
    fn mixed_row_keeps_edge_weights() {
        let m =
            TrustMatrix::from_entries(2, vec![(0, 0, 0.25), (0, 1, 0.75)], vec![0.0, 1.0]).unwrap();
        assert_eq!(m.weights(), &EdgeWeights::PerEdge(vec![0.25, 0.75]));
        assert_eq!(m.weight(1), 0.75);
    }
}
