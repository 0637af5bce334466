//! Ingest stage: Parquet interaction logs → validated, filtered, decayed
//! contributions → [`MultiGraph`].
//!
//! Files are validated one by one (so errors name the file and row), then
//! DataFusion runs the selection (time window, layers, self-ratings) and the
//! decay as SQL over the validated rows. The sums per (src, dst, layer) happen
//! in the graph builder, in canonical order, because a hash aggregate's float
//! sums depend on partitioning and would break bit-identical scores.

pub mod auth;
pub mod convert;
pub mod files;
pub mod read;
pub mod sign;
pub mod tables;
pub mod time;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::error::{params, Error, Result};
use crate::graph::{AgentIndex, GraphBuilder, MultiGraph};
use auth::{AuthDrops, RowAuth};

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
    batches: Vec<RecordBatch>,
    pub rows: u64,
    pub latest_ts_ms: Option<i64>,
    /// Sorted distinct layer names.
    pub layers: Vec<String>,
    /// Every src and dst (the agent set), dense ids by name.
    pub agents: AgentIndex,
    pub read_seconds: f64,
    /// Rows dropped at read by a [`RowAuth`] (already out of `batches`).
    auth_drops: AuthDrops,
}

impl LogTable {
    /// Reads and validates every file.
    pub fn read(files: Vec<PathBuf>) -> Result<Self> {
        Self::read_with(files, None)
    }

