//! Writing Parquet: the one place that knows the writer properties, so score
//! tables, converted logs and the tests' fixtures are all written alike and a
//! change of compression or row-group policy is made once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriterOptions,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use crate::error::{BoxError, Error, Result};

/// zstd level 3: most of the size gain of higher levels at a fraction of their
/// time; readers need no option to open it.
const ZSTD_LEVEL: i32 = 3;

/// An open Parquet file; batches are appended with [`ParquetSink::write`] and
/// the footer is written by [`ParquetSink::close`]. Every error names the file.
pub struct ParquetSink {
    path: PathBuf,
    writer: ArrowWriter<File>,
}

impl ParquetSink {
    /// Creates (or truncates) `path` for batches of `schema`.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        Self::create_with_metadata(path, schema, &[])
    }

    /// As [`Self::create`], with key-value pairs in the file's footer
    /// (provenance, see [`crate::provenance`]).
    pub fn create_with_metadata(
        path: &Path,
        schema: SchemaRef,
        metadata: &[(&str, &str)],
    ) -> Result<Self> {
        let file = File::create(path).map_err(|e| write_error(path, e))?;
        let props = properties(path, metadata)?.build();
        let writer =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| write_error(path, e))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            writer,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(|e| write_error(&self.path, e))
    }

    /// Flushes the last row group and writes the footer; a file not closed is
    /// not readable.
    pub fn close(self) -> Result<()> {
        self.writer
            .close()
            .map(drop)
            .map_err(|e| write_error(&self.path, e))
    }
}

/// The writer properties every file shares: zstd, and the footer's key-value
/// pairs.
fn properties(path: &Path, metadata: &[(&str, &str)]) -> Result<WriterPropertiesBuilder> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| write_error(path, e))?;
    let kv: Vec<KeyValue> = metadata
        .iter()
        .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
        .collect();
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_key_value_metadata((!kv.is_empty()).then_some(kv)))
}

/// How a column of a large table is best encoded; the defaults (dictionary,
/// falling back to plain, min/max statistics) suit short tables and columns
/// of few distinct values. Measured on a 64 × 325,557-row long table
/// (docs/benchmarks.md): plain ids and split floats write 2× faster than the
/// defaults and the file is smaller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnHint {
    /// Few distinct values (topic, layer or set names): the default
    /// dictionary.
    Dictionary,
    /// Ids that repeat only across row groups (agents in a long table):
    /// plain strings, which zstd compresses better than it does dictionary
    /// indices, and no min/max, which says nothing when a row group holds
    /// every agent.
    Ids,
    /// Distinct floats (scores): byte-stream-split, so zstd sees the sign and
    /// exponent bytes together; no dictionary, which would be built and
    /// thrown away.
    Floats,
    /// Integers that mostly step by a constant (ranks): delta-packed.
    Delta,
}
/// Rows per row group of [`write_row_groups`]: the same as `ArrowWriter`'s
/// default, so files keep the row-group boundaries they had.
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Writes a table of `row_groups` row groups, row group `i` being `batch(i)`
/// (every batch of `schema`). Row groups are encoded in parallel and appended
/// in order, so the file's bytes depend on the batches alone, never on the
/// thread count; at most two per thread are held encoded at once.
///
/// Arrow dictionary columns are written as Parquet strings and the Arrow
/// schema is left out of the footer: readers see `utf8`, as in every other
/// file trustmesh writes, while the caller is spared a copy of every string.
pub fn write_row_groups(
    path: &Path,
    schema: SchemaRef,
    hints: &[(&str, ColumnHint)],
    metadata: &[(&str, &str)],
    row_groups: usize,
    batch: impl Fn(usize) -> Result<RecordBatch> + Sync,
) -> Result<()> {
    let mut props = properties(path, metadata)?;
    for (name, hint) in hints {
        let col = ColumnPath::from(*name);
        props = match hint {
            ColumnHint::Dictionary => props,
            ColumnHint::Ids => props
                .set_column_dictionary_enabled(col.clone(), false)
                .set_column_statistics_enabled(col, EnabledStatistics::None),
            ColumnHint::Floats => props
                .set_column_dictionary_enabled(col.clone(), false)
                .set_column_encoding(col, Encoding::BYTE_STREAM_SPLIT),
            ColumnHint::Delta => props
                .set_column_dictionary_enabled(col.clone(), false)
                .set_column_encoding(col, Encoding::DELTA_BINARY_PACKED),
        };
    }
    let options = ArrowWriterOptions::new()
        .with_properties(props.build())
        .with_skip_arrow_metadata(true);
    let file = File::create(path).map_err(|e| write_error(path, e))?;
    let (mut file_writer, factory) =
        ArrowWriter::try_new_with_options(file, Arc::clone(&schema), options)
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(|e| write_error(path, e))?;
    let wave = 2 * rayon::current_num_threads().max(1);
    for start in (0..row_groups).step_by(wave) {
        let encoded: Vec<Result<Vec<ArrowColumnChunk>>> = (start..row_groups.min(start + wave))
            .into_par_iter()
            .map(|i| encode_row_group(path, &factory, &schema, i, &batch(i)?))
            .collect();
        for chunks in encoded {
            let mut row_group = file_writer
                .next_row_group()
                .map_err(|e| write_error(path, e))?;
            for chunk in chunks? {
                chunk
                    .append_to_row_group(&mut row_group)
                    .map_err(|e| write_error(path, e))?;
            }
            row_group.close().map_err(|e| write_error(path, e))?;
        }
    }
    file_writer
        .close()
        .map(drop)
        .map_err(|e| write_error(path, e))
}

