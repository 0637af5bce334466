//! Small side tables of the per-topic model: stake, fraud proofs, topic
//! similarity. Stake and proofs may be Parquet or CSV (by extension, CSV with a
//! header row); errors name the file, column and row like log errors do.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::error::{Error, Message, Result, ResultExt};

/// What a column must hold (checked on a Parquet schema; CSV cells are
/// text, parsed by [`numbers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any type [`Col`] can hold: numbers, binary, or anything that casts
    /// to a string.
    Any,
    /// Strings (utf8, large or view, or a dictionary of them).
    Text,
    /// Numbers (any float or integer type), read as f64.
    Number,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Any => "utf8, number or binary",
            Kind::Text => "utf8 (a string column)",
            Kind::Number => "a number (float64, float32 or an integer type)",
        }
    }

    fn accepts(self, t: &DataType) -> bool {
        match self {
            Kind::Any => true,
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
/// ([`texts`], [`numbers`]) or read with its own wording.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Col {
    Text(Vec<Option<String>>),
    Num(Vec<Option<f64>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Reads the columns `wanted` (name, kind) in that order, from CSV (by the
/// extension; cells are text, an empty cell is null) or Parquet (see
/// [`read_parquet`]). `table` describes the file in a missing-column
/// message. Errors do not name the file: the public readers add it.
pub(crate) fn read_cols(path: &Path, wanted: &[(&str, Kind)], table: &str) -> Result<Vec<Col>> {
    if !is_csv(path) {
        return read_parquet(path, wanted, table);
    }
    let names: Vec<&str> = wanted.iter().map(|(n, _)| *n).collect();
    let text = std::fs::read_to_string(path).map_err(Error::read)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let idx: Vec<usize> = names
        .iter()
        .map(|n| {
            header
                .iter()
                .position(|h| h == n)
                .ok_or_else(|| Error::MissingColumn {
                    column: n.to_string(),
                    expected: format!("a CSV header naming {}", names.join(", ")),
                })
        })
        .collect::<Result<_>>()?;
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for line in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        for (c, &i) in idx.iter().enumerate() {
            cols[c].push(
                cells
                    .get(i)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_string()),
            );
        }
    }
    Ok(cols.into_iter().map(Col::Text).collect())
}

/// The schema of the Parquet file at `path` (its Arrow view).
pub(crate) fn parquet_schema(path: &Path) -> Result<Schema> {
    let file = File::open(path).map_err(Error::read)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::read)?;
    Ok(b.schema().as_ref().clone())
}

/// Reads the columns `wanted` (name, kind) of the Parquet file at `path`, in
/// that order; other columns are not decoded. A missing column or one of the
/// wrong kind is an error naming it; `table` describes the file in the
/// missing-column message ("an agents table: agent, cost, capability").
pub(crate) fn read_parquet(path: &Path, wanted: &[(&str, Kind)], table: &str) -> Result<Vec<Col>> {
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
    let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); wanted.len()];
    for batch in reader {
        let batch = batch.map_err(Error::read)?;
        for (c, p) in parts.iter_mut().enumerate() {
            p.push(batch.column(at[c]).clone());
        }
    }
    let mut out = Vec::with_capacity(wanted.len());
    for (c, p) in parts.into_iter().enumerate() {
        let refs: Vec<&dyn Array> = p.iter().map(|a| a.as_ref()).collect();
        let a = if refs.is_empty() {
            arrow::array::new_empty_array(schema.field(roots[c]).data_type())
        } else {
            concat(&refs)?
        };
        out.push(to_col(wanted[c].0, &a)?);
    }
    Ok(out)
}

fn to_col(name: &str, a: &ArrayRef) -> Result<Col> {
    let dt = a.data_type();
    if dt.is_numeric() {
        let f = cast(a, &DataType::Float64)?;
        let f = f.as_primitive::<arrow::datatypes::Float64Type>();
        return Ok(Col::Num(
            (0..f.len())
                .map(|i| (!f.is_null(i)).then(|| f.value(i)))
                .collect(),
        ));
    }
    if matches!(
        dt,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    ) {
        let b = cast(a, &DataType::Binary)?;
        let b = b.as_binary::<i32>();
        return Ok(Col::Bytes(
            (0..b.len())
                .map(|i| (!b.is_null(i)).then(|| b.value(i).to_vec()))
                .collect(),
        ));
    }
    let s = cast(a, &DataType::Utf8).map_err(|_| Error::ColumnType {
        column: name.into(),
        found: dt.to_string(),
        expected: Kind::Any.expected().into(),
    })?;
    let s = s.as_string::<i32>();
    Ok(Col::Text(
        (0..s.len())
            .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
            .collect(),
    ))
}

