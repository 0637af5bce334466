//! The selection and decay as DataFusion SQL over the canonical string
//! batches: the plan DESIGN.md §1 describes, kept as the reference the
//! streaming integer path (`super::rows`) is tested against bit for bit, and
//! as `score --ingest sql`. It holds every row as strings, so it needs several
//! times the memory of the streaming path.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use rustc_hash::FxHashSet;

use super::{read, DropCounts, IngestOptions};
use crate::error::{Error, Result};
use crate::graph::{AgentIndex, GraphBuilder};

/// Runs the SQL selection over `batches` and pushes every selected row's
/// contribution into `builder` (whose layers are `layers`, in order).
pub(crate) async fn select_into(
    batches: &[RecordBatch],
    latest_ts_ms: Option<i64>,
    agents: &AgentIndex,
    opts: &IngestOptions,
    layers: &[String],
    builder: &mut GraphBuilder,
) -> Result<(u64, DropCounts)> {
    let (graph_input, drops) = query(batches, latest_ts_ms, opts, layers).await?;
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
            agents
                .id(name)
                .ok_or_else(|| Error::internal(format!("agent `{name}` is not in the agent set")))
        };
        for r in 0..b.num_rows() {
            let l = layers
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
    Ok((used, drops))
}

async fn query(
    batches: &[RecordBatch],
    latest_ts_ms: Option<i64>,
    opts: &IngestOptions,
    layers: &[String],
) -> Result<(Vec<RecordBatch>, DropCounts)> {
    let parts = rayon::current_num_threads().max(1);
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(parts));
    let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
    for (i, b) in batches.iter().enumerate() {
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
    let decay = match (opts.half_life_s, latest_ts_ms) {
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

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