/// One row group's column chunks, encoded and compressed in memory.
fn encode_row_group(
    path: &Path,
    factory: &ArrowRowGroupWriterFactory,
    schema: &SchemaRef,
    index: usize,
    batch: &RecordBatch,
) -> Result<Vec<ArrowColumnChunk>> {
    if batch.schema() != *schema {
        return Err(Error::internal(format!(
            "row group {index} has the schema {:?}, not the file's {schema:?}",
            batch.schema()
        )));
    }
    let err = |e: parquet::errors::ParquetError| write_error(path, e);
    let mut writers = factory.create_column_writers(index).map_err(err)?;
    let mut next = writers.iter_mut();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for leaf in compute_leaves(field, column).map_err(err)? {
            let writer = next
                .next()
                .ok_or_else(|| Error::internal("fewer column writers than leaves"))?;
            writer.write(&leaf).map_err(err)?;
        }
    }
    writers
        .into_iter()
        .map(|w| w.close().map_err(err))
        .collect()
}

/// Writes one batch as a whole file.
pub fn write_batch(path: &Path, batch: &RecordBatch) -> Result<()> {
    write_batch_with_metadata(path, batch, &[])
}

/// Writes one batch as a whole file with key-value metadata in its footer.
pub fn write_batch_with_metadata(
    path: &Path,
    batch: &RecordBatch,
    metadata: &[(&str, &str)],
) -> Result<()> {
    let mut sink = ParquetSink::create_with_metadata(path, batch.schema(), metadata)?;
    sink.write(batch)?;
    sink.close()
}

/// A batch of named columns, the schema taken from the arrays. `nullable`
/// marks every field: score tables have no nulls, while test fixtures need
/// fields that may hold them.
pub fn columns_batch(cols: Vec<(&str, ArrayRef)>, nullable: bool) -> Result<RecordBatch> {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), nullable))
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )?)
}

/// Named columns to one Parquet file (see [`columns_batch`]).
pub fn write_columns(path: &Path, cols: Vec<(&str, ArrayRef)>, nullable: bool) -> Result<()> {
    write_batch(path, &columns_batch(cols, nullable)?)
}

fn write_error(path: &Path, e: impl Into<BoxError>) -> Error {
    Error::write(e).with_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn zstd_columns_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("agent", Arc::new(StringArray::from(vec![Some("a"), None]))),
            ("score", Arc::new(Float64Array::from(vec![0.25, 0.75]))),
        ];
        write_columns(&p, cols, true).unwrap();
        let meta = SerializedFileReader::new(File::open(&p).unwrap())
            .unwrap()
            .metadata()
            .clone();
        // The file records the codec, not the level.
        let codec = meta.row_group(0).column(0).compression();
        assert!(matches!(codec, Compression::ZSTD(_)), "{codec:?}");
        let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&p).unwrap()).unwrap();
        assert!(r.schema().field(0).is_nullable());
        let b = r.build().unwrap().next().unwrap().unwrap();
        assert_eq!(b.num_rows(), 2);

        let nulls: Vec<(&str, ArrayRef)> =
            vec![("agent", Arc::new(StringArray::from(vec![None::<&str>])))];
        assert!(
            columns_batch(nulls, false).is_err(),
            "nulls in a non-null field"
        );
        let one: Vec<(&str, ArrayRef)> = vec![("score", Arc::new(Float64Array::from(vec![1.0])))];
        let e = write_columns(&dir.path().join("no/such/dir.parquet"), one, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no/such/dir.parquet") && e.contains("cannot write"),
            "{e}"
        );
    }
}
