//! Writing score tables as Parquet.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Float64Array, StringArray, UInt32Array};

use crate::error::{Error, Result};
use crate::parquet_out::{columns_batch, write_batch_with_metadata};
use crate::provenance::METADATA_KEY;
use crate::score::per_topic::{TopicScores, GLOBAL};
use crate::trust::scores::order;
use crate::trust::Scores;

/// The last line of defence before a table is published: every score finite
/// and non-negative, each vector summing to 1 (within the f32 back end's
/// noise). Earlier checks reject the inputs that could break this, so a
/// failure here is a bug, reported as one rather than written.
fn check_vector(name: &str, scores: &[f64]) -> Result<()> {
    if let Some(x) = scores.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
        return Err(Error::internal(format!(
            "vector `{name}` holds the score {x}; nothing was written"
        )));
    }
    let sum: f64 = scores.iter().sum();
    if !scores.is_empty() && (sum - 1.0).abs() > 1e-4 {
        return Err(Error::internal(format!(
            "vector `{name}` sums to {sum}, not 1; nothing was written"
        )));
    }
    Ok(())
}

/// Named columns to `path`, with the run's provenance JSON in the footer.
fn write_table(
    path: &Path,
    cols: Vec<(&str, arrow::array::ArrayRef)>,
    provenance: &str,
) -> Result<()> {
    let batch = columns_batch(cols, false)?;
    write_batch_with_metadata(path, &batch, &[(METADATA_KEY, provenance)])
}

/// Writes `agent` (utf8), `score` (float64), `rank` (uint32, 1 = best), sorted
/// by rank; `provenance` (see [`crate::provenance`]) goes to the footer.
pub fn write_scores(path: &Path, scores: &Scores, provenance: &str) -> Result<()> {
    check_vector("scores", &scores.scores)?;
    let order = scores.order();
    let agents: Vec<&str> = order.iter().map(|&i| scores.agents[i].as_str()).collect();
    let vals: Vec<f64> = order.iter().map(|&i| scores.scores[i]).collect();
    let ranks: Vec<u32> = (1..=order.len() as u32).collect();
    write_table(
        path,
        vec![
            ("agent", Arc::new(StringArray::from(agents))),
            ("score", Arc::new(Float64Array::from(vals))),
            ("rank", Arc::new(UInt32Array::from(ranks))),
        ],
        provenance,
    )
}

/// Long format for batched results: `agent`, `<key>` (topic, layer or set),
/// `score`, `rank` (within the group, ties by agent id), every agent in every
/// group, groups in the order given.
pub fn write_long(
    path: &Path,
    key: &str,
    agents_names: &[String],
    groups: &[(&str, &[f64])],
    provenance: &str,
) -> Result<()> {
    for (name, scores) in groups {
        check_vector(name, scores)?;
    }
    let (mut agents, mut keys, mut vals, mut ranks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, scores) in groups {
        for (pos, i) in order(scores).into_iter().enumerate() {
            agents.push(agents_names[i].as_str());
            keys.push(*name);
            vals.push(scores[i]);
            ranks.push(pos as u32 + 1);
        }
    }
    write_table(
        path,
        vec![
            ("agent", Arc::new(StringArray::from(agents))),
            (key, Arc::new(StringArray::from(keys))),
            ("score", Arc::new(Float64Array::from(vals))),
            ("rank", Arc::new(UInt32Array::from(ranks))),
        ],
        provenance,
    )
}

/// Long format for `--per-topic`: topic groups, then `global`.
pub fn write_topic_scores(path: &Path, t: &TopicScores, provenance: &str) -> Result<()> {
    let groups: Vec<(&str, &[f64])> = t
        .topics
        .iter()
        .map(String::as_str)
        .zip(t.scores.iter().map(Vec::as_slice))
        .chain(std::iter::once((GLOBAL, t.global.as_slice())))
        .collect();
    write_long(path, "topic", &t.agents, &groups, provenance)
}
