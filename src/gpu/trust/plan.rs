//! Host-side partitioning of a pull-form matrix for the kernels
//! (shaders/trust/spmv.wgsl): which rows share a workgroup and with how many
//! lanes per row, which rows are long (cut into segments), and how the entry
//! arrays are cut into chunks that each fit one storage binding.
//!
//! Pure integer bookkeeping, so it is unit-tested without a device. The plan
//! depends on the matrix (and the binding limit) only, never on how many
//! columns are solved, which is what keeps a column's sums the same bits alone
//! or in a batch.

/// Invocations per workgroup (WG in shaders/trust/common.wgsl).
pub(crate) const WG: u32 = 256;

/// Most lanes one row gets: with up to 8 column groups a row's lanes × groups
/// still fit one workgroup.
pub(crate) const MAX_LANES: u32 = 32;

/// Entries per lane the lane count is fitted to, by default (see
/// [`PlanConfig::per_lane`]).
pub const DEFAULT_PER_LANE: u32 = 8;

/// Target entries per segment of a long row: 32 lanes of 32 entries. Long
/// enough that the per-segment partials stay a small fraction of the traffic,
/// short enough that a 100k-entry row spreads over ~100 segments, ~3000 lanes.
pub(crate) const SEG_LEN: u32 = 1024;

/// A row never has more segments than this (segments grow instead), which
/// bounds the sequential work of summing a multi-million-entry row's segments
/// (the update kernel's, one invocation per row and column group).
pub(crate) const MAX_SEGS_PER_ROW: u32 = 1024;

/// Block kinds, as the shader reads them from bits 8.. of the descriptor.
const KIND_ROWS: u32 = 0;
const KIND_SEGMENTS: u32 = 1;
const KIND_LISTED: u32 = 2;

/// Tuning of the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// Entries per lane the lane count T is fitted to: T = the next power of
    /// two of ceil(longest row / per_lane), at most 32. Rows longer than
    /// 32 · per_lane are long rows. Why 8 by default: enough independent
    /// loads per lane to hide gather latency, few enough that rows of a few
    /// dozen entries still spread over several lanes.
    pub per_lane: u32,
    /// Rows binned by lane count (`Some(true)`): a row block takes rows of
    /// one lane count only, listed in [`Plan::row_list`], so no lane of a
    /// block idles while a longer neighbour finishes. `Some(false)`: blocks
    /// of consecutive rows with lanes fitted to the longest. `None` (the
    /// default): binned when consecutive blocks would leave more than
    /// [`AUTO_BIN_IDLE`] of their lanes idle ([`LayoutStats`]). The sums are
    /// the same bits either way: a row's grouping depends on its length
    /// alone.
    pub binned: Option<bool>,
}

/// The idle-lane share above which [`PlanConfig::binned`]'s automatic
/// choice bins the rows. Fitted to the three graphs measured on an H100
/// (docs/benchmarks.md, 2026-11-26): cnr-2000 (56.5% idle; binning 1.58×
/// faster), the 8M-agent/200M-edge synthetic graph (28.6%; equal), the
/// 32M-agent/200M-edge one (41.2%; binning 14% slower). Three points: a
/// rule to re-measure on more graphs, not a law.
pub const AUTO_BIN_IDLE: f64 = 0.5;

impl PlanConfig {
    /// The default, or `per_lane` from [`super::PER_LANE_ENV`] when set (a
    /// tuning knob for new devices; an unusable value is an error).
    pub fn from_env() -> crate::error::Result<Self> {
        let mut plan = PlanConfig::default();
        if let Ok(v) = std::env::var(super::PER_LANE_ENV) {
            plan.per_lane = v
                .parse()
                .ok()
                .filter(|p| (1..=64).contains(p))
                .ok_or_else(|| {
                    crate::error::Error::param(
                        super::PER_LANE_ENV,
                        format!("{}={v}: expected an integer in 1..=64", super::PER_LANE_ENV),
                    )
                })?;
        }
        if std::env::var_os(super::BINNED_ENV).is_some() {
            plan.binned = Some(super::kernels::env_flag(super::BINNED_ENV, true)?);
        }
        Ok(plan)
    }

    /// Whether rows whose consecutive layout has `stats` are binned under
    /// this configuration.
    pub fn bins(&self, stats: &LayoutStats) -> bool {
        self.binned
            .unwrap_or(stats.idle_consecutive > AUTO_BIN_IDLE)
    }
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            per_lane: DEFAULT_PER_LANE,
            binned: None,
        }
    }
}

