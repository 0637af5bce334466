//! Why a snapshot, a header or a proof is rejected: [`SnapshotError`].
//!
//! One variant per kind of rejection, so a caller (the CLI, a node deciding
//! whether to keep serving) can branch on the cause; each message says what
//! was expected and what was found, hashes and keys as lowercase hex. The
//! location (which file) is not part of the message: trustmesh adds it
//! around the error (`Error::WithPath`, docs/errors.md).

use super::merkle::{Hash, MerkleError};

/// Lowercase hex of a 32-byte hash or key, for messages.
fn hx(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

/// " at byte N" when the byte is known.
fn at_byte(offset: &Option<u64>) -> String {
    offset.map_or_else(String::new, |o| format!(" at byte {o}"))
}

/// " (that of epoch N)" when the epoch is known.
fn of_epoch(epoch: &Option<u64>) -> String {
    epoch.map_or_else(String::new, |e| format!(" (that of epoch {e})"))
}

/// Everything that makes a snapshot, a header or a proof unacceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The header's signature does not verify under the publisher key the
    /// header names (or that key is not a valid ed25519 point).
    #[error("bad signature: the header's signature does not verify under its publisher key {}", hx(.publisher))]
    BadSignature { publisher: [u8; 32] },

    /// The header is signed by another key than the one the verifier trusts
    /// (or, from `Header::sign`, the signing key is not the header's
    /// publisher key).
    #[error("unknown publisher: expected key {}, found {}", hx(.expected), hx(.found))]
    UnknownPublisher { expected: [u8; 32], found: [u8; 32] },

    /// The body's SHA-256 is not the one the header states.
    #[error("body hash mismatch: the header says SHA-256 {}, the body hashes to {}", hx(.expected), hx(.found))]
    BodyHashMismatch { expected: Hash, found: Hash },

    /// The body's size is not the one the header states.
    #[error("body size mismatch: the header says {expected} bytes, the body has {found}")]
    BodySizeMismatch { expected: u64, found: u64 },

    /// The epoch is not above the last one accepted (or the one the verifier
    /// asked to be above).
    #[error("epoch {epoch} is not above the last accepted {last} (rollback)")]
    Rollback { epoch: u64, last: u64 },

    /// The snapshot's validity ended at or before the verifier's time.
    #[error(
        "expired at {expires} (unix seconds), expected a time before it; now is {now} (freeze)"
    )]
    Expired { expires: i64, now: i64 },

    /// The snapshot says it was created later than the verifier's time plus
    /// the allowed clock skew.
    #[error("created at {created} (unix seconds), expected at most {skew} s after now ({now})")]
    FromTheFuture { created: i64, now: i64, skew: i64 },

    /// The header does not link to the previous header the verifier holds.
    #[error("broken chain: expected the previous header hash {}{}, found {}", hx(.expected), of_epoch(.last_epoch), hx(.found))]
    BrokenChain {
        /// The epoch of the header the verifier holds, when it knows it.
        last_epoch: Option<u64>,
        /// The hash of the header the verifier holds.
        expected: Hash,
        /// The header's `prev_header_hash`.
        found: Hash,
    },

    /// Bytes that are not a header or a proof: truncated, trailing bytes,
    /// wrong magic or version, invalid UTF-8 or JSON, values out of their
    /// domain. `offset` is the byte of the input where the fault was found
    /// (for a header, of `header.bin`; for a proof, of its JSON), when
    /// there is one: a proof whose fields disagree with each other has
    /// none.
    #[error("malformed{}: {what}", at_byte(.offset))]
    Malformed { what: String, offset: Option<u64> },

    /// An input, a field or a list is longer than its limit; checked before
    /// anything is allocated for it.
    #[error("{what} is {size}, expected at most {limit}")]
    Oversized {
        what: &'static str,
        size: u64,
        limit: u64,
    },

    /// The Merkle root recomputed from a proof or from the body is not the
    /// header's.
    #[error("Merkle root mismatch: the header says {}, recomputed {}", hx(.expected), hx(.found))]
    MerkleRootMismatch { expected: Hash, found: Hash },

    /// The number of leaves (agents) is not the header's agent count.
    #[error("agent count mismatch: the header says {expected} agents, found {found}")]
    AgentCountMismatch { expected: u64, found: u64 },

    /// A proof is for another snapshot than the header given with it: its
    /// network id, epoch or tree size differs.
    #[error("proof does not match the header: the header's {what} is {expected}, the proof's is {found}")]
    ProofMismatch {
        what: &'static str,
        expected: String,
        found: String,
    },

    /// A Merkle proof is invalid for another reason than its root (wrong
    /// length, neighbours out of order or not adjacent, index out of range).
    #[error("{0}")]
    Merkle(#[from] MerkleError),
}

