//! Reading named columns of a small Parquet table (the agents and scores
//! files), typed as text or numbers, with the checks every reader of them
//! needs: a missing column, a column of the wrong type and a null value are
//! errors naming the column (and the 1-based row of the file, counting every
//! row group). Errors do not name the file: the public readers add it.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::error::{Error, Result};

/// What a column must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Strings (utf8, large or view, or a dictionary of them).
    Text,
    /// Numbers (any float or integer type), read as f64.
    Number,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Text => "utf8 (a string column)",
            Kind::Number => "a number (float64, float32 or an integer type)",
        }
    }

    fn accepts(self, t: &DataType) -> bool {
        match self {
            Kind::Text => is_text(t),
            Kind::Number => t.is_floating() || t.is_integer(),
        }
    }
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// One column's values in file order, nulls kept for the caller to report
/// with its own wording.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    Text(Vec<Option<String>>),
    Number(Vec<Option<f64>>),
}

/// The schema of the Parquet file at `path` (its Arrow view).
pub(crate) fn schema(path: &Path) -> Result<Schema> {
    let file = File::open(path).map_err(Error::read)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::read)?;
    Ok(b.schema().as_ref().clone())
}

/// Reads columns `wanted` (name, kind) of `path`, in that order; other
/// columns are not decoded. `table` describes the file in a missing-column
/// message ("an agents table: agent, cost, capability").
pub(crate) fn read(path: &Path, wanted: &[(&str, Kind)], table: &str) -> Result<Vec<Values>> {
    let file = File::open(path).map_err(Error::read)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::read)?;
    let schema = builder.schema().clone();
    let mut roots = Vec::with_capacity(wanted.len());
    for (name, kind) in wanted {
        let (i, field) = schema
            .column_with_name(name)
            .ok_or_else(|| Error::MissingColumn {
                column: name.to_string(),
                expected: format!("{} in {table}", kind.expected()),
            })?;
        if !kind.accepts(field.data_type()) {
            return Err(Error::ColumnType {
                column: name.to_string(),
                found: field.data_type().to_string(),
                expected: kind.expected().to_string(),
            });
        }
        roots.push(i);
    }
    // The projection keeps the file's column order; map each wanted column
    // to its place in the projected batches.
    let mut sorted = roots.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let at: Vec<usize> = roots
        .iter()
        .map(|r| sorted.binary_search(r).unwrap_or(0))
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), sorted.iter().copied());
    let reader = builder.with_projection(mask).build().map_err(Error::read)?;
    let mut out: Vec<Values> = wanted
        .iter()
        .map(|(_, k)| match k {
            Kind::Text => Values::Text(Vec::new()),
            Kind::Number => Values::Number(Vec::new()),
        })
        .collect();
    for batch in reader {
        let batch = batch.map_err(Error::read)?;
        for (c, values) in out.iter_mut().enumerate() {
            let a = batch.column(at[c]);
            match values {
                Values::Text(v) => {
                    let s = cast(a, &DataType::Utf8)?;
                    let s = s.as_string::<i32>();
                    v.extend((0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())));
                }
                Values::Number(v) => {
                    let f = cast(a, &DataType::Float64)?;
                    let f = f.as_primitive::<Float64Type>();
                    v.extend((0..f.len()).map(|i| f.is_valid(i).then(|| f.value(i))));
                }
            }
        }
    }
    Ok(out)
}

/// An invalid value at 0-based `index` of `column`, said to be at the
/// 1-based row `index + 1`.
pub(crate) fn bad(column: &str, index: usize, message: impl Into<crate::error::Message>) -> Error {
    Error::invalid(message).with_row(index as u64 + 1, column)
}

/// The strings of a text column: null or empty is an error at its row.
pub(crate) fn texts(column: &str, v: Values) -> Result<Vec<String>> {
    let Values::Text(v) = v else {
        return Err(Error::internal(format!("`{column}` was not read as text")));
    };
    v.into_iter()
        .enumerate()
        .map(|(i, s)| match s {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(bad(column, i, format!("empty `{column}`"))),
            None => Err(bad(column, i, format!("null `{column}`"))),
        })
        .collect()
}

/// The numbers of a number column: null is an error at its row (NaN and
/// ranges are the caller's to check, with its own wording).
pub(crate) fn numbers(column: &str, v: Values) -> Result<Vec<f64>> {
    let Values::Number(v) = v else {
        return Err(Error::internal(format!(
            "`{column}` was not read as numbers"
        )));
    };
    v.into_iter()
        .enumerate()
        .map(|(i, x)| x.ok_or_else(|| bad(column, i, format!("null `{column}`"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, DictionaryArray, Float32Array, Int64Array, StringArray};
    use arrow::datatypes::Int32Type;

    use super::*;
    use crate::parquet_out::write_columns;

    #[test]
    fn columns_read_in_the_order_asked_with_types_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let names: DictionaryArray<Int32Type> =
            vec![Some("x"), None, Some("z")].into_iter().collect();
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("n", Arc::new(Int64Array::from(vec![1, 2, 3]))),
            ("extra", Arc::new(StringArray::from(vec!["p", "q", "r"]))),
            ("name", Arc::new(names)),
            (
                "f",
                Arc::new(Float32Array::from(vec![Some(0.5), Some(1.5), None])),
            ),
        ];
        write_columns(&p, cols, true).unwrap();
        let v = read(
            &p,
            &[
                ("f", Kind::Number),
                ("name", Kind::Text),
                ("n", Kind::Number),
            ],
            "a test table",
        )
        .unwrap();
        assert_eq!(v[0], Values::Number(vec![Some(0.5), Some(1.5), None]));
        assert_eq!(
            v[1],
            Values::Text(vec![Some("x".into()), None, Some("z".into())])
        );
        assert_eq!(v[2], Values::Number(vec![Some(1.0), Some(2.0), Some(3.0)]));

        let e = read(&p, &[("cost", Kind::Number)], "an agents table").unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing column `cost` (expected a number (float64, float32 or an integer type) in an agents table)"
        );
        let e = read(&p, &[("extra", Kind::Number)], "t").unwrap_err();
        assert!(matches!(e, Error::ColumnType { .. }), "{e}");
        let e = read(&p, &[("n", Kind::Text)], "t").unwrap_err();
        assert!(e.to_string().contains("column `n` has type Int64"), "{e}");

        let mut v = read(&p, &[("name", Kind::Text), ("f", Kind::Number)], "t").unwrap();
        let e = texts("name", v.remove(0)).unwrap_err();
        assert_eq!(e.to_string(), "row 2, column `name`: null `name`");
        let e = numbers("f", v.remove(0)).unwrap_err();
        assert_eq!(e.row(), Some((3, "f")));
        assert!(read(&dir.path().join("none.parquet"), &[], "t").is_err());
    }
}
