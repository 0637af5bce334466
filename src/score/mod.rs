//! The batch scoring job: logs in, one trust vector out, plus the report.
//!
//! This is the one place that strings the stages together for `trustmesh
//! score`; it resolves command-line level choices (which layers, which weights,
//! which pre-trust) against what the logs actually contain, so every such
//! mistake is caught before any work is done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{params, Error, Message, Result, ResultExt};
use crate::graph::MultiGraph;
use crate::ingest::auth::RowAuth;
use crate::ingest::{files, quoted_list, DropCounts, IngestOptions, IngestStats, LogTable};
use crate::provenance::{self, InputFile};
use crate::runtime;
use crate::trust::{
    build_matrices, distrust, pretrust, topics, Column, IterParams, LocalTrustConfig, ScoredLayer,
    Scores, StopReason, TrustBackend, TrustVector,
};

pub mod batched;
pub mod check;
pub mod per_topic;
pub mod start;

/// Share of a cheap layer's edge kept without corroboration (β, DESIGN.md §3).
pub const DEFAULT_BETA: f64 = 0.2;
/// Costly volume at which a cheap edge keeps all its trust (τ).
pub const DEFAULT_TAU: f64 = 1.0;
/// How many top agents a flat-tail stop watches ([`crate::trust::FlatTail::top`]).
pub const DEFAULT_FLAT_TAIL_TOP: usize = 100;

/// How negative local trust is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistrustMode {
    /// Original EigenTrust: negative trust is clipped to zero.
    #[default]
    Ignore,
    /// One-shot discount after convergence (see `trust::distrust`).
    Discount,
}

/// Everything `score` needs, as the user gave it.
#[derive(Debug, Clone, Default)]
pub struct ScoreConfig {
    pub logs: Vec<String>,
    pub ingest: IngestOptions,
    /// `--layer-weight NAME=W`, in the order given.
    pub layer_weights: Vec<(String, f64)>,
    pub cheap: Vec<String>,
    pub costly: Vec<String>,
    pub beta: f64,
    pub tau: f64,
    pub pretrusted: Option<PathBuf>,
    /// Iteration parameters; `epsilon` of `None` takes the back end's default.
    pub alpha: f64,
    pub epsilon: Option<f64>,
    pub max_iter: u32,
    pub flat_tail: Option<crate::trust::FlatTail>,
    pub distrust: DistrustMode,
    /// Scale each rater's feedback by its agreement with the consensus.
    pub consistency_gate: bool,
    /// The BAID ledger: only rows whose rater is registered are scored.
    pub registry: Option<PathBuf>,
    /// Only rows whose `sig` verifies against the rater's registered key
    /// (needs `registry`).
    pub require_signatures: bool,
    /// Start the iteration from a published vector ([`start`]); plain jobs
    /// only.
    pub start: Option<start::StartVector>,
}

/// Result of a scoring run.
pub struct ScoreOutput {
    pub scores: Scores,
    pub report: Report,
}

/// The `--report` JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub run: RunSummary,
    pub iterations: u32,
    pub residual: f64,
    /// residual / alpha: L1 distance to the exact fixed point is at most this.
    pub error_bound: f64,
    pub stop: StopReason,
    pub distrust: DistrustMode,
    pub distrust_applied: bool,
    pub seconds: StageSeconds,
}

/// The part of every report that describes the input and the parameters; the
/// report minus its timings is also the score file's provenance
/// ([`crate::provenance`]).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The trustmesh version that made the scores.
    pub version: &'static str,
    pub device: String,
    /// `f64` (CPU) or `f32` (GPU).
    pub precision: &'static str,
    /// Every parameter of the job, as the library names them.
    pub parameters: serde_json::Value,
    /// Every input file with its size and SHA-256.
    pub inputs: Vec<InputFile>,
    /// The logs read, hashed into `inputs` by [`Self::with_inputs`].
    #[serde(skip)]
    log_paths: Vec<PathBuf>,
    pub files: usize,
    pub rows_read: u64,
    pub rows_used: u64,
    pub rows_dropped: DropCounts,
    pub agents: usize,
    pub layers: Vec<LayerReport>,
    /// (src, dst) pairs with at least one interaction, per layer, whatever
    /// the sign of their summed trust.
    pub edges_per_layer: BTreeMap<String, usize>,
    /// The pairs whose summed trust is positive: the ones local trust (and so
    /// the trust matrix) is built from.
    pub trust_edges_per_layer: BTreeMap<String, usize>,
    pub alpha: f64,
    pub epsilon: f64,
}

