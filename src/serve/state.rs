//! What a node remembers per publisher across restarts: the highest
//! accepted (epoch, header hash) and, for its own snapshots, the
//! fingerprint of the logs they were computed from.
//!
//! One small JSON file per publisher, `state.json` in the publisher's store
//! directory, written atomically (temporary file, fsync, rename, fsync of
//! the directory), so a crash leaves either the old state or the new one.
//! The snapshot directory of the state's epoch is committed *before* the
//! state names it ([`crate::serve::store`]), so the state never names a
//! snapshot that is not on disk. A restarted node starts from here and never
//! accepts an epoch at or below it, whatever its peers announce.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Result, ServeError};
use crate::snapshot::merkle::Hash;

/// The state file's name in a publisher's store directory.
pub const STATE_FILE: &str = "state.json";
/// The largest state file read (it is a few hundred bytes).
const MAX_STATE_BYTES: u64 = 64 << 10;

/// The persisted state of one publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherState {
    pub epoch: u64,
    pub header_hash: Hash,
    /// For a node's own snapshots: the fingerprint of the logs the last one
    /// was computed from ([`crate::serve::publisher`]), so a restart does
    /// not recompute unchanged logs.
    pub inputs: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    epoch: u64,
    header_hash: String,
    inputs: Option<String>,
}

/// Reads the state in `dir`; `None` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<PublisherState>> {
    use std::io::Read;
    let path = dir.join(STATE_FILE);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ServeError::io(&path)(e)),
    };
    let mut text = String::new();
    f.take(MAX_STATE_BYTES)
        .read_to_string(&mut text)
        .map_err(ServeError::io(&path))?;
    let bad = |why: String| ServeError::BadState {
        path: path.clone(),
        why,
    };
    let j: StateJson = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let header_hash: Hash = hex::decode(&j.header_hash)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("header_hash is not 64 hex characters".into()))?;
    Ok(Some(PublisherState {
        epoch: j.epoch,
        header_hash,
        inputs: j.inputs,
    }))
}

/// Writes the state in `dir` atomically.
pub fn save(dir: &Path, state: &PublisherState) -> Result<()> {
    let j = StateJson {
        epoch: state.epoch,
        header_hash: hex::encode(state.header_hash),
        inputs: state.inputs.clone(),
    };
    let mut text = serde_json::to_string_pretty(&j).map_err(|e| ServeError::BadState {
        path: dir.join(STATE_FILE),
        why: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(&dir.join(STATE_FILE), text.as_bytes())
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, never a mix: a temporary file beside it, fsync, rename over, fsync
/// of the directory (which makes the rename durable).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    // Unique, so two writers of one file never share a temporary file.
    let tmp = dir.join(format!(".{name}.{}.tmp", unique()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(ServeError::io(&tmp))?;
        f.write_all(bytes).map_err(ServeError::io(&tmp))?;
        f.sync_all().map_err(ServeError::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(ServeError::io(path))?;
    sync_dir(dir)
}

/// A name part unique in this machine for this process's life: the process
/// id and a counter.
pub(crate) fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Relaxed))
}

/// fsync of a directory, making renames and new entries in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ServeError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_overwrite() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), None);
        let s = PublisherState {
            epoch: 3,
            header_hash: [7; 32],
            inputs: Some("ab".into()),
        };
        save(d.path(), &s).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(s.clone()));
        let t = PublisherState {
            epoch: 4,
            inputs: None,
            ..s
        };
        save(d.path(), &t).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(t));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)]);
    }

    #[test]
    fn a_corrupt_state_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        for bad in [
            "{",
            "{\"epoch\":1,\"header_hash\":\"00\",\"inputs\":null}",
            "{\"epoch\":-1,\"header_hash\":\"00\",\"inputs\":null}",
            "{\"epoch\":1,\"header_hash\":\"00\",\"inputs\":null,\"x\":1}",
        ] {
            std::fs::write(d.path().join(STATE_FILE), bad).unwrap();
            assert!(
                matches!(load(d.path()), Err(ServeError::BadState { .. })),
                "{bad}"
            );
        }
    }
}
