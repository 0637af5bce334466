//! The trust scores that tier the agents: one vector, as `trustmesh score`
//! writes it. A plain scores file (`agent`, `score`, any other columns) is
//! one vector; a long file (`agent`, `topic` | `layer` | `set`, `score`, as
//! `--per-topic`, `--per-layer` and `--pretrusted-sets` write) holds several,
//! and the caller names the one to read (`vector`, e.g. `global`).

use std::path::Path;

use crate::error::{params, Error, Message, Result, ResultExt};
use crate::graph::ids::NameMap;
use crate::ingest::tables::{self, bad, Col, Kind};

use super::agents::unique_names;

/// The key columns of the long score tables `score` writes, in the order
/// they are looked for.
pub const VECTOR_KEYS: [&str; 3] = ["topic", "layer", "set"];

/// One score per agent; only the order of the scores matters to the
/// contract model (tiers and percentiles are ranks).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreVector {
    agents: Vec<String>,
    scores: Vec<f64>,
}

impl ScoreVector {
    /// Checks the columns: equal lengths, ids non-empty and unique, scores
    /// finite (any sign; -0 is read as 0). An error names the column and the
    /// 1-based row. No rows is allowed (every agent is then unscored).
    pub fn new(agents: Vec<String>, scores: Vec<f64>) -> Result<Self> {
        let rows: Vec<u64> = (1..=agents.len() as u64).collect();
        Self::checked(agents, scores, &rows)
    }

    /// As [`Self::new`], with row `i` of the vector being row `rows[i]` of
    /// its file.
    fn checked(agents: Vec<String>, mut scores: Vec<f64>, rows: &[u64]) -> Result<Self> {
        if agents.len() != scores.len() || agents.len() != rows.len() {
            return Err(Error::invalid(format!(
                "the columns differ in length: {} agents, {} scores",
                agents.len(),
                scores.len()
            )));
        }
        let at = |i: usize, column: &str, m: String| Error::invalid(m).with_row(rows[i], column);
        unique_names(&agents, rows, |a, first, this| {
            format!("agent `{a}` has two scores (rows {first} and {this})")
        })?;
        for (i, s) in scores.iter_mut().enumerate() {
            if !s.is_finite() {
                return Err(at(i, "score", format!("score {s} is not a finite number")));
            }
            // One zero: ties are told by `==`, sorting by `total_cmp`.
            *s += 0.0;
        }
        Ok(ScoreVector { agents, scores })
    }

