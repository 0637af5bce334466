//! Where a node keeps snapshots: `STATE/<publisher hex>/<epoch>/` (the
//! snapshot directory: `header.bin`, `body.parquet`), the publisher's
//! `state.json` beside them ([`crate::serve::state`]), equivocation
//! evidence under `evidence/`, and work in progress under `.incoming-*`
//! directories that are committed by one rename.

use std::path::{Path, PathBuf};

use super::state::sync_dir;
use super::{Result, ServeError};

/// The snapshots a node holds, under one root directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store under `root` (created if absent).
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(ServeError::io(root))?;
        let store = Store {
            root: root.to_path_buf(),
        };
        // Staging directories and temporary files a crash left behind
        // (their names are unique, so nothing else would reuse them).
        for p in store.publishers()? {
            let d = store.root.join(hex::encode(p));
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".incoming-") {
                    let _ = std::fs::remove_dir_all(e.path());
                } else if name.starts_with('.') && name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// One publisher's directory (created if absent).
    pub fn publisher_dir(&self, publisher: &[u8; 32]) -> Result<PathBuf> {
        let d = self.root.join(hex::encode(publisher));
        std::fs::create_dir_all(&d).map_err(ServeError::io(&d))?;
        Ok(d)
    }

    /// The directory of a committed snapshot (which may not exist).
    pub fn epoch_dir(&self, publisher: &[u8; 32], epoch: u64) -> PathBuf {
        self.root
            .join(hex::encode(publisher))
            .join(epoch.to_string())
    }

    /// A fresh, empty directory to assemble a snapshot in before
    /// [`Store::commit`]. Its name is unique (process and counter): the
    /// publisher thread and the follower may assemble the same epoch at
    /// once. What a crash left is removed by [`Store::open`].
    pub fn staging(&self, publisher: &[u8; 32], epoch: u64) -> Result<PathBuf> {
        let d = self
            .publisher_dir(publisher)?
            .join(format!(".incoming-{epoch}-{}", super::state::unique()));
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(ServeError::io(&d))?;
        }
        std::fs::create_dir_all(&d).map_err(ServeError::io(&d))?;
        Ok(d)
    }

    /// Moves an assembled snapshot to its place. A directory already there
    /// is one the state never accepted (a crash between this rename and the
    /// state's write): it is replaced.
    ///
    /// Durability, in order: every file in the staging directory
    /// (`claim.sig` too: a restart announces from it) and the staging
    /// directory itself are fsync'd before the rename, so the renamed
    /// directory cannot surface with missing or empty files after a crash;
    /// then the publisher directory (the rename) and the root (a publisher
    /// directory made just now) are fsync'd.
    pub fn commit(&self, staging: &Path, publisher: &[u8; 32], epoch: u64) -> Result<PathBuf> {
        let to = self.epoch_dir(publisher, epoch);
        for e in std::fs::read_dir(staging).map_err(ServeError::io(staging))? {
            let p = e.map_err(ServeError::io(staging))?.path();
            if p.is_file() {
                std::fs::File::open(&p)
                    .and_then(|f| f.sync_all())
                    .map_err(ServeError::io(&p))?;
            }
        }
        sync_dir(staging)?;
        if to.exists() {
            std::fs::remove_dir_all(&to).map_err(ServeError::io(&to))?;
        }
        std::fs::rename(staging, &to).map_err(ServeError::io(&to))?;
        sync_dir(to.parent().unwrap_or(&self.root))?;
        sync_dir(&self.root)?;
        Ok(to)
    }

    /// Keeps `bytes` as evidence named `name` (equivocation: both signed
    /// claims, and the headers when held).
    pub fn keep_evidence(&self, publisher: &[u8; 32], name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let d = self.publisher_dir(publisher)?.join("evidence");
        std::fs::create_dir_all(&d).map_err(ServeError::io(&d))?;
        let p = d.join(name);
        super::state::write_atomic(&p, bytes)?;
        Ok(p)
    }

    /// The publishers with a directory in the store.
    pub fn publishers(&self) -> Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.root).map_err(ServeError::io(&self.root))? {
            let e = e.map_err(ServeError::io(&self.root))?;
            let name = e.file_name();
            if let Some(k) = name
                .to_str()
                .and_then(|n| hex::decode(n).ok())
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
            {
                out.push(k);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_unique_and_leftovers_go_at_open() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let p = [7u8; 32];
        // Two writers of one epoch get two directories.
        let a = store.staging(&p, 3).unwrap();
        let b = store.staging(&p, 3).unwrap();
        assert_ne!(a, b);
        std::fs::write(a.join(crate::snapshot::HEADER_FILE), b"h").unwrap();
        std::fs::write(a.join("claim.sig"), [1u8; 64]).unwrap();
        let to = store.commit(&a, &p, 3).unwrap();
        assert_eq!(std::fs::read(to.join("claim.sig")).unwrap(), [1u8; 64]);
        assert!(!a.exists());
        // `b` is what a crash would leave: gone after the next open.
        std::fs::write(
            store.publisher_dir(&p).unwrap().join(".state.json.1-2.tmp"),
            b"x",
        )
        .unwrap();
        let store = Store::open(d.path()).unwrap();
        assert!(!b.exists());
        let names: Vec<String> = std::fs::read_dir(store.publisher_dir(&p).unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["3".to_string()]);
    }
}
