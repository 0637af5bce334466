//! The node's counters and their Prometheus text exposition (`/metrics`).
//! Plain atomics and one small map: a metrics crate would add a dependency
//! tree for seven series.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Counters shared by the node's tasks.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Seconds of the last recompute, as f64 bits.
    recompute_seconds: AtomicU64,
    recomputes: AtomicU64,
    pub snapshots_fetched: AtomicU64,
    pub fetch_errors: AtomicU64,
    pub equivocations: AtomicU64,
    pub peers_alive: AtomicU64,
    /// Gossip bytes sent and received (the counting transport's).
    pub gossip_sent: Arc<AtomicU64>,
    pub gossip_received: Arc<AtomicU64>,
    pub gossip_rounds: AtomicU64,
    /// MQTT messages dropped because the client's queue was full.
    pub mqtt_dropped: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// The highest epoch seen in a valid announcement, per publisher (hex):
    /// how far gossip got, whether or not the snapshot is held yet.
    announced: Mutex<BTreeMap<String, u64>>,
}

/// One publisher's line of gauges.
pub struct Held {
    pub publisher: String,
    pub epoch: u64,
    pub agents: u64,
}

impl Metrics {
    pub fn reject(&self, reason: &'static str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    pub fn rejected(&self, reason: &str) -> u64 {
        self.rejected
            .lock()
            .ok()
            .and_then(|m| m.get(reason).copied())
            .unwrap_or(0)
    }

    pub fn announced(&self, publisher: &[u8; 32], epoch: u64) {
        if let Ok(mut m) = self.announced.lock() {
            let e = m.entry(hex::encode(publisher)).or_default();
            *e = (*e).max(epoch);
        }
    }

    pub fn recomputed(&self, seconds: f64) {
        self.recompute_seconds.store(seconds.to_bits(), Relaxed);
        self.recomputes.fetch_add(1, Relaxed);
    }

    /// The exposition text (format 0.0.4).
    pub fn render(&self, held: &[Held]) -> String {
        let mut out = String::new();
        for (name, help, value) in [
            (
                "trustmesh_epoch",
                "Highest accepted snapshot epoch per publisher.",
                (|h: &Held| h.epoch) as fn(&Held) -> u64,
            ),
            (
                "trustmesh_agents",
                "Agents in the accepted snapshot per publisher.",
                |h: &Held| h.agents,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for h in held {
                let _ = writeln!(out, "{name}{{publisher=\"{}\"}} {}", h.publisher, value(h));
            }
        }
        let _ = writeln!(
            out,
            "# HELP trustmesh_announced_epoch Highest epoch seen in a valid announcement per publisher.\n# TYPE trustmesh_announced_epoch gauge"
        );
        if let Ok(m) = self.announced.lock() {
            for (publisher, epoch) in m.iter() {
                let _ = writeln!(
                    out,
                    "trustmesh_announced_epoch{{publisher=\"{publisher}\"}} {epoch}"
                );
            }
        }
        let simple: [(&str, &str, &str, String); 10] = [
            (
                "trustmesh_recompute_seconds",
                "gauge",
                "Seconds the last recompute took (publisher).",
                f64::from_bits(self.recompute_seconds.load(Relaxed)).to_string(),
            ),
            (
                "trustmesh_recomputes_total",
                "counter",
                "Recomputes done (publisher).",
                self.recomputes.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_peers_alive",
                "gauge",
                "Live gossip peers, this node excluded.",
                self.peers_alive.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_snapshots_fetched_total",
                "counter",
                "Snapshots fetched from peers, verified and stored.",
                self.snapshots_fetched.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_fetch_errors_total",
                "counter",
                "Fetches that failed before verification (connection, status, time).",
                self.fetch_errors.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_equivocations_total",
                "counter",
                "(publisher, epoch) pairs with two validly signed header hashes.",
                self.equivocations.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_gossip_bytes_sent_total",
                "counter",
                "UDP bytes sent by gossip.",
                self.gossip_sent.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_gossip_bytes_received_total",
                "counter",
                "UDP bytes received by gossip.",
                self.gossip_received.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_gossip_rounds_total",
                "counter",
                "Gossip intervals elapsed since start (to turn bytes into bytes per round).",
                self.gossip_rounds.load(Relaxed).to_string(),
            ),
            (
                "trustmesh_mqtt_dropped_total",
                "counter",
                "MQTT announcements dropped with the client's queue full (broker down); the latest is sent again on reconnection.",
                self.mqtt_dropped.load(Relaxed).to_string(),
            ),
        ];
        for (name, kind, help, value) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP trustmesh_snapshots_rejected_total Announcements and snapshots refused, by reason.\n# TYPE trustmesh_snapshots_rejected_total counter"
        );
        if let Ok(m) = self.rejected.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "trustmesh_snapshots_rejected_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = Metrics::default();
        m.reject("bad_signature");
        m.reject("bad_signature");
        m.recomputed(1.5);
        m.announced(&[0xab; 32], 4);
        m.announced(&[0xab; 32], 3);
        let t = m.render(&[Held {
            publisher: "ab".into(),
            epoch: 3,
            agents: 10,
        }]);
        for needle in [
            "trustmesh_epoch{publisher=\"ab\"} 3",
            "trustmesh_agents{publisher=\"ab\"} 10",
            "trustmesh_recompute_seconds 1.5",
            &format!(
                "trustmesh_announced_epoch{{publisher=\"{}\"}} 4",
                "ab".repeat(32)
            ),
            "trustmesh_snapshots_rejected_total{reason=\"bad_signature\"} 2",
            "trustmesh_equivocations_total 0",
            "trustmesh_peers_alive 0",
            "trustmesh_gossip_bytes_sent_total 0",
            "trustmesh_mqtt_dropped_total 0",
        ] {
            assert!(t.contains(needle), "{needle} in\n{t}");
        }
        assert_eq!(m.rejected("bad_signature"), 2);
    }
}
