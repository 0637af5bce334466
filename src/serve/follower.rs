//! Following publishers: reads the announcements gossip carries, and for a
//! newer epoch of a trusted publisher fetches the snapshot from a node that
//! announces it, verifies it completely and accepts it.
//!
//! Every (key, value) pair is judged once: the verdict depends on the key
//! as well as the value (an honest value copied under a wrong key is
//! refused there, and must not taint the honest copy). Keys that are not
//! `ann:<hex of a trusted publisher>` are refused before anything is
//! decoded. Verdicts of pairs no longer in gossip are dropped each round,
//! and at most [`MAX_VERDICTS`] are kept. A refused one is counted in
//! `trustmesh_snapshots_rejected_total` under its reason and then ignored:
//!
//! | reason                   | what                                                   |
//! |--------------------------|--------------------------------------------------------|
//! | `malformed_announcement` | not an announcement, or under another publisher's key  |
//! | `bad_signature`          | node or publisher signature does not verify (forged, unsigned) |
//! | `untrusted_publisher`    | a publisher this node does not follow                  |
//! | `wrong_network`          | another network's claim                                |
//! | `stale`                  | an epoch below the one held (a replay, or a lagging peer), once per node and epoch |
//!
//! A snapshot fetched from a peer is verified with [`crate::snapshot`]:
//! header (publisher, signature), policy against the held state (rollback,
//! expiry, creation time, chain of header hashes), body size and SHA-256,
//! and the Merkle root over the decoded scores. Its failures count as
//! `rollback`, `expired`, `from_the_future`, `broken_chain`, `body_hash`,
//! `merkle_root`, `bad_signature`, `untrusted_publisher`,
//! `malformed_snapshot`, `header_mismatch` (a valid header that is not
//! the one announced) or `bad_mechanism` (the publisher's claim names a
//! mechanism, by its SHA-256, and the peer answers 404, serves other bytes,
//! or a signature that does not verify; a claim that names none makes the
//! follower fetch none). A peer that served a refused snapshot is not asked
//! for that claim again; a peer that could not be reached (`fetch_errors`)
//! is retried on the next round.
//!
//! Equivocation: two claims signed by one publisher for one epoch with
//! different header hashes (seen in announcements, or an announced claim
//! and a fetched header the publisher signed). Both claims (and the
//! header, when fetched) are kept as evidence in the store, the epoch is
//! refused whatever its hash, and `trustmesh_equivocations_total` counts
//! it once per (publisher, epoch). A snapshot of that epoch accepted before
//! the second claim arrived stays held (epochs never go back), and the node
//! moves on with the publisher's next epoch. A restarted node reads the
//! evidence back and keeps refusing those epochs.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::announce::Announcement;
use super::gossip::ANNOUNCE_PREFIX;
use super::mechanism::{self, Binding, MAX_MECHANISM_BYTES, MECHANISM_FILE, MECHANISM_SIG_FILE};
use super::node::{Shared, CLAIM_SIG_FILE};
use super::ServeError;
use crate::snapshot::header::{header_hash, open, MAX_HEADER_BYTES};
use crate::snapshot::merkle::Hash;
use crate::snapshot::{policy, Policy, SnapshotError, TrustState, BODY_FILE, HEADER_FILE};

/// The largest body fetched (1 GiB): a header may promise any size.
pub const MAX_BODY_BYTES: u64 = 1 << 30;
/// Verdicts kept at most (a bound on memory under a flood of distinct
/// values); pairs beyond it are judged and counted but not remembered.
pub const MAX_VERDICTS: usize = 10_000;
/// How many epochs below the held one claims are kept to compare.
const CLAIM_WINDOW: u64 = 16;

/// The follower loop: one round per half gossip interval until `stop`.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut f = Follower::default();
    f.load_refusals(&shared);
    let interval = shared.gossip.interval();
    let tick = (interval / 2).max(Duration::from_millis(20));
    let start = Instant::now();
    // A second receiver for the round to look at between publishers.
    let peek = stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(tick) => {}
        }
        let m = &shared.metrics;
        m.peers_alive
            .store(shared.gossip.peers_alive().await as u64, Relaxed);
        m.gossip_rounds.store(
            (start.elapsed().as_nanos() / interval.as_nanos().max(1)) as u64,
            Relaxed,
        );
        // A round may wait on a slow peer for the fetch timeout: stopping
        // cancels it. That is safe at any await: the store is committed and
        // the state written without an await between them, and an
        // unfinished staging directory is cleared at the next start.
        tokio::select! {
            _ = stop.changed() => break,
            _ = f.round(&shared, &peek) => {}
        }
    }
}

