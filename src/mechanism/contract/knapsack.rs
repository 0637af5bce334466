//! The exact multiple-choice knapsack the budgeted schedule is: groups (the
//! tiers) of items (the rewards), each with a weight (expected payment) and a
//! value (expected leader utility); pick one item per group to maximise the
//! summed value with the summed weight at most the capacity (the budget).
//! Weights are real numbers, so there is no integer capacity to index a DP
//! by; instead:
//!
//! - A dynamic programme over the groups keeps the Pareto frontier of
//!   partial choices: every (weight, value) pair reachable with the groups so
//!   far that no other pair beats in both. A group's items are first cut to
//!   its own frontier, and the candidates of the next frontier (frontier +
//!   item, for each item a list sorted by weight) are merged with a heap, so
//!   dominated pairs are never stored.
//! - Branch and bound prunes the frontier: a partial choice is dropped when
//!   its value plus an upper bound on what the remaining groups can add
//!   within the remaining capacity (the LP relaxation: the groups' upper
//!   concave hulls, increments taken greedily by slope) falls short of a
//!   feasible choice already known (the caller's hints, e.g. the uniform
//!   schedule, and the LP's greedy rounding), by more than a tolerance that
//!   covers the bound's rounding.
//!
//! The result is exact for the floating-point sums themselves: every total is
//! summed in group order from 0, as [`totals`] sums it, and since rounded
//! addition is monotone a pair dominated before adding a group stays
//! dominated after. A brute-force enumeration that sums the same way finds
//! the same value to the bit (the tests check it).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{params, Error, Message, Result};

/// At most this many frontier pairs over all groups (24 bytes each): beyond
/// it the search stops with an error rather than exhaust memory.
pub const MAX_STATES: usize = 1 << 23;

/// At most this many candidate pairs examined over all groups (about a
/// nanosecond each): beyond it the search stops with the same error.
pub const MAX_CANDIDATES: u64 = 1 << 32;

/// Hull increments summed over all suffixes kept for the LP bound; beyond it
/// the bound is the remaining groups' best values, which ignores the
/// capacity (still exact, pruning less).
const MAX_BOUND_ENTRIES: usize = 1 << 22;

/// Relative slack of the bound, far above its rounding error.
const BOUND_SLACK: f64 = 1e-6;

/// One option of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    /// Finite and ≥ 0.
    pub weight: f64,
    /// Finite.
    pub value: f64,
}

/// One item per group and their totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The index of the chosen item in each group.
    pub picks: Vec<usize>,
    pub weight: f64,
    pub value: f64,
}

/// The best choice (`None` when none fits the capacity) and the frontier
/// pairs the search kept, over all groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Solved {
    pub choice: Option<Choice>,
    pub states: usize,
}

/// Weight and value of `picks`, each summed in group order from 0.
pub fn totals(groups: &[Vec<Item>], picks: &[usize]) -> (f64, f64) {
    let (mut w, mut v) = (0.0, 0.0);
    for (g, &p) in groups.iter().zip(picks) {
        w += g[p].weight;
        v += g[p].value;
    }
    (w, v)
}

/// The best choice within `capacity` (≥ 0; `f64::INFINITY` for none).
/// `hints` are choices known to be good (one item index per group); the
/// result is never worse than a hint that fits. Among choices of equal value
/// the lightest is returned.
pub fn solve(groups: &[Vec<Item>], capacity: f64, hints: &[Vec<usize>]) -> Result<Solved> {
    solve_within(groups, capacity, hints, Limits::DEFAULT)
}

/// The search's caps: [`MAX_STATES`] and [`MAX_CANDIDATES`], smaller in
/// the tests.
#[derive(Debug, Clone, Copy)]
struct Limits {
    states: usize,
    candidates: u64,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        states: MAX_STATES,
        candidates: MAX_CANDIDATES,
    };
}

/// The error of a search past its caps, after `done` of `groups` groups.
fn too_large(limits: Limits, done: usize, groups: usize) -> Error {
    Error::param(
        params::REWARD_STEPS,
        Message::new()
            .text(format!(
                "the budgeted search grew beyond {} (payment, utility) pairs or {} candidates \
                 after {done} of {groups} tiers (it grows with the tiers and the reward steps); \
                 use fewer ",
                limits.states, limits.candidates
            ))
            .param(params::REWARD_STEPS),
    )
}