/// An invalid value at 0-based `index` of `column`, said to be at the
/// 1-based row `index + 1`.
pub(crate) fn bad(column: &str, index: usize, message: impl Into<Message>) -> Error {
    Error::invalid(message).with_row(index as u64 + 1, column)
}

/// The strings of a column (numbers and bytes as text): null or empty is an
/// error at its row.
pub(crate) fn texts(name: &str, c: Col) -> Result<Vec<String>> {
    let v: Vec<Option<String>> = match c {
        Col::Text(v) => v,
        Col::Num(v) => v.into_iter().map(|x| x.map(|x| x.to_string())).collect(),
        Col::Bytes(v) => v
            .into_iter()
            .map(|x| x.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .collect(),
    };
    v.into_iter()
        .enumerate()
        .map(|(i, x)| match x {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(bad(name, i, format!("empty `{name}`"))),
            None => Err(bad(name, i, format!("null `{name}`"))),
        })
        .collect()
}

/// The numbers of a column (text parsed): null is an error at its row (NaN
/// and ranges are the caller's to check, with its own wording).
pub(crate) fn numbers(name: &str, c: Col) -> Result<Vec<f64>> {
    let v: Vec<Option<f64>> = match c {
        Col::Num(v) => v,
        Col::Text(v) => v
            .into_iter()
            .enumerate()
            .map(|(i, x)| match x {
                None => Ok(None),
                Some(s) => s
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| bad(name, i, format!("`{s}` is not a number"))),
            })
            .collect::<Result<_>>()?,
        Col::Bytes(_) => {
            return Err(Error::ColumnType {
                column: name.into(),
                found: "binary".into(),
                expected: "number".into(),
            })
        }
    };
    v.into_iter()
        .enumerate()
        .map(|(i, x)| x.ok_or_else(|| bad(name, i, format!("null `{name}`"))))
        .collect()
}

/// `agent, stake` rows; stake must be finite and >= 0; an agent listed twice
/// has its stakes added.
pub fn read_stake(path: &Path) -> Result<Vec<(String, f64, usize)>> {
    stake(path).with_path(path)
}

fn stake(path: &Path) -> Result<Vec<(String, f64, usize)>> {
    let mut cols = read_cols(
        path,
        &[("agent", Kind::Any), ("stake", Kind::Any)],
        "a stake table: agent, stake",
    )?
    .into_iter();
    let agents = texts("agent", cols.next().expect("two columns"))?;
    let stakes = numbers("stake", cols.next().expect("two columns"))?;
    let mut out = Vec::with_capacity(agents.len());
    for (i, (a, s)) in agents.into_iter().zip(stakes).enumerate() {
        if !(s.is_finite() && s >= 0.0) {
            return Err(bad(
                "stake",
                i,
                format!("stake is {s}, expected a finite number >= 0"),
            ));
        }
        out.push((a, s, i));
    }
    Ok(out)
}

/// A fraud proof: (agent, topic, row). Evidence must be present and non-empty.
/// Checking the evidence cryptographically belongs to the identity stage; here
/// a proof's presence in the file is what slashes.
pub fn read_fraud_proofs(path: &Path) -> Result<Vec<(String, String, usize)>> {
    fraud_proofs(path).with_path(path)
}

fn fraud_proofs(path: &Path) -> Result<Vec<(String, String, usize)>> {
    let mut cols = read_cols(
        path,
        &[
            ("agent", Kind::Any),
            ("topic", Kind::Any),
            ("evidence", Kind::Any),
        ],
        "a fraud-proof table: agent, topic, evidence",
    )?
    .into_iter();
    let agents = texts("agent", cols.next().expect("three columns"))?;
    let topics = texts("topic", cols.next().expect("three columns"))?;
    let evidence = match cols.next().expect("three columns") {
        Col::Bytes(v) => v
            .into_iter()
            .map(|b| b.is_some_and(|b| !b.is_empty()))
            .collect::<Vec<_>>(),
        Col::Text(v) => v
            .into_iter()
            .map(|s| s.is_some_and(|s| !s.is_empty()))
            .collect(),
        Col::Num(v) => v.into_iter().map(|x| x.is_some()).collect(),
    };
    let mut out = Vec::new();
    for (i, ((a, t), ev)) in agents.into_iter().zip(topics).zip(evidence).enumerate() {
        if !ev {
            return Err(bad("evidence", i, "empty evidence"));
        }
        out.push((a, t, i));
    }
    Ok(out)
}

