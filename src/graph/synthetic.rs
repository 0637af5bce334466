//! Seeded synthetic graphs for benchmarks and tests.
//!
//! Web and trust graphs are power-law in both degrees; a uniform random graph
//! would hide exactly the load imbalance (one target with 100k sources) the
//! kernels must handle. Sources and targets are drawn with a Zipf-like skew:
//! id = ⌊n·u^γ⌋ for u uniform in [0, 1), so low ids are hubs; γ = 2 gives a
//! heavy tail similar to cnr-2000's in-degrees. splitmix64 keeps it
//! dependency-free and identical on every platform.
//!
//! Weighted graphs ([`WeightedGraph`]: entries c(i,j) and deficits, what
//! `TrustMatrix::try_from` takes) serve the back-end conformance tests and
//! benches: an out-degree power law with long rows ([`power_law_trust`]),
//! stars and hubs with rows of n entries ([`star`], [`hubs`]), and any edge
//! list with uniform weights ([`row_normalised`]). Each keeps its output for
//! a given seed, so a test case keeps its meaning.

/// splitmix64: tiny, fast, statistically fine for generating test graphs.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `m` directed edges over `n` nodes, skewed sources (γ = 1.5) and targets
/// (γ = 2), self-loops excluded; duplicates possible (they add up, as repeat
/// interactions do).
pub fn power_law_edges(n: u32, m: usize, seed: u64) -> Vec<(u32, u32)> {
    assert!(n >= 2, "need at least two nodes");
    let mut rng = SplitMix64::new(seed);
    let mut draw = |gamma: f64| ((n as f64) * rng.next_f64().powf(gamma)) as u32 % n;
    let mut edges = Vec::with_capacity(m);
    while edges.len() < m {
        let (s, d) = (draw(1.5), draw(2.0));
        if s != d {
            edges.push((s, d));
        }
    }
    edges
}

/// Forward entries (i, j, c(i,j)) over `n` agents, each row summing to at
/// most 1, and each agent's deficit 1 - Σ_j c(i,j): the arguments of
/// `TrustMatrix::from_entries`, which `TrustMatrix::try_from` takes whole.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedGraph {
    pub n: usize,
    pub entries: Vec<(u32, u32, f64)>,
    pub deficit: Vec<f64>,
}

/// How [`power_law_trust`] weights an agent's out-edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// c(i,j) = 1/outdeg(i): full rows, one weight per source.
    Uniform,
    /// Random weights (0.05 + u, u uniform in [0, 1)) scaled so each row
    /// keeps 60–100% of its trust (uniformly drawn); the rest is deficit.
    Random,
}

/// An out-degree power law: 10% of agents trust nobody (deficit 1); the
/// others have out-degree ⌊min_deg·(1-u)^(-1/1.5)⌋ (Pareto, shape 1.5),
/// clamped to 1..=max_deg and to n - 1, with distinct targets
/// j = ⌊n·u⁴⌋ ≠ i, whose density ∝ j^-0.75 makes a few agents receive a large
/// share of all edges (rows by target of thousands of entries) while most
/// receive few. Edges are weighted as `weighting` says.
pub fn power_law_trust(
    n: usize,
    min_deg: f64,
    max_deg: usize,
    weighting: Weighting,
    seed: u64,
) -> WeightedGraph {
    let mut rng = SplitMix64::new(seed);
    let mut entries = Vec::new();
    let mut deficit = vec![0.0; n];
    let mut targets = Vec::new();
    for (i, d) in deficit.iter_mut().enumerate() {
        if rng.next_f64() < 0.1 {
            *d = 1.0;
            continue;
        }
        let deg = ((min_deg * (1.0 - rng.next_f64()).powf(-1.0 / 1.5)) as usize).clamp(1, max_deg);
        targets.clear();
        while targets.len() < deg.min(n - 1) {
            let j = ((rng.next_f64().powi(4)) * n as f64) as u32;
            if j as usize != i && !targets.contains(&j) {
                targets.push(j);
            }
        }
        match weighting {
            Weighting::Uniform => {
                for &j in &targets {
                    entries.push((i as u32, j, 1.0 / targets.len() as f64));
                }
            }
            Weighting::Random => {
                let w: Vec<f64> = targets.iter().map(|_| 0.05 + rng.next_f64()).collect();
                let keep = 0.6 + 0.4 * rng.next_f64();
                let s: f64 = w.iter().sum();
                for (&j, wj) in targets.iter().zip(&w) {
                    entries.push((i as u32, j, keep * wj / s));
                }
                *d = 1.0 - keep;
            }
        }
    }
    WeightedGraph {
        n,
        entries,
        deficit,
    }
}

/// A star: every other agent trusts agent 0 fully, agent 0 trusts nobody;
/// agent 0's row by target has n - 1 entries.
pub fn star(n: usize) -> WeightedGraph {
    hubs(n, 1)
}

/// `h` hubs (agents 0..h, trusting nobody) each trusted by every other
/// agent with weight 1/h: h rows by target of n - h entries each.
pub fn hubs(n: usize, h: u32) -> WeightedGraph {
    let entries = (h..n as u32)
        .flat_map(|i| (0..h).map(move |j| (i, j, 1.0 / h as f64)))
        .collect();
    let mut deficit = vec![0.0; n];
    deficit[..h as usize].fill(1.0);
    WeightedGraph {
        n,
        entries,
        deficit,
    }
}

