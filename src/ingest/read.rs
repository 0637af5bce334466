//! Reading one log file: schema check, normalisation to the canonical schema,
//! and row-level validation with exact row numbers.
//!
//! Files are read with the parquet crate's sequential reader rather than a
//! parallel scan because an error must name the row, and row numbers are only
//! meaningful in file order.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::auth::{is_signature_type, AuthDrops, RowAuth, SIG_COLUMN, SIG_EXPECTED};
use crate::error::{Error, Result, ResultExt};

/// The schema every file is normalised to: ts in epoch milliseconds, plain
/// strings, f64 outcome and weight.
pub fn canonical_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("src", DataType::Utf8, false),
        Field::new("dst", DataType::Utf8, false),
        Field::new("layer", DataType::Utf8, false),
        Field::new("outcome", DataType::Float64, false),
        Field::new("weight", DataType::Float64, false),
    ]))
}

/// Rows per batch read; `sign-log` reads the raw file alongside with the
/// same size, so its batches line up with these.
pub const READ_BATCH_ROWS: usize = 64 * 1024;

const TS_EXPECTED: &str = "timestamp (any unit) or int64 epoch milliseconds";
const STR_EXPECTED: &str = "utf8 or dictionary of utf8";
const NUM_EXPECTED: &str = "float32 or float64";

/// Reads and validates one file into canonical batches. Every error names
/// the file.
pub fn read_file(path: &Path) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    read_file_with(path, None, &mut |b| {
        out.push(b);
        Ok(())
    })?;
    Ok(out)
}

/// Reads and validates one file batch by batch, handing each canonical batch
/// to `sink` (so a caller need not hold the file). With `auth`, only the
/// rows it accepts are handed on (the others counted in its drops); every
/// row is validated first, so errors name the same rows. Every error names
/// the file.
pub fn read_file_with(
    path: &Path,
    auth: Option<(&RowAuth, &mut AuthDrops)>,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    read_batches(path, auth, sink).with_path(path)
}

fn read_batches(
    path: &Path,
    mut auth: Option<(&RowAuth, &mut AuthDrops)>,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(Error::read)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::read)?;
    let schema = builder.schema().clone();
    let mut wanted = Vec::new();
    for (name, expected) in [
        ("ts", TS_EXPECTED),
        ("src", STR_EXPECTED),
        ("dst", STR_EXPECTED),
        ("layer", STR_EXPECTED),
        ("outcome", NUM_EXPECTED),
    ] {
        let (idx, field) = schema
            .column_with_name(name)
            .ok_or_else(|| Error::MissingColumn {
                column: name.into(),
                expected: expected.into(),
            })?;
        check_type(name, field.data_type())?;
        wanted.push(idx);
    }
    let has_weight = match schema.column_with_name("weight") {
        Some((idx, field)) => {
            check_type("weight", field.data_type())?;
            wanted.push(idx);
            true
        }
        None => false,
    };
    let needs_sig = auth.as_ref().is_some_and(|(a, _)| a.require_signatures());
    if needs_sig {
        let (idx, field) =
            schema
                .column_with_name(SIG_COLUMN)
                .ok_or_else(|| Error::MissingColumn {
                    column: SIG_COLUMN.into(),
                    expected: format!(
                        "{SIG_EXPECTED} (signatures are required; `trustmesh sign-log` fills it)"
                    ),
                })?;
        if !is_signature_type(field.data_type()) {
            return Err(Error::ColumnType {
                column: SIG_COLUMN.into(),
                found: field.data_type().to_string(),
                expected: SIG_EXPECTED.into(),
            });
        }
        wanted.push(idx);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(Error::read)?;
    let mut row0: u64 = 0;
    for batch in reader {
        let batch = batch.map_err(Error::read)?;
        let rows = batch.num_rows();
        let canonical = normalise(&batch, has_weight, row0)?;
        sink(match auth.as_mut() {
            None => canonical,
            Some((a, drops)) => a.filter(&canonical, batch.column_by_name(SIG_COLUMN), drops)?,
        })?;
        row0 += rows as u64;
    }
    Ok(())
}