impl RunSummary {
    /// The summary of a run; [`Self::with_inputs`] adds its parameters and
    /// input digests.
    pub(crate) fn new(
        backend: &dyn TrustBackend,
        graph: &MultiGraph,
        local: &LocalTrustConfig,
        stats: &IngestStats,
        params: &IterParams,
    ) -> Self {
        RunSummary {
            version: provenance::VERSION,
            device: backend.name(),
            precision: backend.precision(),
            parameters: serde_json::Value::Null,
            inputs: Vec::new(),
            log_paths: stats.paths.clone(),
            files: stats.files,
            rows_read: stats.rows_read,
            rows_used: stats.rows_used,
            rows_dropped: stats.rows_dropped.clone(),
            agents: graph.n(),
            layers: layer_reports(graph, local),
            edges_per_layer: graph
                .layers
                .iter()
                .map(|l| (l.name.clone(), l.edges()))
                .collect(),
            trust_edges_per_layer: graph
                .layers
                .iter()
                .map(|l| (l.name.clone(), l.trust.iter().filter(|&&t| t > 0.0).count()))
                .collect(),
            alpha: params.alpha,
            epsilon: params.epsilon,
        }
    }

    /// Adds every parameter of the job and hashes every input file: the
    /// logs and `side`, the job's other files by role (`None` where the
    /// option was not given).
    pub(crate) fn with_inputs(
        mut self,
        parameters: serde_json::Value,
        side: &[(&str, Option<&Path>)],
    ) -> Result<Self> {
        self.inputs = provenance::inputs(&self.log_paths, side)?;
        self.parameters = parameters;
        Ok(self)
    }
}

impl StageSeconds {
    pub(crate) fn new(stats: &IngestStats, build_extra: f64, iterate: f64) -> Self {
        StageSeconds {
            read: stats.read_seconds,
            aggregate: stats.aggregate_seconds,
            build: stats.build_seconds + build_extra,
            iterate,
            write: 0.0,
        }
    }
}

/// Iterations, residual and bound of one solved vector, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub iterations: u32,
    pub residual: f64,
    pub error_bound: f64,
    pub stop: StopReason,
}

