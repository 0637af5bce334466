// Kernel family: y = Cᵀ x for a block of interleaved columns, pull form (CSR by
// target), in one dispatch per matrix chunk.
//
// A row's sum is defined by its length alone: it is split over R lanes
// (R = 1, 2, 4, ..., 32, the next power of two of ceil(length / entries per
// lane), `row_lanes_log2`); lane t sums the entries a + t, a + t + R, ...
// (compensated, in order), and the R lane sums are merged in a fixed tree
// (stride R/2, ..., 1). Two kernels compute exactly that:
//
// - `spmv` (single columns): the host (src/gpu/trust/plan.rs) cuts the rows
//   into *blocks*, one workgroup each, with T invocations per row, T fitted
//   to the block's longest row. The lanes of a row run side by side, so they
//   read consecutive entries together (coalesced at any row length), and the
//   tree runs through workgroup memory; a row with R < T lanes leaves lanes
//   [R, T) at zero, which the tree's upper levels merge exactly. No lane idles
//   on a long row while its neighbours finish short ones, which is what made
//   one invocation per row slow on power-law graphs at one column.
// - `spmv_rows` (blocks of several column groups): one invocation per (row,
//   group), the groups of a row side by side (one gathered cache line serves
//   them all); the invocation walks the row's R lanes itself and merges them
//   in the same tree. Batches are bound by the gathers, and this mapping
//   needs no barrier and no rounds.
//
// Rows longer than 32 lanes' worth are cut into segments of about a thousand
// entries; segment blocks (kind 1) run 32 lanes per segment and store the
// segment's compensated sum; the update (power.wgsl) adds a row's segments in
// order where it reads the row's product.
//
// Segment blocks serve both: a block of G column groups maps invocation
// (segment, lane, group) with the group fastest and takes as many rounds over
// its segments as it needs. Every sum's grouping comes from the matrix alone,
// so a column's sums are the same bits alone or in a batch.
//
// The matrix may be split into chunks (entry ranges that fit one storage
// binding); each dispatch sees one chunk's `src`/`ew` through `chunk.e_base`.

struct Chunk {
    // Blocks [block0, block1) of this dispatch (all the chunk's blocks for
    // `spmv` at one column; only its segment blocks beside `spmv_rows`).
    block0: u32,
    block1: u32,
    // Global entry index of src[0] / ew[0] in this chunk.
    e_base: u32,
    // Rows [row0, row1): every short row in it has its entries in this chunk.
    row0: u32,
    row1: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// Weights per edge (`ew`) rather than folded into x per source.
override PER_EDGE: bool = false;

@group(0) @binding(1) var<uniform> chunk: Chunk;
// Global CSR offsets per target (n + 1).
@group(0) @binding(2) var<storage, read> row_ptr: array<u32>;
// This chunk's sources and (per-edge weights only) weights.
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
// Per (segment, group): compensated sum as (s, c).
@group(0) @binding(9) var<storage, read_write> seg_part: array<V>;
// Blocks: (first unit, end unit, log2(T) | kind << 8, 0); a unit is a row
// (kind 0), a segment (kind 1) or an entry of `row_list` (kind 2).
@group(0) @binding(10) var<storage, read> blocks: array<vec4<u32>>;
// Rows of the binned row blocks (kind 2), whose rows all have T lanes.
@group(0) @binding(11) var<storage, read> row_list: array<u32>;

var<workgroup> tree_s: array<V, WG>;
var<workgroup> tree_c: array<V, WG>;
var<workgroup> block_sh: vec4<u32>;

fn gather(e: u32, g: u32) -> V {
    let k = e - chunk.e_base;
    let v = x[vidx(src[k], g)];
    if PER_EDGE {
        return ew[k] * v;
    }
    return v;
}

// The adapter's smallest subgroup when the kernels may use subgroup shuffles
// (`shuffle_down`, from the module's prelude: src/gpu/trust/kernels.rs), else
// 0. Invocations are assumed to form subgroups in local_invocation_index
// order, as every Vulkan, Metal and D3D12 driver lays out a 1-D workgroup;
// the tests check the subgroup tree against the workgroup tree bit for bit.
override SG_MIN: u32 = 0u;

// Four gathers in flight per lane before the first add (on by default, the
// same in both product kernels; $TRUSTMESH_GPU_GATHER_AHEAD,
// src/gpu/trust/kernels.rs).
override GATHER_AHEAD: bool = false;

// Lane t of a unit summed over R lanes: entries e0 + t, e0 + t + R, ... < e1,
// added in that order. Each entry is an index load and a dependent gather; a
// loop with a run-time trip count may keep only one such chain in flight per
// lane, so GATHER_AHEAD issues four chains before adding them. The adds stay
// in entry order; a compiler may still round the unrolled code differently
// (lavapipe: the last bit of a few sums), so a variant is its own result,
// deterministic and the same alone or in a batch.
fn lane_sum(e0: u32, e1: u32, t: u32, r: u32, g: u32) -> Acc {
    var a = acc_zero();
    var e = e0 + t;
    if GATHER_AHEAD {
        // e + 3r < e1 without overflow: e1 - e > 3r.
        for (; e < e1 && e1 - e > 3u * r; e += 4u * r) {
            let v0 = gather(e, g);
            let v1 = gather(e + r, g);
            let v2 = gather(e + 2u * r, g);
            let v3 = gather(e + 3u * r, g);
            a = acc_add(a, v0);
            a = acc_add(a, v1);
            a = acc_add(a, v2);
            a = acc_add(a, v3);
        }
    }
    for (; e < e1; e += r) {
        a = acc_add(a, gather(e, g));
    }
    return a;
}

@compute @workgroup_size(256)
fn spmv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = chunk.block0 + wg_index(wid, nwg);
    if b >= chunk.block1 {
        return;
    }
    // Every invocation must agree on the lane count: the tree's barriers run
    // in uniform control flow only.
    if lid == 0u {
        block_sh = blocks[b];
    }
    let d = workgroupUniformLoad(&block_sh);
    let tl = d.z & 31u;
    let lanes = 1u << tl;
    let kind = d.z >> 8u;
    let is_seg = kind == 1u;
    let units = d.y - d.x;
    // Invocations per unit, and units per round (lanes * gp divides WG).
    let span = lanes * params.gp;
    let per_round = WG / span;
    let rounds = (units + per_round - 1u) / per_round;
    let g = lid % params.gp;
    let t = (lid / params.gp) % lanes;
    for (var r = 0u; r < rounds; r++) {
        let u = r * per_round + lid / span;
        let live = u < units && g < params.groups && !group_done(colv[params.groups + g]);
        var a = acc_zero();
        // The unit's row (row units only).
        var row = 0u;
        if live {
            var e0: u32;
            var e1: u32;
            var rl = lanes;
            if is_seg {
                let s = segs[d.x + u];
                e0 = s.y;
                e1 = s.z;
            } else {
                row = d.x + u;
                if kind == 2u {
                    row = row_list[row];
                }
                e0 = row_ptr[row];
                e1 = row_ptr[row + 1u];
                rl = 1u << row_lanes_log2(e1 - e0);
            }
            if t < rl {
                a = lane_sum(e0, e1, t, rl, g);
            }
        }
        if tl > 0u && span <= SG_MIN {
            // A unit's lanes lie in one subgroup (span divides the subgroup
            // size, units start at multiples of span): the same tree through
            // shuffles, no workgroup memory, no barrier. Lanes t >= s compute
            // what nobody reads.
            for (var s = lanes / 2u; s > 0u; s = s / 2u) {
                let d = s * params.gp;
                let o = Acc(shuffle_down(a.s, d), shuffle_down(a.c, d));
                if t < s {
                    a = acc_merge(a, o);
                }
            }
        } else if tl > 0u {
            // The previous round's last readers are done with the slots.
            workgroupBarrier();
            tree_s[lid] = a.s;
            tree_c[lid] = a.c;
            for (var s = lanes / 2u; s > 0u; s = s / 2u) {
                workgroupBarrier();
                // Lanes [0, s) take lanes [s, 2s): the slots read are never
                // the ones written in the same step.
                if t < s {
                    let o = lid + s * params.gp;
                    a = acc_merge(a, Acc(tree_s[o], tree_c[o]));
                    tree_s[lid] = a.s;
                    tree_c[lid] = a.c;
                }
            }
        }
        if live && t == 0u {
            if is_seg {
                let i = 2u * vidx(d.x + u, g);
                seg_part[i] = a.s;
                seg_part[i + 1u] = a.c;
            } else {
                acc[vidx(row, g)] = acc_value(a);
            }
        }
    }
}