/// What went wrong with one source.
enum Failure {
    /// The peer served something that does not verify: counted, and the
    /// peer is not asked for this claim again.
    Rejected(&'static str, String),
    /// The publisher signed a header for the epoch other than the claimed one.
    Equivocation(Vec<u8>),
    /// Unreachable, slow, an HTTP error: retried next round.
    Transient(String),
}

#[derive(Default)]
struct Follower {
    /// Verdict per (key, value): the announcement, or None if refused; with
    /// the round it was last seen in, to drop pairs gone from gossip.
    verdicts: HashMap<(String, String), (Option<Announcement>, u64)>,
    /// Header hashes claimed per (publisher, epoch), with one announcement
    /// of each (evidence).
    claims: HashMap<([u8; 32], u64), BTreeMap<Hash, Vec<u8>>>,
    equivocated: HashSet<([u8; 32], u64)>,
    /// (source, publisher, epoch, hash) that served a refused snapshot.
    failed: HashSet<(SocketAddr, [u8; 32], u64, Hash)>,
    /// (source, publisher, epoch, hash) whose fetch failed and was said.
    unreachable: HashSet<(SocketAddr, [u8; 32], u64, Hash)>,
    /// (node, publisher, epoch) counted as stale.
    stale: HashSet<([u8; 32], [u8; 32], u64)>,
    /// Rotates the order of sources between rounds.
    turn: usize,
}

impl Follower {
    async fn round(&mut self, shared: &Shared, stop: &watch::Receiver<bool>) {
        let entries = shared.gossip.entries(ANNOUNCE_PREFIX).await;
        // Bounds on memory under a flood of distinct values or claims.
        // A verdict of a pair seen in the previous round stays; others are
        // gone from gossip (chitchat gives every live key each round).
        let round = self.turn as u64;
        self.verdicts
            .retain(|_, (_, seen)| seen.saturating_add(1) >= round);
        // Claims of epochs well below the one held are no longer compared
        // (one per epoch would otherwise pile up for as long as the node
        // runs); equivocations found are on disk as evidence.
        self.claims.retain(|(publisher, epoch), _| {
            shared
                .held(publisher)
                .is_none_or(|h| epoch.saturating_add(CLAIM_WINDOW) >= h.header.epoch)
        });
        // Peers that served a refused snapshot are kept while the claim
        // could still be fetched (above the held epoch): clearing them with
        // the others would let a tampering peer be asked again.
        self.failed.retain(|(_, publisher, epoch, _)| {
            shared
                .held(publisher)
                .is_none_or(|h| *epoch > h.header.epoch)
        });
        if self.unreachable.len() + self.stale.len() > MAX_VERDICTS {
            self.unreachable.clear();
            self.stale.clear();
        }
        // Per publisher: announcements with whether their node says it is
        // leaving (asked last; see gossip::LEAVING_KEY).
        let mut candidates: BTreeMap<[u8; 32], Vec<(Announcement, bool)>> = BTreeMap::new();
        for e in entries {
            let leaving = e.leaving;
            let pair = (e.key, e.value);
            let verdict = match self.verdicts.get_mut(&pair) {
                Some((v, seen)) => {
                    *seen = round;
                    v.clone()
                }
                None => {
                    let v = judge(shared, &pair.0, &pair.1);
                    if self.verdicts.len() < MAX_VERDICTS {
                        self.verdicts.insert(pair, (v.clone(), round));
                    }
                    v
                }
            };
            let Some(a) = verdict else { continue };
            let (publisher, epoch) = (a.claim.publisher, a.claim.epoch);
            shared.metrics.announced(&publisher, epoch);
            if a.node == shared.node_key {
                continue;
            }
            self.record_claim(shared, &a);
            let held = shared.held(&publisher).map(|h| h.header.epoch);
            if held.is_some_and(|h| epoch < h) {
                if self.stale.insert((a.node, publisher, epoch)) {
                    shared.metrics.reject("stale");
                }
                continue;
            }
            if held.is_some_and(|h| epoch == h) || self.equivocated.contains(&(publisher, epoch)) {
                continue;
            }
            candidates.entry(publisher).or_default().push((a, leaving));
        }
        self.turn = self.turn.wrapping_add(1);
        for (publisher, anns) in candidates {
            if *stop.borrow() {
                return;
            }
            let Some(best) = anns.iter().map(|(a, _)| a.claim.epoch).max() else {
                continue;
            };
            let mut sources: Vec<&(Announcement, bool)> =
                anns.iter().filter(|(a, _)| a.claim.epoch == best).collect();
            let n = sources.len();
            sources.rotate_left(self.turn % n.max(1));
            // Stable: the rotation stays among nodes not leaving.
            sources.sort_by_key(|(_, leaving)| *leaving);
            for (a, _) in sources {
                let key = (a.http, publisher, best, a.claim.header_hash);
                if self.failed.contains(&key) || self.equivocated.contains(&(publisher, best)) {
                    continue;
                }
                match fetch_and_accept(shared, a).await {
                    Ok(()) => break,
                    Err(Failure::Transient(why)) => {
                        shared.metrics.fetch_errors.fetch_add(1, Relaxed);
                        // Said once per source and claim: a dead peer is
                        // retried every round.
                        if self.unreachable.insert(key) {
                            shared.say(&format!("fetch from {}: {why}", a.http));
                        }
                    }
                    Err(Failure::Rejected(reason, why)) => {
                        shared.metrics.reject(reason);
                        self.failed.insert(key);
                        shared.say(&format!(
                            "refused epoch {best} from {} ({reason}): {why}",
                            a.http
                        ));
                    }
                    Err(Failure::Equivocation(header_bin)) => {
                        let other = header_hash(&header_bin);
                        self.failed.insert(key);
                        self.claims
                            .entry((publisher, best))
                            .or_default()
                            .entry(other)
                            .or_insert(header_bin);
                        self.check_equivocation(shared, publisher, best);
                    }
                }
            }
        }
    }

