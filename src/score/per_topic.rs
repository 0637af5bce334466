//! `score --per-topic`: one trust vector per topic (layer) with stake-weighted
//! dynamic pre-trust, slashing and a cross-topic cold-start prior, plus the
//! global Σ_k λ_k t_k (DESIGN.md §3 "Topics"; docs/trust-model.md §5).
//!
//! Two passes: independent per-topic vectors, all solved in one batched engine
//! call; then each topic again with its prior-adjusted pre-trust, warm-started
//! from its first-pass vector (same engine call shape). A topic whose pre-trust
//! the prior leaves unchanged keeps its first-pass vector, so one topic with no
//! stake equals plain `score` bit for bit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::{
    prepare_table_async, seed_pretrust, PassReport, RunSummary, ScoreConfig, StageSeconds,
};
use crate::error::{params, Error, Message, Result};
use crate::ingest::tables;
use crate::trust::{build_matrices, topics, Batch, Column, TrustBackend, TrustVector};

/// Reserved name of the combined vector in the long output.
pub const GLOBAL: &str = "global";

/// Options that only the per-topic model has.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicOptions {
    pub stake: Option<PathBuf>,
    pub fraud_proofs: Option<PathBuf>,
    /// Weight of the seed pre-trust against stake.
    pub sigma: f64,
    /// Share of the cold-start prior.
    pub rho: f64,
    pub similarity: Option<PathBuf>,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            stake: None,
            fraud_proofs: None,
            sigma: 0.5,
            rho: 0.1,
            similarity: None,
        }
    }
}

/// Per-topic scores over one agent set.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicScores {
    pub agents: Vec<String>,
    /// Topic names, in output order (without `global`).
    pub topics: Vec<String>,
    /// `scores[k][i]`: agent i in topic k.
    pub scores: Vec<Vec<f64>>,
    /// Σ_k λ_k t_k.
    pub global: Vec<f64>,
}

