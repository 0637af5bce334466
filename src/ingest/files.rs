//! Resolving `--log` arguments (file, directory or glob) to Parquet files.

use std::path::{Path, PathBuf};

use crate::error::{params, Error, Message, Result, ResultExt};

/// Expands each argument: a file is taken as is, a directory contributes its
/// `*.parquet` files (not recursive), anything else is tried as a glob. Each
/// argument must yield at least one file, so a typo is an error rather than an
/// empty input. The result is sorted and deduplicated.
pub fn resolve(args: &[String]) -> Result<Vec<PathBuf>> {
    if args.is_empty() {
        let message = Message::new()
            .text("no ")
            .param(params::LOGS)
            .text(" given");
        return Err(Error::param(params::LOGS, message));
    }
    let mut out = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        let found = if path.is_file() {
            vec![path.to_path_buf()]
        } else if path.is_dir() {
            let mut v = Vec::new();
            for entry in std::fs::read_dir(path).map_err(|e| Error::read(e).with_path(path))? {
                let p = entry?.path();
                if p.is_file() && p.extension().is_some_and(|e| e == "parquet") {
                    v.push(p);
                }
            }
            if v.is_empty() {
                return Err(Error::NoInput {
                    pattern: arg.clone(),
                    why: "directory has no *.parquet files".into(),
                    source: None,
                });
            }
            v
        } else {
            let pattern = glob::glob(arg).map_err(|e| Error::NoInput {
                pattern: arg.clone(),
                why: format!("not a file or directory, and not a valid glob: {e}"),
                source: Some(e),
            })?;
            let v: Vec<PathBuf> = pattern
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file())
                .collect();
            if v.is_empty() {
                return Err(Error::NoInput {
                    pattern: arg.clone(),
                    why: "no such file, directory or matching glob".into(),
                    source: None,
                });
            }
            v
        };
        out.extend(found);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Rows the files hold together, from their footers (nothing else is read),
/// so the ingest can allocate its row arrays once. A file whose footer
/// cannot be read is reported here, named, as the read itself would.
pub fn total_rows(files: &[PathBuf]) -> Result<u64> {
    let mut total = 0u64;
    for f in files {
        let rows = (|| {
            let file = std::fs::File::open(f).map_err(Error::read)?;
            let meta = parquet::file::metadata::ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .map_err(Error::read)?;
            Ok::<_, Error>(meta.file_metadata().num_rows().max(0) as u64)
        })()
        .with_path(f)?;
        total = total.saturating_add(rows);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_dirs_globs_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.parquet", "a.parquet", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let d = dir.path().to_str().unwrap().to_string();
        let got = resolve(std::slice::from_ref(&d)).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].ends_with("a.parquet"));
        let g = resolve(&[format!("{d}/b*.parquet"), format!("{d}/b.parquet")]).unwrap();
        assert_eq!(g.len(), 1);
        let e = resolve(&[format!("{d}/nope.parquet")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.parquet"), "{e}");
        std::fs::remove_file(dir.path().join("a.parquet")).unwrap();
        std::fs::remove_file(dir.path().join("b.parquet")).unwrap();
        assert!(resolve(&[d])
            .unwrap_err()
            .to_string()
            .contains("no *.parquet"));
    }
}
