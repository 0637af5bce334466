//! An epoch's interactions as a real interaction log (DESIGN.md §2), so the
//! simulation is scored by exactly the code that scores users' logs.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};

use crate::error::Result;
use crate::parquet_out;

/// The one layer of the classic scenarios: a download is a delivery.
pub const LAYER: &str = "delivery";

/// Milliseconds between the starts of two epochs: a day, so the logs read as
/// daily batches. Nothing depends on it, as no time decay is applied.
const EPOCH_MS: i64 = 86_400_000;

/// One row of the log: `src` rates `dst` with `outcome` in [-1, 1] in layer
/// `layer` (an index into the layer names given to [`write_epoch`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    pub src: usize,
    pub dst: usize,
    pub layer: usize,
    pub outcome: f64,
}

/// Writes one epoch's rows as a Parquet log with the canonical column types
/// (`ts` timestamp ms, `src`, `dst`, `layer` utf8, `outcome`, `weight`
/// f64), peers named by `names`, layers by `layers`. Row `k` of epoch `e` is
/// stamped `e · 1 day + k` ms, so the rows keep their order in time.
pub fn write_epoch(
    path: &Path,
    epoch: usize,
    names: &[String],
    layers: &[&str],
    rows: &[Interaction],
) -> Result<()> {
    let start = epoch as i64 * EPOCH_MS;
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "ts",
            Arc::new(TimestampMillisecondArray::from_iter_values(
                (0..rows.len() as i64).map(|k| start + k),
            )),
        ),
        (
            "src",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| names[r.src].as_str()),
            )),
        ),
        (
            "dst",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| names[r.dst].as_str()),
            )),
        ),
        (
            "layer",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| layers[r.layer]),
            )),
        ),
        (
            "outcome",
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.outcome),
            )),
        ),
        (
            "weight",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|_| 1.0))),
        ),
    ];
    parquet_out::write_columns(path, cols, false)
}
