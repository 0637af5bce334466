//! Batched scoring: many trust vectors in one engine call.
//!
//! `--pretrusted-sets` gives personalised trust for many observers at once:
//! every set is a column of one block against the same matrix, so the matrix is
//! read once per iteration for all of them. `--per-layer` gives one vector per
//! scored layer, each against its own layer's matrix, in one `solve_many` call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::{
    prepare_async, seed_pretrust, DistrustMode, PassReport, RunSummary, ScoreConfig, StageSeconds,
};
use crate::error::{Error, Result, ResultExt};
use crate::ingest::tables;
use crate::trust::{build_matrices, distrust, pretrust, Column, Problem, TrustBackend};

/// Which vectors to compute.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchKind {
    /// Personalised trust per set of pre-trusted agents (Parquet or CSV: set, agent).
    PretrustSets(PathBuf),
    /// One vector per scored layer.
    PerLayer,
}

impl BatchKind {
    /// The sets file, for `PretrustSets`.
    pub fn sets_file(&self) -> Option<&std::path::Path> {
        match self {
            BatchKind::PretrustSets(p) => Some(p),
            BatchKind::PerLayer => None,
        }
    }

    /// Name of the group column in the long output.
    pub fn key(&self) -> &'static str {
        match self {
            BatchKind::PretrustSets(_) => "set",
            BatchKind::PerLayer => "layer",
        }
    }
}

pub struct BatchOutput {
    pub agents: Vec<String>,
    /// (group name, scores), in output order.
    pub groups: Vec<(String, Vec<f64>)>,
    pub report: BatchReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    #[serde(flatten)]
    pub run: RunSummary,
    pub distrust: DistrustMode,
    pub groups: BTreeMap<String, PassReport>,
    pub seconds: StageSeconds,
}

/// Runs a batched job. Synchronous wrapper of [`run_async`].
pub fn run(cfg: &ScoreConfig, kind: &BatchKind, backend: &dyn TrustBackend) -> Result<BatchOutput> {
    crate::runtime::block_on(run_async(cfg, kind, backend))
}

/// As [`run`], on the caller's runtime.
pub async fn run_async(
    cfg: &ScoreConfig,
    kind: &BatchKind,
    backend: &dyn TrustBackend,
) -> Result<BatchOutput> {
    let params = cfg.iter_params(backend)?;
    super::start::plain_only(cfg)?;
    let (graph, local, stats) = prepare_async(cfg).await?;
    let t_build = Instant::now();
    // (group name, matrix index, pre-trust)
    let (names, matrices, columns): (Vec<String>, Vec<_>, Vec<Vec<Column>>) = match kind {
        BatchKind::PretrustSets(path) => {
            let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (set, agent, row) in tables::read_pretrust_sets(path)? {
                if graph.agents.id(&agent).is_none() {
                    return Err(Error::invalid(format!(
                        "pre-trusted agent `{agent}` does not appear in the logs"
                    ))
                    .with_row(row as u64 + 1, "agent")
                    .with_path(path));
                }
                sets.entry(set).or_default().push(agent);
            }
            if sets.is_empty() {
                return Err(Error::invalid("no pre-trust sets").with_path(path));
            }
            let cols = sets
                .values()
                .map(|members| pretrust::from_set(&graph.agents, members).map(Column::new))
                .collect::<Result<Vec<_>>>()
                .with_path(path)?;
            let both = build_matrices(&graph, &local)?;
            (sets.into_keys().collect(), vec![both], vec![cols])
        }
        BatchKind::PerLayer => {
            let p = seed_pretrust(cfg, &graph)?;
            let mut names = Vec::new();
            let mut mats = Vec::new();
            for l in &local.layers {
                names.push(graph.layers[l.index].name.clone());
                mats.push(build_matrices(&graph, &local.single(l.index))?);
            }
            let cols = mats.iter().map(|_| vec![Column::new(p.clone())]).collect();
            (names, mats, cols)
        }
    };
    let build = t_build.elapsed().as_secs_f64();

    let t_iter = Instant::now();
    let problems: Vec<Problem> = matrices
        .iter()
        .zip(&columns)
        .map(|((c, _), cols)| Problem {
            matrix: c,
            columns: cols,
        })
        .collect();
    let solved = backend.solve_many(&problems, &params)?;
    let mut groups = Vec::new();
    let mut reports = BTreeMap::new();
    for (m, vs) in matrices.iter().zip(solved) {
        for v in vs {
            let name = names[groups.len()].clone();
            reports.insert(name.clone(), PassReport::of(&v, params.alpha));
            let scores = match cfg.distrust {
                DistrustMode::Ignore => v.scores,
                DistrustMode::Discount => distrust::discount(&v.scores, &m.1).0,
            };
            groups.push((name, scores));
        }
    }
    let iterate = t_iter.elapsed().as_secs_f64();
    let report = BatchReport {
        run: RunSummary::new(backend, &graph, &local, &stats, &params).with_inputs(
            cfg.parameters_with(&params, "batch", serde_json::json!(kind.key())),
            &[
                cfg.side_files()[0],
                cfg.side_files()[1],
                ("pretrusted_sets", kind.sets_file()),
            ],
        )?,
        distrust: cfg.distrust,
        groups: reports,
        seconds: StageSeconds::new(&stats, build, iterate),
    };
    Ok(BatchOutput {
        agents: graph.agents.names().map(String::from).collect(),
        groups,
        report,
    })
}
