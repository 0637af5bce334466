//! Reading one log file: schema check, normalisation to the canonical schema,
//! and row-level validation with exact row numbers.
//!
//! An error must name the row, and row numbers are only meaningful in file
//! order: the canonical-batch reader (`read_file_with`, for the SQL plan and
//! `sign-log`) reads a file sequentially; the integer reader (`read_rows`)
//! decodes row groups in parallel, each knowing its first row from the
//! footer, and reports the first bad row in file order.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::Encoding;
use rayon::prelude::*;

use super::auth::{is_signature_type, AuthDrops, RowAuth, SIG_COLUMN, SIG_EXPECTED};
use super::rows::{GroupNames, GroupRows, IdRows, RowReader, RowSink};
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

/// The columns to read (indices into the file's schema) and whether the
/// file has a `weight` column; every type is checked here.
struct Projection {
    wanted: Vec<usize>,
    has_weight: bool,
}

fn projection(schema: &Schema, needs_sig: bool) -> Result<Projection> {
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
    Ok(Projection { wanted, has_weight })
}

fn read_batches(
    path: &Path,
    mut auth: Option<(&RowAuth, &mut AuthDrops)>,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(Error::read)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::read)?;
    let needs_sig = auth.as_ref().is_some_and(|(a, _)| a.require_signatures());
    let proj = projection(builder.schema(), needs_sig)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), proj.wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(Error::read)?;
    let mut row0: u64 = 0;
    for batch in reader {
        let batch = batch.map_err(Error::read)?;
        let rows = batch.num_rows();
        let canonical = normalise(&batch, proj.has_weight, row0)?;
        sink(match auth.as_mut() {
            None => canonical,
            Some((a, drops)) => a.filter(&canonical, batch.column_by_name(SIG_COLUMN), drops)?,
        })?;
        row0 += rows as u64;
    }
    Ok(())
}

/// Reads and validates one file into `rows` as integer rows (the streaming
/// ingest), row groups decoded in parallel, a window of one per thread at a
/// time (so at most that many groups are in flight), and appended in file
/// order. Row numbers in errors are those of the file: each group knows its
/// first row from the footer, and of several bad groups the first is
/// reported. Every error names the file.
pub(crate) fn read_rows(
    path: &Path,
    auth: Option<&RowAuth>,
    rows: &mut RowReader,
    drops: &mut AuthDrops,
) -> Result<()> {
    read_rows_inner(path, auth, rows, drops).with_path(path)
}

fn read_rows_inner(
    path: &Path,
    auth: Option<&RowAuth>,
    rows: &mut RowReader,
    drops: &mut AuthDrops,
) -> Result<()> {
    let file = File::open(path).map_err(Error::read)?;
    let meta = ArrowReaderMetadata::load(&file, Default::default()).map_err(Error::read)?;
    let needs_sig = auth.is_some_and(|a| a.require_signatures());
    let proj = projection(meta.schema(), needs_sig)?;
    let groups: Vec<(usize, u64)> = meta
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .scan(0u64, |row0, (i, g)| {
            let first = *row0;
            *row0 += g.num_rows().max(0) as u64;
            Some((i, first))
        })
        .collect();
    let window = rayon::current_num_threads().max(1);
    for w in groups.chunks(window) {
        let sizes: Vec<usize> = w
            .iter()
            .map(|&(g, _)| meta.metadata().row_group(g).num_rows().max(0) as usize)
            .collect();
        if let Some(a) = auth {
            // Rows may be dropped: each group fills its own part of the
            // reader (same agent ids), appended after.
            let parts: Vec<RowReader> = sizes.iter().map(|&n| rows.part(n)).collect();
            let done: Vec<Result<(RowReader, AuthDrops)>> = parts
                .into_par_iter()
                .zip(w.par_iter())
                .map(|(part, &(g, row0))| read_group_auth(path, &meta, &proj, g, row0, a, part))
                .collect();
            for d in done {
                let (part, part_drops) = d?;
                rows.absorb(part)?;
                drops.unregistered_rater += part_drops.unregistered_rater;
                drops.bad_signature += part_drops.bad_signature;
            }
            continue;
        }
        // Every row is kept: each group writes straight into its slot of the
        // file's arrays, so rows are never copied or held twice.
        let base = rows.len();
        let slots = rows.slots(&sizes);
        let done: Vec<Result<GroupNames>> = slots
            .into_par_iter()
            .zip(w.par_iter())
            .map(|(slot, &(g, row0))| read_group(path, &meta, &proj, g, row0, slot))
            .collect();
        let mut start = base;
        for (d, size) in done.into_iter().zip(sizes) {
            let names = d?;
            if names.len != size {
                return Err(Error::invalid(format!(
                    "a row group has {} rows where the file's footer says {size}",
                    names.len
                )));
            }
            rows.absorb_group(start, names)?;
            start += size;
        }
    }
    Ok(())
}

