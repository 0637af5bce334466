//! Signed, verifiable reputation snapshots (DESIGN.md §5).
//!
//! A snapshot is a directory: `header.bin`, the signed header
//! ([`header`], whose documentation is the byte-for-byte format), and the
//! body, the scores (agent, score, rank) as Parquet. The header commits to
//! the body three ways: its size, its SHA-256, and the RFC 6962 Merkle root
//! over its scores sorted by agent id ([`merkle`]), so one agent's score can
//! be checked with the header and a small proof ([`proof`]) instead of the
//! whole body.
//!
//! Verifying a snapshot directory, in order:
//!
//! 1. [`open`] the header: strict parse, the expected publisher, the
//!    signature;
//! 2. [`policy::check`] it against what the verifier remembers and its
//!    clock: rollback, expiry, creation in the future, the chain of
//!    previous-header hashes;
//! 3. [`check_body`]: the body file's size and SHA-256;
//! 4. [`check_tree`] with the [`leaf_hashes`] of the body's scores: the
//!    agent count and the Merkle root.
//!
//! [`verify`] does 1–3 on bytes; the caller decodes the body (Parquet) for
//! 4. Any single changed byte of either file fails 1 or 3.

pub mod audit;
pub mod dir;
pub mod error;
pub mod header;
pub mod merkle;
pub mod policy;
pub mod proof;

pub use error::SnapshotError;
pub use header::{
    canonical_json, header_hash, open, parse_signed, sort_inputs, verify_signature, Header,
    InputDigest,
};
pub use policy::{Chain, Policy, TrustState};
pub use proof::{check_proof, prove, verify_proof, Proof, ProofOutcome};

use merkle::{Hash, MerkleError};
use sha2::{Digest, Sha256};

/// Result alias of this module.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// The header's file name in a snapshot directory.
pub const HEADER_FILE: &str = "header.bin";
/// The body's file name in a snapshot directory.
pub const BODY_FILE: &str = "body.parquet";

/// The size and SHA-256 of a body held in memory.
pub fn body_digest(body: &[u8]) -> (u64, Hash) {
    (body.len() as u64, Sha256::digest(body).into())
}

/// Checks a body's size and SHA-256 (computed by the caller, e.g. while
/// streaming the file) against the header's.
pub fn check_body(header: &Header, size: u64, sha256: &Hash) -> Result<()> {
    if size != header.body_size {
        return Err(SnapshotError::BodySizeMismatch {
            expected: header.body_size,
            found: size,
        });
    }
    if *sha256 != header.body_sha256 {
        return Err(SnapshotError::BodyHashMismatch {
            expected: header.body_sha256,
            found: *sha256,
        });
    }
    Ok(())
}

/// The leaf hashes of a snapshot's scores, `agents` sorted strictly
/// increasing by UTF-8 bytes (checked: [`MerkleError::NotSorted`]) and
/// `scores[i]` the score of `agents[i]`.
pub fn leaf_hashes<S: AsRef<str>>(
    network: &str,
    epoch: u64,
    agents: &[S],
    scores: &[f64],
) -> Result<Vec<Hash>> {
    if agents.len() != scores.len() {
        return Err(MerkleError::LengthMismatch {
            agents: agents.len(),
            scores: scores.len(),
            leaf_hashes: agents.len(),
        }
        .into());
    }
    check_sorted(agents)?;
    agents
        .iter()
        .zip(scores)
        .map(|(a, &s)| merkle::score_leaf_hash(network, epoch, a.as_ref(), s).map_err(Into::into))
        .collect()
}

/// Agent ids strictly increasing by UTF-8 bytes ([`merkle::check_sorted`]).
pub(crate) fn check_sorted<S: AsRef<str>>(agents: &[S]) -> Result<()> {
    Ok(merkle::check_sorted(agents)?)
}

/// Checks that the leaves are as many as the header's agent count and that
/// their Merkle root is the header's.
pub fn check_tree(header: &Header, leaf_hashes: &[Hash]) -> Result<()> {
    let n = leaf_hashes.len() as u64;
    if n != header.agent_count {
        return Err(SnapshotError::AgentCountMismatch {
            expected: header.agent_count,
            found: n,
        });
    }
    let root = merkle::root(leaf_hashes);
    if root != header.merkle_root {
        return Err(SnapshotError::MerkleRootMismatch {
            expected: header.merkle_root,
            found: root,
        });
    }
    Ok(())
}

/// A snapshot that passed [`verify`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub header: Header,
    /// Its [`header_hash`]: what the next snapshot's `prev_header_hash`
    /// must be, and what to remember ([`TrustState::accept`]).
    pub hash: Hash,
    /// How it relates to the previous header the verifier holds.
    pub chain: Chain,
}

/// Steps 1–3 of the module documentation on a snapshot's two files: the
/// header (publisher, signature), the policy at time `now` (Unix seconds)
/// given what the verifier remembers, and the body's size and hash. The
/// Merkle root against the body's decoded scores is [`check_tree`].
pub fn verify(
    header_bin: &[u8],
    body: &[u8],
    now: i64,
    state: &TrustState,
    policy: &Policy,
) -> Result<Verified> {
    let header = open(header_bin, policy.publisher.as_ref())?;
    let chain = policy::check(&header, now, state, policy)?;
    let (size, sha256) = body_digest(body);
    check_body(&header, size, &sha256)?;
    Ok(Verified {
        header,
        hash: header_hash(header_bin),
        chain,
    })
}