/// A range of blocks whose entries fit one chunk binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Blocks [block0, block1) are dispatched with this chunk: row blocks
    /// first, then the segment blocks from `seg_block0` on.
    pub block0: u32,
    pub seg_block0: u32,
    pub block1: u32,
    /// Global entry range [e0, e1) held by this chunk's buffers.
    pub e0: u32,
    pub e1: u32,
    /// Rows [row0, row1): every short row in it is in one of this chunk's
    /// row blocks (the long rows in it are not).
    pub row0: u32,
    pub row1: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The entries per lane rows were fitted to (the kernels need it too).
    pub per_lane: u32,
    /// One per workgroup: (first unit, end unit, log2(lanes) | kind << 8, 0);
    /// units are rows (kind 0), segments (kind 1) or entries of `row_list`
    /// (kind 2, binned rows).
    pub blocks: Vec<[u32; 4]>,
    /// Binned row blocks' rows, each block's in row order.
    pub row_list: Vec<u32>,
    /// (row, first entry, end entry, 0), global entry indices.
    pub segs: Vec<[u32; 4]>,
    /// (row, first segment, end segment, 0).
    pub long_rows: Vec<[u32; 4]>,
    pub chunks: Vec<Chunk>,
}

/// log2 of the lanes a row of `len` entries gets.
fn lanes_log2(len: u32, per_lane: u32) -> u32 {
    len.div_ceil(per_lane)
        .max(1)
        .next_power_of_two()
        .min(MAX_LANES)
        .trailing_zeros()
}

/// Entries per segment of a row of `len` entries.
fn segment_len(len: u32, cap: u32) -> u32 {
    let spread = len.div_ceil(MAX_SEGS_PER_ROW).div_ceil(256) * 256;
    // Rows only a little over the threshold become one segment.
    spread.max(SEG_LEN).min(cap)
}

/// How the rows of a matrix fill the lanes of the two row layouts
/// ([`PlanConfig::binned`]), for choosing between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayoutStats {
    /// Share of the invocations that blocks of consecutive rows leave idle
    /// (a row with fewer lanes than its block's longest row).
    pub idle_consecutive: f64,
    /// Share of the short rows summed by one lane alone.
    pub one_lane_rows: f64,
}

impl LayoutStats {
    /// Of the short rows given by `ptr` (n + 1 offsets), with `per_lane`.
    pub fn of(ptr: &[u32], per_lane: u32) -> LayoutStats {
        let per_lane = per_lane.max(1);
        LayoutStats::of_plan(&Plan::build_as(ptr, u32::MAX, per_lane, false), ptr)
    }

    /// Of `plan`, a consecutive layout of the rows given by `ptr`: the lanes
    /// its row blocks give against the lanes their rows need.
    fn of_plan(plan: &Plan, ptr: &[u32]) -> LayoutStats {
        let (mut used, mut given, mut rows, mut one) = (0u64, 0u64, 0u64, 0u64);
        for b in plan.blocks.iter().filter(|b| b[2] >> 8 == KIND_ROWS) {
            for j in b[0]..b[1] {
                let tl = lanes_log2(ptr[j as usize + 1] - ptr[j as usize], plan.per_lane);
                used += 1 << tl;
                one += (tl == 0) as u64;
            }
            rows += (b[1] - b[0]) as u64;
            given += ((b[1] - b[0]) as u64) << (b[2] & 31);
        }
        let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        LayoutStats {
            idle_consecutive: share(given.saturating_sub(used), given),
            one_lane_rows: share(one, rows),
        }
    }
}

/// Builds the plan step by step, in row order.
struct Builder {
    cap: u32,
    per_lane: u32,
    plan: Plan,
    binned: bool,
    /// Open block of short rows: first row, rows, longest row.
    rows: Option<(u32, u32, u32)>,
    /// Binned: the open block's rows per log2(lanes).
    bins: [Vec<u32>; 6],
    /// First segment not yet in a block.
    seg_pending: u32,
    /// Open chunk: first block, first entry.
    chunk: (u32, u32),
}

impl Builder {
    fn close_rows(&mut self) {
        if let Some((r0, count, longest)) = self.rows.take() {
            let tl = lanes_log2(longest, self.per_lane);
            self.plan
                .blocks
                .push([r0, r0 + count, tl | KIND_ROWS << 8, 0]);
        }
    }