impl PassReport {
    pub fn of(v: &TrustVector, alpha: f64) -> Self {
        PassReport {
            iterations: v.iterations,
            residual: v.residual,
            error_bound: v.error_bound(alpha),
            stop: v.stop,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub weight: f64,
    pub cheap: bool,
    pub costly: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StageSeconds {
    pub read: f64,
    pub aggregate: f64,
    pub build: f64,
    pub iterate: f64,
    pub write: f64,
}

impl ScoreConfig {
    /// Every parameter of the job as the library names them, with the
    /// iteration parameters actually used (`params`: epsilon resolved).
    pub fn parameters(&self, params: &IterParams) -> serde_json::Value {
        let i = &self.ingest;
        let mut v = serde_json::json!({
            "layers": i.layers,
            "layer_weights": self.layer_weights,
            "cheap": self.cheap,
            "costly": self.costly,
            "beta": self.beta,
            "tau": self.tau,
            "since_ms": i.since_ms,
            "until_ms": i.until_ms,
            "half_life_s": i.half_life_s,
            "ingest": i.engine,
            "pretrusted": self.pretrusted.as_ref().map(|p| p.display().to_string()),
            "alpha": params.alpha,
            "epsilon": params.epsilon,
            "max_iter": params.max_iter,
            "flat_tail": params.flat_tail.map(|f| serde_json::json!({
                "iterations": f.iterations, "top": f.top
            })),
            "distrust": self.distrust,
            "consistency_gate": self.consistency_gate,
            "registry": self.registry.as_ref().map(|p| p.display().to_string()),
            "require_signatures": self.require_signatures,
        });
        // Only when there is one: a cold job's parameters stay what they
        // were before warm starts existed.
        if let (Some(s), Some(m)) = (&self.start, v.as_object_mut()) {
            m.insert("start_snapshot".into(), hex::encode(s.snapshot).into());
        }
        v
    }

    /// The side files every job hashes into its provenance, besides its own.
    pub(crate) fn side_files(&self) -> [(&'static str, Option<&Path>); 2] {
        [
            ("pretrusted", self.pretrusted.as_deref()),
            ("registry", self.registry.as_deref()),
        ]
    }

    /// Reads the logs, keeping the rows the registry and signature options
    /// accept.
    pub fn read_logs(&self) -> Result<LogTable> {
        let files = files::resolve(&self.logs)?;
        if self.require_signatures && self.registry.is_none() {
            return Err(Error::param(
                params::REQUIRE_SIGNATURES,
                Message::new()
                    .text("signatures are checked against registered keys: give ")
                    .param(params::REGISTRY)
                    .text(" too"),
            ));
        }
        let auth = match &self.registry {
            None => None,
            Some(path) => {
                let ledger = crate::identity::Ledger::open(path).with_path(path)?;
                Some(RowAuth::from_ledger(&ledger, self.require_signatures))
            }
        };
        LogTable::read_with(files, auth.as_ref(), &self.ingest)
    }

    /// [`Self::parameters`] plus the options of one kind of job under `key`.
    pub fn parameters_with(
        &self,
        params: &IterParams,
        key: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        let mut p = self.parameters(params);
        p[key] = value;
        p
    }

    /// Iteration parameters, epsilon defaulting to the back end's.
    pub fn iter_params(&self, backend: &dyn TrustBackend) -> Result<IterParams> {
        let params = IterParams {
            alpha: self.alpha,
            epsilon: self.epsilon.unwrap_or_else(|| backend.default_epsilon()),
            max_iter: self.max_iter,
            flat_tail: self.flat_tail,
        };
        params.validate()?;
        Ok(params)
    }

    /// Defaults of DESIGN.md §3: [`IterParams::default`] for the iteration
    /// (epsilon left to the back end), [`DEFAULT_BETA`] and [`DEFAULT_TAU`].
    pub fn new(logs: Vec<String>) -> Self {
        let iter = IterParams::default();
        ScoreConfig {
            logs,
            beta: DEFAULT_BETA,
            tau: DEFAULT_TAU,
            alpha: iter.alpha,
            max_iter: iter.max_iter,
            ..Default::default()
        }
    }
}

/// What [`prepare`] yields: the graph, the local-trust configuration and the
/// ingest counts.
pub type Prepared = (MultiGraph, LocalTrustConfig, IngestStats);

/// Reads the logs and builds the graph and the local-trust configuration.
/// Synchronous wrapper of [`prepare_async`] (see [`crate::runtime::block_on`]).
pub fn prepare(cfg: &ScoreConfig) -> Result<Prepared> {
    runtime::block_on(prepare_async(cfg))
}

/// As [`prepare`], on the caller's runtime.
pub async fn prepare_async(cfg: &ScoreConfig) -> Result<Prepared> {
    let table = cfg.read_logs()?;
    prepare_table_async(cfg, table, &[]).await
}

/// As [`prepare`], on logs already read; `exclude_raters` are (rater, layer)
/// pairs whose rows are dropped (slashing). Synchronous wrapper of
/// [`prepare_table_async`].
pub fn prepare_table(
    cfg: &ScoreConfig,
    table: LogTable,
    exclude_raters: &[(String, String)],
) -> Result<Prepared> {
    runtime::block_on(prepare_table_async(cfg, table, exclude_raters))
}

/// As [`prepare_table`], on the caller's runtime.
pub async fn prepare_table_async(
    cfg: &ScoreConfig,
    table: LogTable,
    exclude_raters: &[(String, String)],
) -> Result<Prepared> {
    let scored = scored_layers(cfg, &table.layers)?;
    let mut opts = cfg.ingest.clone();
    opts.exclude_raters = exclude_raters.to_vec();
    opts.layers = Some(scored.iter().map(|(n, _)| n.clone()).collect());
    for name in cfg.cheap.iter().chain(&cfg.costly) {
        if !table.layers.contains(name) {
            let param = if cfg.cheap.contains(name) {
                params::CHEAP
            } else {
                params::COSTLY
            };
            let message = Message::new()
                .text(format!("unknown layer `{name}` in "))
                .param(params::CHEAP)
                .text("/")
                .param(params::COSTLY)
                .text(format!(": the logs have {}", quoted_list(&table.layers)));
            return Err(Error::param(param, message));
        }
    }
    for name in &cfg.cheap {
        if !scored.iter().any(|(n, _)| n == name) {
            return Err(Error::param_value(
                params::CHEAP,
                format!("layer `{name}` is not among the scored layers"),
            ));
        }
        if cfg.costly.contains(name) {
            return Err(Error::param(
                params::CHEAP,
                format!("layer `{name}` cannot be both cheap and costly"),
            ));
        }
    }
    if !cfg.cheap.is_empty() && cfg.costly.is_empty() {
        let message = Message::new()
            .param(params::CHEAP)
            .text(" needs at least one ")
            .param(params::COSTLY)
            .text(" layer to corroborate it");
        return Err(Error::param(params::COSTLY, message));
    }
    let (graph, stats) = table.select_async(&opts, &cfg.costly).await?;
    let index = |name: &str| {
        graph
            .layer_index(name)
            .ok_or_else(|| Error::internal(format!("selected layer `{name}` is not in the graph")))
    };
    let local = LocalTrustConfig {
        layers: scored
            .iter()
            .map(|(name, w)| {
                Ok(ScoredLayer {
                    index: index(name)?,
                    weight: *w,
                    cheap: cfg.cheap.contains(name),
                })
            })
            .collect::<Result<_>>()?,
        costly: cfg.costly.iter().map(|n| index(n)).collect::<Result<_>>()?,
        beta: cfg.beta,
        tau: cfg.tau,
        gates: Default::default(),
    };
    let local = if cfg.consistency_gate {
        with_gates(&graph, local)
    } else {
        local
    };
    Ok((graph, local, stats))
}

/// Adds the consistency gate of every scored layer.
fn with_gates(graph: &MultiGraph, mut local: LocalTrustConfig) -> LocalTrustConfig {
    for l in &local.layers {
        local.gates.insert(
            l.index,
            topics::consistency_gate(&graph.layers[l.index], graph.n()),
        );
    }
    local
}

/// Runs the whole job on `backend`. Synchronous wrapper of [`run_async`].
pub fn run(cfg: &ScoreConfig, backend: &dyn TrustBackend) -> Result<ScoreOutput> {
    runtime::block_on(run_async(cfg, backend))
}

/// As [`run`], on the caller's runtime. Only reading the logs awaits; the
/// solve runs on the calling task.
pub async fn run_async(cfg: &ScoreConfig, backend: &dyn TrustBackend) -> Result<ScoreOutput> {
    let params = cfg.iter_params(backend)?;
    let (graph, local, stats) = prepare_async(cfg).await?;
    let t_build = Instant::now();
    let (c, d) = build_matrices(&graph, &local)?;
    let p = seed_pretrust(cfg, &graph)?;
    // A warm start is set-up like the matrix: mapped to the agents here.
    let column = Column {
        start: cfg.start.as_ref().and_then(|s| s.on(graph.agents.names())),
        pretrust: p,
    };
    let build_extra = t_build.elapsed().as_secs_f64();
    // The layers (20 bytes per pair) are not read again: summarise them and
    // let them go before the iteration and the write.
    let run = RunSummary::new(backend, &graph, &local, &stats, &params)
        .with_inputs(cfg.parameters(&params), &cfg.side_files())?;
    let MultiGraph { agents, layers } = graph;
    drop(layers);

    let t_iter = Instant::now();
    let mut v = backend.solve(&c, &[column], &params)?.remove(0);
    let (distrust_applied, scores) = match cfg.distrust {
        DistrustMode::Ignore => (false, std::mem::take(&mut v.scores)),
        DistrustMode::Discount => {
            let (s, ok) = distrust::discount(&v.scores, &d);
            (ok, s)
        }
    };
    let iterate = t_iter.elapsed().as_secs_f64();

    let report = Report {
        run,
        iterations: v.iterations,
        residual: v.residual,
        error_bound: v.error_bound(params.alpha),
        stop: v.stop,
        distrust: cfg.distrust,
        distrust_applied,
        seconds: StageSeconds::new(&stats, build_extra, iterate),
    };
    Ok(ScoreOutput {
        scores: Scores::new(&agents, scores),
        report,
    })
}

pub(crate) fn layer_reports(g: &MultiGraph, local: &LocalTrustConfig) -> Vec<LayerReport> {
    g.layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let s = local.layers.iter().find(|s| s.index == i);
            LayerReport {
                name: l.name.clone(),
                weight: s.map_or(0.0, |s| s.weight),
                cheap: s.is_some_and(|s| s.cheap),
                costly: local.costly.contains(&i),
            }
        })
        .collect()
}

/// Scored layers with their normalised weights λ, in a fixed order: the order
/// of `--layers`, else of `--layer-weight`, else the sorted layer names.
fn scored_layers(cfg: &ScoreConfig, present: &[String]) -> Result<Vec<(String, f64)>> {
    let check = |name: &str, param: &'static str| -> Result<()> {
        if present.iter().any(|p| p == name) {
            return Ok(());
        }
        let message = Message::new()
            .text(format!("unknown layer `{name}` in "))
            .param(param)
            .text(format!(": the logs have {}", quoted_list(present)));
        Err(Error::param(param, message))
    };
    let names: Vec<String> = match &cfg.ingest.layers {
        Some(l) => {
            for n in l {
                check(n, params::LAYERS)?;
            }
            let mut v: Vec<String> = Vec::new();
            for n in l {
                if !v.contains(n) {
                    v.push(n.clone());
                }
            }
            v
        }
        None if !cfg.layer_weights.is_empty() => {
            cfg.layer_weights.iter().map(|(n, _)| n.clone()).collect()
        }
        None => present.to_vec(),
    };
    if names.is_empty() {
        return Err(Error::param(params::LAYERS, "no layers to score"));
    }
    if cfg.layer_weights.is_empty() {
        let w = 1.0 / names.len() as f64;
        return Ok(names.into_iter().map(|n| (n, w)).collect());
    }
    let mut weights = Vec::new();
    for (n, w) in &cfg.layer_weights {
        check(n, params::LAYER_WEIGHTS)?;
        if !names.contains(n) {
            let message = Message::new()
                .param(params::LAYER_WEIGHTS)
                .text(format!(" names `{n}`, which is not in "))
                .param(params::LAYERS);
            return Err(Error::param(params::LAYER_WEIGHTS, message));
        }
        if !(*w >= 0.0 && w.is_finite()) {
            return Err(Error::param_value(
                params::LAYER_WEIGHTS,
                format!("{n}={w}: weight must be a finite number >= 0"),
            ));
        }
        if cfg.layer_weights.iter().filter(|(m, _)| m == n).count() > 1 {
            return Err(Error::param_value(
                params::LAYER_WEIGHTS,
                format!("given twice for `{n}`"),
            ));
        }
    }
    for n in &names {
        match cfg.layer_weights.iter().find(|(m, _)| m == n) {
            Some((_, w)) => weights.push((n.clone(), *w)),
            None => {
                let message = Message::new()
                    .text(format!("layer `{n}` is scored but has no "))
                    .param(params::LAYER_WEIGHTS);
                return Err(Error::param(params::LAYER_WEIGHTS, message));
            }
        }
    }
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Err(Error::param_value(
            params::LAYER_WEIGHTS,
            "values sum to zero",
        ));
    }
    Ok(weights.into_iter().map(|(n, w)| (n, w / total)).collect())
}