fn solve_within(
    groups: &[Vec<Item>],
    capacity: f64,
    hints: &[Vec<usize>],
    limits: Limits,
) -> Result<Solved> {
    check(groups, capacity, hints)?;
    let none = Solved {
        choice: None,
        states: 0,
    };
    if groups.iter().any(Vec::is_empty) {
        return Ok(none);
    }
    if groups.is_empty() {
        return Ok(Solved {
            choice: Some(Choice {
                picks: Vec::new(),
                weight: 0.0,
                value: 0.0,
            }),
            states: 0,
        });
    }
    let reduced: Vec<Vec<Reduced>> = groups.iter().map(|g| reduce(g)).collect();
    let bounds = Bounds::new(&reduced);
    let scale: f64 = groups
        .iter()
        .map(|g| g.iter().map(|i| i.value.abs()).fold(0.0, f64::max))
        .sum();
    // The best feasible value known before the search.
    let mut known: Option<(f64, Vec<usize>)> = None;
    let greedy = bounds.greedy(&reduced, capacity);
    for picks in hints.iter().chain(std::iter::once(&greedy)) {
        let (w, v) = totals(groups, picks);
        if w <= capacity && known.as_ref().is_none_or(|(best, _)| v > *best) {
            known = Some((v, picks.clone()));
        }
    }
    let floor = known.as_ref().map_or(f64::NEG_INFINITY, |(v, _)| {
        v - BOUND_SLACK * (scale + v.abs())
    });

    let mut layers: Vec<Vec<State>> = Vec::with_capacity(groups.len());
    let start = [State {
        w: 0.0,
        v: 0.0,
        parent: 0,
        pick: 0,
    }];
    let mut states = 0usize;
    let mut examined = 0u64;
    for (g, items) in reduced.iter().enumerate() {
        let prev: &[State] = layers.last().map_or(&start[..], Vec::as_slice);
        let keep = |w: f64, v: f64| w <= capacity && v + bounds.upper(g + 1, capacity - w) >= floor;
        // Within this group's merge, at most the pairs left of the cap.
        let room = limits.states - states;
        let Some(next) = merge(prev, items, capacity, keep, &mut examined, room, limits) else {
            return Err(too_large(limits, g + 1, groups.len()));
        };
        states += next.len();
        if next.is_empty() {
            break;
        }
        layers.push(next);
    }
    let Some(last) = (layers.len() == groups.len())
        .then(|| layers.last().and_then(|l| l.last()))
        .flatten()
    else {
        return match known {
            None => Ok(Solved {
                choice: None,
                states,
            }),
            Some(_) => Err(Error::internal(
                "the knapsack search lost every feasible choice a hint had",
            )),
        };
    };
    // Back from the last group: each state names its item and its parent.
    let mut picks = vec![0; groups.len()];
    let mut at = last;
    for g in (0..groups.len()).rev() {
        picks[g] = reduced[g][at.pick as usize].index;
        if g > 0 {
            at = &layers[g - 1][at.parent as usize];
        }
    }
    let (weight, value) = totals(groups, &picks);
    if weight.to_bits() != last.w.to_bits() || value.to_bits() != last.v.to_bits() {
        return Err(Error::internal(format!(
            "the knapsack's choice sums to ({weight}, {value}), not its state's ({}, {})",
            last.w, last.v
        )));
    }
    if known.as_ref().is_some_and(|(v, _)| *v > value) {
        return Err(Error::internal(
            "the knapsack search returned a choice worse than a known one",
        ));
    }
    Ok(Solved {
        choice: Some(Choice {
            picks,
            weight,
            value,
        }),
        states,
    })
}