    /// Closes the open binned block of `tl` (when it holds any row).
    fn close_bin(&mut self, tl: usize) {
        if self.bins[tl].is_empty() {
            return;
        }
        let first = self.plan.row_list.len() as u32;
        self.plan.row_list.append(&mut self.bins[tl]);
        let end = self.plan.row_list.len() as u32;
        self.plan
            .blocks
            .push([first, end, tl as u32 | KIND_LISTED << 8, 0]);
    }

    fn close_segments(&mut self) {
        let end = self.plan.segs.len() as u32;
        if end > self.seg_pending {
            let tl = MAX_LANES.trailing_zeros();
            self.plan
                .blocks
                .push([self.seg_pending, end, tl | KIND_SEGMENTS << 8, 0]);
            self.seg_pending = end;
        }
    }

    /// Closes the open chunk (with its open blocks) if entries up to `end`
    /// would not fit it, and opens the next one at entry `start`.
    fn make_room(&mut self, start: u32, end: u32) {
        if end - self.chunk.1 <= self.cap {
            return;
        }
        self.close_rows();
        (0..self.bins.len()).for_each(|tl| self.close_bin(tl));
        self.close_segments();
        self.close_chunk(start);
    }

    /// Closes the open chunk at entry `end` (when it holds any block) and
    /// opens the next one there. Its row blocks go first, segment blocks
    /// after, so each kind is one range (order within a dispatch is free).
    fn close_chunk(&mut self, end: u32) {
        let (b0, b1) = (self.chunk.0, self.plan.blocks.len() as u32);
        if b1 > b0 {
            let blocks = &mut self.plan.blocks[b0 as usize..b1 as usize];
            let is_seg = |b: &[u32; 4]| b[2] >> 8 == KIND_SEGMENTS;
            // Row blocks first (a stable sort), then each row block's first
            // and end row (a binned block's rows are listed in row order).
            blocks.sort_by_key(is_seg);
            let list = &self.plan.row_list;
            let spans = blocks.iter().filter(|b| !is_seg(b)).map(|b| {
                if b[2] >> 8 == KIND_LISTED {
                    (list[b[0] as usize], list[b[1] as usize - 1] + 1)
                } else {
                    (b[0], b[1])
                }
            });
            let row0 = spans.clone().map(|s| s.0).min();
            let row1 = spans.clone().map(|s| s.1).max();
            let n_row_blocks = spans.count();
            self.plan.chunks.push(Chunk {
                block0: b0,
                seg_block0: b0 + n_row_blocks as u32,
                block1: b1,
                e0: self.chunk.1,
                e1: end,
                row0: row0.unwrap_or(0),
                row1: row1.unwrap_or(0),
            });
        }
        self.chunk = (b1, end);
    }

    fn short_row(&mut self, j: u32, a: u32, b: u32) {
        self.make_room(a, b);
        let len = b - a;
        if self.binned {
            let tl = lanes_log2(len, self.per_lane) as usize;
            self.bins[tl].push(j);
            if (self.bins[tl].len() as u32) << tl == WG {
                self.close_bin(tl);
            }
            return;
        }
        if let Some((r0, count, longest)) = self.rows {
            let longest = longest.max(len);
            if (count + 1) << lanes_log2(longest, self.per_lane) <= WG {
                self.rows = Some((r0, count + 1, longest));
                return;
            }
            self.close_rows();
        }
        self.rows = Some((j, 1, len));
    }

    fn long_row(&mut self, j: u32, a: u32, b: u32) {
        // A block's rows are consecutive: a long row ends the open block.
        self.close_rows();
        let per = segment_len(b - a, self.cap);
        let first = self.plan.segs.len() as u32;
        let mut e = a;
        while e < b {
            let end = b.min(e + per);
            self.make_room(e, end);
            self.plan.segs.push([j, e, end, 0]);
            if self.plan.segs.len() as u32 - self.seg_pending == WG / MAX_LANES {
                self.close_segments();
            }
            e = end;
        }
        self.plan
            .long_rows
            .push([j, first, self.plan.segs.len() as u32, 0]);
    }
}

impl Plan {
    /// For each run of `rows` consecutive rows (an update invocation's), the
    /// index in `long_rows` of the first long row at or after the run's first
    /// row (`long_rows.len()` when none is left): the update kernel finds the
    /// long rows it sums from their segments without a search.
    pub fn long_next(&self, n: usize, rows: usize) -> Vec<u32> {
        let mut k = 0;
        (0..n.div_ceil(rows))
            .map(|p| {
                while k < self.long_rows.len() && (self.long_rows[k][0] as usize) < p * rows {
                    k += 1;
                }
                k as u32
            })
            .collect()
    }