/// The edges (i, j) over `n` agents with c(i,j) = 1/outdeg(i), repeats
/// counted (they add up in the matrix); agents without out-edges get
/// deficit 1, the others 0.
pub fn row_normalised(n: usize, edges: &[(u32, u32)]) -> WeightedGraph {
    let mut outdeg = vec![0u32; n];
    for &(s, _) in edges {
        outdeg[s as usize] += 1;
    }
    let entries = edges
        .iter()
        .map(|&(s, d)| (s, d, 1.0 / outdeg[s as usize] as f64))
        .collect();
    let deficit = outdeg.iter().map(|&d| f64::from(d == 0)).collect();
    WeightedGraph {
        n,
        entries,
        deficit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_skewed() {
        let a = power_law_edges(1000, 20_000, 7);
        assert_eq!(a, power_law_edges(1000, 20_000, 7));
        assert_ne!(a, power_law_edges(1000, 20_000, 8));
        let mut indeg = vec![0u32; 1000];
        for &(s, d) in &a {
            assert_ne!(s, d);
            indeg[d as usize] += 1;
        }
        let max = *indeg.iter().max().unwrap();
        assert!(
            max > 20 * (20_000 / 1000),
            "hub in-degree {max} should be far above the mean 20"
        );
    }

    /// Row sums plus deficit are 1 (within rounding) for every agent.
    fn assert_stochastic(g: &WeightedGraph) {
        let mut out = g.deficit.clone();
        for &(i, _, c) in &g.entries {
            assert!(c > 0.0);
            out[i as usize] += c;
        }
        for (i, s) in out.iter().enumerate() {
            assert!(
                (s - 1.0).abs() < 1e-12,
                "agent {i}: row and deficit sum to {s}"
            );
        }
    }

    /// Entries of the longest row by target (the most sources of one agent).
    fn longest_in_row(g: &WeightedGraph) -> usize {
        let mut indeg = vec![0usize; g.n];
        for &(_, j, _) in &g.entries {
            indeg[j as usize] += 1;
        }
        indeg.into_iter().max().unwrap_or(0)
    }

    /// A cheap fingerprint of a graph's entries, to pin generator outputs.
    fn fingerprint(g: &WeightedGraph) -> u64 {
        g.entries.iter().fold(0u64, |h, &(i, j, c)| {
            (h ^ (u64::from(i) << 32 | u64::from(j)) ^ c.to_bits()).wrapping_mul(0x100_0000_01b3)
        })
    }

    #[test]
    fn power_law_trust_is_seeded_stochastic_and_long_tailed() {
        for weighting in [Weighting::Uniform, Weighting::Random] {
            let g = power_law_trust(3_000, 2.0, 1_000, weighting, 42);
            assert_eq!(g, power_law_trust(3_000, 2.0, 1_000, weighting, 42));
            assert_ne!(g, power_law_trust(3_000, 2.0, 1_000, weighting, 43));
            assert_stochastic(&g);
            let mut pairs: Vec<(u32, u32)> = g.entries.iter().map(|e| (e.0, e.1)).collect();
            assert!(pairs.iter().all(|&(i, j)| i != j), "self loop");
            pairs.sort_unstable();
            pairs.dedup();
            assert_eq!(pairs.len(), g.entries.len(), "repeated target");
            let dangling = g.deficit.iter().filter(|&&d| d == 1.0).count();
            assert!(
                (200..400).contains(&dangling),
                "{dangling} of 3000 dangling"
            );
            let longest = longest_in_row(&g);
            assert!(longest > 300, "longest row by target {longest}");
        }
        let uniform = power_law_trust(3_000, 2.0, 1_000, Weighting::Uniform, 42);
        assert!(uniform.deficit.iter().all(|&d| d == 0.0 || d == 1.0));
    }

    /// Pins the generator: the conformance cases (other sizes and seeds, the
    /// same code) were written for the graphs it makes.
    #[test]
    fn power_law_trust_keeps_its_output() {
        let g = power_law_trust(1_000, 2.0, 100, Weighting::Uniform, 42);
        assert_eq!(
            (g.entries.len(), fingerprint(&g)),
            (4491, 503900931905464517)
        );
        let g = power_law_trust(1_000, 2.0, 100, Weighting::Random, 43);
        assert_eq!(
            (g.entries.len(), fingerprint(&g)),
            (4712, 18026984632437370287)
        );
    }

    #[test]
    fn hubs_and_star() {
        let g = hubs(10, 3);
        assert_eq!(g.entries.len(), 3 * 7);
        assert_eq!(longest_in_row(&g), 7);
        assert_eq!(&g.deficit[..4], &[1.0, 1.0, 1.0, 0.0]);
        assert_stochastic(&g);
        let s = star(5);
        assert_eq!(
            s.entries,
            vec![(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0), (4, 0, 1.0)]
        );
        assert_eq!(s.deficit, vec![1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn row_normalised_weights_by_out_degree() {
        let g = row_normalised(4, &[(0, 1), (0, 2), (0, 1), (2, 3)]);
        assert_eq!(
            g.entries,
            vec![
                (0, 1, 1.0 / 3.0),
                (0, 2, 1.0 / 3.0),
                (0, 1, 1.0 / 3.0),
                (2, 3, 1.0)
            ]
        );
        assert_eq!(g.deficit, vec![0.0, 1.0, 0.0, 1.0]);
        assert_stochastic(&g);
    }
}
