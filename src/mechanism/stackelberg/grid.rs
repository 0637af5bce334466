//! Candidate leader strategies: grids on the simplex, whole or shrunk around
//! centers.
//!
//! A level is a grid size N, a ratio λ ∈ (0, 1] and centers c. Its
//! candidates are, center by center, every composition k of N into m
//! non-negative parts (lexicographic order, k = (0, …, 0, N) first) mapped to
//!
//! ```text
//! x = (1 − λ)·c + λ·k/N
//! ```
//!
//! a convex combination of c and a grid point, so always in the simplex: the
//! grid shrunk by λ towards c. λ = 1 is the whole simplex's grid. Candidate
//! `i` is composition `i % per_center` around center `i / per_center`; the
//! GPU kernel unranks the same index to the same composition (its `binom`
//! buffer is [`Level::counts`]), so both devices see the same candidates
//! without the strategies ever being uploaded.

use crate::error::{Error, Result};

/// Most candidates one level may hold: 32M, whose values take 256 MiB.
pub const MAX_LEVEL: u64 = 1 << 25;

/// Most divisions of a grid: a spacing of 1e-6, the finest the search
/// refines to anyway, and an unranking table of at most m × 2²⁰ counts.
pub const MAX_GRID: u32 = 1 << 20;

/// C(a, b), or None when it overflows u64.
pub fn binomial(a: u64, b: u64) -> Option<u64> {
    if b > a {
        return Some(0);
    }
    let b = b.min(a - b);
    let mut r: u128 = 1;
    for i in 1..=b as u128 {
        // r·(a − b + i) / i stays an integer: it is C(a − b + i, i).
        r = r * (a as u128 - b as u128 + i) / i;
        if r > u64::MAX as u128 {
            return None;
        }
    }
    Some(r as u64)
}

/// Compositions of `grid` into `m` parts, C(grid + m − 1, m − 1): the
/// candidates of one center. None on overflow.
pub fn compositions(grid: u32, m: usize) -> Option<u64> {
    binomial(grid as u64 + m as u64 - 1, m as u64 - 1)
}

/// The largest grid N ≥ 1 whose compositions into `m` parts number at most
/// `budget` (N = 1, m candidates, when even that is more), capped at `cap`.
pub fn grid_for(m: usize, budget: u64, cap: u32) -> u32 {
    let fits = |n: u32| compositions(n, m).is_some_and(|c| c <= budget);
    if m == 1 {
        return 1; // one candidate whatever the grid
    }
    let (mut lo, mut hi) = (1u32, cap.clamp(1, MAX_GRID));
    if fits(hi) {
        return hi;
    }
    // fits(lo) may be false (then N = 1); find the largest that fits.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One level of candidates (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    m: usize,
    grid: u32,
    lambda: f64,
    /// Per center, (1 − λ)·c: m values each.
    offsets: Vec<f64>,
    per_center: u64,
    /// `counts[(q − 1)·(grid + 1) + d]` = compositions of d into q parts,
    /// for q in 1..=m and d in 0..=grid: the table unranking searches.
    counts: Vec<u64>,
}

impl Level {
    /// The whole simplex's grid with `grid` divisions.
    pub fn full(m: usize, grid: u32) -> Result<Self> {
        Self::around(m, grid, 1.0, &[vec![0.0; m]])
    }

