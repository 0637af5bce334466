//! `trustmesh serve`: a long-running node that keeps reputation current
//! (DESIGN.md §1 and §5; the guide is docs/serve.md).
//!
//! A publisher node rescans its logs every interval, recomputes with the
//! same code path as `score` when they changed, signs the next snapshot
//! (epoch + 1, chained on the previous header) and announces it. Gossip is
//! bodyless: only small signed [`announce::Announcement`]s and membership
//! travel by gossip ([`gossip`], chitchat); a follower that learns of a newer
//! epoch from a publisher it trusts fetches header and body over HTTP
//! ([`fetch`]) from any node that announces it, verifies the snapshot
//! completely with [`crate::snapshot`], stores it ([`store`], [`state`]) and
//! announces that it holds it too ([`follower`]). A publisher may post a
//! signed [`mechanism`] beside each snapshot, which followers pass on. Every node serves what it
//! holds over HTTP ([`http`]) and, optionally, republishes accepted
//! announcements to an MQTT broker ([`mqtt`]). [`node`] wires it together.
//!
//! One job per module; only [`node`] knows all of them.

pub mod announce;
pub mod error;
pub mod fetch;
pub mod follower;
pub mod gossip;
pub mod http;
pub mod mechanism;
pub mod metrics;
pub mod mqtt;
pub mod node;
pub mod publisher;
pub mod state;
pub mod store;

pub use error::ServeError;

/// Result alias of this module.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// The current time as Unix seconds (0 if the clock is before 1970, which
/// then fails every expiry check rather than panicking).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
