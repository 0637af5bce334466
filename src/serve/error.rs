//! The errors of the serve module.

use std::path::PathBuf;

/// What can go wrong in a node. Errors from peers (announcements, fetched
/// snapshots) are values the node counts and logs; only errors of the node
/// itself (its own files, its sockets) stop it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// An announcement could not be decoded or did not verify.
    #[error("announcement: {0}")]
    Announce(#[from] crate::serve::announce::AnnounceError),

    /// A file of the node's state directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The node's persisted state is not what this version writes.
    #[error("{path}: bad state file: {why}")]
    BadState { path: PathBuf, why: String },

    /// A library call (scoring, snapshot create or verify) failed.
    #[error(transparent)]
    Trustmesh(#[from] crate::Error),

    /// An HTTP fetch from a peer failed (connection, status, size, time).
    #[error("fetch {url}: {why}")]
    Fetch { url: String, why: String },

    /// The gossip layer failed to start or stopped.
    #[error("gossip: {0}")]
    Gossip(String),

    /// The MQTT bridge could not be set up.
    #[error("mqtt: {0}")]
    Mqtt(String),

    /// A snapshot was not accepted because an epoch as high or higher was
    /// accepted meanwhile (by the publisher thread or the follower).
    #[error("epoch {epoch} not accepted: epoch {held} is held already")]
    NotNewer { epoch: u64, held: u64 },

    /// A configuration value is unusable (network name, address).
    #[error("{0}")]
    Config(String),
}

impl ServeError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ServeError {
        let path = path.into();
        move |source| ServeError::Io { path, source }
    }
}