    /// The grid shrunk by `lambda` towards each of `centers` (points of the
    /// simplex), center after center.
    pub fn around(m: usize, grid: u32, lambda: f64, centers: &[Vec<f64>]) -> Result<Self> {
        if m == 0 || grid == 0 || grid > MAX_GRID || centers.is_empty() {
            return Err(Error::internal(format!(
                "a candidate level needs m, grid and centers (m {m}, grid {grid}, {} centers)",
                centers.len()
            )));
        }
        if !(lambda > 0.0 && lambda <= 1.0) || centers.iter().any(|c| c.len() != m) {
            return Err(Error::internal(format!(
                "a candidate level needs λ in (0, 1] and centers of {m} values, got λ {lambda}"
            )));
        }
        let per_center = compositions(grid, m)
            .filter(|&c| c.saturating_mul(centers.len() as u64) <= MAX_LEVEL)
            .ok_or_else(|| {
                Error::internal(format!(
                    "a level of {} centers of grid {grid} in {m} dimensions exceeds {MAX_LEVEL} candidates",
                    centers.len()
                ))
            })?;
        let d = grid as usize + 1;
        let mut counts = vec![0u64; m * d];
        for q in 1..=m {
            for dd in 0..d {
                // Bounded by per_center (fewer parts or a smaller sum).
                counts[(q - 1) * d + dd] = if q == 1 {
                    1
                } else {
                    counts[(q - 2) * d + dd]
                        + if dd > 0 {
                            counts[(q - 1) * d + dd - 1]
                        } else {
                            0
                        }
                };
            }
        }
        let offsets = centers
            .iter()
            .flat_map(|c| c.iter().map(|&ci| (1.0 - lambda) * ci))
            .collect();
        Ok(Level {
            m,
            grid,
            lambda,
            offsets,
            per_center,
            counts,
        })
    }

    pub fn m(&self) -> usize {
        self.m
    }

    pub fn grid(&self) -> u32 {
        self.grid
    }

    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Candidates per center.
    pub fn per_center(&self) -> u64 {
        self.per_center
    }

    pub fn centers(&self) -> usize {
        self.offsets.len() / self.m
    }

