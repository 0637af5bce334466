//! Which rows ingest accepts by who rated and who signed: with a registry
//! (the BAID ledger, [`crate::identity::ledger`]) only rows whose rater
//! (`src`) is registered; with signatures required, only rows whose `sig`
//! verifies against the rater's registered key over the row's canonical
//! bytes ([`crate::identity::rowsig`]). Dropped rows are counted by reason,
//! never scored.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use ed25519_dalek::VerifyingKey;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::identity::rowsig::{verify_rows, write_row_message, Row};
use crate::identity::Ledger;

/// Name of the signature column (binary, 64 bytes; null where unsigned).
pub const SIG_COLUMN: &str = "sig";

/// Rows per parallel piece of signature checks: large enough that each
/// piece fills many verification batches.
const PIECE: usize = 4096;

/// The accepted raters and whether rows must be signed.
#[derive(Debug, Clone)]
pub struct RowAuth {
    keys: HashMap<String, VerifyingKey>,
    require_signatures: bool,
}

/// Rows dropped at read by [`RowAuth`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthDrops {
    pub unregistered_rater: u64,
    pub bad_signature: u64,
}

impl RowAuth {
    /// Every agent of the ledger with its current key.
    pub fn from_ledger(ledger: &Ledger, require_signatures: bool) -> Self {
        let keys = ledger
            .entries()
            .iter()
            .filter_map(|e| ledger.key_of(&e.agent).map(|k| (e.agent.clone(), k)))
            .collect();
        RowAuth {
            keys,
            require_signatures,
        }
    }

    pub fn require_signatures(&self) -> bool {
        self.require_signatures
    }

    /// The rows of `batch` (canonical schema, [`super::read::canonical_schema`])
    /// this policy accepts; `sig` is the file's signature column for the same
    /// rows (required when signatures are).
    pub fn filter(
        &self,
        batch: &RecordBatch,
        sig: Option<&ArrayRef>,
        drops: &mut AuthDrops,
    ) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let rows = CanonicalRows::new(batch);
        let key: Vec<Option<&VerifyingKey>> = (0..n).map(|i| self.keys.get(rows.src(i))).collect();
        let mut keep: Vec<bool> = key.iter().map(Option::is_some).collect();
        drops.unregistered_rater += keep.iter().filter(|k| !**k).count() as u64;
        if self.require_signatures {
            let sig = sig.ok_or_else(|| {
                Error::internal("signatures are required but the sig column was not read")
            })?;
            let sig_at = signature_reader(sig)?;
            let idx: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
            let verdicts: Vec<bool> = idx
                .par_chunks(PIECE)
                .map(|piece| -> Result<Vec<bool>> {
                    let mut messages = Vec::with_capacity(piece.len());
                    let mut buf = Vec::new();
                    for &i in piece {
                        let row = rows.row(i);
                        write_row_message(&row, &mut buf)?;
                        messages.push(buf.clone());
                    }
                    let items: Vec<_> = piece
                        .iter()
                        .zip(&messages)
                        .map(|(&i, m)| {
                            (
                                m.as_slice(),
                                sig_at(i).unwrap_or(&[][..]),
                                key[i].expect("kept rows have keys"),
                            )
                        })
                        .collect();
                    Ok(verify_rows(&items))
                })
                .collect::<Result<Vec<_>>>()?
                .concat();
            for (&i, ok) in idx.iter().zip(verdicts) {
                if !ok {
                    keep[i] = false;
                    drops.bad_signature += 1;
                }
            }
        }
        if keep.iter().all(|k| *k) {
            return Ok(batch.clone());
        }
        Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
    }
}

/// The signature of row `i` (None where null), for the binary types a
/// Parquet writer may give the column.
type SigAt<'a> = Box<dyn Fn(usize) -> Option<&'a [u8]> + Sync + 'a>;

fn signature_reader(sig: &ArrayRef) -> Result<SigAt<'_>> {
    let get: SigAt<'_> = match sig.data_type() {
        DataType::Binary => {
            let a = sig.as_binary::<i32>();
            Box::new(move |i| (!a.is_null(i)).then(|| a.value(i)))
        }
        DataType::LargeBinary => {
            let a = sig.as_binary::<i64>();
            Box::new(move |i| (!a.is_null(i)).then(|| a.value(i)))
        }
        DataType::FixedSizeBinary(_) => {
            let a = sig.as_fixed_size_binary();
            Box::new(move |i| (!a.is_null(i)).then(|| a.value(i)))
        }
        DataType::BinaryView => {
            let a = sig.as_binary_view();
            Box::new(move |i| (!a.is_null(i)).then(|| a.value(i)))
        }
        other => {
            return Err(Error::ColumnType {
                column: SIG_COLUMN.into(),
                found: other.to_string(),
                expected: SIG_EXPECTED.into(),
            })
        }
    };
    Ok(get)
}

/// The rows of a canonical batch ([`super::read::canonical_schema`]) as
/// what a signature covers.
pub(crate) struct CanonicalRows<'a> {
    ts: &'a arrow::array::Int64Array,
    src: &'a arrow::array::StringArray,
    dst: &'a arrow::array::StringArray,
    layer: &'a arrow::array::StringArray,
    outcome: &'a arrow::array::Float64Array,
    weight: &'a arrow::array::Float64Array,
}

impl<'a> CanonicalRows<'a> {
    pub(crate) fn new(batch: &'a RecordBatch) -> Self {
        CanonicalRows {
            ts: batch.column(0).as_primitive::<Int64Type>(),
            src: batch.column(1).as_string::<i32>(),
            dst: batch.column(2).as_string::<i32>(),
            layer: batch.column(3).as_string::<i32>(),
            outcome: batch.column(4).as_primitive::<Float64Type>(),
            weight: batch.column(5).as_primitive::<Float64Type>(),
        }
    }

    pub(crate) fn src(&self, i: usize) -> &'a str {
        self.src.value(i)
    }

    pub(crate) fn row(&self, i: usize) -> Row<'a> {
        Row {
            src: self.src.value(i),
            dst: self.dst.value(i),
            layer: self.layer.value(i),
            outcome: self.outcome.value(i),
            weight: self.weight.value(i),
            ts_ms: self.ts.value(i),
        }
    }
}

/// What the `sig` column may be.
pub const SIG_EXPECTED: &str = "binary or fixed_size_binary(64), null where unsigned";

/// Whether `dt` can hold signatures.
pub fn is_signature_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::FixedSizeBinary(_)
            | DataType::BinaryView
    )
}