/// p_seed: uniform over `--pretrusted`, or over all agents.
pub(crate) fn seed_pretrust(cfg: &ScoreConfig, graph: &MultiGraph) -> Result<Vec<f64>> {
    match &cfg.pretrusted {
        Some(path) => pretrust::from_set(&graph.agents, &read_id_list(path)?).with_path(path),
        None => Ok(pretrust::uniform(graph.n())),
    }
}

/// One agent id per line; blank lines and `#` comments are ignored.
pub fn read_id_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::read(e).with_path(path))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::convert::{convert, Format};

    /// What a `serve` task does: read logs inside a task spawned on a
    /// multi-thread runtime (so the future must be `Send`). The blocking
    /// wrapper refuses there with an error rather than a panic.
    #[test]
    fn logs_are_read_inside_a_spawned_task() {
        let dir = tempfile::tempdir().unwrap();
        let (tsv, log) = (dir.path().join("l.tsv"), dir.path().join("l.parquet"));
        std::fs::write(&tsv, "a b\nb c\nc a\n").unwrap();
        convert(Format::Tsv, &tsv, &log, "x", 1.0).unwrap();
        let cfg = ScoreConfig::new(vec![log.to_str().unwrap().to_string()]);
        let rt = runtime::shared().unwrap();
        let task_cfg = cfg.clone();
        let task = rt.spawn(async move { prepare_async(&task_cfg).await.map(|p| p.0.n()) });
        assert_eq!(rt.block_on(task).unwrap().unwrap(), 3);
        let inside = rt.block_on(async { prepare(&cfg).map(|p| p.0.n()) });
        assert!(matches!(inside, Err(Error::BlockingInAsync)));
        assert_eq!(
            prepare(&cfg).unwrap().0.n(),
            3,
            "outside a runtime it blocks"
        );
    }
}
