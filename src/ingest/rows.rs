//! The streaming ingest path: each validated batch becomes integer rows at
//! once (agent and layer names interned to ids), and the string batches are
//! dropped, so the logs are never held as strings. The selection (self-
//! ratings, time window, layers, slashed raters) and the decay then run over
//! integers in parallel, in place.
//!
//! Memory per input row while reading: a 24-byte [`Entry`] (src, dst,
//! weight·outcome, weight) and its layer (4), plus its timestamp (8) when a
//! time window or a decay needs it: 28 or 36 bytes. After the selection the
//! timestamps are freed and the kept entries become the contributions the
//! graph builder sorts in place.
//!
//! The values are those of the SQL plan (`super::sql`, the reference this
//! path is tested against bit for bit): trust = (weight·outcome)·decay,
//! volume = weight·decay, decay = 2^((ts - now) / half-life in ms).

use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashSet;

use super::DropCounts;
use crate::error::{Error, Result};
use crate::graph::ids::{numbering, Interner, SharedInterner};
use crate::graph::{AgentIndex, Entry};

/// Rows of every file as integers, in reading order, with ids in the order
/// the names were met until [`RowReader::finish`] maps them to canonical
/// ones.
#[derive(Debug, Default)]
pub(crate) struct RowReader {
    rows: Rows,
    /// Shared with the row groups filling slots and with [`RowReader::part`]s.
    agents: Arc<SharedInterner>,
    layers: Interner,
    latest: Option<i64>,
    /// Whether `rows.ts` is filled (see [`RowReader::with_capacity`]); the
    /// latest instant is tracked either way.
    keep_ts: bool,
}

/// Validated rows: `entries[i]` holds (src, dst, weight·outcome, weight),
/// `ts[i]` and `layer[i]` the rest of row i. `ts` is empty when the reader
/// did not keep timestamps.
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
    /// `keep_ts`: whether each row's timestamp is kept; only a time window
    /// or a decay reads them, and without them a row takes 28 bytes, not 36.
    pub fn with_capacity(rows: usize, keep_ts: bool) -> Self {
        RowReader {
            rows: Rows {
                entries: Vec::with_capacity(rows),
                ts: Vec::with_capacity(if keep_ts { rows } else { 0 }),
                layer: Vec::with_capacity(rows),
            },
            keep_ts,
            ..Default::default()
        }
    }

    /// An empty reader for up to `rows` rows whose agent ids are ours, to
    /// be appended by [`RowReader::absorb`].
    pub fn part(&self, rows: usize) -> Self {
        RowReader {
            agents: Arc::clone(&self.agents),
            ..Self::with_capacity(rows, self.keep_ts)
        }
    }

    /// Rows read so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Grows the arrays by the sizes given and hands out one slot per size,
    /// in order, for row groups to fill side by side (agents numbered in our
    /// shared interner, layers by each group itself);
    /// [`RowReader::absorb_group`] then merges each slot's layer names.
    pub fn slots(&mut self, sizes: &[usize]) -> Vec<GroupRows<'_>> {
        let r = &mut self.rows;
        let agents = &*self.agents;
        let start = r.entries.len();
        let total: usize = sizes.iter().sum();
        let blank = Entry {
            src: 0,
            dst: 0,
            trust: 0.0,
            volume: 0.0,
        };
        r.entries.resize(start + total, blank);
        r.layer.resize(start + total, 0);
        if self.keep_ts {
            r.ts.resize(start + total, 0);
        }
        let (mut e, mut t, mut l) = (
            &mut r.entries[start..],
            self.keep_ts.then(|| &mut r.ts[start..]),
            &mut r.layer[start..],
        );
        let mut out = Vec::with_capacity(sizes.len());
        for &n in sizes {
            let (e0, e1) = std::mem::take(&mut e).split_at_mut(n);
            let (t0, t1) = match t.take() {
                Some(t) => {
                    let (a, b) = t.split_at_mut(n);
                    (Some(a), Some(b))
                }
                None => (None, None),
            };
            let (l0, l1) = std::mem::take(&mut l).split_at_mut(n);
            (e, t, l) = (e1, t1, l1);
            out.push(GroupRows {
                agents,
                entries: e0,
                ts: t0,
                layer: l0,
                len: 0,
                names: GroupNames::default(),
            });
        }
        out
    }

    /// Merges the layer names of the group whose slot starts at row `start`
    /// and maps its rows' layer ids to ours (its agent ids are ours).
    pub fn absorb_group(&mut self, start: usize, names: GroupNames) -> Result<()> {
        let layers = self.layers.absorb(&names.layers)?;
        self.latest = later(self.latest, names.latest);
        let end = start + names.len;
        renumber_layers(&mut self.rows.layer[start..end], &layers);
        Ok(())
    }

    /// Appends the rows of `other`, one of our [`RowReader::part`]s, after
    /// ours, its layer ids mapped to ours.
    pub fn absorb(&mut self, other: RowReader) -> Result<()> {
        if !Arc::ptr_eq(&self.agents, &other.agents) {
            return Err(Error::internal(
                "row reader: absorbing rows numbered by another interner",
            ));
        }
        let layers = self.layers.absorb(&other.layers)?;
        self.latest = later(self.latest, other.latest);
        let r = &mut self.rows;
        let o = other.rows;
        if self.keep_ts {
            r.ts.extend_from_slice(&o.ts);
        }
        let start = r.len();
        r.layer.extend_from_slice(&o.layer);
        r.entries.extend_from_slice(&o.entries);
        renumber_layers(&mut r.layer[start..], &layers);
        Ok(())
    }

    /// Maps the provisional ids to canonical ones (agents in
    /// [`AgentIndex`] order, layers sorted by name).
    pub fn finish(self) -> Result<ReadRows> {
        let RowReader {
            mut rows,
            agents,
            layers,
            latest,
            keep_ts: _,
        } = self;
        let agents = Arc::try_unwrap(agents)
            .map_err(|_| Error::internal("row reader: a part outlived the reading"))?;
        let (agents, remap) = agents.into_index()?;
        let names = layers.into_names();
        let (order, lremap) = numbering(&names, |a, b| a.cmp(b));
        let layers = order.iter().map(|&i| names[i as usize].clone()).collect();
        renumber(&mut rows.entries, &mut rows.layer, &remap, &lremap);
        Ok(ReadRows {
            rows,
            agents,
            layers,
            latest_ts_ms: latest,
        })
    }
}