/// A reader of one row group's projected columns.
fn group_reader(
    path: &Path,
    meta: &ArrowReaderMetadata,
    proj: &Projection,
    group: usize,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    // Its own open file, not a clone of one: a cloned descriptor shares the
    // file offset, and the reader seeks before each read, so groups decoded
    // side by side would read each other's bytes.
    let file = File::open(path).map_err(Error::read)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, group_meta(meta, group));
    let mask = ProjectionMask::roots(builder.parquet_schema(), proj.wanted.iter().copied());
    builder
        .with_row_groups(vec![group])
        .with_projection(mask)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(Error::read)
}

/// `meta` with each name column of `group` decoded the cheaper way for
/// how that group stored it. A column chunk whose data pages are all
/// dictionary-encoded is read as a dictionary, so each distinct name is
/// checked and interned once, not once per row. One whose dictionary
/// overflowed into plain pages is read as plain strings even where the
/// file declares a dictionary type, because the decoder would otherwise
/// hash every row to rebuild a dictionary that we then hash again.
/// Without page-encoding statistics in the footer, the file's declared
/// types stand. Either way the values, and so the ids, are the same.
fn group_meta(meta: &ArrowReaderMetadata, group: usize) -> ArrowReaderMetadata {
    let schema = meta.schema();
    let chunks = meta.metadata().row_group(group).columns();
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let mut changed = false;
    for name in ["src", "dst", "layer"] {
        let Some((i, field)) = schema.column_with_name(name) else {
            continue;
        };
        let chunk = chunks.iter().find(|c| c.column_path().parts() == [name]);
        let Some(mask) = chunk.and_then(|c| c.page_encoding_stats_mask()) else {
            continue;
        };
        let all_dict = chunk.is_some_and(|c| c.dictionary_page_offset().is_some())
            && (mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY));
        let want = match (field.data_type(), all_dict) {
            (DataType::Utf8, true) => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            (DataType::Dictionary(_, v), false) if **v == DataType::Utf8 => DataType::Utf8,
            _ => continue,
        };
        fields[i] = Arc::new(field.as_ref().clone().with_data_type(want));
        changed = true;
    }
    if !changed {
        return meta.clone();
    }
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    // A hint the decoder refuses leaves the declared types.
    ArrowReaderMetadata::try_new(
        Arc::clone(meta.metadata()),
        ArrowReaderOptions::new().with_schema(hinted),
    )
    .unwrap_or_else(|_| meta.clone())
}

/// One row group into its slot of the file's arrays (agent names numbered
/// in the reader's shared interner, layer names by the group).
fn read_group(
    path: &Path,
    meta: &ArrowReaderMetadata,
    proj: &Projection,
    group: usize,
    mut row0: u64,
    mut slot: GroupRows<'_>,
) -> Result<GroupNames> {
    let mut dicts: [DictIds; 3] = Default::default();
    for batch in group_reader(path, meta, proj, group)? {
        let batch = batch.map_err(Error::read)?;
        let n = batch.num_rows();
        push_raw(&mut slot, &batch, proj.has_weight, row0, &mut dicts)?;
        row0 += n as u64;
    }
    Ok(slot.finish())
}

/// One row group into `out`, a part of the file's reader, keeping the rows
/// `auth` accepts.
fn read_group_auth(
    path: &Path,
    meta: &ArrowReaderMetadata,
    proj: &Projection,
    group: usize,
    mut row0: u64,
    auth: &RowAuth,
    mut out: RowReader,
) -> Result<(RowReader, AuthDrops)> {
    let mut drops = AuthDrops::default();
    for batch in group_reader(path, meta, proj, group)? {
        let batch = batch.map_err(Error::read)?;
        let n = batch.num_rows();
        let canonical = normalise(&batch, proj.has_weight, row0)?;
        let kept = auth.filter(&canonical, batch.column_by_name(SIG_COLUMN), &mut drops)?;
        push_canonical(&mut out, &kept)?;
        row0 += n as u64;
    }
    Ok((out, drops))
}

/// Appends a canonical batch ([`canonical_schema`], already validated) to
/// `out` as integer rows.
pub(crate) fn push_canonical(out: &mut dyn RowSink, batch: &RecordBatch) -> Result<()> {
    push_raw(out, batch, true, 0, &mut Default::default())
}

