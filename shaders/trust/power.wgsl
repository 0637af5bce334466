// Kernel family: one power-iteration update per column, then the per-column
// reductions and the stopping decision, all on the device.
//
//   t'(j) = (1 - a) · y(j) + coef · p(j),   coef = (1 - a) · (d·t) + a
//
// where y = Cᵀ x came from spmv.wgsl. The L1 residual Σ|t' - t| and the
// dangling mass Σ d(j)·t'(j) are reduced in three fixed levels, compensated
// all the way, with no float atomics (so a given device gives the same bits
// every run):
//
//   update    one partial per TREE · UPDATE_ROWS consecutive rows (a tree in
//             workgroup memory over TREE invocations' sequential sums),
//   fold      one partial per TREE update partials, the same way; only when
//             there are more than FINAL_DIRECT (src/gpu/trust/block.rs)
//             update partials,
//   finalize  one workgroup per column group: strided sums, then a tree.
//
// Why so few passes: on a graph of a few hundred thousand rows every pass is
// mostly launch and barrier latency (cnr-2000 on an H100: a fold of one
// partial per 4 rows and a finalize took 0.047 ms, twice the product).
//
// `finalize` then counts the iteration and freezes a column once its residual
// is below epsilon or it reached max_iter. A frozen column is copied through
// unchanged by later iterations, so it ends exactly at the iteration that
// stopped it, and the host only needs to read the small `cols` buffer every
// few iterations, never the vectors before the end.

// Per-column scalar state, read back by the host.
struct ColState {
    iterations: u32,
    // 0 running, 1 converged, 2 flat tail (set by the host), 3 max_iter.
    stop: u32,
    residual: f32,
    mass: f32,
}

// Per-source weights: also write the pre-scaled x' = t'·scale that the next
// gather reads (per-edge weights gather t itself and bind a placeholder).
override SCALED: bool = true;

@group(0) @binding(1) var<storage, read> acc: array<V>;
// Pre-trust, interleaved like t.
@group(0) @binding(2) var<storage, read> pre: array<V>;
// Per row: (deficit d(j), per-source scale (1 when weights are per edge)).
@group(0) @binding(3) var<storage, read> rowinfo: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> t_cur: array<V>;
@group(0) @binding(5) var<storage, read_write> t_next: array<V>;
// Pre-scaled copy of t_next for the next gather (per-source weights only;
// with per-edge weights a placeholder is bound and never written).
@group(0) @binding(6) var<storage, read_write> x_next: array<V>;
// [0, G) teleport coefficient, [G, 2G) frozen flag (1.0 = stopped or padding).
@group(0) @binding(7) var<storage, read_write> colv: array<V>;
// Partials, 4 per (item, group): residual (s, c), then mass (s, c); the
// update's (level 0, n_part0 items) and after them the fold's (level 1).
@group(0) @binding(8) var<storage, read_write> parts: array<V>;
@group(0) @binding(9) var<storage, read_write> cols: array<ColState>;
// Long rows' segment sums (compensated, from spmv.wgsl), the long rows
// (row, first segment, end segment, 0) in row order, and per update
// invocation the index of the first long row at or after its first row.
@group(0) @binding(10) var<storage, read> seg_part: array<V>;
@group(0) @binding(11) var<storage, read> long_rows: array<vec4<u32>>;
@group(0) @binding(12) var<storage, read> long_next: array<u32>;

// Long row k's product for group g: its segment sums added in segment order.
// Why here and not in a pass of its own: a pass costs several microseconds
// even for the few hundred long rows of a web graph (cnr-2000 on an H100:
// 0.012 ms, half the product), while the update reads one index per four
// rows to find them.
fn long_sum(k: u32, g: u32) -> V {
    let lr = long_rows[k];
    var a = acc_zero();
    for (var s = lr.y; s < lr.z; s++) {
        let i = 2u * vidx(s, g);
        a = acc_merge(a, Acc(seg_part[i], seg_part[i + 1u]));
    }
    return acc_value(a);
}

// Row of long row k, or a row that never comes when there are no more.
fn long_row(k: u32) -> u32 {
    if k < params.n_long {
        return long_rows[k].x;
    }
    return 0xffffffffu;
}

// New value of row `row`, group `g`; returns it with its residual and mass terms.
struct RowOut {
    v: V,
    resid: V,
    mass: V,
}

// `y` is the row's product (Cᵀx)(row).
fn update_one(row: u32, g: u32, y: V) -> RowOut {
    let i = vidx(row, g);
    let t = t_cur[i];
    let frozen = colv[params.groups + g] > V(0.5);
    // Two roundings fewer than (1-a)·(y + m·p) + a·p, and the same value.
    let fresh = params.keep * y + colv[g] * pre[i];
    let v = select(fresh, t, frozen);
    t_next[i] = v;
    return RowOut(v, abs(v - t), rowinfo[row].x * v);
}

fn write_x(row: u32, g: u32, v: V) {
    x_next[vidx(row, g)] = v * rowinfo[row].y;
}

// First value of partial `item` of group g at reduction level 0 or 1.
fn part_base(level: u32, item: u32, g: u32) -> u32 {
    return 4u * (vidx(item, g) + level * params.n_part0 * params.groups);
}

fn write_part(level: u32, item: u32, g: u32, r: Acc, m: Acc) {
    let base = part_base(level, item, g);
    parts[base] = r.s;
    parts[base + 1u] = r.c;
    parts[base + 2u] = m.s;
    parts[base + 3u] = m.c;
}

// Merges partial `item` of a level into the running residual and mass sums.
fn merge_part(level: u32, item: u32, g: u32, r: ptr<function, Acc>, m: ptr<function, Acc>) {
    let base = part_base(level, item, g);
    *r = acc_merge(*r, Acc(parts[base], parts[base + 1u]));
    *m = acc_merge(*m, Acc(parts[base + 2u], parts[base + 3u]));
}