fn check(groups: &[Vec<Item>], capacity: f64, hints: &[Vec<usize>]) -> Result<()> {
    if capacity.is_nan() || capacity < 0.0 {
        return Err(Error::invalid(format!(
            "knapsack capacity {capacity} must be >= 0"
        )));
    }
    for (g, items) in groups.iter().enumerate() {
        if let Some(i) = items
            .iter()
            .find(|i| !(i.weight.is_finite() && i.weight >= 0.0 && i.value.is_finite()))
        {
            return Err(Error::invalid(format!(
                "knapsack group {g} has the item {i:?}: weights must be finite and >= 0, values finite"
            )));
        }
    }
    for h in hints {
        if h.len() != groups.len() || h.iter().zip(groups).any(|(&p, g)| p >= g.len()) {
            return Err(Error::invalid(format!(
                "knapsack hint {h:?} does not pick one item of each of {} groups",
                groups.len()
            )));
        }
    }
    Ok(())
}

/// An item of a group's own frontier, with its index in the group.
#[derive(Debug, Clone, Copy)]
struct Reduced {
    w: f64,
    v: f64,
    index: usize,
}

/// A group's items that no other item of it beats in both weight and value,
/// by increasing weight (and so increasing value); of equal items, the first.
fn reduce(items: &[Item]) -> Vec<Reduced> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (items[a], items[b]);
        x.weight
            .total_cmp(&y.weight)
            .then(y.value.total_cmp(&x.value))
            .then(a.cmp(&b))
    });
    let mut out: Vec<Reduced> = Vec::new();
    for i in order {
        let it = items[i];
        if out.last().is_none_or(|l| it.value > l.v) {
            out.push(Reduced {
                w: it.weight,
                v: it.value,
                index: i,
            });
        }
    }
    out
}

/// A frontier pair: totals over the groups so far, the index of its parent
/// in the previous frontier and of its item in the group's reduced items.
#[derive(Debug, Clone, Copy)]
struct State {
    w: f64,
    v: f64,
    parent: u32,
    pick: u32,
}

/// A candidate of the next frontier: previous state `j` with item `s`.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    w: f64,
    v: f64,
    s: u32,
    j: u32,
}