/// Pre-trust sets for personalised trust: (set, agent, row) rows.
pub fn read_pretrust_sets(path: &Path) -> Result<Vec<(String, String, usize)>> {
    pretrust_sets(path).with_path(path)
}

fn pretrust_sets(path: &Path) -> Result<Vec<(String, String, usize)>> {
    let mut cols = read_cols(
        path,
        &[("set", Kind::Any), ("agent", Kind::Any)],
        "a pretrust table: set, agent",
    )?
    .into_iter();
    let sets = texts("set", cols.next().expect("two columns"))?;
    let agents = texts("agent", cols.next().expect("two columns"))?;
    Ok(sets
        .into_iter()
        .zip(agents)
        .enumerate()
        .map(|(i, (s, a))| (s, a, i))
        .collect())
}

/// A topic similarity matrix as CSV: header `topic,<t1>,<t2>,...`, then one
/// row per topic `<tk>,w(k,t1),...`. Must be square over exactly `topics`,
/// entries finite and >= 0. Returns w in the order of `topics`.
pub fn read_similarity(path: &Path, topics: &[String]) -> Result<Vec<Vec<f64>>> {
    similarity(path, topics).with_path(path)
}

fn similarity(path: &Path, topics: &[String]) -> Result<Vec<Vec<f64>>> {
    let text = std::fs::read_to_string(path).map_err(Error::read)?;
    let line_err = |line: usize, message: String| Error::invalid(message).with_line(line as u64);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (hl, header) = lines
        .next()
        .ok_or_else(|| line_err(1, "empty similarity file".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).skip(1).collect();
    let mut col_of = HashMap::new();
    for (c, name) in cols.iter().enumerate() {
        if !topics.iter().any(|t| t == name) {
            return Err(line_err(
                hl + 1,
                format!(
                    "column topic `{name}` is not a topic of the logs ({})",
                    topics.join(", ")
                ),
            ));
        }
        if col_of.insert(name.to_string(), c).is_some() {
            // A repeated column leaves another topic's column unset (NaN).
            return Err(line_err(
                hl + 1,
                format!("column topic `{name}` appears twice"),
            ));
        }
    }
    let mut w = vec![vec![f64::NAN; topics.len()]; topics.len()];
    let mut seen = vec![false; topics.len()];
    for (ln, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let k = topics.iter().position(|t| t == cells[0]).ok_or_else(|| {
            line_err(
                ln + 1,
                format!(
                    "row topic `{}` is not a topic of the logs ({})",
                    cells[0],
                    topics.join(", ")
                ),
            )
        })?;
        if seen[k] {
            return Err(line_err(
                ln + 1,
                format!("row topic `{}` appears twice", cells[0]),
            ));
        }
        if cells.len() != cols.len() + 1 {
            return Err(line_err(
                ln + 1,
                format!("expected {} values, found {}", cols.len(), cells.len() - 1),
            ));
        }
        for (c, cell) in cells[1..].iter().enumerate() {
            let v: f64 = cell
                .parse()
                .map_err(|_| line_err(ln + 1, format!("`{cell}` is not a number")))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(line_err(
                    ln + 1,
                    format!("similarity {v} must be finite and >= 0"),
                ));
            }
            let l = topics
                .iter()
                .position(|t| t == cols[c])
                .expect("checked above");
            w[k][l] = v;
        }
        seen[k] = true;
    }
    if cols.len() != topics.len() || seen.iter().any(|s| !s) {
        return Err(Error::read(format!(
            "similarity matrix must be square over the topics {} (found {} columns, {} rows)",
            topics.join(", "),
            cols.len(),
            seen.iter().filter(|s| **s).count()
        )));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_columns() {
        use std::sync::Arc;

        use arrow::array::{ArrayRef, DictionaryArray, Float32Array, Int64Array, StringArray};
        use arrow::datatypes::Int32Type;

        use crate::parquet_out::write_columns;

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
        let v = read_parquet(
            &p,
            &[
                ("f", Kind::Number),
                ("name", Kind::Text),
                ("n", Kind::Number),
            ],
            "a test table",
        )
        .unwrap();
        assert_eq!(v[0], Col::Num(vec![Some(0.5), Some(1.5), None]));
        assert_eq!(
            v[1],
            Col::Text(vec![Some("x".into()), None, Some("z".into())])
        );
        assert_eq!(v[2], Col::Num(vec![Some(1.0), Some(2.0), Some(3.0)]));

        let e = read_parquet(&p, &[("cost", Kind::Number)], "an agents table").unwrap_err();
        assert_eq!(
        e.to_string(),
        "missing column `cost` (expected a number (float64, float32 or an integer type) in an agents table)"
    );
        let e = read_parquet(&p, &[("extra", Kind::Number)], "t").unwrap_err();
        assert!(matches!(e, Error::ColumnType { .. }), "{e}");
        let e = read_parquet(&p, &[("n", Kind::Text)], "t").unwrap_err();
        assert!(e.to_string().contains("column `n` has type Int64"), "{e}");

        let mut v = read_parquet(&p, &[("name", Kind::Text), ("f", Kind::Number)], "t").unwrap();
        let e = texts("name", v.remove(0)).unwrap_err();
        assert_eq!(e.to_string(), "row 2, column `name`: null `name`");
        let e = numbers("f", v.remove(0)).unwrap_err();
        assert_eq!(e.row(), Some((3, "f")));
        assert!(read_parquet(&dir.path().join("none.parquet"), &[], "t").is_err());
    }

    #[test]
    fn csv_stake_proofs_and_similarity() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("stake.csv");
        std::fs::write(&s, "agent,stake\na,10\nb,0.5\n").unwrap();
        assert_eq!(
            read_stake(&s).unwrap(),
            vec![("a".into(), 10.0, 0), ("b".into(), 0.5, 1)]
        );
        std::fs::write(&s, "agent,stake\na,-1\n").unwrap();
        let e = read_stake(&s).unwrap_err().to_string();
        assert!(
            e.contains("row 1") && e.contains("`stake`") && e.contains(">= 0"),
            "{e}"
        );
        std::fs::write(&s, "agent,stake\na,NaN\n").unwrap();
        assert!(read_stake(&s).is_err());

        let p = d.path().join("proofs.csv");
        std::fs::write(&p, "agent,topic,evidence\nm,code,tx123\n").unwrap();
        assert_eq!(
            read_fraud_proofs(&p).unwrap(),
            vec![("m".into(), "code".into(), 0)]
        );
        std::fs::write(&p, "agent,topic,evidence\nm,code,\n").unwrap();
        assert!(read_fraud_proofs(&p)
            .unwrap_err()
            .to_string()
            .contains("empty evidence"));

        let topics = vec!["a".to_string(), "b".to_string()];
        let m = d.path().join("sim.csv");
        std::fs::write(&m, "topic,b,a\na,0.5,1\nb,1,0.25\n").unwrap();
        assert_eq!(
            read_similarity(&m, &topics).unwrap(),
            vec![vec![1.0, 0.5], vec![0.25, 1.0]]
        );
        std::fs::write(&m, "topic,a\na,1\n").unwrap();
        assert!(read_similarity(&m, &topics)
            .unwrap_err()
            .to_string()
            .contains("square"));
        std::fs::write(&m, "topic,a,b\na,1,-1\nb,1,1\n").unwrap();
        assert!(read_similarity(&m, &topics)
            .unwrap_err()
            .to_string()
            .contains(">= 0"));
        std::fs::write(&m, "topic,a,c\na,1,1\nc,1,1\n").unwrap();
        assert!(read_similarity(&m, &topics)
            .unwrap_err()
            .to_string()
            .contains("`c`"));
        // Repeated topics would leave a cell unset (NaN scores downstream).
        std::fs::write(&m, "topic,a,a\na,1,1\nb,1,1\n").unwrap();
        let e = read_similarity(&m, &topics).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("`a` appears twice"),
            "{e}"
        );
        std::fs::write(&m, "topic,a,b\na,1,1\na,1,1\n").unwrap();
        let e = read_similarity(&m, &topics).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("`a` appears twice"),
            "{e}"
        );
    }
}
