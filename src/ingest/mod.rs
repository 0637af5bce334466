//! Ingest stage: Parquet interaction logs → validated, filtered, decayed
//! contributions → [`MultiGraph`].
//!
//! Files are validated one by one (so errors name the file and row). By
//! default each validated batch becomes integer rows at once and the strings
//! are dropped (`rows`: names interned to ids, 36 bytes per row); the
//! selection (time window, layers, self-ratings, slashed raters) and the
//! decay run over integers. `--ingest sql` runs the same selection as
//! DataFusion SQL over the string batches instead (`sql`, the reference the
//! integer path is tested against bit for bit). Either way the sums per
//! (src, dst, layer) happen in the graph builder, in canonical order, because
//! a hash aggregate's float sums depend on partitioning and would break
//! bit-identical scores.

pub mod auth;
pub mod convert;
pub mod files;
pub mod read;
mod rows;
pub mod sign;
mod sql;
pub mod tables;
pub mod time;

use std::path::PathBuf;

use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::error::{params, Error, Result};
use crate::graph::{AgentIndex, GraphBuilder, MultiGraph};
use auth::{AuthDrops, RowAuth};
use rows::{RowReader, Rows, Selection};

/// How the selection runs (`score --ingest`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestEngine {
    /// Integer rows, selected in parallel in place (the default).
    #[default]
    Stream,
    /// DataFusion SQL over the string batches (the reference plan).
    Sql,
}

/// What to select from the logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestOptions {
    /// Layers to keep; `None` keeps all. Names must exist in the logs.
    pub layers: Option<Vec<String>>,
    /// Keep rows with ts >= since (epoch ms).
    pub since_ms: Option<i64>,
    /// Keep rows with ts < until (epoch ms).
    pub until_ms: Option<i64>,
    /// Exponential decay half-life in seconds; "now" is the latest ts read.
    pub half_life_s: Option<f64>,
    /// (rater, layer) pairs whose rows are dropped: a fraud proof removes the
    /// prover's target's outgoing feedback in that topic.
    pub exclude_raters: Vec<(String, String)>,
    /// How the selection runs; every engine gives the same bits.
    pub engine: IngestEngine,
}

impl IngestOptions {
    /// Whether the selection reads the rows' timestamps (a time window or a
    /// decay); logs read for options that do not are held without them.
    pub fn reads_timestamps(&self) -> bool {
        self.since_ms.is_some() || self.until_ms.is_some() || self.half_life_s.is_some()
    }
}

/// Counts for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestStats {
    pub files: usize,
    /// The log files read, in the order read.
    pub paths: Vec<PathBuf>,
    pub rows_read: u64,
    pub rows_used: u64,
    pub rows_dropped: DropCounts,
    /// Latest ts over all rows read (epoch ms); the decay reference time.
    pub latest_ts_ms: Option<i64>,
    /// Layers present in the logs, sorted.
    pub layers_present: Vec<String>,
    pub read_seconds: f64,
    pub aggregate_seconds: f64,
    pub build_seconds: f64,
}

/// Rows read but not scored, by reason (first matching reason wins, in this order).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DropCounts {
    pub self_rating: u64,
    pub outside_window: u64,
    pub layer_not_selected: u64,
    pub slashed_rater: u64,
    /// `--registry`: the rater (`src`) is not in the ledger. Counted first,
    /// at read.
    pub unregistered_rater: u64,
    /// `--require-signatures`: `sig` is missing or does not verify against
    /// the rater's registered key. Counted at read, after
    /// `unregistered_rater`.
    pub bad_signature: u64,
}

/// Validated rows of all files, before selection.
pub struct LogTable {
    pub files: Vec<PathBuf>,
    data: TableData,
    pub rows: u64,
    pub latest_ts_ms: Option<i64>,
    /// Sorted distinct layer names.
    pub layers: Vec<String>,
    /// Every src and dst (the agent set), dense ids by name.
    pub agents: AgentIndex,
    pub read_seconds: f64,
    /// Rows dropped at read by a [`RowAuth`] (already out of the rows).
    auth_drops: AuthDrops,
}

