// Trust family: what every trust kernel shares (GpuContext::shader puts it
// after shaders/common/sum.wgsl). Host mirrors: src/gpu/trust/layout.rs, whose
// tests check the sizes against this text.

// Workgroup size of every kernel. 256 is a multiple of every common SIMD width
// (8 on lavapipe/AVX2, 32 on NVIDIA/Apple, 64 on AMD) and leaves room for the
// (row, column-group) mapping with up to 8 groups.
const WG: u32 = 256u;

// Consecutive rows each invocation of the update kernel handles.
const UPDATE_ROWS: u32 = 4u;

// Items (an update invocation's rows, or partials) merged by one chunk tree in
// workgroup memory into one partial: the update writes one partial per
// TREE · UPDATE_ROWS rows, the fold one per TREE update partials. Why 32: a
// chunk must lie within one workgroup for every column-group count, and a
// workgroup holds WG / gp ≥ 32 items (gp ≤ 8).
const TREE: u32 = 32u;

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
    // Rows summed from long-row segment partials.
    n_long: u32,
    // Live columns W in this block (the rest of the last group is padding).
    width: u32,
    max_iter: u32,
    // Update partials per group (ceil(n / (UPDATE_ROWS · TREE))), and the
    // fold's (ceil(n_part0 / TREE)), 0 when finalize reads the update's.
    n_part0: u32,
    n_part1: u32,
    alpha: f32,
    keep: f32,
    epsilon: f32,
    // Always 1.0; see acc_one.
    one: f32,
    // Entries per lane a row's lane count is fitted to (plan::PlanConfig).
    per_lane: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// 1.0 that the compiler cannot see through (shaders/common/sum.wgsl).
fn acc_one() -> f32 {
    return params.one;
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

// Most lanes a row is summed with (plan::MAX_LANES); longer rows are cut into
// segments of MAX_LANES lanes.
const MAX_LANES: u32 = 32u;

// log2 of the lanes a row of `len` entries is summed with: the next power of
// two of ceil(len / per_lane), at most MAX_LANES (plan::lanes_log2). A row's
// sum depends on this number alone, whichever kernel computes it.
fn row_lanes_log2(len: u32) -> u32 {
    let need = max((len + params.per_lane - 1u) / params.per_lane, 1u);
    return min(32u - countLeadingZeros(need - 1u), 5u);
}

// (item, group) of an invocation in the kernels that map one invocation per
// (item, column group), the groups of an item side by side: `rows_per_wg`
// items per workgroup.
fn item_group(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> vec2<u32> {
    return vec2<u32>(wg_index(wid, nwg) * params.rows_per_wg + lid / params.gp, lid % params.gp);
}

// True when every lane of group g has stopped (padding lanes count as stopped).
// `frozen` is the second half of the per-column vector state buffer.
fn group_done(frozen: V) -> bool {
    return all(frozen > V(0.5));
}