pub struct TopicOutput {
    pub scores: TopicScores,
    pub report: TopicReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicReport {
    #[serde(flatten)]
    pub run: RunSummary,
    pub sigma: f64,
    pub rho: f64,
    pub consistency_gate: bool,
    pub staked_agents: usize,
    pub slashed_agents: usize,
    pub topics: Vec<TopicPass>,
    pub seconds: StageSeconds,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicPass {
    pub topic: String,
    pub weight: f64,
    pub first: PassReport,
    /// None when the prior left the topic's pre-trust unchanged.
    pub second: Option<PassReport>,
}

/// Runs the per-topic model. Synchronous wrapper of [`run_async`].
pub fn run(
    cfg: &ScoreConfig,
    opts: &TopicOptions,
    backend: &dyn TrustBackend,
) -> Result<TopicOutput> {
    crate::runtime::block_on(run_async(cfg, opts, backend))
}

/// As [`run`], on the caller's runtime.
pub async fn run_async(
    cfg: &ScoreConfig,
    opts: &TopicOptions,
    backend: &dyn TrustBackend,
) -> Result<TopicOutput> {
    let params = cfg.iter_params(backend)?;
    super::start::plain_only(cfg)?;
    if cfg.distrust != super::DistrustMode::Ignore {
        let message = Message::new()
            .param(params::DISTRUST)
            .text(" discount is not supported with ")
            .param(params::PER_TOPIC);
        return Err(Error::param(params::DISTRUST, message));
    }
    if !(0.0..=1.0).contains(&opts.rho) {
        let got = opts.rho;
        return Err(Error::param_value(
            params::RHO,
            format!("must be in [0, 1], got {got}"),
        ));
    }
    let table = cfg.read_logs()?;
    if table.layers.iter().any(|l| l == GLOBAL) {
        let message = Message::new()
            .text(format!(
                "layer name `{GLOBAL}` is reserved for the combined vector with "
            ))
            .param(params::PER_TOPIC)
            .text("; rename that layer");
        return Err(Error::param(params::PER_TOPIC, message));
    }

    // Fraud proofs: validated against the logs before anything is computed.
    let proofs = match &opts.fraud_proofs {
        Some(path) => {
            let proofs = tables::read_fraud_proofs(path)?;
            for (agent, topic, row) in &proofs {
                let at = |column: &str, message: String| {
                    Error::invalid(message)
                        .with_row(*row as u64 + 1, column)
                        .with_path(path)
                };
                if table.agents.id(agent).is_none() {
                    return Err(at(
                        "agent",
                        format!("fraud proof for unknown agent `{agent}`"),
                    ));
                }
                if !table.layers.contains(topic) {
                    return Err(at(
                        "topic",
                        format!(
                            "fraud proof for unknown topic `{topic}` (the logs have {})",
                            table.layers.join(", ")
                        ),
                    ));
                }
            }
            proofs
        }
        None => Vec::new(),
    };
    let exclude: Vec<(String, String)> = proofs
        .iter()
        .map(|(a, t, _)| (a.clone(), t.clone()))
        .collect();
    let (graph, local, stats) = prepare_table_async(cfg, table, &exclude).await?;
    let n = graph.n();

    let t_build = Instant::now();
    let mut slashed = vec![false; n];
    for (a, _, _) in &proofs {
        let id = graph.agents.id(a).ok_or_else(|| {
            Error::internal(format!(
                "fraud proof agent `{a}` was checked but is not in the graph"
            ))
        })?;
        slashed[id as usize] = true;
    }
    let stake = match &opts.stake {
        Some(path) => {
            let mut v = vec![0.0f64; n];
            for (agent, s, row) in tables::read_stake(path)? {
                let id = graph.agents.id(&agent).ok_or_else(|| {
                    Error::invalid(format!("stake for unknown agent `{agent}`"))
                        .with_row(row as u64 + 1, "agent")
                        .with_path(path)
                })?;
                v[id as usize] += s;
            }
            Some(v)
        }
        None => None,
    };
    let seed = seed_pretrust(cfg, &graph)?;
    let p = topics::dynamic_pretrust(&seed, stake.as_deref(), &slashed, opts.sigma)?;

    let topic_names: Vec<String> = local
        .layers
        .iter()
        .map(|l| graph.layers[l.index].name.clone())
        .collect();
    let matrices = local
        .layers
        .iter()
        .map(|l| build_matrices(&graph, &local.single(l.index)).map(|(c, _)| c))
        .collect::<Result<Vec<_>>>()?;
    let w = match &opts.similarity {
        Some(path) => tables::read_similarity(path, &topic_names)?,
        None => topics::uniform_similarity(topic_names.len()),
    };
    let build = t_build.elapsed().as_secs_f64();

    // Both passes solve against the same matrices: load them once (a GPU
    // keeps them resident between the passes).
    let t_iter = Instant::now();
    let loaded = backend.load(&matrices.iter().collect::<Vec<_>>())?;
    // Pass 1: independent topics, one engine call.
    let first_cols: Vec<Vec<Column>> = matrices
        .iter()
        .map(|_| vec![Column::new(p.clone())])
        .collect();
    let batches: Vec<Batch> = first_cols
        .iter()
        .enumerate()
        .map(|(matrix, columns)| Batch { matrix, columns })
        .collect();
    let first: Vec<TrustVector> = loaded
        .solve_many(&batches, &params)?
        .into_iter()
        .map(|mut v| v.remove(0))
        .collect();

    // Pass 2: prior-adjusted pre-trust, warm-started; unchanged topics are skipped.
    let first_scores: Vec<Vec<f64>> = first.iter().map(|v| v.scores.clone()).collect();
    let priors: Vec<Vec<f64>> = (0..matrices.len())
        .map(|k| topics::cold_start_prior(&p, k, &w, &first_scores, opts.rho))
        .collect();
    let redo: Vec<usize> = (0..matrices.len()).filter(|&k| priors[k] != p).collect();
    let second_cols: HashMap<usize, Vec<Column>> = redo
        .iter()
        .map(|&k| {
            (
                k,
                vec![Column {
                    pretrust: priors[k].clone(),
                    start: Some(first_scores[k].clone()),
                }],
            )
        })
        .collect();
    let batches: Vec<Batch> = redo
        .iter()
        .map(|k| Batch {
            matrix: *k,
            columns: &second_cols[k],
        })
        .collect();
    let second: Vec<TrustVector> = loaded
        .solve_many(&batches, &params)?
        .into_iter()
        .map(|mut v| v.remove(0))
        .collect();
    let iterate = t_iter.elapsed().as_secs_f64();

    let mut passes = Vec::new();
    let mut finals: Vec<Vec<f64>> = Vec::new();
    for (k, name) in topic_names.iter().enumerate() {
        let second_v = redo.iter().position(|&r| r == k).map(|pos| &second[pos]);
        passes.push(TopicPass {
            topic: name.clone(),
            weight: local.layers[k].weight,
            first: PassReport::of(&first[k], params.alpha),
            second: second_v.map(|v| PassReport::of(v, params.alpha)),
        });
        finals.push(second_v.map_or_else(|| first[k].scores.clone(), |v| v.scores.clone()));
    }
    let mut global = vec![0.0f64; n];
    for (k, t) in finals.iter().enumerate() {
        let lambda = local.layers[k].weight;
        for (g, x) in global.iter_mut().zip(t) {
            *g += lambda * x;
        }
    }

    let report = TopicReport {
        run: RunSummary::new(backend, &graph, &local, &stats, &params).with_inputs(
            cfg.parameters_with(
                &params,
                "per_topic",
                serde_json::json!({"sigma": opts.sigma, "rho": opts.rho}),
            ),
            &[
                cfg.side_files()[0],
                cfg.side_files()[1],
                ("stake", opts.stake.as_deref()),
                ("fraud_proofs", opts.fraud_proofs.as_deref()),
                ("topic_similarity", opts.similarity.as_deref()),
            ],
        )?,
        sigma: opts.sigma,
        rho: opts.rho,
        consistency_gate: cfg.consistency_gate,
        staked_agents: stake
            .as_ref()
            .map_or(0, |s| s.iter().filter(|x| **x > 0.0).count()),
        slashed_agents: slashed.iter().filter(|s| **s).count(),
        topics: passes,
        seconds: StageSeconds::new(&stats, build, iterate),
    };
    Ok(TopicOutput {
        scores: TopicScores {
            agents: graph.agents.names().map(String::from).collect(),
            topics: topic_names,
            scores: finals,
            global,
        },
        report,
    })
}