    /// Candidates in all.
    pub fn len(&self) -> u64 {
        self.per_center * self.centers() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (1 − λ)·c of every center, center-major.
    pub fn offsets(&self) -> &[f64] {
        &self.offsets
    }

    /// The unranking table (see the field's documentation).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Candidate `index` written to `x` (m values).
    pub fn candidate(&self, index: u64, x: &mut [f64]) {
        let mut k = vec![0u32; self.m];
        self.unrank(index % self.per_center, &mut k);
        self.map(index / self.per_center, &k, x);
    }

    /// Calls `f(index, x)` for `count` candidates from `first`, walking the
    /// compositions in order (one unranking, then a successor step each).
    pub fn for_each(&self, first: u64, count: u64, mut f: impl FnMut(u64, &[f64])) {
        if count == 0 {
            return;
        }
        let mut k = vec![0u32; self.m];
        let mut x = vec![0.0; self.m];
        let (mut center, mut r) = (first / self.per_center, first % self.per_center);
        self.unrank(r, &mut k);
        for index in first..first + count {
            self.map(center, &k, &mut x);
            f(index, &x);
            r += 1;
            if r == self.per_center {
                r = 0;
                center += 1;
                k.fill(0);
                k[self.m - 1] = self.grid;
            } else {
                successor(&mut k);
            }
        }
    }

    /// The composition of rank `r` (lexicographic).
    ///
    /// Part p takes the largest v whose smaller values' compositions,
    /// Σ_{v' < v} comp(rem − v', q) = comp(rem, q + 1) − comp(rem − v, q + 1)
    /// (q parts after p; the hockey-stick identity), do not exceed r: a
    /// binary search, O(m log N), as in the kernel.
    fn unrank(&self, mut r: u64, k: &mut [u32]) {
        let m = self.m;
        let d = self.grid as usize + 1;
        let mut rem = self.grid;
        for (p, kp) in k.iter_mut().enumerate().take(m - 1) {
            let row = &self.counts[(m - p - 1) * d..][..d]; // q + 1 = m − p parts
            let total = row[rem as usize];
            let below = |v: u32| total - row[(rem - v) as usize];
            let (mut lo, mut hi) = (0, rem);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if below(mid) <= r {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            r -= below(lo);
            *kp = lo;
            rem -= lo;
        }
        k[m - 1] = rem;
    }

    fn map(&self, center: u64, k: &[u32], x: &mut [f64]) {
        let off = &self.offsets[center as usize * self.m..][..self.m];
        let n = self.grid as f64;
        for ((xi, &o), &ki) in x.iter_mut().zip(off).zip(k) {
            *xi = o + self.lambda * (ki as f64 / n);
        }
    }
}

/// The next composition in lexicographic order (k must not be the last).
fn successor(k: &mut [u32]) {
    let m = k.len();
    if m < 2 {
        return;
    }
    if k[m - 1] > 0 {
        k[m - 2] += 1;
        k[m - 1] -= 1;
        return;
    }
    // The last non-zero part before the end moves one unit left and the
    // rest of it to the end.
    if let Some(q) = (1..m - 1).rev().find(|&q| k[q] > 0) {
        k[q - 1] += 1;
        let s = k[q];
        k[q] = 0;
        k[m - 1] = s - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomials_and_grid_sizes() {
        assert_eq!(binomial(5, 2), Some(10));
        assert_eq!(binomial(2, 5), Some(0));
        assert_eq!(binomial(67, 33), Some(14_226_520_737_620_288_370));
        assert_eq!(binomial(70, 35), None);
        assert_eq!(compositions(2, 3), Some(6));
        assert_eq!(compositions(7, 1), Some(1));
        assert_eq!(grid_for(8, 1 << 17, 1 << 20), 14); // C(21, 7) = 116280
        assert_eq!(grid_for(2, 1000, 1 << 20), 999);
        assert_eq!(grid_for(2, 1000, 50), 50);
        assert_eq!(grid_for(100_000, 10, 50), 1);
        assert_eq!(grid_for(2, u64::MAX, u32::MAX), MAX_GRID);
        assert_eq!(grid_for(1, 10, 50), 1);
    }

    /// Every candidate in order is a distinct simplex point, unranking agrees
    /// with the walk, and centers are visited in turn.
    #[test]
    fn unranking_matches_the_walk() {
        for (m, grid) in [(1, 3), (2, 4), (3, 2), (4, 5), (6, 3), (3, 40)] {
            let c = vec![1.0 / m as f64; m];
            let level = Level::around(m, grid, 0.5, &[c.clone(), c]).unwrap();
            let per = level.per_center();
            assert_eq!(per, compositions(grid, m).unwrap());
            let mut seen = Vec::new();
            level.for_each(0, level.len(), |i, x| {
                let mut y = vec![0.0; m];
                level.candidate(i, &mut y);
                assert_eq!(x, &y[..], "m {m} grid {grid} index {i}");
                assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                assert!(x.iter().all(|&v| v >= 0.0));
                seen.push(x.to_vec());
            });
            assert_eq!(seen.len() as u64, 2 * per);
            assert_eq!(seen[..per as usize], seen[per as usize..]);
            let mut first = seen[..per as usize].to_vec();
            first.sort_by(|a, b| a.partial_cmp(b).unwrap());
            first.dedup();
            assert_eq!(first.len() as u64, per, "distinct points");
            // A walk may start anywhere.
            let mut tail = Vec::new();
            level.for_each(per - 1, 2, |_, x| tail.push(x.to_vec()));
            assert_eq!(tail, seen[per as usize - 1..per as usize + 1]);
        }
    }

    #[test]
    fn the_full_grid_is_k_over_n_in_lexicographic_order() {
        let level = Level::full(3, 2).unwrap();
        let mut got = Vec::new();
        level.for_each(0, level.len(), |_, x| got.push(x.to_vec()));
        let want: Vec<Vec<f64>> = [
            [0, 0, 2],
            [0, 1, 1],
            [0, 2, 0],
            [1, 0, 1],
            [1, 1, 0],
            [2, 0, 0],
        ]
        .iter()
        .map(|k| k.iter().map(|&v| v as f64 / 2.0).collect())
        .collect();
        assert_eq!(got, want);
    }
}
