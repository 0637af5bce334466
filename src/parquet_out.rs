//! Writing Parquet: the one place that knows the writer properties, so score
//! tables, converted logs and the tests' fixtures are all written alike and a
//! change of compression or row-group policy is made once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

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
        let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| write_error(path, e))?;
        let kv: Vec<KeyValue> = metadata
            .iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
            .collect();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_key_value_metadata((!kv.is_empty()).then_some(kv))
            .build();
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
