//! The agents a contract is offered to: `agent` (string id), `cost` (per unit
//! of effort, finite and > 0) and `capability` (in [0, 1]), one row each.

use std::path::Path;

use crate::error::{Error, Message, Result, ResultExt};
use crate::graph::ids::NameMap;
use crate::ingest::tables::{self, bad, Kind};

/// The agents table, validated; agent `i` is row `i + 1` of its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Agents {
    names: Vec<String>,
    cost: Vec<f64>,
    capability: Vec<f64>,
}

impl Agents {
    /// Checks the columns: equal lengths, at least one agent, ids non-empty
    /// and unique, every cost finite and > 0, every capability in [0, 1].
    /// An error names the column and the 1-based row.
    pub fn new(names: Vec<String>, cost: Vec<f64>, capability: Vec<f64>) -> Result<Self> {
        if names.len() != cost.len() || names.len() != capability.len() {
            return Err(Error::invalid(format!(
                "the columns differ in length: {} agents, {} costs, {} capabilities",
                names.len(),
                cost.len(),
                capability.len()
            )));
        }
        if names.is_empty() {
            return Err(Error::invalid("no agents: the table has no rows"));
        }
        let rows: Vec<u64> = (1..=names.len() as u64).collect();
        unique_names(&names, &rows, |name, a, b| {
            format!("agent `{name}` is listed twice (rows {a} and {b})")
        })?;
        for (i, &c) in cost.iter().enumerate() {
            if !(c.is_finite() && c > 0.0) {
                return Err(bad(
                    "cost",
                    i,
                    format!("cost {c} must be a finite number > 0"),
                ));
            }
        }
        for (i, &k) in capability.iter().enumerate() {
            // NaN fails the range test too.
            if !(0.0..=1.0).contains(&k) {
                return Err(bad(
                    "capability",
                    i,
                    format!("capability {k} is outside [0, 1]"),
                ));
            }
        }
        Ok(Agents {
            names,
            cost,
            capability,
        })
    }

    /// Reads an agents Parquet file (other columns are ignored); every error
    /// names the file.
    pub fn read(path: &Path) -> Result<Self> {
        read(path).with_path(path)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Never true: an agents table has at least one agent.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn cost(&self) -> &[f64] {
        &self.cost
    }

    pub fn capability(&self) -> &[f64] {
        &self.capability
    }
}

/// Checks the `agent` column `names`, name `i` being at row `rows[i]` of
/// its file: an empty name is an error at its row, and so is a name seen
/// before, in the words of `twice(name, first row, this row)`.
pub(super) fn unique_names(
    names: &[String],
    rows: &[u64],
    twice: impl Fn(&str, u64, u64) -> String,
) -> Result<()> {
    let at = |i: usize, m: Message| Error::invalid(m).with_row(rows[i], "agent");
    let mut first: NameMap<&str, usize> = NameMap::default();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(at(i, "empty `agent`".into()));
        }
        if let Some(j) = first.insert(name, i) {
            return Err(at(i, twice(name, rows[j], rows[i]).into()));
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Agents> {
    let mut cols = tables::read_parquet(
        path,
        &[
            ("agent", Kind::Text),
            ("cost", Kind::Number),
            ("capability", Kind::Number),
        ],
        "an agents table (agent, cost, capability)",
    )?
    .into_iter();
    let mut next = |name: &str| {
        cols.next()
            .ok_or_else(|| Error::internal(format!("column `{name}` was not read")))
    };
    let names = tables::texts("agent", next("agent")?)?;
    let cost = tables::numbers("cost", next("cost")?)?;
    let capability = tables::numbers("capability", next("capability")?)?;
    Agents::new(names, cost, capability)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, StringArray};

    use super::*;
    use crate::parquet_out::write_columns;

    fn agents(names: &[&str], cost: &[f64], cap: &[f64]) -> Result<Agents> {
        Agents::new(
            names.iter().map(|s| s.to_string()).collect(),
            cost.to_vec(),
            cap.to_vec(),
        )
    }

    #[test]
    fn values_are_checked_with_their_rows() {
        assert_eq!(
            agents(&["a", "b"], &[1.0, 2.0], &[0.0, 1.0]).unwrap().len(),
            2
        );
        let cases: [(Result<Agents>, (u64, &str), &str); 7] = [
            (
                agents(&["a", "b", "a"], &[1.0; 3], &[0.5; 3]),
                (3, "agent"),
                "listed twice (rows 1 and 3)",
            ),
            (
                agents(&["a", ""], &[1.0; 2], &[0.5; 2]),
                (2, "agent"),
                "empty",
            ),
            (
                agents(&["a", "b"], &[1.0, 0.0], &[0.5; 2]),
                (2, "cost"),
                "cost 0 must be",
            ),
            (
                agents(&["a", "b"], &[-1.0, 1.0], &[0.5; 2]),
                (1, "cost"),
                "cost -1 must be",
            ),
            (
                agents(&["a", "b"], &[1.0, f64::NAN], &[0.5; 2]),
                (2, "cost"),
                "cost NaN",
            ),
            (
                agents(&["a", "b"], &[1.0, f64::INFINITY], &[0.5; 2]),
                (2, "cost"),
                "cost inf",
            ),
            (
                agents(&["a", "b"], &[1.0; 2], &[0.5, 1.5]),
                (2, "capability"),
                "outside [0, 1]",
            ),
        ];
        for (r, row, text) in cases {
            let e = r.unwrap_err();
            assert_eq!(e.row(), Some(row), "{e}");
            assert!(e.to_string().contains(text), "{e}");
        }
        let e = agents(&["a"], &[1.0], &[f64::NAN]).unwrap_err();
        assert!(e.to_string().contains("capability NaN"), "{e}");
        assert!(agents(&[], &[], &[])
            .unwrap_err()
            .to_string()
            .contains("no agents"));
        assert!(agents(&["a"], &[1.0, 2.0], &[0.5]).is_err());
    }

    #[test]
    fn read_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agents.parquet");
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("agent", Arc::new(StringArray::from(vec!["a", "b"]))),
            ("capability", Arc::new(Float64Array::from(vec![0.5, 1.0]))),
            ("cost", Arc::new(Float64Array::from(vec![Some(2.0), None]))),
        ];
        write_columns(&p, cols, true).unwrap();
        let e = Agents::read(&p).unwrap_err();
        assert_eq!(e.path(), Some(p.as_path()));
        assert!(
            e.to_string().ends_with("row 2, column `cost`: null `cost`"),
            "{e}"
        );
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("agent", Arc::new(StringArray::from(vec!["a", "b"]))),
            ("capability", Arc::new(Float64Array::from(vec![0.5, 1.0]))),
            ("cost", Arc::new(Float64Array::from(vec![2.0, 3.0]))),
        ];
        write_columns(&p, cols, true).unwrap();
        let a = Agents::read(&p).unwrap();
        assert_eq!(a.names(), ["a", "b"]);
        assert_eq!(
            (a.cost(), a.capability()),
            (&[2.0, 3.0][..], &[0.5, 1.0][..])
        );
    }
}
