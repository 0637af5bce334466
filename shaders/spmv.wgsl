// Kernel family: y = Cᵀ x for a block of interleaved columns, pull form (CSR by
// target). Rows are binned by length on the host:
//
// - short rows (<= params.short_max entries): one invocation per (row, column
//   group); the invocations of one row sit next to each other, so they load
//   each `src` entry together (one memory transaction) and gather
//   x[src * G .. src * G + G] as one contiguous run: the matrix is read once
//   per iteration for every column of the block.
// - long rows: cut into segments of 1024 entries (more for rows over a
//   million entries); 32 invocations per (segment, column group) stride over
//   it (coalesced), `seg_reduce` adds each segment's lane partials, and
//   `long_finish` adds a row's segment partials in order. A 100k-entry row is
//   spread over ~3000 invocations instead of one.
//
// The matrix may be split into chunks (row ranges whose entries fit one
// storage binding); each dispatch sees one chunk's `src`/`ew` through
// `chunk.e_base`. Segments never cross chunks; a long row's segments may.
//
// Per-source weights (`_ps` entry points) are already folded into x (x = t ·
// scale, written by the update kernel), so only 4 bytes are read per entry;
// per-edge weights (`_pe`) read the weight beside the index.

struct Chunk {
    // Rows [row0, row1) whose short rows this chunk computes.
    row0: u32,
    row1: u32,
    // Global entry index of src[0] / ew[0] in this chunk.
    e_base: u32,
    // Segments [seg0, seg1) (global indices into `segs`) in this chunk.
    seg0: u32,
    seg1: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> chunk: Chunk;
// Global CSR offsets per target (n + 1).
@group(0) @binding(2) var<storage, read> row_ptr: array<u32>;
// This chunk's sources and (per-edge path only) weights.
@group(0) @binding(3) var<storage, read> src: array<u32>;
@group(0) @binding(4) var<storage, read> ew: array<f32>;
// Gathered vector: t · scale (per-source weights) or t (per-edge weights).
@group(0) @binding(5) var<storage, read> x: array<V>;
// Per-column state as vectors: [0, G) teleport coefficient, [G, 2G) frozen flag.
@group(0) @binding(6) var<storage, read> colv: array<V>;
// Row sums (n * G).
@group(0) @binding(7) var<storage, read_write> acc: array<V>;
// Long-row segments: (row, first entry, end entry, 0), global entry indices.
@group(0) @binding(8) var<storage, read> segs: array<vec4<u32>>;
// Per (segment, group): compensated partial sum as (s, c).
@group(0) @binding(9) var<storage, read_write> seg_part: array<V>;
// Long rows: (row, first segment, end segment, 0).
@group(0) @binding(10) var<storage, read> long_rows: array<vec4<u32>>;
// Per (segment of the current chunk, lane, group): lane partials of the
// long-row kernels as (s, c); reused by every chunk.
@group(0) @binding(11) var<storage, read_write> lane_part: array<V>;

@compute @workgroup_size(256)
fn spmv_short_ps(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = lid % params.gp;
    let row = chunk.row0 + wg_index(wid, nwg) * params.rows_per_wg + lid / params.gp;
    if g >= params.groups || row >= chunk.row1 {
        return;
    }
    if group_done(colv[params.groups + g]) {
        return;
    }
    let a = row_ptr[row];
    let b = row_ptr[row + 1u];
    if b - a > params.short_max {
        return;
    }
    var s = acc_zero();
    for (var e = a; e < b; e++) {
        s = acc_add(s, x[vidx(src[e - chunk.e_base], g)]);
    }
    acc[vidx(row, g)] = acc_value(s);
}

@compute @workgroup_size(256)
fn spmv_short_pe(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = lid % params.gp;
    let row = chunk.row0 + wg_index(wid, nwg) * params.rows_per_wg + lid / params.gp;
    if g >= params.groups || row >= chunk.row1 {
        return;
    }
    if group_done(colv[params.groups + g]) {
        return;
    }
    let a = row_ptr[row];
    let b = row_ptr[row + 1u];
    if b - a > params.short_max {
        return;
    }
    var s = acc_zero();
    for (var e = a; e < b; e++) {
        let k = e - chunk.e_base;
        s = acc_add(s, ew[k] * x[vidx(src[k], g)]);
    }
    acc[vidx(row, g)] = acc_value(s);
}

// Long-row segments: SEG_LANES entry lanes per segment, each taking every
// SEG_LANES-th entry (consecutive lanes read consecutive indices: coalesced),
// times gp column groups, so one 256-invocation workgroup serves
// WG / (SEG_LANES * gp) segments. The lane count does not depend on how many
// columns share the block, so a column's sums are the same bits alone or in
// a batch. Each invocation stores its compensated partial in `lane_part`;
// `seg_reduce` adds each segment's lanes in lane order.
//
// No kernel in the iteration uses a workgroup barrier (only `finalize`, one
// workgroup per column group): CPU drivers such as lavapipe run a kernel with
// barriers as coroutines, measured at ~70 us per 256-invocation workgroup,
// which made a workgroup tree per segment 10x slower than everything else.
// The price on a GPU is one extra pass that moves two values per lane,
// against the 1024 entries (and their gathers) of a segment.
const SEG_LANES: u32 = 32u;

struct LongLane {
    live: bool,
    s: u32,
    lane: u32,
    g: u32,
}

fn long_lane(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> LongLane {
    var o: LongLane;
    o.g = lid % params.gp;
    o.lane = (lid / params.gp) % SEG_LANES;
    let per_wg = WG / (SEG_LANES * params.gp);
    o.s = chunk.seg0 + wg_index(wid, nwg) * per_wg + lid / (params.gp * SEG_LANES);
    o.live = o.s < chunk.seg1 && o.g < params.groups && !group_done(colv[params.groups + o.g]);
    return o;
}

fn lane_slot(s: u32, lane: u32, g: u32) -> u32 {
    return 2u * vidx((s - chunk.seg0) * SEG_LANES + lane, g);
}

@compute @workgroup_size(256)
fn spmv_long_ps(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let l = long_lane(wid, nwg, lid);
    if !l.live {
        return;
    }
    let seg = segs[l.s];
    var a = acc_zero();
    for (var e = seg.y + l.lane; e < seg.z; e += SEG_LANES) {
        a = acc_add(a, x[vidx(src[e - chunk.e_base], l.g)]);
    }
    let slot = lane_slot(l.s, l.lane, l.g);
    lane_part[slot] = a.s;
    lane_part[slot + 1u] = a.c;
}

@compute @workgroup_size(256)
fn spmv_long_pe(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let l = long_lane(wid, nwg, lid);
    if !l.live {
        return;
    }
    let seg = segs[l.s];
    var a = acc_zero();
    for (var e = seg.y + l.lane; e < seg.z; e += SEG_LANES) {
        let k = e - chunk.e_base;
        a = acc_add(a, ew[k] * x[vidx(src[k], l.g)]);
    }
    let slot = lane_slot(l.s, l.lane, l.g);
    lane_part[slot] = a.s;
    lane_part[slot + 1u] = a.c;
}

// One invocation per (segment of the chunk, group): adds the segment's
// SEG_LANES lane partials of that group in lane order.
@compute @workgroup_size(256)
fn seg_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = lid % params.gp;
    let s = chunk.seg0 + wg_index(wid, nwg) * params.rows_per_wg + lid / params.gp;
    if s >= chunk.seg1 || g >= params.groups || group_done(colv[params.groups + g]) {
        return;
    }
    var a = acc_zero();
    for (var lane = 0u; lane < SEG_LANES; lane++) {
        let slot = lane_slot(s, lane, g);
        a = acc_merge(a, Acc(lane_part[slot], lane_part[slot + 1u]));
    }
    seg_part[2u * vidx(s, g)] = a.s;
    seg_part[2u * vidx(s, g) + 1u] = a.c;
}

// Adds each long row's segment partials in segment order (compensated), one
// invocation per (long row, group), and stores the row sum.
@compute @workgroup_size(256)
fn long_finish(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = lid % params.gp;
    let k = wg_index(wid, nwg) * params.rows_per_wg + lid / params.gp;
    if g >= params.groups || k >= params.n_long {
        return;
    }
    if group_done(colv[params.groups + g]) {
        return;
    }
    let lr = long_rows[k];
    var a = acc_zero();
    for (var s = lr.y; s < lr.z; s++) {
        a = acc_merge(a, Acc(seg_part[2u * vidx(s, g)], seg_part[2u * vidx(s, g) + 1u]));
    }
    acc[vidx(lr.x, g)] = acc_value(a);
}
