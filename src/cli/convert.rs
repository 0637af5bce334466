//! `trustmesh convert`: a public trust data set (SNAP, KONECT, TSV) to a
//! Parquet log.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use trustmesh::ingest::convert::{self, Format, DEFAULT_LAYER, DEFAULT_RATING_SCALE};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input format: snap-signed, konect or tsv.
    #[arg(long = "from")]
    from: String,
    /// Input text file (plain or gzip).
    input: PathBuf,
    /// Output Parquet log.
    #[arg(long)]
    out: PathBuf,
    /// Layer name for every row.
    #[arg(long, default_value = DEFAULT_LAYER)]
    layer: String,
    /// Ratings are divided by this to give outcomes in [-1, 1].
    #[arg(long, default_value_t = DEFAULT_RATING_SCALE)]
    rating_scale: f64,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    // Parsed by the library, not clap, so an unknown format is a run error
    // (exit 1) with the library's message.
    let format: Format = a.from.parse()?;
    let s = convert::convert(format, &a.input, &a.out, &a.layer, a.rating_scale)?;
    println!(
        "wrote {} rows to {} ({} lines skipped: comments, blanks, header)",
        s.rows,
        a.out.display(),
        s.skipped_lines
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::{parse, Command};

    #[test]
    fn defaults_are_the_library_defaults() {
        let Ok(Command::Convert(a)) = parse(&["convert", "--from", "tsv", "in.tsv", "--out", "o"])
        else {
            panic!("`convert` parses")
        };
        assert_eq!(a.layer, super::DEFAULT_LAYER);
        assert_eq!(a.rating_scale, super::DEFAULT_RATING_SCALE);
        assert_eq!(a.input, std::path::Path::new("in.tsv"));
    }
}
