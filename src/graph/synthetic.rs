//! Seeded synthetic graphs for benchmarks and tests.
//!
//! Web and trust graphs are power-law in both degrees; a uniform random graph
//! would hide exactly the load imbalance (one target with 100k sources) the
//! kernels must handle. Sources and targets are drawn with a Zipf-like skew:
//! id = ⌊n·u^γ⌋ for u uniform in [0, 1), so low ids are hubs; γ = 2 gives a
//! heavy tail similar to cnr-2000's in-degrees. splitmix64 keeps it
//! dependency-free and identical on every platform.

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
}
