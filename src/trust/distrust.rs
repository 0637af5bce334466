//! The one-shot distrust discount (`--distrust discount`).
//!
//! After convergence each agent's score is reduced by the trust-weighted
//! distrust it receives, Σ_i t_i·D(i,j), clipped at zero and renormalised, as
//! go-eigentrust does. Distrust is not propagated: an agent distrusted by a
//! trusted agent loses score, but nobody gains from distrusting.

use super::matrix::TrustMatrix;

/// Returns the discounted distribution. If every score would be clipped to
/// zero the undiscounted vector is returned unchanged, because an all-zero
/// "distribution" would carry no information; this is reported by `false`.
pub fn discount(t: &[f64], d: &TrustMatrix) -> (Vec<f64>, bool) {
    let received = d.mul_transpose(t);
    let clipped: Vec<f64> = t
        .iter()
        .zip(&received)
        .map(|(s, r)| (s - r).max(0.0))
        .collect();
    let total: f64 = clipped.iter().sum();
    if total > 0.0 {
        (clipped.iter().map(|v| v / total).collect(), true)
    } else {
        (t.to_vec(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distrusted_agent_loses_and_result_renormalises() {
        // agent 0 (t=0.5) distrusts agent 2 fully.
        let d = TrustMatrix::from_entries(3, vec![(0, 2, 1.0)], vec![0.0; 3]).unwrap();
        let (v, ok) = discount(&[0.5, 0.3, 0.2], &d);
        assert!(ok);
        assert_eq!(v, vec![0.5 / 0.8, 0.3 / 0.8, 0.0]);
    }
}
