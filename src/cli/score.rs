//! `trustmesh score`: MG-EigenTrust from Parquet logs, plain, batched
//! (`--pretrusted-sets`, `--per-layer`) or per topic (`--per-topic`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use trustmesh::ingest::time::{parse_duration_s, parse_instant_ms};
use trustmesh::ingest::IngestEngine;
use trustmesh::output::{write_long, write_scores, write_topic_scores};
use trustmesh::provenance;
use trustmesh::score::batched::{self, BatchKind};
use trustmesh::score::per_topic::{self, TopicOptions};
use trustmesh::score::{self, DistrustMode, RunSummary, ScoreConfig, DEFAULT_BETA, DEFAULT_TAU};
use trustmesh::trust::TrustBackend;

use super::device::DeviceArgs;
use super::iter::IterArgs;
use super::output::{OutputArgs, Outputs};

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Log file, directory of *.parquet, or glob; repeatable.
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    job: JobArgs,
    /// One vector per topic (layer) plus `global`, long output format.
    #[arg(long, conflicts_with_all = ["per_layer", "pretrusted_sets"])]
    per_topic: bool,
    /// One vector per scored layer, in one batched call; long output (agent, layer, score, rank).
    #[arg(long, conflicts_with = "pretrusted_sets")]
    per_layer: bool,
    /// Personalised trust for every set in FILE (Parquet or CSV: set, agent) at once;
    /// long output (agent, set, score, rank).
    #[arg(long, conflicts_with = "pretrusted")]
    pretrusted_sets: Option<PathBuf>,
    #[command(flatten)]
    topic: TopicArgs,
    /// Start the iteration from this snapshot's vector (a snapshot
    /// directory) instead of the pre-trust; the parameters record it, and
    /// `snapshot audit --start-from` re-derives from it. One vector only.
    #[arg(long, value_name = "SNAPSHOT_DIR", conflicts_with_all = ["per_topic", "per_layer", "pretrusted_sets"])]
    warm_start_from: Option<PathBuf>,
}

/// The flags of one scoring job besides its logs and outputs: what `score`
/// and `serve` (which recomputes with them every interval) share.
#[derive(Args, Debug)]
pub struct JobArgs {
    /// Layers to score, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<String>>,
    /// Layer weight NAME=W (repeatable; normalised to sum 1).
    #[arg(long = "layer-weight", value_parser = parse_layer_weight)]
    layer_weight: Vec<(String, f64)>,
    /// Cheap layers, whose edges need corroboration by costly layers.
    #[arg(long, value_delimiter = ',')]
    cheap: Vec<String>,
    /// Costly layers, whose volume corroborates cheap edges.
    #[arg(long, value_delimiter = ',')]
    costly: Vec<String>,
    /// Share of a cheap edge kept without corroboration.
    #[arg(long, default_value_t = DEFAULT_BETA)]
    beta: f64,
    /// Costly volume at which a cheap edge keeps all its trust.
    #[arg(long, default_value_t = DEFAULT_TAU)]
    tau: f64,
    /// File with one pre-trusted agent id per line.
    #[arg(long)]
    pretrusted: Option<PathBuf>,
    #[command(flatten)]
    iter: IterArgs,
    /// Time-decay half-life, e.g. 7d, 12h, 3600 (seconds).
    #[arg(long)]
    half_life: Option<String>,
    /// Keep rows at or after this time (RFC 3339 or date, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Keep rows before this time.
    #[arg(long)]
    until: Option<String>,
    /// How rows are selected: stream (integer rows, the default) or sql
    /// (DataFusion SQL over the string rows: the reference plan, same bits,
    /// several times the memory).
    #[arg(long, value_enum, default_value_t = Ingest::Stream)]
    ingest: Ingest,
    /// Use negative trust: ignore (original EigenTrust) or discount.
    #[arg(long, value_enum, default_value_t = Distrust::from(DistrustMode::default()))]
    distrust: Distrust,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Scale each rater's feedback by its agreement with the other raters.
    #[arg(long)]
    consistency_gate: bool,
    /// BAID ledger (`trustmesh id register`): rows whose rater (src) is not
    /// registered are dropped and counted.
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Drop (and count) rows whose `sig` does not verify against the rater's
    /// registered key (`trustmesh sign-log` fills it).
    #[arg(long, requires = "registry")]
    require_signatures: bool,
}