/// Maps rows' ids through `agents` and `layers` (old id → new id).
fn renumber(entries: &mut [Entry], layer: &mut [u32], agents: &[u32], layers: &[u32]) {
    entries.par_iter_mut().for_each(|e| {
        e.src = agents[e.src as usize];
        e.dst = agents[e.dst as usize];
    });
    renumber_layers(layer, layers);
}

/// Maps rows' layer ids through `layers` (old id → new id).
fn renumber_layers(layer: &mut [u32], layers: &[u32]) {
    layer.par_iter_mut().for_each(|l| *l = layers[*l as usize]);
}

/// Validated rows as columns of a sink's ids.
pub(crate) struct IdRows<'a> {
    pub ts: &'a [i64],
    pub src: &'a [u32],
    pub dst: &'a [u32],
    pub layer: &'a [u32],
    pub outcome: &'a [f64],
    pub weight: &'a [f64],
}

impl IdRows<'_> {
    /// The rows' entries: (src, dst, weight·outcome, weight).
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        (0..self.ts.len()).map(|k| Entry {
            src: self.src[k],
            dst: self.dst[k],
            trust: self.weight[k] * self.outcome[k],
            volume: self.weight[k],
        })
    }

    fn latest(&self) -> Option<i64> {
        self.ts.iter().max().copied()
    }
}

/// The later of two optional instants.
fn later(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.max(b)
}

/// Where validated rows go: names become ids, rows are appended.
pub(crate) trait RowSink {
    fn agent_id(&mut self, name: &str) -> Result<u32>;
    fn layer_id(&mut self, name: &str) -> Result<u32>;
    fn push_ids(&mut self, rows: IdRows<'_>) -> Result<()>;
}

impl RowSink for RowReader {
    fn agent_id(&mut self, name: &str) -> Result<u32> {
        self.agents.id(name)
    }
    fn layer_id(&mut self, name: &str) -> Result<u32> {
        self.layers.id(name)
    }
    fn push_ids(&mut self, rows: IdRows<'_>) -> Result<()> {
        self.latest = later(self.latest, rows.latest());
        let r = &mut self.rows;
        if self.keep_ts {
            r.ts.extend_from_slice(rows.ts);
        }
        r.layer.extend_from_slice(rows.layer);
        r.entries.extend(rows.entries());
        Ok(())
    }
}

/// A row group's layer names, numbered by the group itself, and what it
/// filled.
#[derive(Debug, Default)]
pub(crate) struct GroupNames {
    layers: Interner,
    latest: Option<i64>,
    /// Rows written into the slot.
    pub len: usize,
}

/// One row group's slot of the file's row arrays (see [`RowReader::slots`]).
pub(crate) struct GroupRows<'a> {
    agents: &'a SharedInterner,
    entries: &'a mut [Entry],
    /// `None` when the reader does not keep timestamps.
    ts: Option<&'a mut [i64]>,
    layer: &'a mut [u32],
    len: usize,
    names: GroupNames,
}