fn check_type(column: &str, dt: &DataType) -> Result<()> {
    let ok = match column {
        "ts" => matches!(dt, DataType::Timestamp(_, _) | DataType::Int64),
        "outcome" | "weight" => matches!(dt, DataType::Float32 | DataType::Float64),
        _ => is_string(dt),
    };
    if ok {
        return Ok(());
    }
    let expected = match column {
        "ts" => TS_EXPECTED,
        "outcome" | "weight" => NUM_EXPECTED,
        _ => STR_EXPECTED,
    };
    Err(Error::ColumnType {
        column: column.into(),
        found: dt.to_string(),
        expected: expected.into(),
    })
}

fn is_string(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

fn normalise(batch: &RecordBatch, has_weight: bool, row0: u64) -> Result<RecordBatch> {
    let col = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            Error::internal(format!(
                "column `{name}` was projected but is not in the batch"
            ))
        })
    };
    let bad = |column: &str, i: usize, message: String| {
        Error::invalid(message).with_row(row0 + i as u64 + 1, column)
    };

    let ts_raw = col("ts")?;
    let ts: ArrayRef = match ts_raw.data_type() {
        DataType::Int64 => Arc::clone(&ts_raw),
        _ => cast(
            &cast(&ts_raw, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
            &DataType::Int64,
        )?,
    };
    if let Some(i) = first_null(ts.as_ref()) {
        if ts_raw.is_null(i) {
            return Err(bad("ts", i, "null timestamp".into()));
        }
        // The cast to milliseconds gives null where the value overflows.
        let raw =
            arrow::util::display::array_value_to_string(&ts_raw, i).unwrap_or_else(|_| "?".into());
        return Err(bad(
            "ts",
            i,
            format!(
                "timestamp {raw} ({}) is outside the range of epoch milliseconds in 64 bits \
                 (about ±292 million years)",
                ts_raw.data_type()
            ),
        ));
    }

    let mut strings = Vec::new();
    for name in ["src", "dst", "layer"] {
        let a = cast(&col(name)?, &DataType::Utf8)?;
        let s = a.as_string::<i32>();
        for i in 0..s.len() {
            if s.is_null(i) {
                return Err(bad(name, i, format!("null {}", what(name))));
            }
            if s.value(i).is_empty() {
                return Err(bad(name, i, format!("empty {}", what(name))));
            }
        }
        strings.push(a);
    }

    let outcome = cast(&col("outcome")?, &DataType::Float64)?;
    let o = outcome.as_primitive::<arrow::datatypes::Float64Type>();
    for i in 0..o.len() {
        if o.is_null(i) {
            return Err(bad("outcome", i, "null outcome".into()));
        }
        let v = o.value(i);
        if !v.is_finite() {
            return Err(bad(
                "outcome",
                i,
                format!("outcome is {v}, expected a finite number in [-1, 1]"),
            ));
        }
        if !(-1.0..=1.0).contains(&v) {
            return Err(bad("outcome", i, format!("outcome {v} is outside [-1, 1]")));
        }
    }

    let weight: ArrayRef = if has_weight {
        let w = cast(&col("weight")?, &DataType::Float64)?;
        let wa = w.as_primitive::<arrow::datatypes::Float64Type>();
        let mut vals = Vec::with_capacity(wa.len());
        for i in 0..wa.len() {
            // An absent weight means the default, as for an absent column.
            let v = if wa.is_null(i) { 1.0 } else { wa.value(i) };
            if !v.is_finite() || v < 0.0 {
                return Err(bad(
                    "weight",
                    i,
                    format!("weight is {v}, expected a finite number >= 0"),
                ));
            }
            vals.push(v);
        }
        Arc::new(Float64Array::from(vals))
    } else {
        Arc::new(Float64Array::from(vec![1.0; batch.num_rows()]))
    };

    let ts: Int64Array = ts.as_primitive::<arrow::datatypes::Int64Type>().clone();
    let strip = |a: &ArrayRef| -> StringArray { a.as_string::<i32>().clone() };
    Ok(RecordBatch::try_new(
        canonical_schema(),
        vec![
            Arc::new(ts),
            Arc::new(strip(&strings[0])),
            Arc::new(strip(&strings[1])),
            Arc::new(strip(&strings[2])),
            outcome,
            weight,
        ],
    )?)
}

fn what(column: &str) -> &'static str {
    if column == "layer" {
        "layer name"
    } else {
        "agent id"
    }
}

fn first_null(a: &dyn Array) -> Option<usize> {
    if a.null_count() == 0 {
        return None;
    }
    (0..a.len()).find(|&i| a.is_null(i))
}
