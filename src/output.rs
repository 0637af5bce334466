//! Writing score tables as Parquet.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;
use crate::ingest::convert::write_parquet;
use crate::trust::Scores;

/// Writes `agent` (utf8), `score` (float64), `rank` (uint32, 1 = best), sorted by rank.
pub fn write_scores(path: &Path, scores: &Scores) -> Result<()> {
    let order = scores.order();
    let agents: Vec<&str> = order.iter().map(|&i| scores.agents[i].as_str()).collect();
    let vals: Vec<f64> = order.iter().map(|&i| scores.scores[i]).collect();
    let ranks: Vec<u32> = (1..=order.len() as u32).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("agent", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("rank", DataType::UInt32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(agents)),
            Arc::new(Float64Array::from(vals)),
            Arc::new(UInt32Array::from(ranks)),
        ],
    )?;
    write_parquet(path, &batch)
}