impl GroupRows<'_> {
    /// The group's names, once it is filled.
    pub fn finish(mut self) -> GroupNames {
        self.names.len = self.len;
        self.names
    }
}

impl RowSink for GroupRows<'_> {
    fn agent_id(&mut self, name: &str) -> Result<u32> {
        self.agents.id(name)
    }
    fn layer_id(&mut self, name: &str) -> Result<u32> {
        self.names.layers.id(name)
    }
    fn push_ids(&mut self, rows: IdRows<'_>) -> Result<()> {
        let (a, n) = (self.len, rows.ts.len());
        if a + n > self.entries.len() {
            return Err(Error::invalid(format!(
                "a row group holds more rows than the file's footer says ({})",
                self.entries.len()
            )));
        }
        self.names.latest = later(self.names.latest, rows.latest());
        if let Some(ts) = self.ts.as_deref_mut() {
            ts[a..a + n].copy_from_slice(rows.ts);
        }
        self.layer[a..a + n].copy_from_slice(rows.layer);
        for (slot, e) in self.entries[a..a + n].iter_mut().zip(rows.entries()) {
            *slot = e;
        }
        self.len += n;
        Ok(())
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

impl Selection {
    /// Whether the rows' timestamps are read (a time window or a decay).
    pub fn reads_ts(&self) -> bool {
        self.since_ms.is_some() || self.until_ms.is_some() || self.decay.is_some()
    }
}

/// Rows per parallel task of the selection.
const CHUNK: usize = 1 << 16;

/// Applies `sel` in place: returns the kept contributions with their
/// selected-layer index, and the drop counts (self-ratings, outside the
/// window, layer not selected, slashed; the first matching reason counts).
pub(crate) fn select(rows: Rows, sel: &Selection) -> Result<(Vec<Entry>, Vec<u32>, DropCounts)> {
    let Rows {
        mut entries,
        ts,
        mut layer,
    } = rows;
    if sel.reads_ts() && ts.len() != entries.len() {
        // A library caller's mistake (LogTable::read_with, then other options).
        return Err(Error::invalid(
            "the logs were read without timestamps (for options with no time window and no \
             decay): read them with the options they are selected with",
        ));
    }
    // Timestamps are only indexed where `reads_ts`; otherwise there may be none.
    let no_ts = [0i64; 0];
    let per_chunk: Vec<(usize, [u64; 4])> = entries
        .par_chunks_mut(CHUNK)
        .zip(layer.par_chunks_mut(CHUNK))
        .enumerate()
        .map(|(c, (e, l))| {
            let t = if sel.reads_ts() {
                &ts[c * CHUNK..c * CHUNK + e.len()]
            } else {
                &no_ts[..]
            };
            select_chunk(e, l, t, sel)
        })
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
    Ok((entries, layer, drops))
}

/// Compacts one chunk's kept rows to its front; returns how many were kept.
fn select_chunk(e: &mut [Entry], l: &mut [u32], t: &[i64], sel: &Selection) -> (usize, [u64; 4]) {
    let mut drops = [0u64; 4];
    let mut w = 0;
    let window = sel.since_ms.is_some() || sel.until_ms.is_some();
    for i in 0..e.len() {
        let x = e[i];
        let reason = if x.src == x.dst {
            Some(0)
        } else if window
            && (sel.since_ms.is_some_and(|s| t[i] < s) || sel.until_ms.is_some_and(|u| t[i] >= u))
        {
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
                let d = 2f64.powf((t[i] as i128 - now as i128) as f64 / h_ms);
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
        let (e, l, d) = select(r, &sel).unwrap();
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
        let (e, _, d) = select(rows(&v), &sel).unwrap();
        assert_eq!(d.self_rating as usize, n.div_ceil(3));
        let want: Vec<u32> = (0..n as u32).filter(|i| i % 3 != 0).collect();
        assert_eq!(e.iter().map(|x| x.src).collect::<Vec<_>>(), want);
    }
}