    /// The epochs refused for equivocation before a restart: those with
    /// two or more evidence files (`<epoch>-<hash>.evidence`).
    fn load_refusals(&mut self, shared: &Shared) {
        for publisher in &shared.trusted {
            let dir = shared
                .store
                .root()
                .join(hex::encode(publisher))
                .join("evidence");
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut per_epoch: HashMap<u64, usize> = HashMap::new();
            for e in entries.flatten() {
                let name = e.file_name();
                let epoch = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".evidence"))
                    .and_then(|n| n.split_once('-'))
                    .and_then(|(epoch, _)| epoch.parse::<u64>().ok());
                if let Some(epoch) = epoch {
                    *per_epoch.entry(epoch).or_default() += 1;
                }
            }
            for (epoch, n) in per_epoch {
                if n >= 2 {
                    self.equivocated.insert((*publisher, epoch));
                }
            }
        }
    }

    fn record_claim(&mut self, shared: &Shared, a: &Announcement) {
        let key = (a.claim.publisher, a.claim.epoch);
        let fresh = match self
            .claims
            .entry(key)
            .or_default()
            .entry(a.claim.header_hash)
        {
            Entry::Vacant(v) => {
                v.insert(a.encode().unwrap_or_default());
                true
            }
            Entry::Occupied(_) => false,
        };
        if fresh {
            self.check_equivocation(shared, key.0, key.1);
        }
    }

    fn check_equivocation(&mut self, shared: &Shared, publisher: [u8; 32], epoch: u64) {
        let Some(hashes) = self.claims.get(&(publisher, epoch)) else {
            return;
        };
        if hashes.len() < 2 || !self.equivocated.insert((publisher, epoch)) {
            return;
        }
        for (hash, evidence) in hashes {
            let name = format!("{epoch}-{}.evidence", hex::encode(hash));
            if let Err(e) = shared.store.keep_evidence(&publisher, &name, evidence) {
                shared.say(&format!("cannot keep evidence: {e}"));
            }
        }
        // Counted once the evidence is on disk.
        shared.metrics.equivocations.fetch_add(1, Relaxed);
        shared.say(&format!(
            "EQUIVOCATION: publisher {} signed {} different headers for epoch {epoch}; refusing the epoch, evidence kept under {}",
            hex::encode(publisher),
            hashes.len(),
            shared.store.root().join(hex::encode(publisher)).join("evidence").display()
        ));
    }
}

