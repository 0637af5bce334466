//! Membership and announcement spreading over chitchat 0.13 (scuttlebutt
//! anti-entropy, phi-accrual failure detection; late joiners catch up).
//!
//! Each node keeps one key per publisher it holds a snapshot of,
//! `ann:<publisher hex>`, whose value is its latest
//! [`crate::serve::announce::Announcement`] as hex. chitchat authenticates
//! nothing, so the values read back here are untrusted text: the follower
//! opens each one ([`crate::serve::announce::Announcement::open_text`]) and
//! ignores those that do not verify. The transport is chitchat's UDP one,
//! wrapped to count bytes for `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatEnvelope, ChitchatHandle, ChitchatId,
    FailureDetectorConfig, ProtocolVersion,
};

use super::{Result, ServeError};

/// The key prefix of announcements.
pub const ANNOUNCE_PREFIX: &str = "ann:";
/// A node about to leave sets this key, so peers ask it last before the
/// failure detector notices. Only a hint: chitchat lets any peer push any
/// node's state, so a rogue could set it on honest nodes; an announcement
/// of a node marked leaving is still used, after the others.
pub const LEAVING_KEY: &str = "leaving";

/// How a node joins the gossip.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Unique in the cluster: the node's public key (hex).
    pub node_id: String,
    pub listen: SocketAddr,
    pub seeds: Vec<String>,
    pub interval: Duration,
    /// Nodes of other clusters (networks) are ignored by chitchat itself.
    pub cluster: String,
}

/// A running gossip participant.
pub struct Gossip {
    handle: ChitchatHandle,
    interval: Duration,
}

/// One key/value of one live node.
#[derive(Debug, Clone)]
pub struct Entry {
    pub node_id: String,
    pub key: String,
    pub value: String,
    /// The node says it is leaving (unauthenticated: a hint only).
    pub leaving: bool,
}

impl Gossip {
    /// Binds the UDP socket and starts gossiping; `sent`/`received` count
    /// the bytes.
    pub async fn start(
        cfg: GossipConfig,
        sent: Arc<AtomicU64>,
        received: Arc<AtomicU64>,
    ) -> Result<Gossip> {
        // The CLI bounds the interval; a library caller's huge one must
        // not panic either (saturating products below).
        // The generation tells a restarted node from its previous life, so
        // peers take its fresh state instead of the old one's versions.
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let interval = cfg.interval;
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(cfg.node_id, generation, cfg.listen),
            cluster_id: cfg.cluster,
            gossip_interval: interval,
            listen_addr: cfg.listen,
            seed_nodes: cfg.seeds,
            failure_detector_config: FailureDetectorConfig {
                // Heartbeats arrive every few intervals: a node silent for a
                // couple of seconds is dead, not tens of seconds.
                initial_interval: interval.saturating_mul(4),
                max_interval: interval.saturating_mul(20).max(Duration::from_secs(2)),
                dead_node_grace_period: Duration::from_secs(600),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            // V1 compresses the digest; every node of a trustmesh network runs
            // this code, so none needs the older format.
            protocol_version: ProtocolVersion::V1,
        };
        let transport = Counting { sent, received };
        let handle = spawn_chitchat(config, Vec::new(), &transport)
            .await
            .map_err(|e| ServeError::Gossip(format!("{e:#}")))?;
        Ok(Gossip { handle, interval })
    }

    /// Sets one of this node's keys.
    pub async fn set(&self, key: &str, value: &str) {
        self.handle
            .with_chitchat(|c| c.self_node_state().set(key, value))
            .await;
    }

    /// Every key with `prefix` of every live node (this one included), with
    /// whether the node is marked leaving.
    pub async fn entries(&self, prefix: &str) -> Vec<Entry> {
        self.handle
            .with_chitchat(|c| {
                let live: Vec<ChitchatId> = c.live_nodes().cloned().collect();
                let mut out = Vec::new();
                for id in &live {
                    let Some(state) = c.node_state(id) else {
                        continue;
                    };
                    let leaving = state.get(LEAVING_KEY).is_some();
                    for (k, v) in state.key_values() {
                        if k.starts_with(prefix) {
                            out.push(Entry {
                                node_id: id.node_id.to_string(),
                                key: k.to_string(),
                                value: v.to_string(),
                                leaving,
                            });
                        }
                    }
                }
                out
            })
            .await
    }

    /// Live peers, this node excluded.
    pub async fn peers_alive(&self) -> usize {
        self.handle
            .with_chitchat(|c| c.live_nodes().count().saturating_sub(1))
            .await
    }

    /// The gossip interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Leaves: marks this node as leaving, lets a few rounds carry that to
    /// peers, then stops the server.
    pub async fn leave(&self) {
        self.set(LEAVING_KEY, "1").await;
        tokio::time::sleep(self.interval.saturating_mul(3)).await;
        let _ = self.handle.initiate_shutdown();
    }
}

/// chitchat's UDP transport, counting bytes.
struct Counting {
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

#[async_trait]
impl Transport for Counting {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        Ok(Box::new(CountingSocket {
            inner: UdpTransport.open(listen_addr).await?,
            sent: self.sent.clone(),
            received: self.received.clone(),
        }))
    }
}

struct CountingSocket {
    inner: Box<dyn Socket>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

#[async_trait]
impl Socket for CountingSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let out = self.inner.send(to, envelope).await?;
        self.sent.fetch_add(out.num_bytes_sent as u64, Relaxed);
        Ok(out)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        let out = self.inner.recv().await?;
        self.received
            .fetch_add(out.num_bytes_received as u64, Relaxed);
        Ok(out)
    }
}
