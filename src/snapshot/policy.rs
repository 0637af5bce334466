//! What a verifier accepts over time: the rules that turn a correctly
//! signed header into an acceptable one.
//!
//! A signature says who published a header, not whether it is the one to
//! use now. Like TUF's client workflow, a verifier also remembers what it
//! accepted last ([`TrustState`]), is told what it trusts ([`Policy`]), and
//! [`check`] rejects, in this order:
//!
//! 1. **unknown publisher**: a publisher key is expected and the header's
//!    is another ([`SnapshotError::UnknownPublisher`]);
//! 2. **rollback**: the epoch is not strictly above `after_epoch` (the
//!    verifier's `--after-epoch N`) or the last epoch it accepted
//!    ([`SnapshotError::Rollback`], naming the larger of the two). The same
//!    snapshot again is a rollback too: epochs only go up;
//! 3. **freeze**: the verifier's time is at or after `expires`
//!    ([`SnapshotError::Expired`]): an attacker who withholds new snapshots
//!    can serve an old one only until it expires;
//! 4. **from the future**: `created` is more than [`MAX_CLOCK_SKEW_S`]
//!    (5 minutes) after the verifier's time ([`SnapshotError::FromTheFuture`]):
//!    clocks differ by a little, not by more; a header dated later was made
//!    with a wrong clock, or to outlive its stated lifetime;
//! 5. **broken chain** ([`SnapshotError::BrokenChain`]), below.
//!
//! # The chain of headers
//!
//! Each header names the hash of its publisher's previous header
//! (`prev_header_hash`, all zeros for the first). A verifier can check that
//! link only when it holds that previous header: `last_header_hash` is the
//! [`header_hash`] of a header it holds (the one it
//! accepted last, or the snapshot given with `--prev DIR`), and
//! `last_epoch` that header's epoch. Epochs strictly increase but need not
//! be consecutive (a publisher may skip some), so:
//!
//! - the header's `prev_header_hash` equals `last_header_hash`: linked
//!   ([`Chain::Linked`]), whatever the gap in epochs;
//! - otherwise, if its epoch is `last_epoch + 1`: there is no epoch between
//!   the two, so the header held *must* be its predecessor, and it is not:
//!   a fork, or a rewritten history; rejected;
//! - otherwise (epoch `last_epoch + 2` or more): the publisher may have
//!   published snapshots in between that this verifier never saw, so the
//!   link cannot be judged: accepted as [`Chain::Gap`], and reported as
//!   such (the CLI says the chain was not checked). A verifier that wants
//!   it checked fetches the headers in between and checks each in turn;
//! - a `last_header_hash` without a `last_epoch` is taken as the hash of
//!   the immediate predecessor: it must match;
//! - no `last_header_hash`: nothing to link to ([`Chain::Unchecked`]).
//!
//! A first snapshot (all-zero `prev_header_hash`) after a header the
//! verifier holds is a new chain, and rejected as broken where a link is
//! required.
//!
//! Times are Unix seconds; the caller passes its clock (or `--at TIME`).

use super::error::SnapshotError;
use super::header::{header_hash, Header};
use super::merkle::Hash;

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// How far in the verifier's future a header's `created` may be: 5 minutes.
pub const MAX_CLOCK_SKEW_S: i64 = 300;

/// What a verifier remembers between runs: the epoch and header hash of the
/// last snapshot it accepted (or of the one given with `--prev DIR`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrustState {
    pub last_epoch: Option<u64>,
    pub last_header_hash: Option<Hash>,
}

impl TrustState {
    /// The state after accepting `header`, whose `header.bin` is
    /// `header_bin` (opened, so its signature was checked).
    pub fn accept(header: &Header, header_bin: &[u8]) -> TrustState {
        TrustState {
            last_epoch: Some(header.epoch),
            last_header_hash: Some(header_hash(header_bin)),
        }
    }
}

/// What a verifier is told to trust.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// The only publisher key accepted (`--publisher`); `None` accepts the
    /// key the header names (its signature still has to verify).
    pub publisher: Option<[u8; 32]>,
    /// Accept only epochs above this (`--after-epoch`).
    pub after_epoch: Option<u64>,
}

/// How an accepted header relates to the previous header the verifier
/// holds (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// Its `prev_header_hash` is the hash of the header held, of epoch
    /// `last_epoch` when known.
    Linked { last_epoch: Option<u64> },
    /// Epochs were skipped since `last_epoch`, and the header held is not
    /// its predecessor: the link could not be checked.
    Gap { last_epoch: u64 },
    /// The verifier holds no previous header.
    Unchecked,
}

