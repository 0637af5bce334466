//! Host-side partitioning of a pull-form matrix for the kernels: which rows are
//! short (one invocation each) and which are long (split into segments, one
//! workgroup each), and how the entry arrays are cut into chunks that each fit
//! one storage binding.
//!
//! Pure integer bookkeeping, so it is unit-tested without a device.

/// Rows with at most this many entries are summed by one invocation.
///
/// Why 64: in a power-law graph almost every row is shorter, so nearly all work
/// takes the cheap one-invocation path (no partials, no extra pass); below
/// about this length one invocation finishes a row in the time the segmented
/// path spends on its two extra passes, above it the spread across 32 lanes
/// pays.
pub(crate) const SHORT_MAX: u32 = 64;

/// Target entries per segment: 32 per invocation (a segment has 32 lanes per
/// column group). Long enough that the per-lane partials (2 values per 32
/// entries) stay a small fraction of the traffic, short enough that a
/// 100k-entry row spreads over ~100 segments, ~3000 invocations.
pub(crate) const SEG_LEN: u32 = 1024;

/// A row never has more segments than this (segments grow instead), which
/// bounds the sequential work of `long_finish` for a multi-million-entry row.
pub(crate) const MAX_SEGS_PER_ROW: u32 = 1024;

/// Entries that fit one chunk binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Short rows in [row0, row1) are summed from this chunk.
    pub row0: u32,
    pub row1: u32,
    /// Global entry range [e0, e1) held by this chunk's buffers.
    pub e0: u32,
    pub e1: u32,
    /// Segments [seg0, seg1) (indices into [`Plan::segs`]) in this chunk.
    pub seg0: u32,
    pub seg1: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub chunks: Vec<Chunk>,
    /// (row, first entry, end entry, 0), global entry indices.
    pub segs: Vec<[u32; 4]>,
    /// (row, first segment, end segment, 0).
    pub long_rows: Vec<[u32; 4]>,
}

impl Plan {
    /// Partitions rows given by `ptr` (n + 1 offsets) so that no chunk holds
    /// more than `cap` entries (`cap` >= [`SHORT_MAX`]) or more than
    /// `seg_cap` (>= 1) segments (the long-row kernels keep per-invocation
    /// partials for one chunk's segments in one binding).
    pub fn build(ptr: &[u32], cap: u32, seg_cap: u32) -> Plan {
        assert!(cap >= SHORT_MAX, "chunk capacity below one short row");
        assert!(seg_cap >= 1, "chunk must hold a segment");
        let n = ptr.len().saturating_sub(1);
        let mut chunks = Vec::new();
        let mut segs: Vec<[u32; 4]> = Vec::new();
        let mut long_rows = Vec::new();
        let mut cur = Chunk {
            row0: 0,
            row1: 0,
            e0: 0,
            e1: 0,
            seg0: 0,
            seg1: 0,
        };
        // Closes the current chunk before row `j` (entry `e`) and opens the next.
        let split = |cur: &mut Chunk, chunks: &mut Vec<Chunk>, j: u32, e: u32, nseg: u32| {
            cur.row1 = j;
            cur.seg1 = nseg;
            chunks.push(cur.clone());
            *cur = Chunk {
                row0: j,
                row1: j,
                e0: e,
                e1: e,
                seg0: nseg,
                seg1: nseg,
            };
        };
        for j in 0..n {
            let (a, b) = (ptr[j], ptr[j + 1]);
            let len = b - a;
            let jj = j as u32;
            if len <= SHORT_MAX {
                if cur.e1 - cur.e0 + len > cap {
                    split(&mut cur, &mut chunks, jj, a, segs.len() as u32);
                }
                cur.e1 = b;
                continue;
            }
            let per = segment_len(len, cap);
            let first = segs.len() as u32;
            let mut e = a;
            while e < b {
                let end = b.min(e + per);
                if cur.e1 - cur.e0 + (end - e) > cap || segs.len() as u32 - cur.seg0 >= seg_cap {
                    split(&mut cur, &mut chunks, jj, e, segs.len() as u32);
                }
                segs.push([jj, e, end, 0]);
                cur.e1 = end;
                e = end;
            }
            long_rows.push([jj, first, segs.len() as u32, 0]);
        }
        cur.row1 = n as u32;
        cur.seg1 = segs.len() as u32;
        chunks.push(cur);
        Plan {
            chunks,
            segs,
            long_rows,
        }
    }
}

/// Entries per segment of a row of `len` entries.
fn segment_len(len: u32, cap: u32) -> u32 {
    let spread = len.div_ceil(MAX_SEGS_PER_ROW).div_ceil(256) * 256;
    // Rows only a little over the threshold become one segment.
    let per = spread.max(SEG_LEN);
    per.min(cap)
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

    /// Every entry is covered exactly once, by a short row of the chunk whose
    /// range holds it or by one segment, and no chunk exceeds `cap`.
    fn check(lens: &[u32], cap: u32, seg_cap: u32) -> Plan {
        let ptr = ptr_of(lens);
        let plan = Plan::build(&ptr, cap, seg_cap);
        let mut covered = vec![0u8; *ptr.last().unwrap() as usize];
        let mut row_seen = vec![0u8; lens.len()];
        for c in &plan.chunks {
            assert!(c.e1 - c.e0 <= cap);
            assert!(c.seg1 - c.seg0 <= seg_cap);
            for j in c.row0..c.row1 {
                row_seen[j as usize] += 1;
                let (a, b) = (ptr[j as usize], ptr[j as usize + 1]);
                if b - a <= SHORT_MAX {
                    assert!(a >= c.e0 && b <= c.e1, "short row {j} outside its chunk");
                    for e in a..b {
                        covered[e as usize] += 1;
                    }
                }
            }
            for s in &plan.segs[c.seg0 as usize..c.seg1 as usize] {
                assert!(s[1] >= c.e0 && s[2] <= c.e1, "segment outside its chunk");
                for e in s[1]..s[2] {
                    covered[e as usize] += 1;
                }
            }
        }
        assert!(row_seen.iter().all(|&x| x == 1), "rows not partitioned");
        assert!(covered.iter().all(|&x| x == 1), "entries not covered once");
        for lr in &plan.long_rows {
            for s in &plan.segs[lr[1] as usize..lr[2] as usize] {
                assert_eq!(s[0], lr[0]);
            }
        }
        plan
    }

    #[test]
    fn one_chunk_when_it_fits() {
        let p = check(&[0, 3, 64, 65, 0, 100_000, 1], 1 << 20, 1 << 20);
        assert_eq!(p.chunks.len(), 1);
        assert_eq!(p.long_rows.len(), 2);
        assert_eq!(p.segs.len(), 1 + 100_000usize.div_ceil(SEG_LEN as usize));
    }

    #[test]
    fn splits_short_and_long_rows() {
        let lens: Vec<u32> = (0..500)
            .map(|i| if i % 97 == 5 { 5000 } else { i % 70 })
            .collect();
        let p = check(&lens, 1024, 1 << 20);
        assert!(p.chunks.len() > 10);
        check(&lens, 1 << 20, 2);
        check(&[100_000], 256, 1);
        check(&[], 256, 1);
        check(&[0, 0, 0], 64, 1);
    }

    #[test]
    fn huge_row_has_bounded_segments() {
        let p = check(&[5_000_000], u32::MAX, u32::MAX);
        assert!(p.segs.len() <= MAX_SEGS_PER_ROW as usize);
    }
}
