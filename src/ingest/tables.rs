//! Small side tables of the per-topic model: stake, fraud proofs, topic
//! similarity. Stake and proofs may be Parquet or CSV (by extension, CSV with a
//! header row); errors name the file, column and row like log errors do.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result, ResultExt};

/// A table read as strings-or-numbers, column-wise.
enum Col {
    Text(Vec<Option<String>>),
    Num(Vec<Option<f64>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Reads the named columns. CSV cells are text; Parquet keeps numbers and
/// bytes. Errors do not name the file: the public readers add it.
fn read_cols(path: &Path, names: &[&str]) -> Result<Vec<Col>> {
    if is_csv(path) {
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
        return Ok(cols.into_iter().map(Col::Text).collect());
    }
    let file = File::open(path).map_err(Error::read)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(Error::read)?
        .build()
        .map_err(Error::read)?;
    let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); names.len()];
    for batch in reader {
        let batch = batch.map_err(Error::read)?;
        for (c, n) in names.iter().enumerate() {
            let a = batch
                .column_by_name(n)
                .ok_or_else(|| Error::MissingColumn {
                    column: n.to_string(),
                    expected: "present".into(),
                })?;
            parts[c].push(a.clone());
        }
    }
    let mut out = Vec::new();
    for (c, p) in parts.into_iter().enumerate() {
        let refs: Vec<&dyn Array> = p.iter().map(|a| a.as_ref()).collect();
        let a = if refs.is_empty() {
            arrow::array::new_empty_array(&DataType::Utf8)
        } else {
            concat(&refs)?
        };
        out.push(to_col(names[c], &a)?);
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
        expected: "utf8, number or binary".into(),
    })?;
    let s = s.as_string::<i32>();
    Ok(Col::Text(
        (0..s.len())
            .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
            .collect(),
    ))
}

/// Invalid value at 0-based `row` of `column`.
fn bad(column: &str, row: usize, message: String) -> Error {
    Error::invalid(message).with_row(row as u64 + 1, column)
}

fn texts(name: &str, c: Col) -> Result<Vec<String>> {
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
            _ => Err(bad(name, i, format!("empty or null `{name}`"))),
        })
        .collect()
}

fn numbers(name: &str, c: Col) -> Result<Vec<f64>> {
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
    let mut cols = read_cols(path, &["agent", "stake"])?.into_iter();
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
    let mut cols = read_cols(path, &["agent", "topic", "evidence"])?.into_iter();
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
            return Err(bad("evidence", i, "empty evidence".into()));
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
    let mut cols = read_cols(path, &["set", "agent"])?.into_iter();
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