/// Judges a header (already opened: parsed and its signature checked) at
/// time `now` (Unix seconds), given what the verifier remembers and trusts.
/// See the module documentation for the rules and their order.
pub fn check(header: &Header, now: i64, state: &TrustState, policy: &Policy) -> Result<Chain> {
    if let Some(expected) = policy.publisher {
        if expected != header.publisher {
            return Err(SnapshotError::UnknownPublisher {
                expected,
                found: header.publisher,
            });
        }
    }
    if let Some(last) = policy.after_epoch.max(state.last_epoch) {
        if header.epoch <= last {
            return Err(SnapshotError::Rollback {
                epoch: header.epoch,
                last,
            });
        }
    }
    if now >= header.expires {
        return Err(SnapshotError::Expired {
            expires: header.expires,
            now,
        });
    }
    if header.created > now.saturating_add(MAX_CLOCK_SKEW_S) {
        return Err(SnapshotError::FromTheFuture {
            created: header.created,
            now,
            skew: MAX_CLOCK_SKEW_S,
        });
    }
    let Some(held) = state.last_header_hash else {
        return Ok(Chain::Unchecked);
    };
    if header.prev_header_hash == held {
        return Ok(Chain::Linked {
            last_epoch: state.last_epoch,
        });
    }
    match state.last_epoch {
        // Past the rollback check, so header.epoch > last.
        Some(last) if header.epoch - last > 1 => Ok(Chain::Gap { last_epoch: last }),
        last_epoch => Err(SnapshotError::BrokenChain {
            last_epoch,
            expected: held,
            found: header.prev_header_hash,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{header_hash, open, verify};
    use super::*;

    fn header_at(epoch: u64, prev: Hash) -> (Header, Vec<u8>) {
        let snap = Snap::with(&agents(3), |h| {
            h.epoch = epoch;
            h.prev_header_hash = prev;
        });
        (snap.header, snap.header_bin)
    }

    const OPEN: Policy = Policy {
        publisher: None,
        after_epoch: None,
    };
    const FRESH: TrustState = TrustState {
        last_epoch: None,
        last_header_hash: None,
    };

    #[test]
    fn a_fresh_header_passes() {
        let (h, _) = header_at(EPOCH, [0; 32]);
        assert_eq!(check(&h, NOW, &FRESH, &OPEN), Ok(Chain::Unchecked));
        let policy = Policy {
            publisher: Some(key().verifying_key().to_bytes()),
            after_epoch: Some(EPOCH - 1),
        };
        assert_eq!(check(&h, NOW, &FRESH, &policy), Ok(Chain::Unchecked));
    }

    #[test]
    fn unknown_publisher() {
        let (h, _) = header_at(EPOCH, [0; 32]);
        let other = other_key().verifying_key().to_bytes();
        let policy = Policy {
            publisher: Some(other),
            ..OPEN
        };
        assert_eq!(
            check(&h, NOW, &FRESH, &policy),
            Err(SnapshotError::UnknownPublisher {
                expected: other,
                found: h.publisher
            })
        );
    }

    #[test]
    fn rollback_against_after_epoch_and_the_last_accepted() {
        let (h, _) = header_at(10, [0; 32]);
        for (after, last, bound) in [
            (Some(10), None, 10),
            (Some(11), None, 11),
            (None, Some(10), 10),
            (None, Some(u64::MAX), u64::MAX),
            (Some(3), Some(10), 10),
            (Some(12), Some(10), 12),
        ] {
            let state = TrustState {
                last_epoch: last,
                last_header_hash: None,
            };
            let policy = Policy {
                after_epoch: after,
                ..OPEN
            };
            assert_eq!(
                check(&h, NOW, &state, &policy),
                Err(SnapshotError::Rollback {
                    epoch: 10,
                    last: bound
                }),
                "after {after:?}, last {last:?}"
            );
        }
        let state = TrustState {
            last_epoch: Some(9),
            last_header_hash: None,
        };
        let policy = Policy {
            after_epoch: Some(9),
            ..OPEN
        };
        assert!(check(&h, NOW, &state, &policy).is_ok());
    }

    #[test]
    fn expired_at_and_after_expiry() {
        let (h, _) = header_at(EPOCH, [0; 32]);
        assert!(check(&h, h.expires - 1, &FRESH, &OPEN).is_ok());
        for now in [h.expires, h.expires + 1, i64::MAX] {
            assert_eq!(
                check(&h, now, &FRESH, &OPEN),
                Err(SnapshotError::Expired {
                    expires: h.expires,
                    now
                })
            );
        }
    }

    #[test]
    fn created_in_the_future_beyond_the_skew() {
        let (h, _) = header_at(EPOCH, [0; 32]);
        let now = h.created - MAX_CLOCK_SKEW_S;
        assert!(check(&h, now, &FRESH, &OPEN).is_ok());
        for now in [now - 1, i64::MIN] {
            assert_eq!(
                check(&h, now, &FRESH, &OPEN),
                Err(SnapshotError::FromTheFuture {
                    created: h.created,
                    now,
                    skew: MAX_CLOCK_SKEW_S
                })
            );
        }
    }

    #[test]
    fn chain_linked_broken_or_gapped() {
        let (first, first_bin) = header_at(1, [0; 32]);
        let held = TrustState::accept(&first, &first_bin);
        assert_eq!(held.last_epoch, Some(1));
        assert_eq!(held.last_header_hash, Some(header_hash(&first_bin)));
        let h1 = header_hash(&first_bin);

        // The next epoch, linked.
        let (second, _) = header_at(2, h1);
        assert_eq!(
            check(&second, NOW, &held, &OPEN),
            Ok(Chain::Linked {
                last_epoch: Some(1)
            })
        );
        // Linked across skipped epochs.
        let (later, _) = header_at(5, h1);
        assert_eq!(
            check(&later, NOW, &held, &OPEN),
            Ok(Chain::Linked {
                last_epoch: Some(1)
            })
        );
        // The next epoch, linked to something else, or starting over.
        for prev in [[0x99; 32], [0; 32]] {
            let (fork, _) = header_at(2, prev);
            assert_eq!(
                check(&fork, NOW, &held, &OPEN),
                Err(SnapshotError::BrokenChain {
                    last_epoch: Some(1),
                    expected: h1,
                    found: prev
                })
            );
        }
        // Epochs skipped: the header held may not be the predecessor.
        let (gap, _) = header_at(3, [0x99; 32]);
        assert_eq!(
            check(&gap, NOW, &held, &OPEN),
            Ok(Chain::Gap { last_epoch: 1 })
        );
        // A hash without its epoch must be the predecessor's.
        let hash_only = TrustState {
            last_epoch: None,
            last_header_hash: Some(h1),
        };
        assert_eq!(
            check(&gap, NOW, &hash_only, &OPEN),
            Err(SnapshotError::BrokenChain {
                last_epoch: None,
                expected: h1,
                found: [0x99; 32]
            })
        );
        assert!(check(&later, NOW, &hash_only, &OPEN).is_ok());
        // Without a header held, nothing is linked.
        let epoch_only = TrustState {
            last_epoch: Some(1),
            last_header_hash: None,
        };
        assert_eq!(check(&gap, NOW, &epoch_only, &OPEN), Ok(Chain::Unchecked));
    }

    #[test]
    fn a_chain_of_snapshots_verifies_in_turn() {
        let mut state = TrustState::default();
        let mut prev = [0; 32];
        for epoch in 1..=4 {
            let snap = Snap::with(&agents(epoch as usize), |h| {
                h.epoch = epoch;
                h.prev_header_hash = prev;
            });
            let policy = Policy {
                publisher: Some(snap.header.publisher),
                after_epoch: None,
            };
            let v = verify(&snap.header_bin, &snap.body, NOW, &state, &policy).unwrap();
            let expected = if epoch == 1 {
                Chain::Unchecked
            } else {
                Chain::Linked {
                    last_epoch: Some(epoch - 1),
                }
            };
            assert_eq!(v.chain, expected);
            // Replaying what was just accepted is a rollback.
            let next = TrustState::accept(&open(&snap.header_bin, None).unwrap(), &snap.header_bin);
            assert!(matches!(
                verify(&snap.header_bin, &snap.body, NOW, &next, &policy),
                Err(SnapshotError::Rollback { .. })
            ));
            state = next;
            prev = v.hash;
        }
    }

    #[test]
    fn checks_come_in_the_documented_order() {
        // Wrong publisher, rolled back, expired and from the future at once:
        // the publisher is reported; then the rollback; then the expiry.
        let (h, _) = header_at(5, [0x99; 32]);
        let state = TrustState {
            last_epoch: Some(5),
            last_header_hash: Some([1; 32]),
        };
        let policy = Policy {
            publisher: Some([7; 32]),
            after_epoch: None,
        };
        let late = h.expires + 1;
        assert!(matches!(
            check(&h, late, &state, &policy),
            Err(SnapshotError::UnknownPublisher { .. })
        ));
        assert!(matches!(
            check(&h, late, &state, &OPEN),
            Err(SnapshotError::Rollback { .. })
        ));
        let state = TrustState {
            last_epoch: Some(4),
            ..state
        };
        assert!(matches!(
            check(&h, late, &state, &OPEN),
            Err(SnapshotError::Expired { .. })
        ));
        assert!(matches!(
            check(&h, NOW, &state, &OPEN),
            Err(SnapshotError::BrokenChain { .. })
        ));
    }
}
