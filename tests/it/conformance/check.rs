//! The comparison with the CPU reference, and the fixtures the cases share:
//! matrices from `trustmesh::graph::synthetic`, pre-trust columns.

use trustmesh::graph::synthetic::{self, SplitMix64, WeightedGraph, Weighting};
use trustmesh::trust::{
    Column, CpuBackend, IterParams, StopReason, TrustBackend, TrustMatrix, TrustVector,
};

use super::Subject;

/// A synthetic graph as a matrix.
pub fn matrix(g: WeightedGraph) -> TrustMatrix {
    TrustMatrix::try_from(g).unwrap()
}

/// [`synthetic::power_law_trust`] with c(i,j) = 1/outdeg(i) (a per-source
/// matrix) or random per-edge weights and deficits.
pub fn power_law(n: usize, min_deg: f64, max_deg: usize, per_edge: bool, seed: u64) -> TrustMatrix {
    let w = if per_edge {
        Weighting::Random
    } else {
        Weighting::Uniform
    };
    matrix(synthetic::power_law_trust(n, min_deg, max_deg, w, seed))
}

/// Every agent dangling: C = 0, deficit 1.
pub fn all_dangling(n: usize) -> TrustMatrix {
    TrustMatrix::from_entries(n, vec![], vec![1.0; n]).unwrap()
}

pub fn uniform(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

/// K pre-trust vectors: uniform, then personalised ones (a few observers each).
pub fn pretrusts(n: usize, k: usize, seed: u64) -> Vec<Column> {
    let mut rng = SplitMix64::new(seed);
    (0..k)
        .map(|c| {
            if c == 0 {
                return Column::new(uniform(n));
            }
            let mut p = vec![0.0; n];
            let m = 1 + c % 5;
            for _ in 0..m {
                p[(rng.next_u64() % n as u64) as usize] += 1.0 / m as f64;
            }
            Column::new(p)
        })
        .collect()
}

pub fn l1(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// The exact answer: the CPU iteration run far below f32 noise, to residual
/// 1e-13 or, where f64 rounding keeps the residual above that (a row of 100k
/// entries: ~1.6e-12), for as many steps as shrink any start's distance to
/// the fixed point below 1e-20 (it contracts by 1 - alpha per step).
pub fn reference(m: &TrustMatrix, cols: &[Column], params: &IterParams) -> Vec<TrustVector> {
    let steps = (1e-20f64.ln() / (1.0 - params.alpha).ln()).ceil();
    let exact = IterParams {
        epsilon: 1e-13,
        max_iter: steps.clamp(1.0, 10_000.0) as u32,
        flat_tail: None,
        ..*params
    };
    CpuBackend.solve(m, cols, &exact).unwrap()
}

/// The CPU's iterate after exactly `iterations` steps.
fn cpu_after(m: &TrustMatrix, col: &Column, alpha: f64, iterations: u32) -> TrustVector {
    let p = IterParams {
        alpha,
        epsilon: f64::MIN_POSITIVE,
        max_iter: iterations,
        flat_tail: None,
    };
    CpuBackend
        .solve(m, std::slice::from_ref(col), &p)
        .unwrap()
        .remove(0)
}

impl Subject {
    /// [`Self::compare_with`] with this back end's own parameters.
    pub fn compare(&self, label: &str, m: &TrustMatrix, cols: &[Column]) -> f64 {
        self.compare_with(label, m, cols, &self.params())
    }

    /// [`Self::compare_on`] this back end.
    pub fn compare_with(
        &self,
        label: &str,
        m: &TrustMatrix,
        cols: &[Column],
        params: &IterParams,
    ) -> f64 {
        self.compare_on(&*self.backend, label, m, cols, params)
    }

    /// Solves on `on` (this back end or its split variant) and on the CPU
    /// with the same parameters, and checks every column within the budget:
    /// - L1 difference to the CPU's iterate after the same number of steps
    ///   (and to the CPU's own result when both stopped at the same step);
    /// - same stop reason, iteration counts within the budget's slack;
    /// - distance to the exact fixed point within the certified bound
    ///   residual / alpha, plus the L1 budget;
    /// - scores sum to 1.
    ///
    /// Returns the largest L1 difference seen.
    pub fn compare_on(
        &self,
        on: &dyn TrustBackend,
        label: &str,
        m: &TrustMatrix,
        cols: &[Column],
        params: &IterParams,
    ) -> f64 {
        let (b, label) = (self.budget, format!("{}: {label}", self.name));
        let t0 = std::time::Instant::now();
        let got = on.solve(m, cols, params).unwrap();
        let time = t0.elapsed();
        let cpu = CpuBackend.solve(m, cols, params).unwrap();
        let exact = reference(m, cols, params);
        assert_eq!(got.len(), cols.len());
        let mut worst = 0.0f64;
        for (k, (((gv, cv), ev), col)) in got.iter().zip(&cpu).zip(&exact).zip(cols).enumerate() {
            let same = cpu_after(m, col, params.alpha, gv.iterations);
            let d = l1(&gv.scores, &same.scores);
            worst = worst.max(d);
            assert!(
                d < b.l1,
                "{label} column {k}: L1 difference {d:e} after {} iterations",
                gv.iterations
            );
            if gv.iterations == cv.iterations {
                let d = l1(&gv.scores, &cv.scores);
                worst = worst.max(d);
                assert!(
                    d < b.l1,
                    "{label} column {k}: L1 difference {d:e} to the CPU result"
                );
            }
            assert_eq!(
                gv.stop, cv.stop,
                "{label} column {k}: {gv:?} CPU residual {}",
                cv.residual
            );
            assert!(
                gv.iterations.abs_diff(cv.iterations) <= b.iterations,
                "{label} column {k}: {} iterations vs {} on the CPU",
                gv.iterations,
                cv.iterations
            );
            if gv.stop == StopReason::Converged {
                assert!(gv.residual < params.epsilon);
                let to_exact = l1(&gv.scores, &ev.scores);
                assert!(
                    to_exact <= gv.error_bound(params.alpha) + b.l1,
                    "{label} column {k}: {to_exact:e} from the fixed point, bound {:e}",
                    gv.error_bound(params.alpha)
                );
            }
            let sum: f64 = gv.scores.iter().sum();
            assert!(
                (sum - 1.0).abs() < b.sum,
                "{label} column {k}: scores sum to {sum}"
            );
        }
        eprintln!(
            "{label}: n={} nnz={} K={} worst L1 {worst:.3e}, iterations {:?}, {:.0} ms on {}",
            m.n(),
            m.nnz(),
            cols.len(),
            got.iter().map(|v| v.iterations).collect::<Vec<_>>(),
            time.as_secs_f64() * 1e3,
            on.name()
        );
        worst
    }
}