impl Candidate {
    /// Merge order: lighter first, then more valuable, then by item and
    /// parent, so the order (and the pair kept of equal ones) is fixed.
    fn order(&self, o: &Self) -> Ordering {
        self.w
            .total_cmp(&o.w)
            .then(o.v.total_cmp(&self.v))
            .then(self.s.cmp(&o.s))
            .then(self.j.cmp(&o.j))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.order(o) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    /// Reversed: `BinaryHeap` is a max-heap and the merge wants the least.
    fn cmp(&self, o: &Self) -> Ordering {
        o.order(self)
    }
}

/// The next frontier: for each item, the previous frontier shifted by it (a
/// list sorted by weight, since rounded addition is monotone), merged by
/// weight; a candidate is kept when it beats the last kept pair's value (and
/// replaces that pair when it weighs the same). `keep` drops candidates that
/// overflow the capacity or cannot reach the known value; `examined` counts
/// the candidates looked at. `None` as soon as the frontier holds more than
/// `room` pairs or `examined` passes `limits.candidates`, so a layer never
/// grows far past the cap.
fn merge(
    prev: &[State],
    items: &[Reduced],
    capacity: f64,
    keep: impl Fn(f64, f64) -> bool,
    examined: &mut u64,
    room: usize,
    limits: Limits,
) -> Option<Vec<State>> {
    let count = std::cell::Cell::new(*examined);
    let over = std::cell::Cell::new(false);
    // The first candidate at or after `j` of item `s` that `keep` accepts;
    // once one is over capacity, so are the rest of the list.
    let next = |s: usize, mut j: usize| -> Option<Candidate> {
        while j < prev.len() {
            count.set(count.get() + 1);
            if count.get() > limits.candidates {
                over.set(true);
                return None;
            }
            let (w, v) = (prev[j].w + items[s].w, prev[j].v + items[s].v);
            if w > capacity {
                return None;
            }
            if keep(w, v) {
                return Some(Candidate {
                    w,
                    v,
                    s: s as u32,
                    j: j as u32,
                });
            }
            j += 1;
        }
        None
    };
    let mut heap: BinaryHeap<Candidate> = (0..items.len()).filter_map(|s| next(s, 0)).collect();
    let mut out: Vec<State> = Vec::new();
    while let Some(c) = heap.pop() {
        if over.get() {
            return None;
        }
        if let Some(n) = next(c.s as usize, c.j as usize + 1) {
            heap.push(n);
        }
        let state = State {
            w: c.w,
            v: c.v,
            parent: c.j,
            pick: c.s,
        };
        match out.last_mut() {
            Some(last) if c.v <= last.v => {}
            Some(last) if c.w == last.w => *last = state,
            _ => {
                if out.len() == room {
                    return None;
                }
                out.push(state);
            }
        }
    }
    *examined = count.get();
    (!over.get()).then_some(out)
}

/// Upper bounds on what groups k.. can add within a capacity.
struct Bounds {
    /// Per suffix k: the remaining groups' lightest items' totals, and the LP
    /// curve beyond them (cumulative weight and value of the hull increments
    /// by decreasing slope, from 0). `None` for all k when too large or when
    /// a slope or sum is not finite: then `best` bounds alone.
    lp: Option<Vec<Curve>>,
    /// Per suffix k: Σ of the remaining groups' best values.
    best: Vec<f64>,
    /// All groups' increments by decreasing slope, for the greedy choice.
    all: Vec<Increment>,
}

struct Curve {
    base_w: f64,
    base_v: f64,
    cum_w: Vec<f64>,
    cum_v: Vec<f64>,
}

/// A step along a group's upper hull, from reduced item `from` to `to`.
#[derive(Debug, Clone, Copy)]
struct Increment {
    dw: f64,
    dv: f64,
    group: usize,
    to: usize,
}

impl Increment {
    fn slope_order(&self, o: &Self) -> Ordering {
        (o.dv / o.dw)
            .total_cmp(&(self.dv / self.dw))
            .then(self.group.cmp(&o.group))
            .then(self.to.cmp(&o.to))
    }
}

/// The upper concave hull of a group's reduced items from its lightest, as
/// increments (weight and value both rising, slopes falling). The turn test
/// runs on the coordinates divided by the group's largest weight and value
/// (a positive scale per axis keeps every turn's sign), so its products lie
/// in [-4, 4] and neither overflow (weights and values near 1e200 would give
/// inf − inf = NaN and keep points below the hull) nor underflow (near
/// 1e-200 they would give 0 and drop points on it).
fn hull(group: usize, items: &[Reduced]) -> Vec<Increment> {
    let norm = |m: f64| if m > 0.0 { m } else { 1.0 };
    let sw = norm(items.iter().map(|i| i.w).fold(0.0, f64::max));
    let sv = norm(items.iter().map(|i| i.v.abs()).fold(0.0, f64::max));
    let at = |p: usize| (items[p].w / sw, items[p].v / sv);
    let mut h: Vec<usize> = Vec::new();
    for p in 0..items.len() {
        let it = at(p);
        while h.len() >= 2 {
            let (a, b) = (at(h[h.len() - 2]), at(h[h.len() - 1]));
            // b is not above the chord a → it: drop it.
            let cross = (b.0 - a.0) * (it.1 - a.1) - (b.1 - a.1) * (it.0 - a.0);
            if cross >= 0.0 {
                h.pop();
            } else {
                break;
            }
        }
        h.push(p);
    }
    h.windows(2)
        .map(|p| Increment {
            dw: items[p[1]].w - items[p[0]].w,
            dv: items[p[1]].v - items[p[0]].v,
            group,
            to: p[1],
        })
        .collect()
}

fn merged(a: &[Increment], b: &[Increment]) -> Vec<Increment> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].slope_order(&b[j]) != Ordering::Greater {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Bounds {
    fn new(reduced: &[Vec<Reduced>]) -> Self {
        let n = reduced.len();
        let hulls: Vec<Vec<Increment>> = reduced
            .iter()
            .enumerate()
            .map(|(g, items)| hull(g, items))
            .collect();
        let mut best = vec![0.0; n + 1];
        for k in (0..n).rev() {
            best[k] = best[k + 1] + reduced[k].last().map_or(0.0, |r| r.v);
        }
        let mut all: Vec<Increment> = hulls.concat();
        all.sort_by(|a, b| a.slope_order(b));
        // Suffix k holds the increments of groups k.., so the entries over all
        // suffixes grow with the square of the groups.
        let mut entries = 0usize;
        let mut tail = 0usize;
        for h in hulls.iter().rev() {
            tail += h.len();
            entries = entries.saturating_add(tail);
        }
        // The LP sorts increments by slope: a slope that is not a finite
        // number (a value step over a weight step that overflows) could sort
        // wrongly and bound too low, so then the coarse bound is used.
        let finite = all
            .iter()
            .all(|i| i.dw.is_finite() && i.dv.is_finite() && (i.dv / i.dw).is_finite());
        let lp = (finite && entries <= MAX_BOUND_ENTRIES).then(|| {
            let mut curves: Vec<Curve> = Vec::with_capacity(n + 1);
            let mut suffix: Vec<Increment> = Vec::new();
            let (mut base_w, mut base_v) = (0.0, 0.0);
            for k in (0..=n).rev() {
                if k < n {
                    suffix = merged(&suffix, &hulls[k]);
                    base_w += reduced[k][0].w;
                    base_v += reduced[k][0].v;
                }
                let (mut cum_w, mut cum_v) = (vec![0.0], vec![0.0]);
                for inc in &suffix {
                    cum_w.push(cum_w[cum_w.len() - 1] + inc.dw);
                    cum_v.push(cum_v[cum_v.len() - 1] + inc.dv);
                }
                curves.push(Curve {
                    base_w,
                    base_v,
                    cum_w,
                    cum_v,
                });
            }
            curves.reverse();
            curves
        });
        // Sums past f64 (values near its limit): the coarse bound as well.
        let lp = lp.filter(|curves| {
            curves.iter().all(|c| {
                [
                    c.base_w,
                    c.base_v,
                    c.cum_w[c.cum_w.len() - 1],
                    c.cum_v[c.cum_v.len() - 1],
                ]
                .iter()
                .all(|x| x.is_finite())
            })
        });
        Bounds { lp, best, all }
    }

    /// An upper bound on the value groups `k`.. add within `room`.
    fn upper(&self, k: usize, room: f64) -> f64 {
        let Some(lp) = &self.lp else {
            return self.best[k];
        };
        let c = &lp[k];
        // A room below the lightest items' total has no completion; any
        // bound is then sound, and the lightest items' value is one.
        let room = (room - c.base_w).max(0.0);
        let j = c.cum_w.partition_point(|&w| w <= room) - 1;
        let mut v = c.base_v + c.cum_v[j];
        if j + 1 < c.cum_w.len() {
            let (dw, dv) = (c.cum_w[j + 1] - c.cum_w[j], c.cum_v[j + 1] - c.cum_v[j]);
            if dw > 0.0 {
                v += (room - c.cum_w[j]) / dw * dv;
            }
        }
        v
    }

    /// The LP's greedy rounding: each group from its lightest item, hull
    /// increments by decreasing slope while they fit (a group whose next
    /// increment does not fit takes no more); a choice to try, not trusted
    /// to fit (its totals are checked by the caller).
    fn greedy(&self, reduced: &[Vec<Reduced>], capacity: f64) -> Vec<usize> {
        let mut at: Vec<usize> = vec![0; reduced.len()];
        let mut blocked = vec![false; reduced.len()];
        let mut w: f64 = reduced.iter().map(|r| r[0].w).sum();
        for inc in &self.all {
            if blocked[inc.group] {
                continue;
            }
            if w + inc.dw <= capacity {
                w += inc.dw;
                at[inc.group] = inc.to;
            } else {
                blocked[inc.group] = true;
            }
        }
        at.iter().zip(reduced).map(|(&p, r)| r[p].index).collect()
    }
}

/// Every choice, summed as [`totals`] sums it: the reference for the tests.
#[cfg(test)]
pub(crate) fn brute_force(groups: &[Vec<Item>], capacity: f64) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    let mut picks = vec![0usize; groups.len()];
    if groups.iter().any(Vec::is_empty) {
        return None;
    }
    loop {
        let (w, v) = totals(groups, &picks);
        if w <= capacity && best.is_none_or(|(_, bv)| v > bv) {
            best = Some((w, v));
        }
        // The next choice, as an odometer.
        let mut g = 0;
        loop {
            if g == groups.len() {
                return best;
            }
            picks[g] += 1;
            if picks[g] < groups[g].len() {
                break;
            }
            picks[g] = 0;
            g += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn items(v: &[(f64, f64)]) -> Vec<Item> {
        v.iter()
            .map(|&(weight, value)| Item { weight, value })
            .collect()
    }

    #[test]
    fn a_budget_couples_the_groups() {
        // Alone, each group would take its heaviest item (value 10 at weight
        // 6); within 8 the best is one of them plus the other's middle item.
        let g = vec![
            items(&[(0.0, 0.0), (2.0, 5.0), (6.0, 10.0)]),
            items(&[(0.0, 0.0), (2.0, 6.0), (6.0, 10.0)]),
        ];
        let s = solve(&g, 8.0, &[]).unwrap();
        let c = s.choice.unwrap();
        assert_eq!(
            (c.picks.as_slice(), c.weight, c.value),
            (&[2, 1][..], 8.0, 16.0)
        );
        let c = solve(&g, f64::INFINITY, &[]).unwrap().choice.unwrap();
        assert_eq!((c.picks, c.value), (vec![2, 2], 20.0));
        let c = solve(&g, 1.0, &[]).unwrap().choice.unwrap();
        assert_eq!((c.picks, c.value), (vec![0, 0], 0.0));
        // Nothing fits.
        let heavy = vec![items(&[(2.0, 1.0)])];
        assert_eq!(solve(&heavy, 1.0, &[]).unwrap().choice, None);
        assert_eq!(solve(&[vec![]], 1.0, &[]).unwrap().choice, None);
        // No groups: the empty choice.
        let c = solve(&[], 0.0, &[]).unwrap().choice.unwrap();
        assert!(c.picks.is_empty() && c.value == 0.0);
    }

    #[test]
    fn ties_take_the_lightest_then_the_first() {
        let g = vec![items(&[(1.0, 5.0), (0.5, 5.0), (0.5, 5.0), (2.0, 4.0)])];
        let c = solve(&g, 10.0, &[]).unwrap().choice.unwrap();
        assert_eq!(c.picks, [1]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let g = vec![items(&[(0.0, 0.0)])];
        assert!(solve(&g, -1.0, &[]).is_err());
        assert!(solve(&g, f64::NAN, &[]).is_err());
        assert!(solve(&[items(&[(-1.0, 0.0)])], 1.0, &[]).is_err());
        assert!(solve(&[items(&[(1.0, f64::NAN)])], 1.0, &[]).is_err());
        assert!(solve(&g, 1.0, &[vec![1]]).is_err());
        assert!(solve(&g, 1.0, &[vec![0, 0]]).is_err());
    }

    #[test]
    fn the_bound_without_the_lp_is_still_exact() {
        // Force the coarse bound and compare with the LP one.
        let g: Vec<Vec<Item>> = (0..4)
            .map(|t| {
                (0..9)
                    .map(|s| Item {
                        weight: (s * (t + 1)) as f64 * 0.7,
                        value: (s as f64 * 3.1).sqrt() * (t + 2) as f64 - 0.1 * s as f64,
                    })
                    .collect()
            })
            .collect();
        let reduced: Vec<Vec<Reduced>> = g.iter().map(|x| reduce(x)).collect();
        let mut b = Bounds::new(&reduced);
        assert!(b.lp.is_some());
        for room in [0.0, 3.0, 10.0, 1e9] {
            assert!(b.upper(0, room) <= b.best[0] + 1e-12);
        }
        b.lp = None;
        for cap in [0.0, 5.0, 20.0, 60.0] {
            let exact = brute_force(&g, cap).unwrap();
            let c = solve(&g, cap, &[]).unwrap().choice.unwrap();
            assert_eq!(c.value.to_bits(), exact.1.to_bits(), "capacity {cap}");
        }
    }

    /// Groups whose frontier grows with every group: weights 0..n, values
    /// rising and strictly concave, so most sums are Pareto pairs.
    fn growing(groups: usize, n: usize) -> Vec<Vec<Item>> {
        (0..groups)
            .map(|g| {
                (0..n)
                    .map(|i| Item {
                        weight: (i * (g + 1)) as f64 + 0.1 * g as f64,
                        value: ((i + 1) as f64).ln() * (g + 2) as f64,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_search_past_its_caps_is_a_parameter_error() {
        let g = growing(4, 8);
        let cap = 40.0;
        let full = solve(&g, cap, &[]).unwrap();
        assert!(full.states > 8, "{}", full.states);
        let at = |states: usize, candidates: u64| {
            solve_within(&g, cap, &[], Limits { states, candidates })
        };
        // Exactly enough pairs is fine; one fewer stops within a layer.
        assert_eq!(at(full.states, u64::MAX).unwrap(), full);
        for (states, candidates) in [(full.states - 1, u64::MAX), (5, u64::MAX), (1 << 20, 30)] {
            let e = at(states, candidates).unwrap_err();
            assert_eq!(e.as_param().map(|p| p.name), Some(params::REWARD_STEPS));
            let text = e.to_string();
            assert!(
                text.contains(&format!(
                    "grew beyond {states} (payment, utility) pairs or {candidates} candidates"
                )) && text.ends_with("use fewer reward_steps"),
                "{text}"
            );
            assert!(!text.contains("tiers_"), "{text}");
        }
        // The layer stops as soon as it passes the cap: a merge with room for
        // 3 pairs returns without building the rest of the layer.
        let prev: Vec<State> = (0..50)
            .map(|i| State {
                w: i as f64,
                v: i as f64,
                parent: 0,
                pick: 0,
            })
            .collect();
        let items: Vec<Reduced> = reduce(&g[0]);
        let mut examined = 0;
        let limits = Limits::DEFAULT;
        assert!(merge(
            &prev,
            &items,
            f64::INFINITY,
            |_, _| true,
            &mut examined,
            3,
            limits
        )
        .is_none());
        let mut all = 0;
        let n = merge(
            &prev,
            &items,
            f64::INFINITY,
            |_, _| true,
            &mut all,
            usize::MAX,
            limits,
        )
        .unwrap()
        .len();
        assert!(n > 3 && examined == 0 && all >= n as u64, "{n} {all}");
    }

    /// Weights and values near 1e200 (products overflow) and 1e-200
    /// (products underflow), and slopes that overflow: the search still
    /// finds the brute-force optimum to the bit.
    #[test]
    fn huge_and_tiny_values_match_brute_force() {
        let base: Vec<Vec<Item>> = (0..4)
            .map(|t| {
                (0..7)
                    .map(|s| Item {
                        weight: (s * (t + 1)) as f64 * 0.7 + (s * s) as f64 * 0.05,
                        value: (s as f64 * 3.1).sqrt() * (t + 2) as f64 - 0.3 * s as f64,
                    })
                    .collect()
            })
            .collect();
        for (ws, vs) in [
            (1e200, 1e200),
            (1e-200, 1e-200),
            (1e-200, 1e200),
            (1e150, 1e-150),
            (1.0, 1e300),
        ] {
            let g: Vec<Vec<Item>> = base
                .iter()
                .map(|x| {
                    x.iter()
                        .map(|i| Item {
                            weight: i.weight * ws,
                            value: i.value * vs,
                        })
                        .collect()
                })
                .collect();
            for cap in [0.0, 2.0, 5.0, 11.0, 20.0, 35.0, 60.0] {
                let cap = cap * ws;
                let exact = brute_force(&g, cap).unwrap();
                let c = solve(&g, cap, &[]).unwrap().choice.unwrap();
                assert_eq!(
                    c.value.to_bits(),
                    exact.1.to_bits(),
                    "scale ({ws}, {vs}), capacity {cap}: {} vs {}",
                    c.value,
                    exact.1
                );
            }
        }
    }

    fn group() -> impl Strategy<Value = Vec<Item>> {
        group_of(1..7)
    }

    fn group_of(items: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Item>> {
        proptest::collection::vec(
            (0u32..40, -20i32..60).prop_map(|(w, v)| Item {
                // Coarse values make ties and equal sums common.
                weight: w as f64 * 0.25,
                value: v as f64 * 0.5,
            }),
            items,
        )
    }

    /// Weight and value scales: 1, and ones where the hull's products
    /// overflow or underflow and slopes overflow.
    fn scales() -> impl Strategy<Value = (f64, f64)> {
        prop_oneof![
            4 => Just((1.0, 1.0)),
            1 => Just((1e200, 1e200)),
            1 => Just((1e-200, 1e-200)),
            1 => Just((1e-200, 1e200)),
        ]
    }

    /// The search finds the brute-force optimum to the bit, its choice sums
    /// to what it reports, fits, and is never worse than a hint; on the
    /// groups made real-valued (`real`) and scaled by `(ws, vs)` too.
    fn agrees_with_brute_force(
        groups: Vec<Vec<Item>>,
        cap: f64,
        real: bool,
        (ws, vs): (f64, f64),
    ) -> std::result::Result<(), TestCaseError> {
        let groups: Vec<Vec<Item>> = groups
            .iter()
            .enumerate()
            .map(|(g, items)| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| {
                        let (wf, vf) = if real {
                            (
                                (1.0 + 0.013 * (g + i) as f64).sqrt(),
                                (1.0 + 0.017 * (g * 7 + i) as f64).ln_1p(),
                            )
                        } else {
                            (1.0, 1.0)
                        };
                        Item {
                            weight: it.weight * wf * ws,
                            value: it.value * vf * vs,
                        }
                    })
                    .collect()
            })
            .collect();
        let cap = cap * ws;
        let hint: Vec<usize> = groups.iter().map(|g| g.len() - 1).collect();
        let s = solve(&groups, cap, std::slice::from_ref(&hint));
        prop_assert!(s.is_ok(), "{s:?}");
        let want = brute_force(&groups, cap);
        match (s.unwrap().choice, want) {
            (None, None) => {}
            (Some(c), Some((_, v))) => {
                prop_assert_eq!(c.value.to_bits(), v.to_bits(), "{} vs {}", c.value, v);
                let (w, v2) = totals(&groups, &c.picks);
                prop_assert!(w <= cap);
                prop_assert_eq!(
                    (w.to_bits(), v2.to_bits()),
                    (c.weight.to_bits(), c.value.to_bits())
                );
                let (hw, hv) = totals(&groups, &hint);
                prop_assert!(hw > cap || hv <= c.value);
            }
            (got, want) => prop_assert!(false, "{got:?} vs {want:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Up to 4 groups of up to 6 items.
        #[test]
        fn equals_brute_force(
            groups in proptest::collection::vec(group(), 1..5),
            cap in 0.0f64..40.0,
            real in proptest::bool::ANY,
            scale in scales(),
        ) {
            agrees_with_brute_force(groups, cap, real, scale)?;
        }

        /// More capacity never lowers the value.
        #[test]
        fn value_grows_with_capacity(
            groups in proptest::collection::vec(group(), 1..5),
            a in 0.0f64..30.0,
            extra in 0.0f64..30.0,
        ) {
            let v = |cap: f64| solve(&groups, cap, &[]).unwrap().choice.map(|c| c.value);
            let (lo, hi) = (v(a), v(a + extra));
            prop_assert!(lo.is_none() || lo <= hi, "{lo:?} > {hi:?}");
            prop_assert!(hi <= v(f64::INFINITY));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// 5 or 6 groups of 9 to 12 items (up to 3M choices to enumerate).
        #[test]
        fn equals_brute_force_on_more_groups(
            groups in proptest::collection::vec(group_of(9..13), 5..7),
            cap in 0.0f64..80.0,
            real in proptest::bool::ANY,
            scale in scales(),
        ) {
            agrees_with_brute_force(groups, cap, real, scale)?;
        }
    }
}
