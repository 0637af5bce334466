//! A trust model's vectors, computed from a run's logs by the engine's own
//! entry points: [`crate::score::run`] (what `trustmesh score` runs) for
//! `public`, [`crate::score::per_topic::run`] (`score --per-topic`) for
//! `per-topic` and the `mg` family. Nothing here computes trust itself; it
//! only sets the options each model stands for and maps the scored agents
//! back to the simulation's identities.

use std::collections::HashMap;
use std::path::PathBuf;

use super::Model;
use crate::error::{Error, Result};
use crate::score::per_topic::{self, TopicOptions};
use crate::score::{self, ScoreConfig};
use crate::trust::TrustBackend;

/// The share of the cross-topic cold-start prior of the `mg` family
/// (`score --rho`'s default).
pub const MG_RHO: f64 = 0.1;

/// What a run has to score with: the logs so far and the side tables the
/// scenario keeps.
pub struct Inputs<'a> {
    /// Logs directory and pre-trusted peers; the model adds its options.
    pub base: &'a ScoreConfig,
    /// What `mg` scores with where layers are not topics: `base` plus the
    /// scenario's defences (cheap/costly layers, the registry).
    pub mg_base: &'a ScoreConfig,
    /// The scenario's layers, in its order.
    pub topics: &'a [&'a str],
    /// Whether the layers are topics (a vector each, chosen by the query's
    /// topic) or facets of one service (one merged vector).
    pub by_topic: bool,
    /// Stake table (agent, stake) of the identities seen so far, if the
    /// scenario stakes.
    pub stake: Option<PathBuf>,
    /// Fraud proofs found so far (agent, topic, evidence), if any.
    pub fraud_proofs: Option<PathBuf>,
    /// Identity of each agent name.
    pub index: &'a HashMap<String, usize>,
    /// Identities in all.
    pub identities: usize,
}

/// A model's trust: one vector per topic in the scenario's order, or one
/// vector for all topics (`public`). Entries of identities the logs do not
/// name yet are 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicTrust {
    vectors: Vec<Vec<f64>>,
}

impl TopicTrust {
    /// The same vector for every topic.
    pub fn shared(v: Vec<f64>) -> Self {
        TopicTrust { vectors: vec![v] }
    }

    /// Trust in topic `k`.
    pub fn topic(&self, k: usize) -> &[f64] {
        &self.vectors[k.min(self.vectors.len() - 1)]
    }

    /// The mean over topics of identity `i`'s trust.
    pub fn mean_over_topics(&self, i: usize) -> f64 {
        self.vectors.iter().map(|v| v[i]).sum::<f64>() / self.vectors.len() as f64
    }
}

/// The model's trust from `inputs`, or `None` for `random`.
pub fn trust(
    model: Model,
    inputs: &Inputs,
    backend: &dyn TrustBackend,
) -> Result<Option<TopicTrust>> {
    let place = |name: &str, t: &mut [f64], s: f64| -> Result<()> {
        let i = inputs
            .index
            .get(name)
            .ok_or_else(|| Error::internal(format!("scored agent `{name}` is no identity")))?;
        t[*i] = s;
        Ok(())
    };
    let merged = |cfg: &ScoreConfig| -> Result<Option<TopicTrust>> {
        let out = score::run(cfg, backend)?;
        let mut t = vec![0.0; inputs.identities];
        for (name, s) in out.scores.agents.iter().zip(out.scores.scores) {
            place(name, &mut t, s)?;
        }
        Ok(Some(TopicTrust::shared(t)))
    };
    match model {
        Model::Random => Ok(None),
        Model::Public => merged(inputs.base),
        Model::Mg if !inputs.by_topic => {
            let mut cfg = inputs.mg_base.clone();
            cfg.consistency_gate = true;
            merged(&cfg)
        }
        _ if !inputs.by_topic => Err(Error::internal(format!(
            "model `{}` needs a scenario whose layers are topics",
            model.name()
        ))),
        _ => {
            let mut cfg = inputs.base.clone();
            cfg.consistency_gate = model.gate();
            let opts = TopicOptions {
                stake: if model.stakes() {
                    inputs.stake.clone()
                } else {
                    None
                },
                fraud_proofs: if model.slashes() {
                    inputs.fraud_proofs.clone()
                } else {
                    None
                },
                rho: if model.prior() { MG_RHO } else { 0.0 },
                ..TopicOptions::default()
            };
            let out = per_topic::run(&cfg, &opts, backend)?;
            let s = out.scores;
            let mut vectors = vec![vec![0.0; inputs.identities]; inputs.topics.len()];
            for (k, topic) in inputs.topics.iter().enumerate() {
                // A topic nobody has served yet has no vector: all zeros.
                if let Some(j) = s.topics.iter().position(|t| t == topic) {
                    for (name, &v) in s.agents.iter().zip(&s.scores[j]) {
                        place(name, &mut vectors[k], v)?;
                    }
                }
            }
            Ok(Some(TopicTrust { vectors }))
        }
    }
}