/// The rows as the engine needs them.
enum TableData {
    Rows(Rows),
    Batches(Vec<arrow::array::RecordBatch>),
}

impl LogTable {
    /// Reads and validates every file, for any selection.
    pub fn read(files: Vec<PathBuf>) -> Result<Self> {
        let any = IngestOptions {
            half_life_s: Some(1.0),
            ..Default::default()
        };
        Self::read_with(files, None, &any)
    }

    /// As [`LogTable::read`], keeping only the rows `auth` accepts (the
    /// others are counted as drops), held as `opts.engine` needs them, and
    /// for selections like `opts`: without timestamps when
    /// [`IngestOptions::reads_timestamps`] is false.
    pub fn read_with(
        files: Vec<PathBuf>,
        auth: Option<&RowAuth>,
        opts: &IngestOptions,
    ) -> Result<Self> {
        let engine = opts.engine;
        let start = std::time::Instant::now();
        let capacity = match engine {
            IngestEngine::Stream => files::total_rows(&files)?,
            IngestEngine::Sql => 0,
        };
        let capacity = usize::try_from(capacity)
            .map_err(|_| Error::invalid(format!("{capacity} rows do not fit this machine")))?;
        let mut reader = RowReader::with_capacity(capacity, opts.reads_timestamps());
        let mut batches = Vec::new();
        let mut auth_drops = AuthDrops::default();
        for f in &files {
            match engine {
                IngestEngine::Stream => read::read_rows(f, auth, &mut reader, &mut auth_drops)?,
                IngestEngine::Sql => {
                    read::read_file_with(f, auth.map(|a| (a, &mut auth_drops)), &mut |b| {
                        read::push_canonical(&mut reader, &b)?;
                        batches.push(b);
                        Ok(())
                    })?
                }
            }
        }
        let read = reader.finish()?;
        let kept = read.rows.len() as u64;
        let rows = auth_drops.unregistered_rater + auth_drops.bad_signature + kept;
        let data = match engine {
            IngestEngine::Stream => TableData::Rows(read.rows),
            IngestEngine::Sql => TableData::Batches(batches),
        };
        Ok(LogTable {
            files,
            data,
            rows,
            latest_ts_ms: read.latest_ts_ms,
            layers: read.layers,
            agents: read.agents,
            read_seconds: start.elapsed().as_secs_f64(),
            auth_drops,
        })
    }

    /// Runs the selection and builds the graph. `evidence_layers` are kept in
    /// addition to `opts.layers` (costly layers corroborate cheap ones even
    /// when they are not scored themselves).
    ///
    /// Synchronous wrapper of [`LogTable::select_async`] for callers without
    /// an async runtime (see [`crate::runtime::block_on`]).
    pub fn select(
        self,
        opts: &IngestOptions,
        evidence_layers: &[String],
    ) -> Result<(MultiGraph, IngestStats)> {
        crate::runtime::block_on(self.select_async(opts, evidence_layers))
    }

