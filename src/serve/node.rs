//! A node: what it holds, and the wiring of its parts (gossip, HTTP,
//! follower, publisher, MQTT) with a clean shutdown.
//!
//! Shutdown (the `shutdown` future given to [`run`] completes, e.g. on
//! SIGINT or SIGTERM): the node sets `leaving` in gossip (a hint, see
//! [`super::gossip::LEAVING_KEY`]); the HTTP server stops accepting and
//! drains the requests in flight, for `HTTP_DRAIN` (10 s) at most; the follower
//! stops at once (a fetch under way is abandoned; see
//! [`super::follower::run`]) and the publisher between recomputes (a
//! recompute under way finishes and is committed, or is abandoned before
//! its state is written); the node lets `leaving` spread for a few rounds;
//! MQTT disconnects. Every accepted snapshot's state was written (fsync'd)
//! when it was accepted, so there is nothing left to flush after that.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::announce::{check_network, Announcement, Claim};
use super::fetch::Fetcher;
use super::gossip::{Gossip, GossipConfig, ANNOUNCE_PREFIX, LEAVING_KEY};
use super::mechanism;
use super::metrics::{Held, Metrics};
use super::mqtt::Mqtt;
use super::state::{self, PublisherState};
use super::store::Store;
use super::{Result, ServeError};
use crate::score::ScoreConfig;
use crate::snapshot::header::{header_hash, Header};
use crate::snapshot::merkle::Hash;
use crate::trust::TrustBackend;

/// The file beside `header.bin` and `body.parquet` in a held snapshot's
/// directory: the publisher's 64-byte signature of the claim, so a
/// restarted node can announce what it holds again.
pub const CLAIM_SIG_FILE: &str = "claim.sig";

/// How long the HTTP server drains requests in flight at shutdown.
const HTTP_DRAIN: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ: Duration = Duration::from_secs(10);

/// Opens the publisher's compute back end; called on the publisher's own
/// thread (a GPU context stays on the thread that uses it).
pub type BackendFactory = Box<dyn Fn() -> crate::Result<Box<dyn TrustBackend>> + Send>;

/// What a publisher node computes from.
pub struct PublishConfig {
    /// The directory of `*.parquet` logs rescanned every interval.
    pub logs: PathBuf,
    /// The scoring job (its `logs` are `[logs]`).
    pub score: ScoreConfig,
    pub interval: Duration,
    /// How long each snapshot is valid, in seconds.
    pub ttl_s: i64,
    pub backend: BackendFactory,
    /// Trust-tiered contracts solved on each snapshot's scores and posted
    /// beside it (`--mechanism-agents`).
    pub mechanism: Option<super::mechanism::MechanismConfig>,
    /// Start each recompute from the previous snapshot's vector
    /// (`--warm-start`; recorded in the header, see `score::start`).
    pub warm_start: bool,
}

/// Everything a node is told.
pub struct NodeConfig {
    pub key: SigningKey,
    pub network: String,
    /// Where HTTP listens; also the address announced to peers, so it must
    /// be one they reach (port 0 picks a free port, which is announced).
    pub http: SocketAddr,
    pub gossip: SocketAddr,
    pub seeds: Vec<String>,
    pub gossip_interval: Duration,
    pub state_dir: PathBuf,
    /// Publishers whose snapshots this node follows (its own key is added
    /// when it publishes).
    pub trusted: Vec<[u8; 32]>,
    pub publish: Option<PublishConfig>,
    /// `mqtt://HOST:PORT` of a broker to republish accepted announcements to.
    pub mqtt: Option<String>,
    pub fetch_timeout: Duration,
    /// Print nothing but errors.
    pub quiet: bool,
}

/// A snapshot a node holds: the latest accepted of one publisher.
#[derive(Debug, Clone)]
pub struct HeldSnapshot {
    pub header: Header,
    pub header_hash: Hash,
    pub dir: PathBuf,
    pub announcement: Announcement,
}