    /// As [`LogTable::read`], keeping only the rows `auth` accepts (the
    /// others are counted as drops).
    pub fn read_with(files: Vec<PathBuf>, auth: Option<&RowAuth>) -> Result<Self> {
        let start = std::time::Instant::now();
        let mut batches = Vec::new();
        let mut auth_drops = AuthDrops::default();
        for f in &files {
            batches.extend(match auth {
                None => read::read_file(f)?,
                Some(a) => read::read_file_auth(f, a, &mut auth_drops)?,
            });
        }
        let mut rows = auth_drops.unregistered_rater + auth_drops.bad_signature;
        let mut latest: Option<i64> = None;
        let mut names: FxHashSet<&str> = FxHashSet::default();
        let mut layers: FxHashSet<&str> = FxHashSet::default();
        for b in &batches {
            rows += b.num_rows() as u64;
            let ts = b.column(0).as_primitive::<Int64Type>();
            if let Some(m) = arrow::compute::max(ts) {
                latest = Some(latest.map_or(m, |l| l.max(m)));
            }
            for c in [1, 2] {
                names.extend(b.column(c).as_string::<i32>().iter().flatten());
            }
            layers.extend(b.column(3).as_string::<i32>().iter().flatten());
        }
        let agents = AgentIndex::from_names(names.iter().copied());
        let mut layers: Vec<String> = layers.into_iter().map(String::from).collect();
        layers.sort();
        Ok(LogTable {
            files,
            batches,
            rows,
            latest_ts_ms: latest,
            layers,
            agents,
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
        &self,
        opts: &IngestOptions,
        evidence_layers: &[String],
    ) -> Result<(MultiGraph, IngestStats)> {
        crate::runtime::block_on(self.select_async(opts, evidence_layers))
    }

    /// As [`LogTable::select`], on the caller's runtime: the DataFusion query
    /// runs on it, the graph is built on the calling task.
    pub async fn select_async(
        &self,
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
        let t0 = std::time::Instant::now();
        let (graph_input, mut drops) = self.query(opts, &layer_names).await?;
        drops.unregistered_rater = self.auth_drops.unregistered_rater;
        drops.bad_signature = self.auth_drops.bad_signature;
        let aggregate_seconds = t0.elapsed().as_secs_f64();

        let t1 = std::time::Instant::now();
        let mut builder = GraphBuilder::new(self.agents.clone(), layer_names.clone());
        let mut used = 0u64;
        for b in &graph_input {
            used += b.num_rows() as u64;
            let src = b.column(0).as_string::<i32>();
            let dst = b.column(1).as_string::<i32>();
            let layer = b.column(2).as_string::<i32>();
            let trust = b.column(3).as_primitive::<Float64Type>();
            let volume = b.column(4).as_primitive::<Float64Type>();
            builder.reserve(b.num_rows());
            let id = |name: &str| {
                self.agents.id(name).ok_or_else(|| {
                    Error::internal(format!("agent `{name}` is not in the agent set"))
                })
            };
            for r in 0..b.num_rows() {
                let l = layer_names
                    .iter()
                    .position(|n| n == layer.value(r))
                    .ok_or_else(|| {
                        Error::internal(format!(
                            "the query returned layer `{}`, which was not selected",
                            layer.value(r)
                        ))
                    })?;
                builder.push(
                    l as u32,
                    id(src.value(r))?,
                    id(dst.value(r))?,
                    trust.value(r),
                    volume.value(r),
                );
            }
        }
        let graph = builder.build()?;
        if used == 0 {
            return Err(Error::Empty(format!(
                "all {} rows were dropped by the filters (unregistered raters {}, bad signatures {}, self-ratings {}, outside the time window {}, layer not selected {}, slashed raters {})",
                self.rows, drops.unregistered_rater, drops.bad_signature, drops.self_rating, drops.outside_window, drops.layer_not_selected, drops.slashed_rater
            )));
        }
        let stats = IngestStats {
            files: self.files.len(),
            paths: self.files.clone(),
            rows_read: self.rows,
            rows_used: used,
            rows_dropped: drops,
            latest_ts_ms: self.latest_ts_ms,
            layers_present: self.layers.clone(),
            read_seconds: self.read_seconds,
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

    async fn query(
        &self,
        opts: &IngestOptions,
        layers: &[String],
    ) -> Result<(Vec<RecordBatch>, DropCounts)> {
        let parts = rayon::current_num_threads().max(1);
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_target_partitions(parts));
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
        for (i, b) in self.batches.iter().enumerate() {
            partitions[i % parts].push(b.clone());
        }
        let table = MemTable::try_new(read::canonical_schema(), partitions)?;
        ctx.register_table("log", Arc::new(table))?;

        let mut window = vec!["TRUE".to_string()];
        if let Some(s) = opts.since_ms {
            window.push(format!("ts >= {s}"));
        }
        if let Some(u) = opts.until_ms {
            window.push(format!("ts < {u}"));
        }
        let window = window.join(" AND ");
        let layer_in = format!(
            "layer IN ({})",
            layers
                .iter()
                .map(|l| sql_string(l))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let decay = match (opts.half_life_s, self.latest_ts_ms) {
            (Some(h), _) if !(h > 0.0 && h <= time::MAX_DURATION_S) => {
                return Err(Error::invalid(format!(
                    "half-life of {h:e} s: expected a positive number of seconds up to {:e}",
                    time::MAX_DURATION_S
                )));
            }
            (Some(h), Some(now)) => {
                format!("power(2.0, CAST(ts - {now} AS DOUBLE) / {:e})", h * 1000.0)
            }
            _ => "1.0".to_string(),
        };

        let counts = ctx
            .sql(&format!(
                "SELECT
                   sum(CASE WHEN src = dst THEN 1 ELSE 0 END),
                   sum(CASE WHEN src <> dst AND NOT ({window}) THEN 1 ELSE 0 END),
                   sum(CASE WHEN src <> dst AND ({window}) AND NOT ({layer_in}) THEN 1 ELSE 0 END)
                 FROM log"
            ))
            .await?
            .collect()
            .await?;
        let c = &counts[0];
        let get = |i: usize| -> u64 {
            let a = c.column(i).as_primitive::<Int64Type>();
            if a.is_null(0) {
                0
            } else {
                a.value(0) as u64
            }
        };
        let mut drops = DropCounts {
            self_rating: get(0),
            outside_window: get(1),
            layer_not_selected: get(2),
            slashed_rater: 0,
            unregistered_rater: 0,
            bad_signature: 0,
        };

        let df = ctx
            .sql(&format!(
                "SELECT src, dst, layer,
                        weight * outcome * {decay} AS trust,
                        weight * {decay} AS volume
                 FROM log
                 WHERE src <> dst AND ({window}) AND {layer_in}"
            ))
            .await?;
        let mut stream = df.execute_stream().await?;
        // Slashed raters are a set lookup per row here rather than one SQL
        // term per proof, which would grow the plan (and the planner's stack)
        // with the number of proofs.
        let excluded: FxHashSet<(&str, &str)> = opts
            .exclude_raters
            .iter()
            .map(|(a, l)| (a.as_str(), l.as_str()))
            .collect();
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            let b = b?;
            if excluded.is_empty() {
                out.push(b);
                continue;
            }
            let utf8 = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
            let (src, layer) = (utf8(0)?, utf8(2)?);
            let (src, layer) = (src.as_string::<i32>(), layer.as_string::<i32>());
            let keep: BooleanArray = (0..b.num_rows())
                .map(|i| Some(!excluded.contains(&(src.value(i), layer.value(i)))))
                .collect();
            drops.slashed_rater += (b.num_rows() - keep.true_count()) as u64;
            out.push(filter_record_batch(&b, &keep)?);
        }
        Ok((out, drops))
    }
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
