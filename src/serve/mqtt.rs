//! The MQTT bridge (rumqttc): with `--mqtt mqtt://HOST:PORT` a node also
//! publishes each snapshot it accepts to
//! `trustmesh/<network>/<publisher hex>/announce`, QoS 1 (at least once),
//! retained (a subscriber arriving later gets the latest at once). The
//! payload is JSON: `network`, `publisher`, `epoch`, `header_hash`, `http`
//! (where the node serves it) and `announcement`, the signed announcement
//! in hex, which a subscriber can verify like a gossip peer does.
//!
//! The client's event loop runs as a task and reconnects by itself; a
//! broker that is down delays the bridge, never the node: messages are
//! queued without waiting (`try_publish`), and one that does not fit the
//! queue is dropped and counted (`trustmesh_mqtt_dropped_total`). On every
//! (re)connection the latest held announcement of each publisher is
//! published again, so a drop or a broker that lost its retained messages
//! is repaired; repeats are harmless (retained, the same payload).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

use super::metrics::Metrics;
use super::node::HeldSnapshot;
use super::{Result, ServeError};

/// The latest message per publisher: (epoch, topic, payload).
type Latest = Arc<Mutex<BTreeMap<[u8; 32], (u64, String, String)>>>;

/// A connected (or connecting) MQTT client.
pub struct Mqtt {
    client: AsyncClient,
    latest: Latest,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
}

/// The topic announcements of `publisher` go to.
pub fn topic(network: &str, publisher: &[u8; 32]) -> String {
    format!("trustmesh/{network}/{}/announce", hex::encode(publisher))
}

/// `mqtt://HOST:PORT` (or `HOST:PORT`) as host and port; 1883 by default.
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let bad = |why: &str| ServeError::Config(format!("--mqtt {url:?}: {why}"));
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(bad(&format!(
                "scheme `{scheme}` is not supported (plain mqtt:// only)"
            )))
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse().map_err(|_| bad("the port is not a number"))?)
        }
        _ => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad("expected mqtt://HOST:PORT"));
    }
    Ok((host.to_string(), port))
}

impl Mqtt {
    /// Starts a client of the broker at `url`, identified as `client_id`.
    pub fn connect(url: &str, client_id: &str, metrics: Arc<Metrics>) -> Result<Mqtt> {
        let (host, port) = parse_url(url)?;
        // Client ids are at most 23 bytes in MQTT 3.1.1's guarantee.
        let id: String = format!("tm-{}", &client_id[..client_id.len().min(20)]);
        let mut opts = MqttOptions::new(id, host, port);
        opts.set_keep_alive(Duration::from_secs(15));
        let (client, mut events) = AsyncClient::new(opts, 64);
        let latest: Latest = Default::default();
        let (again, m, c) = (latest.clone(), metrics.clone(), client.clone());
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let msgs: Vec<(u64, String, String)> = again
                            .lock()
                            .map(|l| l.values().cloned().collect())
                            .unwrap_or_default();
                        for (_, topic, payload) in msgs {
                            // Not awaited: this task drains the queue.
                            if c.try_publish(topic, QoS::AtLeastOnce, true, payload)
                                .is_err()
                            {
                                m.mqtt_dropped.fetch_add(1, Relaxed);
                            }
                        }
                    }
                    Ok(_) => {}
                    // The next poll reconnects; wait a little first.
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        });
        Ok(Mqtt {
            client,
            latest,
            metrics,
            task,
        })
    }

    /// Records the announcement of a held snapshot as the latest of its
    /// publisher, and with `send` queues it (QoS 1, retained) without
    /// waiting: a full queue (broker down) drops it, counted, and the next
    /// connection publishes the latest again.
    pub fn publish(&self, network: &str, h: &HeldSnapshot, send: bool) -> Result<()> {
        let payload = json!({
            "network": network,
            "publisher": hex::encode(h.header.publisher),
            "epoch": h.header.epoch,
            "header_hash": hex::encode(h.header_hash),
            "http": h.announcement.http.to_string(),
            "announcement": h.announcement.to_text()?,
        })
        .to_string();
        let topic = topic(network, &h.header.publisher);
        if let Ok(mut l) = self.latest.lock() {
            let e = l
                .entry(h.header.publisher)
                .or_insert((0, String::new(), String::new()));
            if h.header.epoch >= e.0 {
                *e = (h.header.epoch, topic.clone(), payload.clone());
            }
        }
        if !send {
            return Ok(());
        }
        self.client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
            .map_err(|e| {
                self.metrics.mqtt_dropped.fetch_add(1, Relaxed);
                ServeError::Mqtt(format!("announcement dropped: {e}"))
            })
    }

    /// Disconnects, giving queued messages a moment to leave.
    pub async fn disconnect(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.disconnect()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no broker, publishing neither waits nor blocks: what does not
    /// fit the queue is dropped and counted.
    #[tokio::test]
    async fn a_broker_down_never_blocks_publishing() {
        use crate::serve::announce::{Announcement, Claim};
        use crate::snapshot::header::header_hash;
        use crate::snapshot::testutil::{agents, key, Snap};
        let snap = Snap::new(&agents(4));
        let claim = Claim {
            network: snap.header.network.clone(),
            publisher: snap.header.publisher,
            epoch: snap.header.epoch,
            header_hash: header_hash(&snap.header_bin),
            mechanism: None,
        };
        let sig = claim.sign(&key()).unwrap();
        let announcement =
            Announcement::new(claim, sig, &key(), "127.0.0.1:9".parse().unwrap()).unwrap();
        let h = HeldSnapshot {
            header: snap.header.clone(),
            header_hash: header_hash(&snap.header_bin),
            dir: std::path::PathBuf::new(),
            announcement,
        };
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let metrics = Arc::new(Metrics::default());
        let m =
            Mqtt::connect(&format!("mqtt://127.0.0.1:{port}"), "test", metrics.clone()).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..200 {
            let _ = m.publish(&h.header.network, &h, true);
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(metrics.mqtt_dropped.load(Relaxed) > 0);
        m.disconnect().await;
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(parse_url("localhost").unwrap(), ("localhost".into(), 1883));
        assert_eq!(parse_url("tcp://[::1]:99/").unwrap(), ("::1".into(), 99));
        assert!(parse_url("mqtts://h:1").is_err());
        assert!(parse_url("mqtt://h:x").is_err());
        assert!(parse_url("mqtt://").is_err());
    }
}