/// The options only `--per-topic` has; defaults from [`TopicOptions::default`].
#[derive(Args, Debug)]
struct TopicArgs {
    /// Stake table (Parquet or CSV: agent, stake >= 0) for dynamic pre-trust.
    #[arg(long, requires = "per_topic")]
    stake: Option<PathBuf>,
    /// Fraud proofs (Parquet or CSV: agent, topic, evidence); each slashes.
    #[arg(long, requires = "per_topic")]
    fraud_proofs: Option<PathBuf>,
    /// Weight of seed pre-trust against stake.
    #[arg(long, default_value_t = TopicOptions::default().sigma, requires = "per_topic")]
    sigma: f64,
    /// Share of the cross-topic cold-start prior.
    #[arg(long, default_value_t = TopicOptions::default().rho, requires = "per_topic")]
    rho: f64,
    /// Topic similarity matrix (CSV: topic,<t1>,<t2>,...).
    #[arg(long, requires = "per_topic")]
    topic_similarity: Option<PathBuf>,
}

impl TopicArgs {
    fn options(self) -> TopicOptions {
        TopicOptions {
            stake: self.stake,
            fraud_proofs: self.fraud_proofs,
            sigma: self.sigma,
            rho: self.rho,
            similarity: self.topic_similarity,
        }
    }
}

/// `--ingest`, the command-line face of [`IngestEngine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Ingest {
    Stream,
    Sql,
}

impl From<Ingest> for IngestEngine {
    fn from(i: Ingest) -> Self {
        match i {
            Ingest::Stream => IngestEngine::Stream,
            Ingest::Sql => IngestEngine::Sql,
        }
    }
}

/// `--distrust`, the command-line face of [`DistrustMode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Distrust {
    Ignore,
    Discount,
}

impl From<DistrustMode> for Distrust {
    fn from(m: DistrustMode) -> Self {
        match m {
            DistrustMode::Ignore => Distrust::Ignore,
            DistrustMode::Discount => Distrust::Discount,
        }
    }
}

