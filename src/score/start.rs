//! Warm starts: the power iteration begins from a published snapshot's
//! vector instead of the pre-trust, which saves iterations when the logs
//! grew a little since (`serve --warm-start`, `score --warm-start-from`).
//!
//! A warm start changes the last bits of the result (the iteration stops at
//! another iterate within ε of the same fixed point), so it is part of the
//! job's inputs: the parameters record the start snapshot's header hash,
//! and `snapshot audit --start-from DIR` re-derives from that very vector.
//!
//! Mapping: an agent of the new job starts at its score in the snapshot, an
//! agent the snapshot lacks at 0, and the vector is scaled to sum 1 (the
//! engine's rule, [`crate::trust::engine::normalised_start`]). A snapshot
//! sharing no agent with the job gives no start: the job runs cold, and the
//! report still names the snapshot, so an audit gives the same answer.

use std::collections::HashMap;
use std::path::Path;

use crate::error::Result;
use crate::snapshot::dir::{checked_body, read_header};
use crate::snapshot::header::header_hash;
use crate::snapshot::merkle::Hash;

/// A published vector to start from.
#[derive(Debug, Clone)]
pub struct StartVector {
    /// The header hash of the snapshot it comes from.
    pub snapshot: Hash,
    /// That snapshot's epoch and publisher.
    pub epoch: u64,
    pub publisher: [u8; 32],
    scores: HashMap<String, f64>,
}

impl StartVector {
    /// The vector of the snapshot in `dir`, checked like `snapshot verify`
    /// checks a body (size, SHA-256, Merkle root) against its signed header.
    pub fn from_snapshot(dir: &Path) -> Result<StartVector> {
        let (header, bin) = read_header(dir, None)?;
        let (body, _) = checked_body(dir, &header)?;
        Ok(StartVector {
            snapshot: header_hash(&bin),
            epoch: header.epoch,
            publisher: header.publisher,
            scores: body.agents.into_iter().zip(body.scores).collect(),
        })
    }

    /// The start for a job over `agents` (its order), or None when no agent
    /// has a positive score in the snapshot.
    pub(crate) fn on<'a>(&self, agents: impl Iterator<Item = &'a str>) -> Option<Vec<f64>> {
        let v: Vec<f64> = agents
            .map(|a| self.scores.get(a).copied().unwrap_or(0.0))
            .collect();
        // Published scores are finite and non-negative (checked bodies).
        let sum: f64 = v.iter().sum();
        (sum > 0.0 && sum.is_finite()).then_some(v)
    }
}

/// Refuses a warm start in a job of several vectors (one start vector
/// cannot serve them all).
pub(crate) fn plain_only(cfg: &super::ScoreConfig) -> Result<()> {
    if cfg.start.is_some() {
        return Err(crate::error::Error::param(
            crate::error::params::START,
            "a warm start is for a job of one vector, not for per-topic, per-layer or pre-trust-set batches",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_map_by_id_and_missing_ones_start_at_zero() {
        let s = StartVector {
            snapshot: [0; 32],
            epoch: 1,
            publisher: [0; 32],
            scores: [("a".to_string(), 0.75), ("b".to_string(), 0.25)]
                .into_iter()
                .collect(),
        };
        assert_eq!(
            s.on(["b", "new", "a"].into_iter()),
            Some(vec![0.25, 0.0, 0.75])
        );
        assert_eq!(s.on(["x", "y"].into_iter()), None);
    }
}