// One invocation per (short row of the chunk, group). It visits the row's R
// lanes in bit-reversed order (0, R/2, R/4, 3R/4, ... for R = 8: 0 4 2 6 1 5
// 3 7), which are the leaves of the tree `spmv` builds, left to right, and
// merges two subtrees as soon as they have the same size (a binary counter
// over `s0`..`s4`): the same merges in the same order, so the same bits.
@compute @workgroup_size(256)
fn spmv_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ig = item_group(wid, nwg, lid);
    let row = chunk.row0 + ig.x;
    let g = ig.y;
    if g >= params.groups || row >= chunk.row1 {
        return;
    }
    if group_done(colv[params.groups + g]) {
        return;
    }
    let e0 = row_ptr[row];
    let e1 = row_ptr[row + 1u];
    if e1 - e0 > MAX_LANES * params.per_lane {
        // A long row: its segments are summed by `spmv`, then in the update.
        return;
    }
    let tl = row_lanes_log2(e1 - e0);
    let r = 1u << tl;
    var s0 = acc_zero();
    var s1 = acc_zero();
    var s2 = acc_zero();
    var s3 = acc_zero();
    var s4 = acc_zero();
    var s5 = acc_zero();
    for (var i = 0u; i < r; i++) {
        let t = select(reverseBits(i) >> (32u - tl), 0u, tl == 0u);
        var cur = lane_sum(e0, e1, t, r, g);
        // Carry: level l holds a finished subtree of 2^l leaves while bit l
        // of i is set.
        if (i & 1u) == 0u {
            s0 = cur;
            continue;
        }
        cur = acc_merge(s0, cur);
        if (i & 2u) == 0u {
            s1 = cur;
            continue;
        }
        cur = acc_merge(s1, cur);
        if (i & 4u) == 0u {
            s2 = cur;
            continue;
        }
        cur = acc_merge(s2, cur);
        if (i & 8u) == 0u {
            s3 = cur;
            continue;
        }
        cur = acc_merge(s3, cur);
        if (i & 16u) == 0u {
            s4 = cur;
            continue;
        }
        s5 = acc_merge(s4, cur);
    }
    // The whole tree of 2^tl leaves ends at level tl.
    var total = s0;
    switch tl {
        case 1u: { total = s1; }
        case 2u: { total = s2; }
        case 3u: { total = s3; }
        case 4u: { total = s4; }
        case 5u: { total = s5; }
        default: {}
    }
    acc[vidx(row, g)] = acc_value(total);
}