    /// Partitions rows given by `ptr` (n + 1 offsets) so that no chunk holds
    /// more than `cap` entries (`cap` >= [`SEG_LEN`], and at least one short
    /// row: 32 · per_lane).
    pub fn build(ptr: &[u32], cap: u32, cfg: PlanConfig) -> Plan {
        let per_lane = cfg.per_lane.max(1);
        if let Some(binned) = cfg.binned {
            return Plan::build_as(ptr, cap, per_lane, binned);
        }
        // The consecutive layout is the plan, unless its idle lanes call for
        // binning (then it was only measured).
        let consecutive = Plan::build_as(ptr, cap, per_lane, false);
        if cfg.bins(&LayoutStats::of_plan(&consecutive, ptr)) {
            Plan::build_as(ptr, cap, per_lane, true)
        } else {
            consecutive
        }
    }

    /// The plan with rows binned or consecutive.
    fn build_as(ptr: &[u32], cap: u32, per_lane: u32, binned: bool) -> Plan {
        let long_min = MAX_LANES * per_lane;
        assert!(
            cap >= SEG_LEN && cap >= long_min,
            "chunk capacity below one segment or short row"
        );
        let mut b = Builder {
            cap,
            per_lane,
            plan: Plan {
                per_lane,
                blocks: Vec::new(),
                segs: Vec::new(),
                long_rows: Vec::new(),
                chunks: Vec::new(),
                row_list: Vec::new(),
            },
            binned,
            rows: None,
            bins: Default::default(),
            seg_pending: 0,
            chunk: (0, ptr.first().copied().unwrap_or(0)),
        };
        for (j, w) in ptr.windows(2).enumerate() {
            let (lo, hi) = (w[0], w[1]);
            if hi - lo <= long_min {
                b.short_row(j as u32, lo, hi);
            } else {
                b.long_row(j as u32, lo, hi);
            }
        }
        b.close_rows();
        (0..b.bins.len()).for_each(|tl| b.close_bin(tl));
        b.close_segments();
        b.close_chunk(ptr.last().copied().unwrap_or(0));
        b.plan
    }

    /// Lanes of block `k`'s units and whether they are segments.
    #[cfg(test)]
    fn lanes(&self, k: usize) -> (u32, bool) {
        let d = self.blocks[k][2];
        (1 << (d & 31), d >> 8 == KIND_SEGMENTS)
    }

