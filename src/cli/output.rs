//! Where a scoring run's results go: the score file (`--out`), the JSON report
//! (`--report`) and the top agents printed on stdout (`--top`).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

/// How many top agents a run prints unless told otherwise.
pub const DEFAULT_TOP: usize = 10;

#[derive(Args, Debug, Clone, PartialEq)]
pub struct OutputArgs {
    /// Output Parquet file (agent, score, rank).
    #[arg(long)]
    pub out: PathBuf,
    /// Write a JSON report of counts, iterations and stage timings.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// How many top agents to print.
    #[arg(long, default_value_t = DEFAULT_TOP)]
    pub top: usize,
}

impl OutputArgs {
    pub fn outputs(&self) -> Outputs<'_> {
        Outputs {
            args: self,
            announced: Cell::new(false),
        }
    }
}

/// Writes a run's results in the order the user reads them: summary line,
/// "wrote FILE", then the tables.
pub struct Outputs<'a> {
    args: &'a OutputArgs,
    /// Whether "wrote FILE" was printed (after the summary, before the tables).
    announced: Cell<bool>,
}

impl Outputs<'_> {
    /// Writes the score file and returns the seconds it took.
    pub fn write(&self, f: impl FnOnce(&Path) -> trustmesh::Result<()>) -> Result<f64> {
        let t = Instant::now();
        f(&self.args.out)?;
        Ok(t.elapsed().as_secs_f64())
    }

    pub fn write_report<T: serde::Serialize>(&self, report: &T) -> Result<()> {
        match &self.args.report {
            Some(path) => write_json(path, report),
            None => Ok(()),
        }
    }

    pub fn print_top(&self, title: &str, agents: &[String], scores: &[f64]) {
        if !self.announced.replace(true) {
            println!("wrote {}", self.args.out.display());
        }
        if self.args.top == 0 {
            return;
        }
        println!("{title}:");
        println!("{:>6}  {:<24} {:>12}", "rank", "agent", "score");
        for (pos, i) in trustmesh::trust::scores::order(scores)
            .into_iter()
            .take(self.args.top)
            .enumerate()
        {
            println!("{:>6}  {:<24} {:>12.6e}", pos + 1, agents[i], scores[i]);
        }
    }
}

/// Pretty JSON with a final newline (reports, `bench --json`).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("{}: cannot write report", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        output: OutputArgs,
    }

    #[test]
    fn out_is_required_and_top_defaults() {
        let t = T::try_parse_from(["t", "--out", "s.parquet"]).unwrap();
        assert_eq!(t.output.top, DEFAULT_TOP);
        assert_eq!(t.output.report, None);
        assert!(T::try_parse_from(["t", "--top", "3"]).is_err());
    }
}
