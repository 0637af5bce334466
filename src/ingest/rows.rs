//! The streaming ingest path: each validated batch becomes integer rows at
//! once (agent and layer names interned to ids), and the string batches are
//! dropped, so the logs are never held as strings. The selection (self-
//! ratings, time window, layers, slashed raters) and the decay then run over
//! integers in parallel, in place.
//!
//! Memory per input row while reading: a 24-byte [`Entry`] (src, dst,
//! weight·outcome, weight), its timestamp (8) and its layer (4): 36 bytes;
//! after the selection the timestamps are freed and the kept entries become
//! the contributions the graph builder sorts in place.
//!
//! The values are those of the SQL plan (`super::sql`, the reference this
//! path is tested against bit for bit): trust = (weight·outcome)·decay,
//! volume = weight·decay, decay = 2^((ts - now) / half-life in ms).

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::DropCounts;
use crate::error::{Error, Result};
use crate::graph::{AgentIndex, Entry};

/// Names to dense ids in order of first appearance.
#[derive(Debug, Default)]
struct Interner {
    ids: FxHashMap<Box<str>, u32>,
}

impl Interner {
    fn id(&mut self, name: &str) -> Result<u32> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        let id = u32::try_from(self.ids.len())
            .map_err(|_| Error::invalid("more than 2^32 distinct names in the logs"))?;
        self.ids.insert(name.into(), id);
        Ok(id)
    }

    /// The names, indexed by id.
    fn into_names(self) -> Vec<String> {
        let mut names = vec![String::new(); self.ids.len()];
        for (name, id) in self.ids {
            names[id as usize] = name.into();
        }
        names
    }
}

/// Rows of every file as integers, in reading order, with first-seen ids
/// until [`RowReader::finish`] maps them to canonical ones.
#[derive(Debug, Default)]
pub(crate) struct RowReader {
    rows: Rows,
    agents: Interner,
    layers: Interner,
    latest: Option<i64>,
}

/// Validated rows: `entries[i]` holds (src, dst, weight·outcome, weight),
/// `ts[i]` and `layer[i]` the rest of row i.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub entries: Vec<Entry>,
    pub ts: Vec<i64>,
    pub layer: Vec<u32>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What [`RowReader::finish`] hands over: canonical ids throughout.
pub(crate) struct ReadRows {
    pub rows: Rows,
    pub agents: AgentIndex,
    /// Layer names, sorted; `rows.layer` indexes this.
    pub layers: Vec<String>,
    pub latest_ts_ms: Option<i64>,
}

impl RowReader {
    /// `rows`: how many rows the files hold at most, so the arrays are
    /// allocated once (growing them would copy, doubling the peak).
    pub fn with_capacity(rows: usize) -> Self {
        RowReader {
            rows: Rows {
                entries: Vec::with_capacity(rows),
                ts: Vec::with_capacity(rows),
                layer: Vec::with_capacity(rows),
            },
            ..Default::default()
        }
    }

    /// Appends one canonical batch (read::canonical_schema, validated).
    pub fn push(&mut self, b: &RecordBatch) -> Result<()> {
        let ts = b.column(0).as_primitive::<Int64Type>();
        let src = b.column(1).as_string::<i32>();
        let dst = b.column(2).as_string::<i32>();
        let layer = b.column(3).as_string::<i32>();
        let outcome = b.column(4).as_primitive::<Float64Type>();
        let weight = b.column(5).as_primitive::<Float64Type>();
        if let Some(m) = arrow::compute::max(ts) {
            self.latest = Some(self.latest.map_or(m, |l| l.max(m)));
        }
        let r = &mut self.rows;
        r.ts.extend_from_slice(ts.values());
        // Consecutive rows mostly share their layer: remember the last one.
        let mut last: Option<(&str, u32)> = None;
        for i in 0..b.num_rows() {
            let name = layer.value(i);
            let l = match last {
                Some((n, id)) if n == name => id,
                _ => {
                    let id = self.layers.id(name)?;
                    last = Some((name, id));
                    id
                }
            };
            r.layer.push(l);
            let w = weight.value(i);
            r.entries.push(Entry {
                src: self.agents.id(src.value(i))?,
                dst: self.agents.id(dst.value(i))?,
                trust: w * outcome.value(i),
                volume: w,
            });
        }
        Ok(())
    }

    /// Maps the first-seen ids to canonical ones (agents in
    /// [`AgentIndex`] order, layers sorted by name).
    pub fn finish(self) -> ReadRows {
        let RowReader {
            mut rows,
            agents,
            layers,
            latest,
        } = self;
        let (agents, remap) = AgentIndex::from_numbered(agents.into_names());
        rows.entries.par_iter_mut().for_each(|e| {
            e.src = remap[e.src as usize];
            e.dst = remap[e.dst as usize];
        });
        let names = layers.into_names();
        let mut order: Vec<u32> = (0..names.len() as u32).collect();
        order.sort_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        let mut lremap = vec![0u32; names.len()];
        for (id, &old) in order.iter().enumerate() {
            lremap[old as usize] = id as u32;
        }
        rows.layer
            .par_iter_mut()
            .for_each(|l| *l = lremap[*l as usize]);
        let layers = order.iter().map(|&i| names[i as usize].clone()).collect();
        ReadRows {
            rows,
            agents,
            layers,
            latest_ts_ms: latest,
        }
    }
}

/// The selection and decay over canonical ids.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Per layer id: its index among the selected layers, if selected.
    pub layer_pos: Vec<Option<u32>>,
    /// Keep ts >= since and ts < until.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// (now, half-life in ms): decay = 2^((ts - now) / half-life).
    pub decay: Option<(i64, f64)>,
    /// (rater id, layer id) pairs whose rows are dropped.
    pub excluded: FxHashSet<(u32, u32)>,
}