    /// As [`LogTable::select`], on the caller's runtime: the SQL engine's
    /// query runs on it, the graph is built on the calling task.
    pub async fn select_async(
        self,
        opts: &IngestOptions,
        evidence_layers: &[String],
    ) -> Result<(MultiGraph, IngestStats)> {
        let layer_names: Vec<String> = match &opts.layers {
            None => self.layers.clone(),
            Some(sel) => {
                let mut v: Vec<String> = Vec::new();
                for name in sel.iter().chain(evidence_layers) {
                    self.check_layer(name)?;
                    if !v.contains(name) {
                        v.push(name.clone());
                    }
                }
                v
            }
        };
        for name in evidence_layers {
            self.check_layer(name)?;
        }
        if self.rows == 0 {
            return Err(Error::Empty(format!(
                "no rows in {}",
                display_files(&self.files)
            )));
        }
        if let Some(h) = opts.half_life_s {
            if !(h > 0.0 && h <= time::MAX_DURATION_S) {
                return Err(Error::invalid(format!(
                    "half-life of {h:e} s: expected a positive number of seconds up to {:e}",
                    time::MAX_DURATION_S
                )));
            }
        }
        let LogTable {
            files,
            data,
            rows,
            latest_ts_ms,
            layers,
            agents,
            read_seconds,
            auth_drops,
        } = self;
        let t0 = std::time::Instant::now();
        let (graph, used, mut drops, t1) = match data {
            TableData::Rows(r) => {
                let sel = selection(&agents, &layers, &layer_names, latest_ts_ms, opts);
                let (entries, layer, drops) = rows::select(r, &sel)?;
                let t1 = std::time::Instant::now();
                let used = entries.len() as u64;
                let builder = GraphBuilder::from_entries(agents, layer_names, entries, layer);
                (builder.build()?, used, drops, t1)
            }
            TableData::Batches(b) => {
                let mut builder = GraphBuilder::new(agents.clone(), layer_names.clone());
                let (used, drops) =
                    sql::select_into(&b, latest_ts_ms, &agents, opts, &layer_names, &mut builder)
                        .await?;
                drop(b);
                let t1 = std::time::Instant::now();
                (builder.build()?, used, drops, t1)
            }
        };
        let aggregate_seconds = (t1 - t0).as_secs_f64();
        drops.unregistered_rater = auth_drops.unregistered_rater;
        drops.bad_signature = auth_drops.bad_signature;
        if used == 0 {
            return Err(Error::Empty(format!(
                "all {} rows were dropped by the filters (unregistered raters {}, bad signatures {}, self-ratings {}, outside the time window {}, layer not selected {}, slashed raters {})",
                rows, drops.unregistered_rater, drops.bad_signature, drops.self_rating, drops.outside_window, drops.layer_not_selected, drops.slashed_rater
            )));
        }
        let stats = IngestStats {
            files: files.len(),
            paths: files,
            rows_read: rows,
            rows_used: used,
            rows_dropped: drops,
            latest_ts_ms,
            layers_present: layers,
            read_seconds,
            aggregate_seconds,
            build_seconds: t1.elapsed().as_secs_f64(),
        };
        Ok((graph, stats))
    }

    fn check_layer(&self, name: &str) -> Result<()> {
        if self.layers.iter().any(|l| l == name) {
            Ok(())
        } else {
            Err(Error::param(
                params::LAYERS,
                format!(
                    "unknown layer `{name}`: the logs have {}",
                    quoted_list(&self.layers)
                ),
            ))
        }
    }
}

pub(crate) fn quoted_list(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn display_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The streaming engine's selection over canonical ids: `layer_names` (the
/// selected layers, in graph order) by id, the window, the decay and the
/// slashed (rater, layer) pairs. Raters or layers the logs do not have select
/// no row, as in the SQL plan.
fn selection(
    agents: &AgentIndex,
    layers: &[String],
    layer_names: &[String],
    latest_ts_ms: Option<i64>,
    opts: &IngestOptions,
) -> Selection {
    let layer_id = |name: &str| layers.binary_search_by(|l| l.as_str().cmp(name)).ok();
    let mut layer_pos = vec![None; layers.len()];
    for (pos, name) in layer_names.iter().enumerate() {
        if let Some(id) = layer_id(name) {
            layer_pos[id] = Some(pos as u32);
        }
    }
    let excluded: FxHashSet<(u32, u32)> = opts
        .exclude_raters
        .iter()
        .filter_map(|(a, l)| Some((agents.id(a)?, layer_id(l)? as u32)))
        .collect();
    Selection {
        layer_pos,
        since_ms: opts.since_ms,
        until_ms: opts.until_ms,
        decay: match (opts.half_life_s, latest_ts_ms) {
            (Some(h), Some(now)) => Some((now, h * 1000.0)),
            _ => None,
        },
        excluded,
    }
}
