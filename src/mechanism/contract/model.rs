//! The agents' side of the contract: the reward grid, an agent's best effort
//! under a reward, its success probability, and per tier the expected
//! successes at every reward of the grid (the tables the leader chooses
//! from).
//!
//! Agent i (trust percentile h_i, capability κ_i, cost c_i per unit of
//! effort) offered reward r on success picks effort e ∈ [0, 1] to maximise
//! r·P_i(e) − c_i·e with P_i(e) = h_i·κ_i·√e. With a_i = h_i·κ_i and
//! x = r·a_i / (2c_i), the objective is concave and its maximiser is
//! e* = min(1, x)², so P_i(e*) = a_i·min(1, x). Both are computed from
//! k_i = a_i / (2c_i) as x = r·k_i, one rounding order everywhere.

use rayon::prelude::*;

/// Agents per parallel task of a table evaluation. Fixed, so the partial sums
/// (and hence every bit of a table) do not depend on the thread count.
pub const CHUNK: usize = 4096;

/// The rewards the leader may post: r_s = reward_max · s / (steps − 1) for
/// s = 0 … steps − 1 (so the first is 0 and the last is exactly
/// `reward_max`). `steps` ≥ 2 is the caller's check.
pub fn reward_grid(reward_max: f64, steps: usize) -> Vec<f64> {
    let last = (steps - 1) as f64;
    (0..steps).map(|s| reward_max * s as f64 / last).collect()
}

/// One agent's inputs to the model.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// a = h·capability: the success probability at full effort.
    pub a: f64,
    /// k = a / (2·cost): the effort's response to the reward.
    pub k: f64,
}

impl Member {
    /// The agent with percentile `h`, `capability` and `cost` (> 0).
    pub fn new(h: f64, capability: f64, cost: f64) -> Self {
        let a = h * capability;
        Member {
            a,
            k: a / (2.0 * cost),
        }
    }

    /// Bit-for-bit equality: a table computed for one is the table of the
    /// other.
    pub fn same_bits(&self, other: &Member) -> bool {
        self.a.to_bits() == other.a.to_bits() && self.k.to_bits() == other.k.to_bits()
    }

    /// min(1, r·k) for a reward r ≥ 0. No reward is no effort even when a
    /// cost so small that k overflowed to ∞ would make r·k = 0·∞ = NaN.
    fn x(&self, r: f64) -> f64 {
        if r > 0.0 {
            (r * self.k).min(1.0)
        } else {
            0.0
        }
    }

    /// The best effort under reward `r`: min(1, r·k)².
    pub fn effort(&self, r: f64) -> f64 {
        let x = self.x(r);
        x * x
    }

    /// The success probability at the best effort: a·√e* = a·min(1, r·k).
    pub fn success(&self, r: f64) -> f64 {
        self.a * self.x(r)
    }
}

/// Σ over `members` (in their order) of the success probability at every
/// reward of `grid`: the tier's expected successes per reward step. Chunks
/// of [`CHUNK`] agents are summed in parallel and their sums added in chunk
/// order, so the result is the same for any thread count.
pub fn expected_successes(members: &[Member], grid: &[f64]) -> Vec<f64> {
    let partials: Vec<Vec<f64>> = members
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut sums = vec![0.0; grid.len()];
            for m in chunk {
                for (sum, &r) in sums.iter_mut().zip(grid) {
                    *sum += m.success(r);
                }
            }
            sums
        })
        .collect();
    let mut total = vec![0.0; grid.len()];
    for p in &partials {
        for (t, x) in total.iter_mut().zip(p) {
            *t += x;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn grid_ends_exactly() {
        assert_eq!(reward_grid(100.0, 2), [0.0, 100.0]);
        let g = reward_grid(100.0, 32);
        assert_eq!((g[0], g[31], g.len()), (0.0, 100.0, 32));
        assert!((g[1] - 100.0 / 31.0).abs() < 1e-12);
    }

    #[test]
    fn effort_saturates_and_zero_reward_is_no_effort() {
        let m = Member::new(0.5, 0.8, 2.0); // a = 0.4, k = 0.1
        assert_eq!(m.effort(0.0), 0.0);
        assert_eq!(m.success(0.0), 0.0);
        assert!((m.effort(5.0) - 0.25).abs() < 1e-15);
        assert!((m.success(5.0) - 0.2).abs() < 1e-15);
        assert_eq!(m.effort(10.0), 1.0);
        assert_eq!(m.effort(1e300), 1.0);
        assert_eq!(m.success(50.0), m.a);
        // A tiny cost overflows k to infinity: full effort from any reward.
        let cheap = Member::new(1.0, 1.0, 1e-320);
        assert_eq!(cheap.k, f64::INFINITY);
        assert_eq!(cheap.effort(1.0), 1.0);
        assert_eq!(cheap.effort(0.0), 0.0, "0·∞ would be NaN");
    }

    #[test]
    fn tables_do_not_depend_on_the_thread_count() {
        let members: Vec<Member> = (0..3 * CHUNK + 17)
            .map(|i| {
                Member::new(
                    (i % 97) as f64 / 97.0,
                    0.3 + (i % 7) as f64 / 10.0,
                    1.0 + (i % 13) as f64,
                )
            })
            .collect();
        let grid = reward_grid(100.0, 32);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| expected_successes(&members, &grid))
        };
        let one: Vec<u64> = run(1).iter().map(|x| x.to_bits()).collect();
        let three: Vec<u64> = run(3).iter().map(|x| x.to_bits()).collect();
        assert_eq!(one, three);
        let direct: f64 = members.iter().map(|m| m.success(grid[7])).sum();
        assert!((run(2)[7] - direct).abs() < 1e-9 * direct);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The closed form is the agent's true best response: no effort on a
        /// fine grid of [0, 1] pays the agent more.
        #[test]
        fn effort_is_the_best_response(
            h in 0.0f64..=1.0,
            cap in 0.0f64..=1.0,
            cost in 0.01f64..100.0,
            r in 0.0f64..200.0,
        ) {
            let m = Member::new(h, cap, cost);
            let payoff = |e: f64| r * m.a * e.sqrt() - cost * e;
            let e = m.effort(r);
            prop_assert!((0.0..=1.0).contains(&e));
            prop_assert!((m.success(r) - m.a * e.sqrt()).abs() <= 1e-12);
            let best = payoff(e);
            let scale = 1e-12 * (r * m.a + cost);
            for j in 0..=10_000 {
                let g = j as f64 / 10_000.0;
                prop_assert!(payoff(g) <= best + scale, "e = {g} pays {} > e* = {e} pays {best}", payoff(g));
            }
        }
    }
}
