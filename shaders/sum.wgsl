// Shared by every kernel family (the host prepends it, after a prelude that
// defines `V` (f32 or vec4<f32>), `LANES`, `lane` and `with_lane`).
// Everything is lane-wise, so one code path serves one column (f32) or four
// interleaved columns (vec4<f32>).
//
// Compensated summation. Why: the device works in f32 while the reference
// works in f64. A plain f32 running sum over a 100k-entry row loses ~log2(100k)
// bits; Neumaier's compensated sum keeps the error of a sum at about one
// rounding of its result whatever its length, and merging two compensated
// sums with TwoSum keeps that property through every level of a reduction.

// A running sum `s` and the running rounding error `c` that it has dropped.
struct Acc {
    s: V,
    c: V,
}

fn acc_zero() -> Acc {
    return Acc(V(0.0), V(0.0));
}

// Why `params.one`: shader compilers treat float adds as reassociable (Mesa's
// NIR rewrites t - (t - a) to a, which silently turns TwoSum's error term into
// 0 -- measured on lavapipe). Multiplying by a uniform that holds 1.0 makes
// the rounded sum opaque to such rewrites at the cost of one multiply.

// Neumaier's variant of Kahan summation: also exact when |x| > |s|.
fn acc_add(a: Acc, x: V) -> Acc {
    let t = (a.s + x) * params.one;
    let e = select((x - t) + a.s, (a.s - t) + x, abs(a.s) >= abs(x));
    return Acc(t, a.c + e);
}

// Merges two compensated sums: TwoSum (Knuth) of the heads, tails added.
fn acc_merge(a: Acc, b: Acc) -> Acc {
    let t = (a.s + b.s) * params.one;
    let bp = (t - a.s) * params.one;
    let e = (a.s - (t - bp)) + (b.s - bp);
    return Acc(t, (a.c + b.c) + e);
}

fn acc_value(a: Acc) -> V {
    return a.s + a.c;
}

// Workgroup size of every kernel. 256 is a multiple of every common SIMD width
// (8 on lavapipe/AVX2, 32 on NVIDIA/Apple, 64 on AMD) and leaves room for the
// (row, column-group) mapping with up to 8 groups.
const WG: u32 = 256u;

// Consecutive rows each invocation of the update kernel handles.
const UPDATE_ROWS: u32 = 4u;

// Partials one invocation of the fold kernel adds.
const FOLD: u32 = 64u;

// Shared uniform: the shape of the column block being solved.
struct Params {
    // Agents (matrix rows/targets).
    n: u32,
    // Column groups G: a row's values for the block are G consecutive `V`s.
    groups: u32,
    // G rounded up to a power of two: invocation lid serves group lid % gp.
    gp: u32,
    // Rows (or items) per workgroup in (item, group)-mapped kernels: WG / gp.
    rows_per_wg: u32,
    // Workgroups of the update kernel: ceil(n_part0 / rows_per_wg).
    rowblocks: u32,
    // Rows handled by the segmented (long-row) path.
    n_long: u32,
    // Rows longer than this go to the segmented path.
    short_max: u32,
    // Live columns W in this block (the rest of the last group is padding).
    width: u32,
    alpha: f32,
    keep: f32,
    epsilon: f32,
    max_iter: u32,
    // Always 1.0; see acc_add.
    one: f32,
    // Update partials per group (ceil(n / UPDATE_ROWS)) and after folding.
    n_part0: u32,
    n_part1: u32,
    pad0: u32,
}

// Row (or item) i's values for group g live at i * groups + g.
fn vidx(row: u32, g: u32) -> u32 {
    return row * params.groups + g;
}

// Linear workgroup index of a dispatch split over x and y (a dimension holds at
// most 65535 workgroups).
fn wg_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// True when every lane of group g has stopped (padding lanes count as stopped).
// `frozen` is the second half of the per-column vector state buffer.
fn group_done(frozen: V) -> bool {
    return all(frozen > V(0.5));
}