/// Validates one raw batch and appends it to `out` as integer rows, without
/// building the canonical string batch: dictionary-encoded names are
/// validated and interned once per dictionary value. Columns are checked in
/// the order `normalise` checks them, with the same messages.
fn push_raw(
    out: &mut dyn RowSink,
    batch: &RecordBatch,
    has_weight: bool,
    row0: u64,
    dicts: &mut [DictIds; 3],
) -> Result<()> {
    let col = |name: &str| column(batch, name);
    let ts = ts_millis(&col("ts")?, row0)?;
    let [ds, dd, dl] = dicts;
    let src = string_ids(&col("src")?, "src", row0, ds, &mut |s| out.agent_id(s))?;
    let dst = string_ids(&col("dst")?, "dst", row0, dd, &mut |s| out.agent_id(s))?;
    let layer = string_ids(&col("layer")?, "layer", row0, dl, &mut |s| out.layer_id(s))?;
    let outcome = outcome_values(&col("outcome")?, row0)?;
    let weight = if has_weight {
        weight_values(&col("weight")?, row0)?
    } else {
        vec![1.0; batch.num_rows()]
    };
    out.push_ids(IdRows {
        ts: ts.values(),
        src: &src,
        dst: &dst,
        layer: &layer,
        outcome: outcome.values(),
        weight: &weight,
    })
}

/// The ids of one dictionary's values, kept while consecutive batches carry
/// the same dictionary (a row group's batches all carry its whole
/// dictionary), so a name is interned once per row group rather than once
/// per batch.
#[derive(Default)]
struct DictIds {
    /// The dictionary's values as Utf8.
    values: Option<ArrayRef>,
    ids: Vec<Option<u32>>,
}

/// Whether two string arrays hold the same values (and nulls) in the same
/// layout.
fn same_strings(a: &StringArray, b: &StringArray) -> bool {
    a.len() == b.len()
        && a.nulls() == b.nulls()
        && a.value_offsets() == b.value_offsets()
        && a.value_data() == b.value_data()
}

/// Ids of a string column's values (`intern` numbers a name), every row
/// checked: no nulls, no empty names.
fn string_ids(
    a: &ArrayRef,
    name: &str,
    row0: u64,
    cache: &mut DictIds,
    intern: &mut dyn FnMut(&str) -> Result<u32>,
) -> Result<Vec<u32>> {
    if let DataType::Dictionary(_, _) = a.data_type() {
        let dict = a.as_any_dictionary();
        // The reader hands each batch its own copy of the row group's
        // dictionary: compare contents (two memcmps) rather than addresses.
        let values = cast(dict.values(), &DataType::Utf8)?;
        let same = cache
            .values
            .as_ref()
            .is_some_and(|c| same_strings(c.as_string::<i32>(), values.as_string::<i32>()));
        if !same {
            cache.ids = vec![None; values.len()];
            cache.values = Some(values);
        }
        let values = cache
            .values
            .as_ref()
            .ok_or_else(|| Error::internal("dictionary ids without values"))?
            .as_string::<i32>();
        let ids = &mut cache.ids;
        let keys = dict.normalized_keys();
        let mut out = Vec::with_capacity(keys.len());
        for (i, &k) in keys.iter().enumerate() {
            if dict.keys().is_null(i) {
                return Err(bad(name, i, row0, format!("null {}", what(name))));
            }
            let id = match ids[k] {
                Some(id) => id,
                None => {
                    // The row's error, though the value is the dictionary's.
                    let v = checked_name(values, k, name).map_err(|e| at_row(e, name, i, row0))?;
                    let id = intern(v)?;
                    ids[k] = Some(id);
                    id
                }
            };
            out.push(id);
        }
        return Ok(out);
    }
    let a = cast(a, &DataType::Utf8)?;
    let s = a.as_string::<i32>();
    let mut out = Vec::with_capacity(s.len());
    // Logs sorted by rater (or by time, one party busy) repeat a name on
    // consecutive rows: a comparison with the last name saves the lookup.
    let mut last: Option<(&str, u32)> = None;
    for i in 0..s.len() {
        let v = checked_name(s, i, name).map_err(|e| at_row(e, name, i, row0))?;
        let id = match last {
            Some((prev, id)) if prev == v => id,
            _ => intern(v)?,
        };
        last = Some((v, id));
        out.push(id);
    }
    Ok(out)
}

/// Value `i` of a name column, which must be present and not empty.
fn checked_name<'a>(s: &'a StringArray, i: usize, column: &str) -> Result<&'a str> {
    if s.is_null(i) {
        return Err(Error::invalid(format!("null {}", what(column))));
    }
    match s.value(i) {
        "" => Err(Error::invalid(format!("empty {}", what(column)))),
        v => Ok(v),
    }
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