/// Rows per parallel task of the selection.
const CHUNK: usize = 1 << 16;

/// Applies `sel` in place: returns the kept contributions with their
/// selected-layer index, and the drop counts (self-ratings, outside the
/// window, layer not selected, slashed; the first matching reason counts).
pub(crate) fn select(rows: Rows, sel: &Selection) -> (Vec<Entry>, Vec<u32>, DropCounts) {
    let Rows {
        mut entries,
        ts,
        mut layer,
    } = rows;
    let per_chunk: Vec<(usize, [u64; 4])> = entries
        .par_chunks_mut(CHUNK)
        .zip(layer.par_chunks_mut(CHUNK))
        .zip(ts.par_chunks(CHUNK))
        .map(|((e, l), t)| select_chunk(e, l, t, sel))
        .collect();
    drop(ts);
    // Close the gaps between the chunks' kept prefixes.
    let mut w = 0;
    let mut drops = [0u64; 4];
    for (c, (kept, d)) in per_chunk.iter().enumerate() {
        let start = c * CHUNK;
        entries.copy_within(start..start + kept, w);
        layer.copy_within(start..start + kept, w);
        w += kept;
        for (a, b) in drops.iter_mut().zip(d) {
            *a += b;
        }
    }
    entries.truncate(w);
    layer.truncate(w);
    let drops = DropCounts {
        self_rating: drops[0],
        outside_window: drops[1],
        layer_not_selected: drops[2],
        slashed_rater: drops[3],
        ..Default::default()
    };
    (entries, layer, drops)
}

/// Compacts one chunk's kept rows to its front; returns how many were kept.
fn select_chunk(e: &mut [Entry], l: &mut [u32], t: &[i64], sel: &Selection) -> (usize, [u64; 4]) {
    let mut drops = [0u64; 4];
    let mut w = 0;
    for i in 0..e.len() {
        let x = e[i];
        let ts = t[i];
        let reason = if x.src == x.dst {
            Some(0)
        } else if sel.since_ms.is_some_and(|s| ts < s) || sel.until_ms.is_some_and(|u| ts >= u) {
            Some(1)
        } else if sel.layer_pos[l[i] as usize].is_none() {
            Some(2)
        } else if !sel.excluded.is_empty() && sel.excluded.contains(&(x.src, l[i])) {
            Some(3)
        } else {
            None
        };
        if let Some(r) = reason {
            drops[r] += 1;
            continue;
        }
        let (trust, volume) = match sel.decay {
            // The difference in 128 bits cannot overflow; within i64 range it
            // is the SQL plan's CAST(ts - now AS DOUBLE).
            Some((now, h_ms)) => {
                let d = 2f64.powf((ts as i128 - now as i128) as f64 / h_ms);
                (x.trust * d, x.volume * d)
            }
            None => (x.trust, x.volume),
        };
        e[w] = Entry { trust, volume, ..x };
        l[w] = sel.layer_pos[l[i] as usize].unwrap_or(0);
        w += 1;
    }
    (w, drops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(u32, u32, i64, u32, f64, f64)]) -> Rows {
        Rows {
            entries: v
                .iter()
                .map(|r| Entry {
                    src: r.0,
                    dst: r.1,
                    trust: r.4 * r.5,
                    volume: r.5,
                })
                .collect(),
            ts: v.iter().map(|r| r.2).collect(),
            layer: v.iter().map(|r| r.3).collect(),
        }
    }

    #[test]
    fn drop_reasons_in_order_and_decay() {
        let r = rows(&[
            (0, 0, 5, 0, 1.0, 1.0),   // self-rating (also outside the window)
            (0, 1, 0, 0, 1.0, 1.0),   // outside the window
            (0, 1, 5, 1, 1.0, 1.0),   // layer not selected
            (2, 1, 5, 0, 1.0, 1.0),   // slashed
            (0, 1, 10, 0, -0.5, 2.0), // kept, decay 1
            (1, 2, 8, 2, 1.0, 1.0),   // kept, decay 2^(-2/2)
        ]);
        let sel = Selection {
            layer_pos: vec![Some(1), None, Some(0)],
            since_ms: Some(1),
            decay: Some((10, 2.0)),
            excluded: [(2, 0)].into_iter().collect(),
            ..Default::default()
        };
        let (e, l, d) = select(r, &sel);
        assert_eq!(
            (
                d.self_rating,
                d.outside_window,
                d.layer_not_selected,
                d.slashed_rater
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(l, vec![1, 0]);
        assert_eq!((e[0].trust, e[0].volume), (-1.0, 2.0));
        assert_eq!((e[1].src, e[1].trust, e[1].volume), (1, 0.5, 0.5));
    }

    #[test]
    fn chunks_are_compacted_in_order() {
        // Three chunks' worth, every third row a self-rating.
        let n = 2 * CHUNK + 17;
        let v: Vec<_> = (0..n as u32)
            .map(|i| (i, if i % 3 == 0 { i } else { i + 1 }, 0, 0, 1.0, 1.0))
            .collect();
        let sel = Selection {
            layer_pos: vec![Some(0)],
            ..Default::default()
        };
        let (e, _, d) = select(rows(&v), &sel);
        assert_eq!(d.self_rating as usize, n.div_ceil(3));
        let want: Vec<u32> = (0..n as u32).filter(|i| i % 3 != 0).collect();
        assert_eq!(e.iter().map(|x| x.src).collect::<Vec<_>>(), want);
    }
}
