//! Seeded synthetic markets for benchmarks and tests: agents `a0`, `a1`, …
//! with a lognormal cost (median 10, σ = 0.5) and a capability uniform in
//! [0.2, 1], and trust scores with EigenTrust's shape: a fifth of the agents
//! tied at the floor (never rated), the rest skewed (u³). splitmix64 keeps it
//! identical on every platform.

use crate::error::Result;
use crate::graph::synthetic::SplitMix64;

use super::agents::Agents;
use super::scores::ScoreVector;

/// `n` (≥ 1) agents and their scores, a function of `seed` alone.
pub fn market(n: usize, seed: u64) -> Result<(Agents, ScoreVector)> {
    let mut rng = SplitMix64::new(seed);
    let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let mut cost = Vec::with_capacity(n);
    let mut capability = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    for _ in 0..n {
        // Box-Muller; 1 - u is in (0, 1], so the logarithm is finite.
        let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        cost.push(10.0 * (0.5 * z).exp());
        capability.push(0.2 + 0.8 * rng.next_f64());
        let u = rng.next_f64();
        scores.push(if u < 0.2 { 0.0 } else { u * u * u });
    }
    Ok((
        Agents::new(names.clone(), cost, capability)?,
        ScoreVector::new(names, scores)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_valid() {
        let (a, s) = market(1000, 7).unwrap();
        let (b, t) = market(1000, 7).unwrap();
        assert_eq!((&a, &s), (&b, &t));
        assert_ne!(market(1000, 8).unwrap().0, a);
        let floor = s.scores().iter().filter(|&&x| x == 0.0).count();
        assert!((150..250).contains(&floor), "{floor} at the floor");
        assert!(a.cost().iter().all(|&c| c > 1.0 && c < 100.0));
    }
}