/// The verdict on one gossip value under `key`.
fn judge(shared: &Shared, key: &str, value: &str) -> Option<Announcement> {
    let refuse = |reason: &'static str| {
        shared.metrics.reject(reason);
        None
    };
    // The key alone decides most refusals, before any decoding or
    // signature check (cheap under a flood).
    let Some(publisher) = key
        .strip_prefix(ANNOUNCE_PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
    else {
        return refuse("malformed_announcement");
    };
    if !shared.trusts(&publisher) {
        return refuse("untrusted_publisher");
    }
    let a = match Announcement::open_text(value) {
        Ok(a) => a,
        Err(e) => {
            shared.say(&format!("ignored announcement under `{key}`: {e}"));
            return refuse(e.reason());
        }
    };
    if key != format!("{ANNOUNCE_PREFIX}{}", hex::encode(a.claim.publisher)) {
        return refuse("malformed_announcement");
    }
    if a.claim.network != shared.network {
        return refuse("wrong_network");
    }
    if !shared.trusts(&a.claim.publisher) {
        return refuse("untrusted_publisher");
    }
    Some(a)
}

/// The label a snapshot verification failure is counted under.
pub fn reason(e: &crate::Error) -> &'static str {
    match e.find_root().as_snapshot() {
        Some(s) => snapshot_reason(s),
        None => "malformed_snapshot",
    }
}

fn snapshot_reason(e: &SnapshotError) -> &'static str {
    match e {
        SnapshotError::BadSignature { .. } => "bad_signature",
        SnapshotError::UnknownPublisher { .. } => "untrusted_publisher",
        SnapshotError::Rollback { .. } => "rollback",
        SnapshotError::Expired { .. } => "expired",
        SnapshotError::FromTheFuture { .. } => "from_the_future",
        SnapshotError::BrokenChain { .. } => "broken_chain",
        SnapshotError::BodyHashMismatch { .. } | SnapshotError::BodySizeMismatch { .. } => {
            "body_hash"
        }
        SnapshotError::MerkleRootMismatch { .. } | SnapshotError::AgentCountMismatch { .. } => {
            "merkle_root"
        }
        _ => "malformed_snapshot",
    }
}

/// The mechanism posted beside the snapshot `b`, when the publisher's claim
/// names one (`expected`, its SHA-256; nothing is fetched otherwise): the
/// file and the publisher's signature of it for this very snapshot. A peer
/// that answers 404 for it, serves other bytes or a signature that does not
/// verify gets the whole fetch refused (another peer's copy is tried, as for
/// a bad body): the claim is signed, so a missing mechanism is a stripped
/// one.
async fn fetch_mechanism(
    shared: &Shared,
    file_url: &str,
    sig_url: &str,
    b: Binding<'_>,
    expected: Option<Hash>,
) -> Result<Option<(bytes::Bytes, bytes::Bytes)>, Failure> {
    let Some(expected) = expected else {
        return Ok(None);
    };
    let transient = |e: ServeError| Failure::Transient(e.to_string());
    let bad = |why: &str| Failure::Rejected("bad_mechanism", format!("mechanism: {why}"));
    let fetcher = &shared.fetcher;
    let Some(file) = fetcher
        .get_if_present(file_url, MAX_MECHANISM_BYTES)
        .await
        .map_err(transient)?
    else {
        return Err(bad(
            "the publisher's claim names one, the peer answered 404",
        ));
    };
    if mechanism::digest(&file) != expected {
        return Err(bad("not the file the publisher's claim names"));
    }
    let sig = fetcher
        .get_if_present(sig_url, 64)
        .await
        .map_err(transient)?
        .unwrap_or_default();
    mechanism::verify(b, &file, &sig).map_err(|why| bad(&why))?;
    Ok(Some((file, sig)))
}