    /// The rows of row block `k`.
    #[cfg(test)]
    fn block_rows(&self, k: usize) -> Vec<u32> {
        let b = self.blocks[k];
        if b[2] >> 8 == KIND_LISTED {
            self.row_list[b[0] as usize..b[1] as usize].to_vec()
        } else {
            (b[0]..b[1]).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptr_of(lens: &[u32]) -> Vec<u32> {
        let mut p = vec![0];
        for l in lens {
            p.push(p.last().unwrap() + l);
        }
        p
    }

    /// Every entry is covered exactly once, by a short row of a block or by a
    /// segment; every row is in exactly one block or is a long row; each
    /// block's lanes fit its longest row and its units fit one workgroup; no
    /// chunk exceeds `cap` and each holds its blocks' entries.
    fn check(lens: &[u32], cap: u32, per_lane: u32) -> Plan {
        let binned = check_with(
            lens,
            cap,
            PlanConfig {
                per_lane,
                binned: Some(true),
            },
        );
        check_with(
            lens,
            cap,
            PlanConfig {
                per_lane,
                binned: Some(false),
            },
        );
        binned
    }

    fn check_with(lens: &[u32], cap: u32, cfg: PlanConfig) -> Plan {
        let per_lane = cfg.per_lane;
        let ptr = ptr_of(lens);
        let plan = Plan::build(&ptr, cap, cfg);
        let long_min = MAX_LANES * per_lane;
        let len_of = |u: u32| ptr[u as usize + 1] - ptr[u as usize];
        let mut covered = vec![0u8; *ptr.last().unwrap() as usize];
        let mut row_seen = vec![0u8; lens.len()];
        let mut blocks_seen = 0;
        for c in &plan.chunks {
            assert!(c.e1 - c.e0 <= cap, "chunk over capacity");
            assert!(c.block0 <= c.seg_block0 && c.seg_block0 <= c.block1);
            for k in c.block0..c.block1 {
                assert_eq!(
                    plan.lanes(k as usize).1,
                    k >= c.seg_block0,
                    "kinds not split"
                );
            }
            // The chunk's row range holds exactly its row blocks' rows and
            // long rows (whose segments may live elsewhere).
            for j in c.row0..c.row1 {
                let in_block =
                    (c.block0..c.seg_block0).any(|k| plan.block_rows(k as usize).contains(&j));
                assert_eq!(in_block, len_of(j) <= long_min, "row {j} in chunk rows");
            }
            assert_eq!(c.block0, blocks_seen, "chunks not contiguous");
            blocks_seen = c.block1;
            for k in c.block0..c.block1 {
                let blk = plan.blocks[k as usize];
                let (lanes, seg) = plan.lanes(k as usize);
                let units = blk[1] - blk[0];
                assert!(units >= 1 && units * lanes <= WG, "block {k} too wide");
                let units: Vec<(u32, u32)> = if seg {
                    assert_eq!(lanes, MAX_LANES);
                    let s = &plan.segs[blk[0] as usize..blk[1] as usize];
                    s.iter().map(|s| (s[1], s[2])).collect()
                } else {
                    let rows = plan.block_rows(k as usize);
                    assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows out of order");
                    for &u in &rows {
                        row_seen[u as usize] += 1;
                        let len = len_of(u);
                        assert!(len <= long_min, "long row {u} in a row block");
                        assert!(lanes == MAX_LANES || len.div_ceil(per_lane) <= lanes);
                        if cfg.binned == Some(true) {
                            // Every row of a binned block has exactly its lanes.
                            assert_eq!(lanes.trailing_zeros(), lanes_log2(len, per_lane));
                        }
                    }
                    // Lanes are fitted to the longest row, not over-provisioned.
                    let longest = rows.iter().map(|&u| len_of(u)).max().unwrap();
                    assert_eq!(lanes.trailing_zeros(), lanes_log2(longest, per_lane));
                    rows.iter()
                        .map(|&u| (ptr[u as usize], ptr[u as usize + 1]))
                        .collect()
                };
                for (a, b) in units {
                    assert!(a >= c.e0 && b <= c.e1, "unit outside its chunk");
                    for e in a..b {
                        covered[e as usize] += 1;
                    }
                }
            }
        }
        assert_eq!(blocks_seen as usize, plan.blocks.len());
        for lr in &plan.long_rows {
            row_seen[lr[0] as usize] += 1;
            assert!(lr[2] > lr[1]);
            for s in &plan.segs[lr[1] as usize..lr[2] as usize] {
                assert_eq!(s[0], lr[0]);
            }
        }
        assert!(row_seen.iter().all(|&x| x == 1), "rows not partitioned");
        assert!(covered.iter().all(|&x| x == 1), "entries not covered once");
        // The update finds each long row through long_next: for every run
        // of rows, the first long row at or after it.
        for rows in [1, 4, 7] {
            let next = plan.long_next(lens.len(), rows);
            assert_eq!(next.len(), lens.len().div_ceil(rows));
            for (p, &k) in next.iter().enumerate() {
                let want = plan
                    .long_rows
                    .iter()
                    .position(|lr| lr[0] as usize >= p * rows)
                    .unwrap_or(plan.long_rows.len());
                assert_eq!(k as usize, want, "run {p} of {rows} rows");
            }
        }
        plan
    }

    #[test]
    fn one_chunk_when_it_fits() {
        let p = check(&[0, 3, 64, 65, 0, 100_000, 1, 256, 257], 1 << 20, 8);
        assert_eq!(p.chunks.len(), 1);
        assert_eq!((p.chunks[0].row0, p.chunks[0].row1), (0, 8));
        assert_eq!(p.long_rows.len(), 2);
        assert_eq!(p.segs.len(), 1 + 100_000usize.div_ceil(SEG_LEN as usize));
    }

    #[test]
    fn lanes_follow_row_length() {
        assert_eq!(lanes_log2(0, 8), 0);
        assert_eq!(lanes_log2(8, 8), 0);
        assert_eq!(lanes_log2(9, 8), 1);
        assert_eq!(lanes_log2(100, 8), 4);
        assert_eq!(lanes_log2(256, 8), 5);
        // 256 one-entry rows fill one block with one lane each.
        let consecutive = PlanConfig {
            per_lane: 8,
            binned: Some(false),
        };
        let p = check_with(&[1; 256], 1 << 20, consecutive);
        assert_eq!(p.blocks, vec![[0, 256, 0, 0]]);
        let p = check(&[1; 256], 1 << 20, 8);
        assert_eq!(p.blocks, vec![[0, 256, KIND_LISTED << 8, 0]]);
        assert_eq!(p.row_list, (0..256).collect::<Vec<_>>());
        // A 100-entry row among short ones widens its block to 16 lanes, so the
        // block holds 16 rows.
        let mut lens = vec![1; 40];
        lens[3] = 100;
        let p = check_with(&lens, 1 << 20, consecutive);
        assert_eq!(p.blocks[0], [0, 16, 4, 0]);
        // Binned, it gets a block of its own and the one-entry rows fill
        // theirs one lane each.
        let p = check(&lens, 1 << 20, 8);
        let rows = |k: usize| p.block_rows(k);
        assert_eq!(p.blocks.len(), 2);
        assert_eq!(rows(0), (0..40).filter(|&r| r != 3).collect::<Vec<_>>());
        assert_eq!((rows(1), p.blocks[1][2]), (vec![3], 4 | KIND_LISTED << 8));
    }

    #[test]
    fn splits_short_and_long_rows() {
        let lens: Vec<u32> = (0..500)
            .map(|i| if i % 97 == 5 { 5000 } else { i % 300 })
            .collect();
        let p = check(&lens, 4096, 8);
        assert!(p.chunks.len() > 10);
        check(&lens, 1 << 20, 4);
        check(&lens, 1 << 20, 1);
        check(&[100_000], 1024, 8);
        let empty = check(&[], 1024, 8);
        assert!(empty.chunks.is_empty() && empty.blocks.is_empty());
        check(&[0, 0, 0], 1024, 8);
    }

    #[test]
    fn layout_stats_count_idle_lanes_and_one_lane_rows() {
        // 16 rows of 9 entries (2 lanes) and one of 100 (16 lanes): the
        // statistics must count the lanes of the builder's own blocks.
        let mut lens = vec![9u32; 16];
        lens.push(100);
        let st = LayoutStats::of(&ptr_of(&lens), 8);
        let plan = check_with(
            &lens,
            1 << 20,
            PlanConfig {
                per_lane: 8,
                binned: Some(false),
            },
        );
        let given: u64 = plan
            .blocks
            .iter()
            .map(|b| ((b[1] - b[0]) as u64) << (b[2] & 31))
            .sum();
        let used: u64 = 16 * 2 + 16;
        assert!((st.idle_consecutive - (1.0 - used as f64 / given as f64)).abs() < 1e-12);
        assert_eq!(st.one_lane_rows, 0.0);
        let st = LayoutStats::of(&ptr_of(&[1, 2, 3, 9]), 8);
        assert_eq!(st.one_lane_rows, 0.75);
        // Uniform rows leave nothing idle; long rows are not counted.
        let st = LayoutStats::of(&ptr_of(&[40, 40, 40, 5000]), 8);
        assert_eq!(st.idle_consecutive, 0.0);
        assert_eq!(LayoutStats::of(&[0], 8).idle_consecutive, 0.0);
    }

    #[test]
    fn automatic_binning_follows_idle_lanes() {
        let auto = PlanConfig::default();
        assert_eq!(auto.binned, None);
        // One 200-entry row (32 lanes) per 8 one-entry rows: a consecutive
        // block gives all of them 32 lanes, nearly all idle.
        let skewed: Vec<u32> = (0..900).map(|i| if i % 9 == 0 { 200 } else { 1 }).collect();
        assert!(LayoutStats::of(&ptr_of(&skewed), 8).idle_consecutive > AUTO_BIN_IDLE);
        assert!(auto.bins(&LayoutStats::of(&ptr_of(&skewed), 8)));
        let uniform = vec![20u32; 900];
        let uniform_stats = LayoutStats::of(&ptr_of(&uniform), 8);
        assert!(!auto.bins(&uniform_stats));
        let forced = PlanConfig {
            binned: Some(true),
            ..auto
        };
        assert!(forced.bins(&uniform_stats));
        // The plan follows the choice.
        let kinds = |lens: &[u32]| {
            let p = Plan::build(&ptr_of(lens), 1 << 20, auto);
            p.blocks.iter().any(|b| b[2] >> 8 == KIND_LISTED)
        };
        assert!(kinds(&skewed));
        assert!(!kinds(&uniform));
    }

    #[test]
    fn huge_row_has_bounded_segments() {
        let p = check(&[5_000_000], u32::MAX, 8);
        assert!(p.segs.len() <= MAX_SEGS_PER_ROW as usize);
    }
}