/// The byte of `text` a serde_json error points at (serde_json reports a
/// line and a column counted in bytes).
pub(crate) fn json_error_offset(text: &str, e: &serde_json::Error) -> usize {
    let line_start = if e.line() <= 1 {
        0
    } else {
        text.bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .nth(e.line() - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    // Column 0: the newline ending the previous line.
    match e.column() {
        0 => line_start.saturating_sub(1),
        c => (line_start + c - 1).min(text.len()),
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn a_whole_snapshot_verifies() {
        let snap = Snap::new(&agents(5));
        let v = verify(
            &snap.header_bin,
            &snap.body,
            NOW,
            &TrustState::default(),
            &Policy::default(),
        )
        .unwrap();
        assert_eq!(v.header, snap.header);
        assert_eq!(v.hash, header_hash(&snap.header_bin));
        assert_eq!(v.chain, Chain::Unchecked);
        let leaves = leaf_hashes(
            &snap.header.network,
            snap.header.epoch,
            &snap.agents,
            &snap.scores,
        )
        .unwrap();
        check_tree(&v.header, &leaves).unwrap();
    }

    #[test]
    fn body_size_and_hash_are_checked() {
        let snap = Snap::new(&agents(3));
        let mut longer = snap.body.clone();
        longer.push(0);
        let e = verify(
            &snap.header_bin,
            &longer,
            NOW,
            &TrustState::default(),
            &Policy::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            SnapshotError::BodySizeMismatch {
                expected: snap.body.len() as u64,
                found: snap.body.len() as u64 + 1
            }
        );
        let mut changed = snap.body.clone();
        changed[0] ^= 1;
        let e = verify(
            &snap.header_bin,
            &changed,
            NOW,
            &TrustState::default(),
            &Policy::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            SnapshotError::BodyHashMismatch {
                expected: snap.header.body_sha256,
                found: body_digest(&changed).1
            }
        );
    }

    #[test]
    fn tree_checks_count_root_and_order() {
        let snap = Snap::new(&agents(6));
        let net = snap.header.network.clone();
        let epoch = snap.header.epoch;
        let leaves = leaf_hashes(&net, epoch, &snap.agents, &snap.scores).unwrap();
        check_tree(&snap.header, &leaves).unwrap();
        assert_eq!(
            check_tree(&snap.header, &leaves[..5]),
            Err(SnapshotError::AgentCountMismatch {
                expected: 6,
                found: 5
            })
        );
        // One score changed by one ulp.
        let mut scores = snap.scores.clone();
        scores[3] = f64::from_bits(scores[3].to_bits() + 1);
        let other = leaf_hashes(&net, epoch, &snap.agents, &scores).unwrap();
        assert!(matches!(
            check_tree(&snap.header, &other),
            Err(SnapshotError::MerkleRootMismatch { .. })
        ));
        // Another epoch's leaves.
        let other = leaf_hashes(&net, epoch + 1, &snap.agents, &snap.scores).unwrap();
        assert!(matches!(
            check_tree(&snap.header, &other),
            Err(SnapshotError::MerkleRootMismatch { .. })
        ));
        let mut unsorted = snap.agents.clone();
        unsorted.swap(0, 1);
        assert!(matches!(
            leaf_hashes(&net, epoch, &unsorted, &snap.scores),
            Err(SnapshotError::Merkle(MerkleError::NotSorted {
                index: 1,
                ..
            }))
        ));
        assert!(matches!(
            leaf_hashes(&net, epoch, &snap.agents, &snap.scores[1..]),
            Err(SnapshotError::Merkle(MerkleError::LengthMismatch { .. }))
        ));
    }

    /// The requirement, on files: a snapshot directory written to
    /// disk, read back, and every single byte of either file changed.
    #[test]
    fn every_byte_of_a_snapshot_directory_matters() {
        let snap = Snap::new(&agents(4));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HEADER_FILE), &snap.header_bin).unwrap();
        std::fs::write(dir.path().join(BODY_FILE), &snap.body).unwrap();
        let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
        let (header_bin, body) = (read(HEADER_FILE), read(BODY_FILE));
        let policy = Policy {
            publisher: Some(snap.header.publisher),
            after_epoch: None,
        };
        let state = TrustState::default();
        verify(&header_bin, &body, NOW, &state, &policy).unwrap();
        for at in 0..header_bin.len() {
            let mut h = header_bin.clone();
            h[at] ^= 0x01;
            assert!(
                verify(&h, &body, NOW, &state, &policy).is_err(),
                "header byte {at}"
            );
        }
        for at in 0..body.len() {
            let mut b = body.clone();
            b[at] ^= 0x80;
            assert!(
                matches!(
                    verify(&header_bin, &b, NOW, &state, &policy),
                    Err(SnapshotError::BodyHashMismatch { .. })
                ),
                "body byte {at}"
            );
        }
    }

    #[test]
    fn json_offsets_point_at_the_fault() {
        for (text, at) in [
            ("{\"a\":1,}", 7),
            ("{\n  \"a\": tru\n}", 12),
            ("[1, 2", 4),
            ("", 0),
        ] {
            let e = serde_json::from_str::<serde::de::IgnoredAny>(text).unwrap_err();
            assert_eq!(json_error_offset(text, &e), at, "{text:?}: {e}");
        }
    }
}