/// A projected column of `batch`.
fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch.column_by_name(name).cloned().ok_or_else(|| {
        Error::internal(format!(
            "column `{name}` was projected but is not in the batch"
        ))
    })
}

/// An invalid value at row `row0 + i + 1` (1-based) of `column`.
fn bad(column: &str, i: usize, row0: u64, message: String) -> Error {
    at_row(Error::invalid(message), column, i, row0)
}

/// `e` located at row `row0 + i + 1` (1-based) of `column`.
fn at_row(e: Error, column: &str, i: usize, row0: u64) -> Error {
    e.with_row(row0 + i as u64 + 1, column)
}

/// `ts` as epoch milliseconds, every row present and in range.
fn ts_millis(ts_raw: &ArrayRef, row0: u64) -> Result<Int64Array> {
    let ts: ArrayRef = match ts_raw.data_type() {
        DataType::Int64 => Arc::clone(ts_raw),
        _ => cast(
            &cast(ts_raw, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
            &DataType::Int64,
        )?,
    };
    if let Some(i) = first_null(ts.as_ref()) {
        if ts_raw.is_null(i) {
            return Err(bad("ts", i, row0, "null timestamp".into()));
        }
        // The cast to milliseconds gives null where the value overflows.
        let raw =
            arrow::util::display::array_value_to_string(ts_raw, i).unwrap_or_else(|_| "?".into());
        return Err(bad(
            "ts",
            i,
            row0,
            format!(
                "timestamp {raw} ({}) is outside the range of epoch milliseconds in 64 bits \
                 (about ±292 million years)",
                ts_raw.data_type()
            ),
        ));
    }
    Ok(ts.as_primitive::<Int64Type>().clone())
}

/// `outcome` as f64, every row present, finite and in [-1, 1].
fn outcome_values(raw: &ArrayRef, row0: u64) -> Result<Float64Array> {
    let outcome = cast(raw, &DataType::Float64)?;
    let o = outcome.as_primitive::<Float64Type>();
    for i in 0..o.len() {
        if o.is_null(i) {
            return Err(bad("outcome", i, row0, "null outcome".into()));
        }
        let v = o.value(i);
        if !v.is_finite() {
            return Err(bad(
                "outcome",
                i,
                row0,
                format!("outcome is {v}, expected a finite number in [-1, 1]"),
            ));
        }
        if !(-1.0..=1.0).contains(&v) {
            return Err(bad(
                "outcome",
                i,
                row0,
                format!("outcome {v} is outside [-1, 1]"),
            ));
        }
    }
    Ok(o.clone())
}

/// `weight` as f64, a null meaning the default 1; every value finite, >= 0.
fn weight_values(raw: &ArrayRef, row0: u64) -> Result<Vec<f64>> {
    let w = cast(raw, &DataType::Float64)?;
    let wa = w.as_primitive::<Float64Type>();
    let mut vals = Vec::with_capacity(wa.len());
    for i in 0..wa.len() {
        // An absent weight means the default, as for an absent column.
        let v = if wa.is_null(i) { 1.0 } else { wa.value(i) };
        if !v.is_finite() || v < 0.0 {
            return Err(bad(
                "weight",
                i,
                row0,
                format!("weight is {v}, expected a finite number >= 0"),
            ));
        }
        vals.push(v);
    }
    Ok(vals)
}

fn normalise(batch: &RecordBatch, has_weight: bool, row0: u64) -> Result<RecordBatch> {
    let col = |name: &str| column(batch, name);
    let ts = ts_millis(&col("ts")?, row0)?;
    let mut strings = Vec::new();
    for name in ["src", "dst", "layer"] {
        let a = cast(&col(name)?, &DataType::Utf8)?;
        let s = a.as_string::<i32>();
        for i in 0..s.len() {
            checked_name(s, i, name).map_err(|e| at_row(e, name, i, row0))?;
        }
        strings.push(a);
    }
    let outcome = outcome_values(&col("outcome")?, row0)?;
    let weight: ArrayRef = if has_weight {
        Arc::new(Float64Array::from(weight_values(&col("weight")?, row0)?))
    } else {
        Arc::new(Float64Array::from(vec![1.0; batch.num_rows()]))
    };
    let strip = |a: &ArrayRef| -> StringArray { a.as_string::<i32>().clone() };
    Ok(RecordBatch::try_new(
        canonical_schema(),
        vec![
            Arc::new(ts),
            Arc::new(strip(&strings[0])),
            Arc::new(strip(&strings[1])),
            Arc::new(strip(&strings[2])),
            Arc::new(outcome),
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