    /// Reads a scores file: a plain one when `vector` is `None`, else the
    /// rows of a long file whose key column (`topic`, `layer` or `set`)
    /// holds `vector`. Every error names the file.
    pub fn read(path: &Path, vector: Option<&str>) -> Result<Self> {
        read(path, vector).with_path(path)
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Agent name → score.
    pub(crate) fn map(&self) -> NameMap<&str, f64> {
        self.agents
            .iter()
            .map(String::as_str)
            .zip(self.scores.iter().copied())
            .collect()
    }
}

fn read(path: &Path, vector: Option<&str>) -> Result<ScoreVector> {
    let schema = tables::parquet_schema(path)?;
    let key = VECTOR_KEYS
        .iter()
        .find(|k| schema.column_with_name(k).is_some())
        .copied();
    const TABLE: &str = "a scores table (agent, score), as `trustmesh score` writes";
    match (key, vector) {
        (None, None) => {
            let mut c = tables::read_parquet(
                path,
                &[("agent", Kind::Text), ("score", Kind::Number)],
                TABLE,
            )?
            .into_iter();
            let (Some(a), Some(s)) = (c.next(), c.next()) else {
                return Err(Error::internal("two columns were asked for"));
            };
            ScoreVector::new(tables::texts("agent", a)?, tables::numbers("score", s)?)
        }
        (None, Some(v)) => Err(Error::param(
            params::VECTOR,
            Message::new()
                .text("the scores file holds one vector (it has no topic, layer or set column); `")
                .text(v)
                .text("` was asked for with ")
                .param(params::VECTOR)
                .text(": leave it out"),
        )),
        (Some(key), vector) => read_long(path, key, vector),
    }
}

/// The rows of a long file whose `key` column holds `vector`.
fn read_long(path: &Path, key: &str, vector: Option<&str>) -> Result<ScoreVector> {
    let mut c = tables::read_parquet(
        path,
        &[
            ("agent", Kind::Text),
            (key, Kind::Text),
            ("score", Kind::Number),
        ],
        "a long scores table (agent, key, score), as `trustmesh score` writes",
    )?
    .into_iter();
    let (Some(Col::Text(agents)), Some(Col::Text(keys)), Some(s)) = (c.next(), c.next(), c.next())
    else {
        return Err(Error::internal("three columns were asked for"));
    };
    let mut names: Vec<&str> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match k.as_deref() {
            None | Some("") => return Err(bad(key, i, format!("null or empty `{key}`"))),
            Some(k) if !names.contains(&k) => names.push(k),
            Some(_) => {}
        }
    }
    let listed = || {
        let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
        let more = names.len().saturating_sub(8);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{tail}", shown.join(", "))
    };
    let Some(vector) = vector else {
        return Err(Error::param(
            params::VECTOR,
            Message::new()
                .text(format!(
                    "the scores file holds {} vectors in its `{key}` column ({}); choose one with ",
                    names.len(),
                    listed()
                ))
                .param(params::VECTOR),
        ));
    };
    if !names.contains(&vector) {
        return Err(Error::param(
            params::VECTOR,
            Message::new().param(params::VECTOR).text(format!(
                " `{vector}` is not in the `{key}` column of the scores file ({})",
                listed()
            )),
        ));
    }
    let Col::Num(s) = s else {
        return Err(Error::internal("`score` was not read as numbers"));
    };
    let (mut a_out, mut s_out, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for (i, ((a, k), s)) in agents.into_iter().zip(&keys).zip(s).enumerate() {
        if k.as_deref() != Some(vector) {
            continue;
        }
        a_out.push(a.ok_or_else(|| bad("agent", i, "null `agent`"))?);
        s_out.push(s.ok_or_else(|| bad("score", i, "null `score`"))?);
        rows.push(i as u64 + 1);
    }
    ScoreVector::checked(a_out, s_out, &rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, StringArray};

    use super::*;
    use crate::parquet_out::write_columns;

    fn strings(v: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    #[test]
    fn plain_and_long_files() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("s.parquet");
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("agent", strings(&["a", "b"])),
            ("score", Arc::new(Float64Array::from(vec![0.75, -0.0]))),
        ];
        write_columns(&plain, cols, false).unwrap();
        let s = ScoreVector::read(&plain, None).unwrap();
        assert_eq!(s.agents(), ["a", "b"]);
        assert_eq!(s.scores()[1].to_bits(), 0.0f64.to_bits(), "-0 is read as 0");
        let e = ScoreVector::read(&plain, Some("global")).unwrap_err();
        assert_eq!(e.as_param().map(|p| p.name), Some(params::VECTOR));
        assert!(e.to_string().contains("holds one vector"), "{e}");

        let long = dir.path().join("t.parquet");
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("agent", strings(&["a", "b", "a", "b"])),
            ("topic", strings(&["x", "x", "global", "global"])),
            (
                "score",
                Arc::new(Float64Array::from(vec![0.1, 0.9, 0.6, 0.4])),
            ),
        ];
        write_columns(&long, cols, false).unwrap();
        let g = ScoreVector::read(&long, Some("global")).unwrap();
        assert_eq!(
            (g.agents(), g.scores()),
            (&["a".to_string(), "b".into()][..], &[0.6, 0.4][..])
        );
        let e = ScoreVector::read(&long, None).unwrap_err().to_string();
        assert!(
            e.contains("2 vectors in its `topic` column (`x`, `global`); choose one with vector"),
            "{e}"
        );
        let e = ScoreVector::read(&long, Some("y")).unwrap_err().to_string();
        assert!(e.contains("vector `y` is not in the `topic` column"), "{e}");
    }

    #[test]
    fn rows_of_a_long_file_are_the_file_rows() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("t.parquet");
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("agent", strings(&["a", "b", "a", "a"])),
            ("set", strings(&["x", "y", "y", "x"])),
            (
                "score",
                Arc::new(Float64Array::from(vec![0.1, 0.9, f64::NAN, 0.4])),
            ),
        ];
        write_columns(&long, cols, false).unwrap();
        let e = ScoreVector::read(&long, Some("x")).unwrap_err();
        assert_eq!(e.row(), Some((4, "agent")));
        assert!(e.to_string().contains("two scores (rows 1 and 4)"), "{e}");
        let e = ScoreVector::read(&long, Some("y")).unwrap_err();
        assert_eq!(e.row(), Some((3, "score")));
        assert!(
            e.to_string().contains("score NaN is not a finite number"),
            "{e}"
        );
    }
}