/// What the node's tasks share.
pub struct Shared {
    pub key: SigningKey,
    pub node_key: [u8; 32],
    pub network: String,
    pub http: SocketAddr,
    pub trusted: Vec<[u8; 32]>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub gossip: Gossip,
    pub mqtt: Option<Mqtt>,
    pub fetcher: Fetcher,
    /// The HTTP routes' decoded leaves and heavy-request permits.
    pub http_cache: super::http::ProofCache,
    held: RwLock<BTreeMap<[u8; 32], HeldSnapshot>>,
    /// One lock per publisher, held across a whole accept (commit, state,
    /// hold): the publisher thread and the follower may both accept for
    /// the node's own key, and each compares with the held epoch under it.
    accepting: std::sync::Mutex<BTreeMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    quiet: bool,
}

impl Shared {
    /// One line on stderr about what the node did.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("serve: {line}");
        }
    }

    pub fn trusts(&self, publisher: &[u8; 32]) -> bool {
        self.trusted.contains(publisher)
    }

    /// The latest held snapshot of `publisher`.
    pub fn held(&self, publisher: &[u8; 32]) -> Option<HeldSnapshot> {
        self.held.read().ok()?.get(publisher).cloned()
    }

    /// Every publisher's latest held snapshot.
    pub fn all_held(&self) -> Vec<HeldSnapshot> {
        self.held
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Accepts a verified snapshot assembled in `staging` (header.bin,
    /// body.parquet, claim.sig): commits it to the store, then writes the
    /// state (in that order: the state never names a missing snapshot),
    /// then announces it by gossip and MQTT.
    pub async fn accept(
        &self,
        staging: &Path,
        header: Header,
        header_bin: &[u8],
        publisher_sig: [u8; 64],
        inputs: Option<String>,
    ) -> Result<()> {
        let publisher = header.publisher;
        let epoch = header.epoch;
        let lock = self
            .accepting
            .lock()
            .map_err(|_| ServeError::Config("accept lock poisoned".into()))?
            .entry(publisher)
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        // Compare and set: only an epoch above the one held is accepted, so
        // neither what is served nor state.json ever goes back, whoever
        // verified against an older held snapshot.
        if let Some(held) = self.held(&publisher).map(|h| h.header.epoch) {
            if epoch <= held {
                let _ = std::fs::remove_dir_all(staging);
                return Err(ServeError::NotNewer { epoch, held });
            }
        }
        let hash = header_hash(header_bin);
        let claim = stored_claim(&header, hash, staging)?;
        let announcement = Announcement::new(claim, publisher_sig, &self.key, self.http)?;
        let dir = self.store.commit(staging, &publisher, epoch)?;
        state::save(
            &self.store.publisher_dir(&publisher)?,
            &PublisherState {
                epoch,
                header_hash: hash,
                inputs,
            },
        )?;
        let agents = header.agent_count;
        self.hold(
            HeldSnapshot {
                header,
                header_hash: hash,
                dir,
                announcement,
            },
            true,
        )
        .await?;
        self.say(&format!(
            "accepted epoch {epoch} of publisher {} ({agents} agents, header {})",
            hex::encode(publisher),
            hex::encode(hash)
        ));
        Ok(())
    }

    /// Holds a snapshot: serves it and announces it by gossip, and by MQTT
    /// when it is newly accepted (`to_mqtt`; a resumed one was published
    /// before the restart, and the broker retains it; it is still recorded
    /// as the latest, which each MQTT reconnection publishes again).
    async fn hold(&self, h: HeldSnapshot, to_mqtt: bool) -> Result<()> {
        let text = h.announcement.to_text()?;
        let publisher = h.header.publisher;
        if let Ok(mut m) = self.held.write() {
            m.insert(publisher, h.clone());
        }
        self.gossip
            .set(
                &format!("{ANNOUNCE_PREFIX}{}", hex::encode(publisher)),
                &text,
            )
            .await;
        if let Some(mqtt) = &self.mqtt {
            if let Err(e) = mqtt.publish(&self.network, &h, to_mqtt) {
                self.say(&format!("mqtt: {e}"));
            }
        }
        Ok(())
    }

    /// The gauges of `/metrics`.
    pub fn held_gauges(&self) -> Vec<Held> {
        self.all_held()
            .into_iter()
            .map(|h| Held {
                publisher: hex::encode(h.header.publisher),
                epoch: h.header.epoch,
                agents: h.header.agent_count,
            })
            .collect()
    }
}

/// Runs a node until `shutdown` completes.
pub async fn run(
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    check_network(&cfg.network).map_err(ServeError::Config)?;
    if cfg.http.ip().is_unspecified() {
        return Err(ServeError::Config(format!(
            "--http {}: the HTTP address is announced to peers, so it must be one they can reach (not {})",
            cfg.http,
            cfg.http.ip()
        )));
    }
    if cfg.gossip.port() == 0 {
        return Err(ServeError::Config(
            "the gossip address needs a port (peers are given it as a seed)".into(),
        ));
    }
    let node_key = cfg.key.verifying_key().to_bytes();
    let mut trusted = cfg.trusted.clone();
    if cfg.publish.is_some() && !trusted.contains(&node_key) {
        trusted.push(node_key);
    }
    // A bad broker URL is refused before anything is bound or started.
    if let Some(url) = &cfg.mqtt {
        super::mqtt::parse_url(url)?;
    }
    let store = Store::open(&cfg.state_dir)?;
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .map_err(|e| ServeError::Config(format!("HTTP address {}: {e}", cfg.http)))?;
    let http = listener
        .local_addr()
        .map_err(|e| ServeError::Config(format!("HTTP address {}: {e}", cfg.http)))?;
    let metrics = Arc::new(Metrics::default());
    let gossip = Gossip::start(
        GossipConfig {
            // The key's first 8 bytes: unique enough among a network's
            // nodes, and every gossip digest carries every node's id (the
            // full 64 hex characters doubled the digest). Ids are not
            // trusted anyway: announcements carry the full key, signed.
            node_id: hex::encode(&node_key[..8]),
            listen: cfg.gossip,
            seeds: cfg.seeds.clone(),
            interval: cfg.gossip_interval,
            cluster: format!("trustmesh/{}", cfg.network),
        },
        metrics.gossip_sent.clone(),
        metrics.gossip_received.clone(),
    )
    .await?;
    let mqtt = match &cfg.mqtt {
        Some(url) => Some(Mqtt::connect(url, &hex::encode(node_key), metrics.clone())?),
        None => None,
    };
    let shared = Arc::new(Shared {
        key: cfg.key.clone(),
        node_key,
        network: cfg.network.clone(),
        http,
        trusted: trusted.clone(),
        store,
        metrics,
        gossip,
        mqtt,
        fetcher: Fetcher::new(cfg.fetch_timeout),
        http_cache: Default::default(),
        held: RwLock::new(BTreeMap::new()),
        accepting: Default::default(),
        quiet: cfg.quiet,
    });
    for p in &trusted {
        if let Some(h) = resume(&shared, p)? {
            shared.say(&format!(
                "resumed at epoch {} of publisher {}",
                h.header.epoch,
                hex::encode(p)
            ));
            shared.hold(h, false).await?;
        }
    }
    shared.say(&format!(
        "node {} on network `{}`: HTTP {http}, gossip {}, {} trusted publisher(s){}",
        hex::encode(node_key),
        cfg.network,
        cfg.gossip,
        trusted.len(),
        if cfg.publish.is_some() {
            ", publishing"
        } else {
            ""
        }
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(super::follower::run(shared.clone(), stop_rx.clone()));
    let publisher = match cfg.publish {
        Some(p) => Some(super::publisher::spawn(
            shared.clone(),
            p,
            tokio::runtime::Handle::current(),
            stop_rx.clone(),
        )?),
        None => None,
    };

    let app = super::http::router(shared.clone());
    let http_server = tokio::spawn(serve_http(listener, app, stop_rx.clone(), HTTP_DRAIN));
    shutdown.await;
    // Peers hear of it while requests drain, not after.
    shared.gossip.set(LEAVING_KEY, "1").await;
    let _ = stop_tx.send(true);
    let served = match http_server.await {
        Ok(drained) => {
            if !drained {
                shared.say(&format!(
                    "HTTP requests still in flight after {HTTP_DRAIN:?}: dropped"
                ));
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    shared.say("shutting down");
    let _ = follower.await;
    if let Some(p) = publisher {
        let _ = tokio::task::spawn_blocking(move || p.join()).await;
    }
    if let Some(m) = &shared.mqtt {
        m.disconnect().await;
    }
    shared.gossip.leave().await;
    served.map_err(|e| ServeError::Config(format!("HTTP server: {e}")))
}

/// Serves HTTP until `stop` turns true, then drains the connections for
/// `drain` at most ([`HTTP_DRAIN`]); false if some were still open then
/// (dropped).
///
/// A hand-written accept loop rather than `axum::serve`, which sets no
/// timer: hyper then has no header-read timeout, and a client that opens a
/// connection and never finishes its request headers holds it forever.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    drain: Duration,
) -> bool {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let mut conns = tokio::task::JoinSet::new();
    // Each connection's own receiver (the loop's is borrowed by its select).
    let conn_stop = stop.clone();
    loop {
        tokio::select! {
            // The watch's guard is dropped inside: it is not Send.
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors or the like: a pause, not a spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                let mut stop = conn_stop.clone();
                conns.spawn(async move {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                    let _ = conn.await;
                });
            }
        }
        // Finished connections are reaped as they go.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} })
        .await
        .is_ok();
    conns.abort_all();
    drained
}

/// The claim of the snapshot in `dir` (staged or committed), whose header
/// is `header` with hash `hash`: the mechanism beside it is the one the
/// publisher's claim commits to, so a claim signature that does not verify
/// against it means the stored files are not what the publisher signed.
fn stored_claim(header: &Header, hash: Hash, dir: &Path) -> Result<Claim> {
    Ok(Claim {
        network: header.network.clone(),
        publisher: header.publisher,
        epoch: header.epoch,
        header_hash: hash,
        mechanism: mechanism::digest_in(dir)?,
    })
}

/// The snapshot a publisher's persisted state names, read back (header
/// opened with its signature checked).
fn resume(shared: &Shared, publisher: &[u8; 32]) -> Result<Option<HeldSnapshot>> {
    let pdir = shared.store.publisher_dir(publisher)?;
    let Some(st) = state::load(&pdir)? else {
        return Ok(None);
    };
    let dir = shared.store.epoch_dir(publisher, st.epoch);
    let (header, bin) = crate::snapshot::dir::read_header(&dir, Some(publisher))?;
    let hash = header_hash(&bin);
    if hash != st.header_hash || header.epoch != st.epoch {
        return Err(ServeError::BadState {
            path: pdir.join(state::STATE_FILE),
            why: format!(
                "names epoch {} with header {}, but {} holds another",
                st.epoch,
                hex::encode(st.header_hash),
                dir.display()
            ),
        });
    }
    let sig_path = dir.join(CLAIM_SIG_FILE);
    let sig: [u8; 64] = std::fs::read(&sig_path)
        .map_err(ServeError::io(&sig_path))?
        .try_into()
        .map_err(|_| ServeError::BadState {
            path: sig_path.clone(),
            why: "not a 64-byte signature".into(),
        })?;
    let claim = stored_claim(&header, hash, &dir)?;
    let announcement = Announcement::new(claim, sig, &shared.key, shared.http)?;
    Ok(Some(HeldSnapshot {
        header,
        header_hash: hash,
        dir,
        announcement,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server whose `/slow` answers after `slow`, stopped while a request
    /// to it is in flight: what the client gets and whether the drain
    /// finished within `drain`.
    async fn stop_during_request(slow: Duration, drain: Duration) -> (bool, String, Duration) {
        let entered = Arc::new(tokio::sync::Notify::new());
        let e = entered.clone();
        let app = axum::Router::new().route(
            "/slow",
            axum::routing::get(move || {
                let e = e.clone();
                async move {
                    e.notify_one();
                    tokio::time::sleep(slow).await;
                    "done"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve_http(listener, app, stop_rx, drain));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        entered.notified().await;
        let t = std::time::Instant::now();
        stop_tx.send(true).unwrap();
        let drained = server.await.unwrap();
        let waited = t.elapsed();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
        (
            drained,
            String::from_utf8_lossy(&answer).into_owned(),
            waited,
        )
    }

    /// A request in flight at shutdown is answered in full when it ends
    /// within the drain time; one that would not is dropped at the
    /// deadline, and shutdown does not wait longer.
    #[tokio::test]
    async fn shutdown_drains_requests_in_flight_up_to_the_deadline() {
        let (drained, answer, _) =
            stop_during_request(Duration::from_millis(100), Duration::from_secs(5)).await;
        assert!(drained);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");

        let (drained, answer, waited) =
            stop_during_request(Duration::from_secs(60), Duration::from_millis(300)).await;
        assert!(!drained);
        assert!(answer.is_empty(), "{answer}");
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }
}
