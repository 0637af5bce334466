//! Writing score tables as Parquet.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Float64Array, StringArray, UInt32Array};

use crate::error::Result;
use crate::parquet_out::write_columns;
use crate::score::per_topic::{TopicScores, GLOBAL};
use crate::trust::scores::order;
use crate::trust::Scores;

/// Writes `agent` (utf8), `score` (float64), `rank` (uint32, 1 = best), sorted by rank.
pub fn write_scores(path: &Path, scores: &Scores) -> Result<()> {
    let order = scores.order();
    let agents: Vec<&str> = order.iter().map(|&i| scores.agents[i].as_str()).collect();
    let vals: Vec<f64> = order.iter().map(|&i| scores.scores[i]).collect();
    let ranks: Vec<u32> = (1..=order.len() as u32).collect();
    write_columns(
        path,
        vec![
            ("agent", Arc::new(StringArray::from(agents))),
            ("score", Arc::new(Float64Array::from(vals))),
            ("rank", Arc::new(UInt32Array::from(ranks))),
        ],
        false,
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
) -> Result<()> {
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
    write_columns(
        path,
        vec![
            ("agent", Arc::new(StringArray::from(agents))),
            (key, Arc::new(StringArray::from(keys))),
            ("score", Arc::new(Float64Array::from(vals))),
            ("rank", Arc::new(UInt32Array::from(ranks))),
        ],
        false,
    )
}

/// Long format for `--per-topic`: topic groups, then `global`.
pub fn write_topic_scores(path: &Path, t: &TopicScores) -> Result<()> {
    let groups: Vec<(&str, &[f64])> = t
        .topics
        .iter()
        .map(String::as_str)
        .zip(t.scores.iter().map(Vec::as_slice))
        .chain(std::iter::once((GLOBAL, t.global.as_slice())))
        .collect();
    write_long(path, "topic", &t.agents, &groups)
}
