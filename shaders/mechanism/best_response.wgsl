// Mechanism family: every follower type's best response to candidate leader
// strategies of a Bayesian Stackelberg game, one invocation per candidate
// (src/gpu/mechanism/, docs/mechanism.md). Host mirrors:
// src/gpu/mechanism/layout.rs, whose tests check them against this text.
//
// Candidates are never uploaded. Candidate `c` of a dispatch is composition
// number (first + c) % per_center of `grid` into m parts, in the
// lexicographic order mechanism::stackelberg::grid walks on the CPU, placed
// around center (first + c) / per_center:
//
//     x = A + λ · k / grid,   A = (1 − λ) · center   (uploaded per center)
//
// Payoffs arrive normalised per type: follower payoffs divided by their
// largest magnitude (which changes no best response), leader payoffs by
// theirs, and the type's weight is w = p · leader scale / Σ p · leader scale.
// Every value then lies in [-1, 1]: f32 neither overflows nor drowns a
// small-payoff type, and the host's error bounds are relative to 1.
//
// Replies within `tie` of a type's best count as ties and go to the leader
// (highest leader utility, lowest index on equal ones). The host passes a tie
// band wider than the CPU's ε by a bound on the f32 error, so that the value
// written can only overstate the CPU's f64 value (mechanism::stackelberg::
// search re-checks the finalists in f64).

const WG: u32 = 64u;
// Largest m and n the private arrays hold (gpu::mechanism::MAX_M, MAX_N).
const MAX_M: u32 = 32u;
const MAX_N: u32 = 128u;
// Below every normalised utility.
const LOW: f32 = -3.0e38;

// DETAIL: also write each (candidate, type) reply (tests compare it with the
// CPU's).
override DETAIL: bool = false;

struct Params {
    m: u32,
    n: u32,
    types: u32,
    grid: u32,
    // Compositions of `grid` into m parts: candidates per center.
    per_center: u32,
    // Level index of this dispatch's first candidate.
    first: u32,
    // Candidates in this dispatch.
    len: u32,
    // Row length of `counts`: grid + 1.
    count_cols: u32,
    lambda: f32,
    inv_grid: f32,
    tie: f32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// Per type: follower payoffs then leader payoffs, each m × n row-major
// (i * n + j), normalised.
@group(0) @binding(1) var<storage, read> payoffs: array<f32>;
// Per type: its weight w.
@group(0) @binding(2) var<storage, read> weights: array<f32>;
// Per center: A = (1 − λ) · center, m values.
@group(0) @binding(3) var<storage, read> centers: array<f32>;
// counts[(q − 1) * (grid + 1) + d]: compositions of d into q parts, q ≤ m.
@group(0) @binding(4) var<storage, read> counts: array<u32>;
// Per candidate of the dispatch: its value Σ_θ w_θ · leader utility.
@group(0) @binding(5) var<storage, read_write> values: array<f32>;
// DETAIL only, per (candidate, type): reply, then the bits of the leader's
// and of the type's utility (normalised), then 0.
@group(0) @binding(6) var<storage, read_write> detail: array<vec4<u32>>;

// Linear workgroup index of a dispatch split over x and y.
fn wg_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn evaluate(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = wg_index(wid, nwg) * WG + lid;
    if local >= params.len {
        return;
    }
    let cand = params.first + local;
    let m = params.m;
    let n = params.n;
    let center = cand / params.per_center;
    var r = cand % params.per_center;

    // Unrank (as grid::Level::unrank): part p takes the largest v whose
    // smaller values' compositions, comp(rem, q + 1) − comp(rem − v, q + 1)
    // with q parts after p, do not exceed r; a binary search.
    var x: array<f32, MAX_M>;
    var rem = params.grid;
    for (var p = 0u; p + 1u < m; p++) {
        let row = (m - p - 1u) * params.count_cols;
        let total = counts[row + rem];
        var lo = 0u;
        var hi = rem;
        while lo < hi {
            let mid = lo + (hi - lo + 1u) / 2u;
            if total - counts[row + rem - mid] <= r {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
        r -= total - counts[row + rem - lo];
        x[p] = centers[center * m + p] + params.lambda * (f32(lo) * params.inv_grid);
        rem -= lo;
    }
    x[m - 1u] = centers[center * m + m - 1u] + params.lambda * (f32(rem) * params.inv_grid);

    var u: array<f32, MAX_N>;
    var total = 0.0;
    let mn = m * n;
    for (var t = 0u; t < params.types; t++) {
        let fo = t * 2u * mn;
        let le = fo + mn;
        var best = LOW;
        for (var j = 0u; j < n; j++) {
            var s = 0.0;
            for (var i = 0u; i < m; i++) {
                s += x[i] * payoffs[fo + i * n + j];
            }
            u[j] = s;
            best = max(best, s);
        }
        let cut = best - params.tie;
        var pick = 0u;
        var lv = LOW;
        for (var j = 0u; j < n; j++) {
            if u[j] >= cut {
                var s = 0.0;
                for (var i = 0u; i < m; i++) {
                    s += x[i] * payoffs[le + i * n + j];
                }
                if s > lv {
                    lv = s;
                    pick = j;
                }
            }
        }
        total += weights[t] * lv;
        if DETAIL {
            detail[local * params.types + t] = vec4<u32>(pick, bitcast<u32>(lv), bitcast<u32>(u[pick]), 0u);
        }
    }
    values[local] = total;
}