impl SnapshotError {
    /// A [`SnapshotError::Malformed`] at byte `offset`.
    pub(crate) fn malformed(what: impl Into<String>, offset: usize) -> Self {
        SnapshotError::Malformed {
            what: what.into(),
            offset: Some(offset as u64),
        }
    }

    /// A [`SnapshotError::Malformed`] with no byte to point at.
    pub(crate) fn inconsistent(what: impl Into<String>) -> Self {
        SnapshotError::Malformed {
            what: what.into(),
            offset: None,
        }
    }

    /// A Merkle error, with a root mismatch reported as
    /// [`SnapshotError::MerkleRootMismatch`] (the kind `verify` names).
    pub(crate) fn from_merkle(e: MerkleError) -> Self {
        match e {
            MerkleError::RootMismatch { expected, computed } => SnapshotError::MerkleRootMismatch {
                expected,
                found: computed,
            },
            other => SnapshotError::Merkle(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_was_expected_and_found() {
        let cases: Vec<(SnapshotError, Vec<String>)> = vec![
            (
                SnapshotError::BadSignature {
                    publisher: [0xab; 32],
                },
                vec!["ab".repeat(32)],
            ),
            (
                SnapshotError::UnknownPublisher {
                    expected: [0x01; 32],
                    found: [0x02; 32],
                },
                vec!["01".repeat(32), "02".repeat(32)],
            ),
            (
                SnapshotError::BodyHashMismatch {
                    expected: [0x03; 32],
                    found: [0x04; 32],
                },
                vec!["03".repeat(32), "04".repeat(32)],
            ),
            (
                SnapshotError::BodySizeMismatch {
                    expected: 10,
                    found: 11,
                },
                vec!["10".into(), "11".into()],
            ),
            (
                SnapshotError::Rollback { epoch: 4, last: 5 },
                vec!["4".into(), "5".into(), "rollback".into()],
            ),
            (
                SnapshotError::Expired {
                    expires: 100,
                    now: 200,
                },
                vec!["100".into(), "200".into()],
            ),
            (
                SnapshotError::BrokenChain {
                    last_epoch: Some(6),
                    expected: [0x05; 32],
                    found: [0x06; 32],
                },
                vec!["05".repeat(32), "06".repeat(32), "epoch 6".into()],
            ),
            (
                SnapshotError::MerkleRootMismatch {
                    expected: [0x07; 32],
                    found: [0x08; 32],
                },
                vec!["07".repeat(32), "08".repeat(32)],
            ),
            (
                SnapshotError::Merkle(MerkleError::NotFirst { index: 3 }),
                vec!["index 3".into()],
            ),
        ];
        for (e, wanted) in cases {
            let text = e.to_string();
            for w in wanted {
                assert!(text.contains(&w), "{text:?} lacks {w:?}");
            }
        }
        assert_eq!(
            SnapshotError::malformed("truncated", 12).to_string(),
            "malformed at byte 12: truncated"
        );
        assert_eq!(
            SnapshotError::inconsistent("score disagrees").to_string(),
            "malformed: score disagrees"
        );
        assert_eq!(
            SnapshotError::Oversized {
                what: "proof path length in hashes",
                size: 65,
                limit: 64
            }
            .to_string(),
            "proof path length in hashes is 65, expected at most 64"
        );
    }

    #[test]
    fn root_mismatch_gets_its_own_kind() {
        let e = SnapshotError::from_merkle(MerkleError::RootMismatch {
            expected: [1; 32],
            computed: [2; 32],
        });
        assert_eq!(
            e,
            SnapshotError::MerkleRootMismatch {
                expected: [1; 32],
                found: [2; 32]
            }
        );
        let e = SnapshotError::from_merkle(MerkleError::NoNeighbour { tree_size: 2 });
        assert!(matches!(e, SnapshotError::Merkle(_)));
    }
}