impl From<Distrust> for DistrustMode {
    fn from(d: Distrust) -> Self {
        match d {
            Distrust::Ignore => DistrustMode::Ignore,
            Distrust::Discount => DistrustMode::Discount,
        }
    }
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

/// `NAME=WEIGHT`; the weight's range is checked by the library against the
/// layers the logs have.
fn parse_layer_weight(s: &str) -> std::result::Result<(String, f64), String> {
    let (name, w) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=WEIGHT, e.g. payment=0.7"))?;
    let w: f64 = w
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: weight `{w}` is not a number"))?;
    if name.trim().is_empty() {
        return Err(format!("`{s}`: empty layer name"));
    }
    Ok((name.trim().to_string(), w))
}

impl ScoreArgs {
    fn config(&self) -> Result<ScoreConfig> {
        let mut cfg = self.job.config(self.logs.clone())?;
        if let Some(dir) = &self.warm_start_from {
            let s = trustmesh::score::start::StartVector::from_snapshot(dir)
                .with_context(|| format!("--warm-start-from {}", dir.display()))?;
            cfg.start = Some(s);
        }
        Ok(cfg)
    }
}

impl JobArgs {
    /// The job's configuration on `logs`. Durations and instants are parsed
    /// here rather than by clap so that a bad one is a run error (exit 1)
    /// naming the value.
    pub fn config(&self, logs: Vec<String>) -> Result<ScoreConfig> {
        let mut cfg = ScoreConfig::new(logs);
        cfg.ingest.layers = self.layers.clone();
        cfg.ingest.half_life_s = self
            .half_life
            .as_deref()
            .map(parse_duration_s)
            .transpose()?;
        cfg.ingest.since_ms = self.since.as_deref().map(parse_instant_ms).transpose()?;
        cfg.ingest.until_ms = self.until.as_deref().map(parse_instant_ms).transpose()?;
        cfg.ingest.engine = self.ingest.into();
        cfg.layer_weights = self.layer_weight.clone();
        cfg.cheap = self.cheap.clone();
        cfg.costly = self.costly.clone();
        cfg.beta = self.beta;
        cfg.tau = self.tau;
        cfg.pretrusted = self.pretrusted.clone();
        self.iter.apply(&mut cfg);
        cfg.distrust = self.distrust.into();
        cfg.consistency_gate = self.consistency_gate;
        cfg.registry = self.registry.clone();
        cfg.require_signatures = self.require_signatures;
        Ok(cfg)
    }
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let cfg = a.config()?;
    let backend = a
        .job
        .device
        .backend()
        .with_context(|| format!("--device {}", a.job.device.device))?;
    let backend = backend.as_ref();
    let outputs = a.output.outputs();
    // The CLI's one runtime is the library's shared one, so `bench`, which
    // loads its graph through the synchronous API, never builds a second.
    let rt = trustmesh::runtime::shared()?;
    if a.per_topic {
        return rt.block_on(run_per_topic(&cfg, a.topic.options(), backend, &outputs));
    }
    let batch = match (a.pretrusted_sets, a.per_layer) {
        (Some(p), _) => Some(BatchKind::PretrustSets(p)),
        (None, true) => Some(BatchKind::PerLayer),
        (None, false) => None,
    };
    match batch {
        Some(kind) => rt.block_on(run_batched(&cfg, &kind, backend, &outputs)),
        None => rt.block_on(run_plain(&cfg, backend, &outputs)),
    }
}

async fn run_plain(
    cfg: &ScoreConfig,
    backend: &dyn TrustBackend,
    outputs: &Outputs<'_>,
) -> Result<()> {
    let mut out = score::run_async(cfg, backend).await?;
    let r = &mut out.report;
    let meta = provenance::metadata_json(r)?;
    r.seconds.write = outputs.write(|p| write_scores(p, &out.scores, &meta))?;
    outputs.write_report(r)?;
    println!(
        "{}: {} iterations ({}), residual {:.2e}, error bound {:.2e}",
        summary(&r.run),
        r.iterations,
        r.stop,
        r.residual,
        r.error_bound
    );
    outputs.print_top("top agents", &out.scores.agents, &out.scores.scores);
    Ok(())
}

async fn run_batched(
    cfg: &ScoreConfig,
    kind: &BatchKind,
    backend: &dyn TrustBackend,
    outputs: &Outputs<'_>,
) -> Result<()> {
    let mut out = batched::run_async(cfg, kind, backend).await?;
    let groups: Vec<(&str, &[f64])> = out
        .groups
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let r = &mut out.report;
    let meta = provenance::metadata_json(r)?;
    r.seconds.write = outputs.write(|p| write_long(p, kind.key(), &out.agents, &groups, &meta))?;
    outputs.write_report(r)?;
    println!(
        "{}: {} vectors in one batched call",
        summary(&r.run),
        groups.len()
    );
    for (name, scores) in &groups {
        outputs.print_top(&format!("{} {name}", kind.key()), &out.agents, scores);
    }
    Ok(())
}

async fn run_per_topic(
    cfg: &ScoreConfig,
    opts: TopicOptions,
    backend: &dyn TrustBackend,
    outputs: &Outputs<'_>,
) -> Result<()> {
    let mut out = per_topic::run_async(cfg, &opts, backend).await?;
    let r = &mut out.report;
    let meta = provenance::metadata_json(r)?;
    r.seconds.write = outputs.write(|p| write_topic_scores(p, &out.scores, &meta))?;
    outputs.write_report(r)?;
    println!(
        "{}: {} topics, {} slashed, {} staked",
        summary(&r.run),
        r.topics.len(),
        r.slashed_agents,
        r.staked_agents
    );
    let s = &out.scores;
    let groups = s
        .topics
        .iter()
        .map(String::as_str)
        .zip(&s.scores)
        .chain(std::iter::once((per_topic::GLOBAL, &s.global)));
    for (topic, scores) in groups {
        outputs.print_top(&format!("topic {topic}"), &s.agents, scores);
    }
    Ok(())
}

fn summary(r: &RunSummary) -> String {
    format!(
        "scored {} agents from {} of {} rows ({} file{}) on {}",
        r.agents,
        r.rows_used,
        r.rows_read,
        r.files,
        if r.files == 1 { "" } else { "s" },
        r.device
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    fn args(extra: &[&str]) -> ScoreArgs {
        let mut v = vec!["score", "--log", "l.parquet", "--out", "s.parquet"];
        v.extend(extra);
        match parse(&v).unwrap() {
            Command::Score(a) => a,
            _ => unreachable!("parsed `score`"),
        }
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let cfg = args(&[]).config().unwrap();
        let lib = ScoreConfig::new(vec!["l.parquet".into()]);
        assert_eq!((cfg.beta, cfg.tau), (lib.beta, lib.tau));
        assert_eq!(cfg.distrust, DistrustMode::default());
        assert_eq!(cfg.ingest, lib.ingest);
        let t = args(&[]).topic.options();
        assert_eq!(t, TopicOptions::default());
    }

    #[test]
    fn layer_weight_is_name_equals_number() {
        assert_eq!(
            parse_layer_weight(" payment = 0.7").unwrap(),
            ("payment".to_string(), 0.7)
        );
        for (bad, why) in [
            ("payment", "expected NAME=WEIGHT"),
            ("payment=abc", "weight `abc` is not a number"),
            ("=1", "empty layer name"),
        ] {
            let e = parse_layer_weight(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let a = args(&["--layer-weight", "a=1", "--layer-weight", "b=3"]);
        assert_eq!(
            a.job.layer_weight,
            vec![("a".into(), 1.0), ("b".into(), 3.0)]
        );
    }

    #[test]
    fn durations_and_instants_are_run_errors() {
        let cfg = args(&["--half-life", "7d", "--since", "1970-01-01T00:00:01Z"])
            .config()
            .unwrap();
        assert_eq!(cfg.ingest.half_life_s, Some(604800.0));
        assert_eq!(cfg.ingest.since_ms, Some(1000));
        let e = args(&["--half-life", "soon"]).config().unwrap_err();
        assert!(e.to_string().contains("duration `soon`"), "{e}");
        let e = args(&["--until", "yesterday"]).config().unwrap_err();
        assert!(e.to_string().contains("time `yesterday`"), "{e}");
    }

    #[test]
    fn lists_and_modes() {
        let a = args(&["--layers", "a,b", "--cheap", "a", "--costly", "b,c"]);
        let cfg = a.config().unwrap();
        assert_eq!(cfg.ingest.layers, Some(vec!["a".into(), "b".into()]));
        assert_eq!((cfg.cheap.len(), cfg.costly.len()), (1, 2));
        let cfg = args(&["--distrust", "discount"]).config().unwrap();
        assert_eq!(cfg.distrust, DistrustMode::Discount);
        assert!(parse(&["score", "--log", "l", "--out", "o", "--sigma", "1"]).is_err());
        assert!(parse(&[
            "score",
            "--log",
            "l",
            "--out",
            "o",
            "--per-topic",
            "--per-layer"
        ])
        .is_err());
    }
}
