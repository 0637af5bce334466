//! The publisher: rescans the log directory every interval and, when its
//! files changed, recomputes with the same code path as `trustmesh score`
//! ([`crate::score::run`]), signs the next snapshot (epoch + 1, chained on
//! the previous header), solves and signs the mechanism beside it when one
//! is configured ([`super::mechanism`]) and hands both to the node to
//! announce.
//!
//! Change detection is the fingerprint of the directory's `*.parquet` files
//! (name, size, modification time): cheap, and what was actually read is
//! bound by content hash in the snapshot's header anyway. The fingerprint
//! of the last published snapshot is persisted in the state, so a restart
//! on unchanged logs publishes nothing new.
//!
//! Recomputes are cold unless `--warm-start`: then each starts from the
//! previous snapshot's vector ([`crate::score::start`]). A warm start
//! changes the last bits of the result, so the header's parameters record
//! the start snapshot's header hash and `snapshot audit --start-from`
//! re-derives from it; a cold snapshot is re-derivable from its logs alone.
//!
//! The publisher runs on its own thread: the compute back end is not
//! `Send` (a GPU context stays on one thread) and the solve is CPU-bound,
//! so it must not occupy the node's async workers.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::announce::Claim;
use super::mechanism::{self, MECHANISM_FILE, MECHANISM_SIG_FILE};
use super::node::{PublishConfig, Shared, CLAIM_SIG_FILE};
use super::{Result, ServeError};
use crate::score::start::StartVector;
use crate::snapshot::dir::{create, CreateOptions};
use crate::snapshot::header::header_hash;
use crate::snapshot::HEADER_FILE;

/// Starts the publisher thread; it stops when `stop` turns true.
pub fn spawn(
    shared: Arc<Shared>,
    cfg: PublishConfig,
    rt: Handle,
    stop: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("trustmesh-publisher".into())
        .spawn(move || run(&shared, &cfg, &rt, stop))
        .map_err(|e| ServeError::Config(format!("cannot start the publisher thread: {e}")))
}

