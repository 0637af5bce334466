//! How a scores file was made, carried by the file itself (Parquet key-value
//! metadata) and by the report: the trustmesh version, the device and its
//! precision, every parameter, the convergence figures and a digest of every
//! input file. A score computed on a GPU in f32 is then never mistaken for
//! the CPU's f64 result, and an auditor can check that the inputs they hold
//! are the ones that were scored.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, ResultExt};

/// Key of the provenance JSON in a score file's Parquet key-value metadata.
pub const METADATA_KEY: &str = "trustmesh.provenance";

/// The version of trustmesh that made a file.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One input file: what it was used as, where it was, its size and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputFile {
    /// `log`, `pretrusted`, `pretrusted_sets`, `stake`, `fraud_proofs`,
    /// `topic_similarity`.
    pub role: String,
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

/// Hashes every file (in parallel; the list keeps its order).
pub fn digest_files(files: &[(&str, &Path)]) -> Result<Vec<InputFile>> {
    files
        .par_iter()
        .map(|&(role, path)| digest_file(role, path).with_path(path))
        .collect()
}

fn digest_file(role: &str, path: &Path) -> Result<InputFile> {
    let mut f = std::fs::File::open(path).map_err(Error::read)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(Error::read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(InputFile {
        role: role.to_string(),
        path: path.display().to_string(),
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inputs of a run: the logs, then the side files in the order given.
pub fn inputs(logs: &[PathBuf], side: &[(&str, Option<&Path>)]) -> Result<Vec<InputFile>> {
    let files: Vec<(&str, &Path)> = logs
        .iter()
        .map(|p| ("log", p.as_path()))
        .chain(side.iter().filter_map(|&(role, p)| p.map(|p| (role, p))))
        .collect();
    digest_files(&files)
}

/// The provenance JSON of a report: the report itself without its timings
/// (which say how long, not how).
pub fn metadata_json(report: &impl Serialize) -> Result<String> {
    let mut v = serde_json::to_value(report)
        .map_err(|e| Error::internal(format!("report is not serialisable: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("seconds");
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_name_role_size_and_sha256() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.parquet");
        std::fs::write(&a, b"abc").unwrap();
        let got = inputs(std::slice::from_ref(&a), &[("stake", None)]).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].role.as_str(), got[0].bytes), ("log", 3));
        // FIPS 180-2's test vector for "abc".
        assert_eq!(
            got[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let missing = d.path().join("gone.csv");
        let e = inputs(&[], &[("stake", Some(&missing))]).unwrap_err();
        assert!(e.to_string().contains("gone.csv"), "{e}");
    }

    #[test]
    fn metadata_drops_the_timings() {
        let v = serde_json::json!({"alpha": 0.15, "seconds": {"read": 1.0}});
        assert_eq!(metadata_json(&v).unwrap(), r#"{"alpha":0.15}"#);
    }
}