var<workgroup> red_rs: array<V, WG>;
var<workgroup> red_rc: array<V, WG>;
var<workgroup> red_ms: array<V, WG>;
var<workgroup> red_mc: array<V, WG>;

fn red_put(i: u32, r: Acc, m: Acc) {
    red_rs[i] = r.s;
    red_rc[i] = r.c;
    red_ms[i] = m.s;
    red_mc[i] = m.c;
}

// red[i] ← red[i] + red[j], residual and mass.
fn red_merge(i: u32, j: u32) {
    let a = acc_merge(Acc(red_rs[i], red_rc[i]), Acc(red_rs[j], red_rc[j]));
    red_rs[i] = a.s;
    red_rc[i] = a.c;
    let b = acc_merge(Acc(red_ms[i], red_mc[i]), Acc(red_ms[j], red_mc[j]));
    red_ms[i] = b.s;
    red_mc[i] = b.c;
}

// Merges every run of TREE consecutive items of each group in workgroup
// memory (invocation lid holds item lid / gp of group lid % gp) into the
// run's first invocation, by a balanced tree whose pairing depends on the
// item's place in its run only. Why: one partial then stands for TREE items
// (fewer, wider reduction passes), and since the runs and the pairing do not
// depend on gp, a column alone and in a batch are summed in the same order,
// so they stay equal bit for bit. Every invocation must call it (barriers).
fn chunk_tree(lid: u32, r: Acc, m: Acc) {
    red_put(lid, r, m);
    let pos = (lid / params.gp) % TREE;
    for (var s = TREE / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if pos < s {
            red_merge(lid, lid + s * params.gp);
        }
    }
    workgroupBarrier();
}

// Writes what red[lid] holds as partial `item` of a level.
fn write_red(level: u32, item: u32, g: u32, lid: u32) {
    write_part(level, item, g, Acc(red_rs[lid], red_rc[lid]), Acc(red_ms[lid], red_mc[lid]));
}

// Invocation (p, g) updates rows UPDATE_ROWS·p .. UPDATE_ROWS·p + UPDATE_ROWS;
// each run of TREE invocations of a group writes update partial p / TREE.
@compute @workgroup_size(256)
fn update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ig = item_group(wid, nwg, lid);
    let p = ig.x;
    let g = ig.y;
    var r = acc_zero();
    var m = acc_zero();
    // No early return: every invocation takes part in the chunk tree.
    if g < params.groups && p * UPDATE_ROWS < params.n {
        let end = min(params.n, (p + 1u) * UPDATE_ROWS);
        var k = long_next[p];
        var next = long_row(k);
        for (var row = p * UPDATE_ROWS; row < end; row++) {
            var y: V;
            if row == next {
                y = long_sum(k, g);
                k++;
                next = long_row(k);
            } else {
                y = acc[vidx(row, g)];
            }
            let o = update_one(row, g, y);
            if SCALED {
                write_x(row, g, o.v);
            }
            r = acc_add(r, o.resid);
            m = acc_add(m, o.mass);
        }
    }
    chunk_tree(lid, r, m);
    if p % TREE == 0u && g < params.groups && p / TREE < params.n_part0 {
        write_red(0u, p / TREE, g, lid);
    }
}

// Invocation (q, g) takes update partial q; each run of TREE of them writes
// fold partial q / TREE. Dispatched only when there are too many update
// partials for finalize's one workgroup per group (n_part1 > 0).
@compute @workgroup_size(256)
fn fold(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ig = item_group(wid, nwg, lid);
    let q = ig.x;
    let g = ig.y;
    var r = acc_zero();
    var m = acc_zero();
    if g < params.groups && q < params.n_part0 {
        merge_part(0u, q, g, &r, &m);
    }
    chunk_tree(lid, r, m);
    if q % TREE == 0u && g < params.groups && q / TREE < params.n_part1 {
        write_red(1u, q / TREE, g, lid);
    }
}

// One workgroup per column group: strided sums of the last level's partials
// (the fold's, or the update's when there was no fold), a tree over the
// workgroup (pairing fixed by invocation index), then one invocation updates
// the group's columns.
@compute @workgroup_size(256)
fn finalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x;
    let folded = params.n_part1 > 0u;
    let level = select(0u, 1u, folded);
    let count = select(params.n_part0, params.n_part1, folded);
    var r = acc_zero();
    var m = acc_zero();
    for (var q = lid; q < count; q += WG) {
        merge_part(level, q, g, &r, &m);
    }
    red_put(lid, r, m);
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            red_merge(lid, lid + stride);
        }
        workgroupBarrier();
    }
    if lid != 0u {
        return;
    }
    let resid = red_rs[0] + red_rc[0];
    let mass = red_ms[0] + red_mc[0];
    var coef = colv[g];
    var frozen = colv[params.groups + g];
    for (var l = 0u; l < LANES; l++) {
        let k = g * LANES + l;
        if k >= params.width {
            frozen = with_lane(frozen, l, 1.0);
            continue;
        }
        var st = cols[k];
        if st.stop != 0u {
            frozen = with_lane(frozen, l, 1.0);
            continue;
        }
        st.iterations += 1u;
        st.residual = lane(resid, l);
        st.mass = lane(mass, l);
        if st.residual < params.epsilon {
            st.stop = 1u;
        } else if st.iterations >= params.max_iter {
            st.stop = 3u;
        }
        if st.stop != 0u {
            frozen = with_lane(frozen, l, 1.0);
        }
        coef = with_lane(coef, l, params.keep * st.mass + params.alpha);
        cols[k] = st;
    }
    colv[g] = coef;
    colv[params.groups + g] = frozen;
}