fn run(shared: &Shared, cfg: &PublishConfig, rt: &Handle, mut stop: watch::Receiver<bool>) {
    let backend = match (cfg.backend)() {
        Ok(b) => b,
        Err(e) => {
            shared.say(&format!("publisher stopped: {e}"));
            return;
        }
    };
    let me = shared.node_key;
    let mut last = shared
        .store
        .publisher_dir(&me)
        .ok()
        .and_then(|d| super::state::load(&d).ok().flatten())
        .and_then(|s| s.inputs);
    // The inputs of the last failed publish: the same failure would come
    // again, so it is retried only when the logs (or the mechanism's agents
    // table) change, not every interval.
    let mut failed: Option<String> = None;
    loop {
        match fingerprint(&cfg.logs) {
            Ok(Some(fp)) if last.as_deref() != Some(fp.as_str()) => {
                let attempt = format!("{fp}{}", table_stamp(cfg));
                if failed.as_deref() != Some(attempt.as_str()) {
                    match publish_once(shared, cfg, backend.as_ref(), rt, &fp) {
                        Ok(()) => {
                            last = Some(fp);
                            failed = None;
                        }
                        Err(e) => {
                            shared.say(&format!(
                                "publish failed (retried when the inputs change): {e}"
                            ));
                            failed = Some(attempt);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => shared.say(&format!("scanning {}: {e}", cfg.logs.display())),
        }
        // Wait one interval, or less if told to stop.
        let stopped = rt.block_on(async {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => true,
                _ = tokio::time::sleep(cfg.interval) => false,
            }
        });
        if stopped || *stop.borrow() {
            return;
        }
    }
}

/// Size and modification time of the mechanism's agents table, if any.
fn table_stamp(cfg: &PublishConfig) -> String {
    cfg.mechanism
        .as_ref()
        .and_then(|m| std::fs::metadata(&m.agents).ok())
        .map(|m| format!(":{}:{:?}", m.len(), m.modified().ok()))
        .unwrap_or_default()
}

/// The fingerprint of the `*.parquet` files directly in `dir` (name, size,
/// modification time), or None when there is none.
pub fn fingerprint(dir: &Path) -> Result<Option<String>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(ServeError::io(dir))? {
        let e = e.map_err(ServeError::io(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".parquet") || name.starts_with('.') {
            continue;
        }
        let m = e.metadata().map_err(ServeError::io(e.path()))?;
        if !m.is_file() {
            continue;
        }
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        files.push((name, m.len(), mtime));
    }
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut h = Sha256::new();
    for (name, len, mtime) in files {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update(len.to_be_bytes());
        h.update(mtime.to_be_bytes());
    }
    Ok(Some(hex::encode(h.finalize())))
}

fn publish_once(
    shared: &Shared,
    cfg: &PublishConfig,
    backend: &dyn crate::trust::TrustBackend,
    rt: &Handle,
    fp: &str,
) -> Result<()> {
    let me = shared.node_key;
    let t = Instant::now();
    let prev = shared.held(&me);
    let out = match (&prev, cfg.warm_start) {
        (Some(p), true) => {
            let mut score = cfg.score.clone();
            score.start = Some(StartVector::from_snapshot(&p.dir)?);
            crate::score::run(&score, backend)?
        }
        _ => crate::score::run(&cfg.score, backend)?,
    };
    let meta = crate::provenance::metadata_json(&out.report)?;
    let epoch = match &prev {
        None => 1,
        // A held epoch of u64::MAX (a peer cannot push one: only this
        // node's own snapshots are held for its key) has no successor.
        Some(p) => p.header.epoch.checked_add(1).ok_or_else(|| {
            ServeError::Config(format!(
                "epoch {} is the last one: no next snapshot can be published",
                p.header.epoch
            ))
        })?,
    };
    let pdir = shared.store.publisher_dir(&me)?;
    let scores = pdir.join(".scores.parquet");
    crate::output::write_scores(&scores, &out.scores, &meta)?;
    let staging = shared.store.staging(&me, epoch)?;
    let created = super::unix_now();
    let opts = CreateOptions {
        network: shared.network.clone(),
        epoch,
        created,
        expires: created.saturating_add(cfg.ttl_s),
        prev: prev.as_ref().map(|p| p.dir.clone()),
    };
    let header = create(&scores, None, &shared.key, &opts, &staging)?;
    let hpath = staging.join(HEADER_FILE);
    let header_bin = std::fs::read(&hpath).map_err(ServeError::io(&hpath))?;
    let hash = header_hash(&header_bin);
    let mut mechanism_digest = None;
    if let Some(m) = &cfg.mechanism {
        // A mechanism that cannot be solved (an agent without a score, say)
        // fails this publish: posting the scores without the mechanism the
        // node was configured to post would be silently wrong.
        let b = mechanism::Binding {
            network: &shared.network,
            publisher: &me,
            epoch,
            header_hash: &hash,
        };
        let file = mechanism::solve(m, &scores, b).inspect_err(|_| {
            let _ = std::fs::remove_file(&scores);
            let _ = std::fs::remove_dir_all(&staging);
        })?;
        let sig = mechanism::sign(&shared.key, b, &file);
        mechanism_digest = Some(mechanism::digest(&file));
        for (name, bytes) in [(MECHANISM_FILE, &file[..]), (MECHANISM_SIG_FILE, &sig[..])] {
            let p = staging.join(name);
            std::fs::write(&p, bytes).map_err(ServeError::io(&p))?;
        }
    }
    let _ = std::fs::remove_file(&scores);
    shared.metrics.recomputed(t.elapsed().as_secs_f64());
    let claim = Claim {
        network: shared.network.clone(),
        publisher: me,
        epoch,
        header_hash: hash,
        mechanism: mechanism_digest,
    };
    let sig = claim.sign(&shared.key)?;
    let spath = staging.join(CLAIM_SIG_FILE);
    std::fs::write(&spath, sig).map_err(ServeError::io(&spath))?;
    rt.block_on(shared.accept(&staging, header, &header_bin, sig, Some(fp.to_string())))?;
    shared.say(&format!(
        "published epoch {epoch} in {:.2} s",
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}
