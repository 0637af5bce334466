//! `sign-log`: fills the `sig` column of a log for one rater's rows.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, RecordBatch, RecordBatchReader};
use arrow::datatypes::{DataType, Field, Schema};
use ed25519_dalek::SigningKey;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::auth::{CanonicalRows, SIG_COLUMN};
use super::read::{self, READ_BATCH_ROWS};
use crate::error::{Error, Result, ResultExt};
use crate::identity::rowsig::sign_row;
use crate::parquet_out::ParquetSink;

/// What [`sign_log`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignCounts {
    pub rows: u64,
    /// Rows rated by the agent, now signed.
    pub signed: u64,
}

/// Copies `input` to `out` with the `sig` column (binary, nullable) set, for
/// every row whose `src` is `agent`, to `key`'s signature over the row's
/// canonical bytes ([`crate::identity::rowsig`]); other rows keep the
/// signature they had (or none). Every row is validated as `score` reads it,
/// so what is signed is exactly what will be verified.
pub fn sign_log(input: &Path, out: &Path, key: &SigningKey, agent: &str) -> Result<SignCounts> {
    if input == out {
        return Err(
            Error::invalid("the output would overwrite the input; choose another file")
                .with_path(out),
        );
    }
    let canonical = read::read_file(input)?;
    let raw = ParquetRecordBatchReaderBuilder::try_new(
        File::open(input).map_err(Error::read).with_path(input)?,
    )
    .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
    .map_err(Error::read)
    .with_path(input)?;
    let in_schema = raw.schema();
    let sig_index = in_schema.index_of(SIG_COLUMN).ok();
    let mut fields: Vec<Field> = in_schema
        .fields()
        .iter()
        .filter(|f| f.name() != SIG_COLUMN)
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(SIG_COLUMN, DataType::Binary, true));
    let schema = Arc::new(Schema::new(fields));
    let mut sink = ParquetSink::create(out, Arc::clone(&schema))?;
    let mut counts = SignCounts { rows: 0, signed: 0 };
    let mut canonical = canonical.into_iter();
    for batch in raw {
        let batch = batch.map_err(Error::read).with_path(input)?;
        let c = canonical
            .next()
            .filter(|c| c.num_rows() == batch.num_rows())
            .ok_or_else(|| {
                Error::internal("the validated and the raw reads of a log disagree on its batches")
            })?;
        let sig = signatures(&batch, sig_index, &c, key, agent, &mut counts)?;
        let mut columns: Vec<ArrayRef> = (0..batch.num_columns())
            .filter(|&i| Some(i) != sig_index)
            .map(|i| Arc::clone(batch.column(i)))
            .collect();
        columns.push(sig);
        sink.write(&RecordBatch::try_new(Arc::clone(&schema), columns)?)?;
        counts.rows += batch.num_rows() as u64;
    }
    sink.close()?;
    Ok(counts)
}

fn signatures(
    raw: &RecordBatch,
    sig_index: Option<usize>,
    c: &RecordBatch,
    key: &SigningKey,
    agent: &str,
    counts: &mut SignCounts,
) -> Result<ArrayRef> {
    let old = match sig_index {
        None => None,
        Some(i) => Some(arrow::compute::cast(raw.column(i), &DataType::Binary)?),
    };
    let rows = CanonicalRows::new(c);
    let mut b = BinaryBuilder::with_capacity(c.num_rows(), 64 * c.num_rows());
    for i in 0..c.num_rows() {
        if rows.src(i) == agent {
            let row = rows.row(i);
            b.append_value(sign_row(key, &row)?);
            counts.signed += 1;
        } else {
            match old.as_ref().map(|o| o.as_binary::<i32>()) {
                Some(o) if !o.is_null(i) => b.append_value(o.value(i)),
                _ => b.append_null(),
            }
        }
    }
    Ok(Arc::new(b.finish()))
}