async fn fetch_and_accept(shared: &Shared, a: &Announcement) -> Result<(), Failure> {
    let publisher = a.claim.publisher;
    let epoch = a.claim.epoch;
    let url = |file: &str| {
        format!(
            "http://{}/snapshot/{epoch}/{file}?publisher={}",
            a.http,
            hex::encode(publisher)
        )
    };
    let transient = |e: ServeError| Failure::Transient(e.to_string());
    let header_bin = shared
        .fetcher
        .get(&url("header"), MAX_HEADER_BYTES)
        .await
        .map_err(transient)?;
    let held = shared.held(&publisher);
    let state = match &held {
        Some(h) => TrustState {
            last_epoch: Some(h.header.epoch),
            last_header_hash: Some(h.header_hash),
        },
        None => TrustState::default(),
    };
    let pol = Policy {
        publisher: Some(publisher),
        after_epoch: None,
    };
    let now = super::unix_now();
    let header = open(&header_bin, Some(&publisher))
        .map_err(|e| Failure::Rejected(snapshot_reason(&e), e.to_string()))?;
    policy::check(&header, now, &state, &pol)
        .map_err(|e| Failure::Rejected(snapshot_reason(&e), e.to_string()))?;
    if header.network != shared.network {
        return Err(Failure::Rejected(
            "wrong_network",
            format!("header of network `{}`", header.network),
        ));
    }
    if header_hash(&header_bin) != a.claim.header_hash {
        if header.epoch == epoch {
            // The publisher signed this header and a claim of another one.
            return Err(Failure::Equivocation(header_bin.to_vec()));
        }
        return Err(Failure::Rejected(
            "header_mismatch",
            format!(
                "the header served is of epoch {}, not the one announced",
                header.epoch
            ),
        ));
    }
    if header.body_size > MAX_BODY_BYTES {
        return Err(Failure::Rejected(
            "malformed_snapshot",
            format!(
                "body of {} bytes, above the limit of {MAX_BODY_BYTES}",
                header.body_size
            ),
        ));
    }
    // One byte more than promised is fetched, so a longer body is refused
    // by its size check rather than cut to fit.
    let body = shared
        .fetcher
        .get(&url("body"), header.body_size as usize + 1)
        .await
        .map_err(transient)?;
    let local = |e: ServeError| Failure::Transient(format!("local: {e}"));
    let staging = shared.store.staging(&publisher, epoch).map_err(local)?;
    let write = |name: &str, bytes: &[u8]| {
        let p = staging.join(name);
        std::fs::write(&p, bytes).map_err(|e| local(ServeError::io(&p)(e)))
    };
    write(HEADER_FILE, &header_bin)?;
    write(BODY_FILE, &body)?;
    write(CLAIM_SIG_FILE, &a.publisher_sig)?;
    // Decoding the body and its Merkle tree is CPU work: off the async
    // workers, which keep gossip and HTTP going meanwhile.
    let prev = held.as_ref().map(|h| h.dir.clone());
    let dir = staging.clone();
    let verified = tokio::task::spawn_blocking(move || {
        crate::snapshot::dir::verify(&dir, prev.as_deref(), now, &pol)
    })
    .await
    .map_err(|e| Failure::Transient(format!("verification task: {e}")))?;
    if let Err(e) = verified {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(Failure::Rejected(reason(&e), e.to_string()));
    }
    let b = Binding {
        network: &shared.network,
        publisher: &publisher,
        epoch,
        header_hash: &a.claim.header_hash,
    };
    let mechanism = match fetch_mechanism(
        shared,
        &url("mechanism"),
        &url("mechanism.sig"),
        b,
        a.claim.mechanism,
    )
    .await
    {
        Ok(m) => m,
        Err(f) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(f);
        }
    };
    if let Some((file, sig)) = mechanism {
        write(MECHANISM_FILE, &file)?;
        write(MECHANISM_SIG_FILE, &sig)?;
    }
    match shared
        .accept(&staging, header, &header_bin, a.publisher_sig, None)
        .await
    {
        // Another task accepted this epoch or a later one meanwhile:
        // nothing to do, and nothing wrong with the source.
        Err(ServeError::NotNewer { .. }) => return Ok(()),
        r => r.map_err(local)?,
    }
    shared.metrics.snapshots_fetched.fetch_add(1, Relaxed);
    Ok(())
}
