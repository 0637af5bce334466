//! Attack simulation (`trustmesh simulate`, issue 14): how much inauthentic
//! service honest peers get under a threat model, per trust model, measured
//! through the real engine.
//!
//! A run is one (scenario, malicious share, seed, model): a market of peers
//! plays epochs ([`scenario::Scenario::epoch`]); each epoch's interactions
//! are written as a Parquet interaction log (`log`), and before the next
//! epoch the model's trust is recomputed from all logs so far by
//! [`crate::score::run`], the code path of `trustmesh score`, on the back end
//! given (CPU or GPU). Everything random comes from one [`SplitMix64`] seeded
//! from (seed, scenario, share), so a result depends on the seed alone, not
//! on the thread count; models share the seed's world (roles, queries,
//! candidates, coin flips: common random numbers), which makes their
//! difference less noisy than independent worlds would.

pub mod choice;
pub mod dgpan;
pub mod log;
pub mod plot;
pub mod rendezvous;
pub mod report;
pub mod scenario;
pub mod scoring;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{params, Error, Result};
use crate::graph::synthetic::SplitMix64;
use crate::score::ScoreConfig;
use crate::trust::TrustBackend;

pub use choice::DEFAULT_EXPLORATION;
pub use plot::write_plots;
pub use report::{summarise, write_results, Summary};
pub use scenario::{Classic, Epoch, Market, Role, Scenario, Slot};

pub const DEFAULT_PEERS: usize = 100;
pub const DEFAULT_EPOCHS: usize = 10;
pub const DEFAULT_SEEDS: u64 = 5;
/// Queries each peer issues per epoch.
pub const DEFAULT_QUERIES: usize = 10;
/// Peers answering each query (DG-PAN's 8 candidates per query).
pub const DEFAULT_CANDIDATES: usize = 8;
/// Pre-trusted peers (the first ones, honest): EigenTrust's few pre-trusted
/// peers, which anchor trust where collectives cannot reach it.
pub const DEFAULT_PRETRUSTED: usize = 3;
/// Scenario C's share of authentic service by the collective (the paper's f).
pub const DEFAULT_CAMOUFLAGE: f64 = 0.5;

/// Scenario `sybil`'s fake identities per malicious peer.
pub const DEFAULT_SYBILS: usize = 10;

/// Metric names of the results.
pub mod metric {
    /// Inauthentic downloads over all downloads by honest peers, all epochs.
    pub const INAUTHENTIC: &str = "inauthentic";
    /// The same in the last epoch alone, once trust has had time to form.
    pub const INAUTHENTIC_LAST: &str = "inauthentic_last_epoch";
    /// Downloads by honest peers, all epochs (the denominator).
    pub const DOWNLOADS: &str = "honest_downloads";
}

/// How peers choose providers: a trust model, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// Uniformly among the candidates: the baseline without trust.
    Random,
    /// Proportional to one EigenTrust vector over all layers merged, with
    /// exploration ([`choice::choose`]).
    Public,
    /// One independent EigenTrust vector per topic (layer): `score
    /// --per-topic` with no stake, no fraud proofs, no prior, no gate.
    PerTopic,
    /// MG-EigenTrust: per topic with stake-weighted pre-trust, slashing by
    /// fraud proofs, the cross-topic cold-start prior and the consistency
    /// gate, where the scenario provides stake and proofs.
    Mg,
    /// `mg` without slashing (fraud proofs are not applied).
    MgNoSlashing,
    /// `mg` without the cold-start prior (ρ = 0).
    MgNoPrior,
    /// `mg` without the consistency gate.
    MgNoGate,
}

impl Model {
    pub const ALL: [Model; 7] = [
        Model::Random,
        Model::Public,
        Model::PerTopic,
        Model::Mg,
        Model::MgNoSlashing,
        Model::MgNoPrior,
        Model::MgNoGate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Random => "random",
            Model::Public => "public",
            Model::PerTopic => "per-topic",
            Model::Mg => "mg",
            Model::MgNoSlashing => "mg-no-slashing",
            Model::MgNoPrior => "mg-no-prior",
            Model::MgNoGate => "mg-no-gate",
        }
    }

    /// Whether choices follow trust (all but `random`).
    pub fn uses_trust(self) -> bool {
        self != Model::Random
    }

    /// Whether the model has a meaning where layers are facets of one
    /// service rather than topics (`public`, `mg`).
    fn is_merged_ok(self) -> bool {
        matches!(self, Model::Public | Model::Mg)
    }

    fn is_mg(self) -> bool {
        matches!(
            self,
            Model::Mg | Model::MgNoSlashing | Model::MgNoPrior | Model::MgNoGate
        )
    }

    /// Stake-weighted pre-trust (the whole `mg` family).
    pub fn stakes(self) -> bool {
        self.is_mg()
    }

    /// Fraud proofs slash stake and the defector's feedback.
    pub fn slashes(self) -> bool {
        self.is_mg() && self != Model::MgNoSlashing
    }

    /// The cross-topic cold-start prior.
    pub fn prior(self) -> bool {
        self.is_mg() && self != Model::MgNoPrior
    }

    /// The consistency gate.
    pub fn gate(self) -> bool {
        self.is_mg() && self != Model::MgNoGate
    }
}

/// Which classic scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioKind {
    A,
    B,
    C,
    D,
    /// A camouflaged ring praising itself in a free `review` layer.
    Ring,
    /// Malicious peers with fake identities praising them.
    Sybil,
    /// The DG-PAN paper's topic-switching experiment ([`dgpan`]).
    Dgpan,
}

impl ScenarioKind {
    /// The name in results and reports.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::A => "A",
            ScenarioKind::B => "B",
            ScenarioKind::C => "C",
            ScenarioKind::D => "D",
            ScenarioKind::Ring => "ring",
            ScenarioKind::Sybil => "sybil",
            ScenarioKind::Dgpan => dgpan::NAME,
        }
    }

    /// Whether the scenario's layers are topics (a vector per topic).
    pub fn has_topics(self) -> bool {
        self == ScenarioKind::Dgpan
    }
}

/// A whole simulation: every share × seed × model.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub scenario: ScenarioKind,
    pub peers: usize,
    /// Shares of adversaries; each is a separate series of runs.
    pub malicious: Vec<f64>,
    pub epochs: usize,
    /// Seeds `0..seeds`.
    pub seeds: u64,
    pub models: Vec<Model>,
    pub queries: usize,
    pub candidates: usize,
    pub exploration: f64,
    /// How choices follow trust.
    pub choice: choice::Rule,
    pub pretrusted: usize,
    pub camouflage: f64,
    /// Scenario `sybil`: fake identities per malicious peer.
    pub sybils: usize,
    /// Scenario `dgpan`'s own parameters.
    pub dgpan: dgpan::DgpanParams,
    /// Where each run writes its logs, one directory per run.
    pub work_dir: PathBuf,
    /// Keep the logs after each run (else each run's directory is removed).
    pub keep_logs: bool,
}

impl SimConfig {
    /// The defaults above, models `random` and `public`.
    pub fn new(scenario: ScenarioKind, malicious: Vec<f64>, work_dir: PathBuf) -> Self {
        SimConfig {
            scenario,
            peers: DEFAULT_PEERS,
            malicious,
            epochs: DEFAULT_EPOCHS,
            seeds: DEFAULT_SEEDS,
            models: vec![Model::Random, Model::Public],
            queries: DEFAULT_QUERIES,
            candidates: DEFAULT_CANDIDATES,
            exploration: DEFAULT_EXPLORATION,
            choice: choice::Rule::Proportional,
            pretrusted: DEFAULT_PRETRUSTED,
            camouflage: DEFAULT_CAMOUFLAGE,
            sybils: DEFAULT_SYBILS,
            dgpan: dgpan::DgpanParams::default(),
            work_dir,
            keep_logs: false,
        }
    }

    /// The classic threat model of the configuration, `None` for `dgpan`.
    pub fn classic(&self) -> Option<Classic> {
        Some(match self.scenario {
            ScenarioKind::A => Classic::A,
            ScenarioKind::B => Classic::B,
            ScenarioKind::C => Classic::C {
                authentic: self.camouflage,
            },
            ScenarioKind::D => Classic::D,
            ScenarioKind::Ring => Classic::Ring {
                authentic: self.camouflage,
            },
            ScenarioKind::Sybil => Classic::Sybil {
                per_malicious: self.sybils,
            },
            ScenarioKind::Dgpan => return None,
        })
    }

    /// Adversaries for share `m`: ⌊m·peers⌉.
    pub fn adversaries(&self, m: f64) -> usize {
        (m * self.peers as f64).round() as usize
    }

    pub fn validate(&self) -> Result<()> {
        let at_least = |name, v: u64, min: u64| {
            if v < min {
                Err(Error::param_value(
                    name,
                    format!("must be at least {min}, got {v}"),
                ))
            } else {
                Ok(())
            }
        };
        at_least(params::PEERS, self.peers as u64, 2)?;
        at_least(params::EPOCHS, self.epochs as u64, 1)?;
        at_least(params::SEEDS, self.seeds, 1)?;
        at_least(params::QUERIES, self.queries as u64, 1)?;
        at_least(params::CANDIDATES, self.candidates as u64, 1)?;
        if self.candidates >= self.peers {
            return Err(Error::param_value(
                params::CANDIDATES,
                format!(
                    "must be below the number of peers ({}), got {}",
                    self.peers, self.candidates
                ),
            ));
        }
        for (name, v) in [
            (params::EXPLORATION, self.exploration),
            (params::CAMOUFLAGE, self.camouflage),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::param_value(
                    name,
                    format!("must be in [0, 1], got {v}"),
                ));
            }
        }
        if self.pretrusted >= self.peers {
            return Err(Error::param_value(
                params::PRETRUSTED_PEERS,
                format!(
                    "must be below the number of peers ({}), got {}",
                    self.peers, self.pretrusted
                ),
            ));
        }
        if let Some(m) = self
            .models
            .iter()
            .find(|m| !self.scenario.has_topics() && m.uses_trust() && !m.is_merged_ok())
        {
            return Err(Error::param_value(
                params::MODELS,
                format!(
                    "`{}` needs a scenario whose layers are topics (dgpan); scenario {} has one service",
                    m.name(),
                    self.scenario.name()
                ),
            ));
        }
        if self.scenario == ScenarioKind::Dgpan {
            self.dgpan.validate()?;
        }
        if self.models.is_empty() {
            return Err(Error::param_value(
                params::MODELS,
                "must name at least one model",
            ));
        }
        if self.malicious.is_empty() {
            return Err(Error::param_value(
                params::MALICIOUS,
                "must give at least one share",
            ));
        }
        // At least one honest peer, and the pre-trusted ones are honest.
        let room = self.peers - self.pretrusted.max(1);
        for &m in &self.malicious {
            if !(0.0..1.0).contains(&m) {
                return Err(Error::param_value(
                    params::MALICIOUS,
                    format!("must be in [0, 1), got {m}"),
                ));
            }
            if self.adversaries(m) > room {
                return Err(Error::param_value(
                    params::MALICIOUS,
                    format!(
                        "{m} makes {} of {} peers adversaries; at most {room} can be (pre-trusted peers and one honest peer at least are not)",
                        self.adversaries(m),
                        self.peers
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One value of the raw per-seed results.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub scenario: String,
    pub model: String,
    pub malicious: f64,
    pub seed: u64,
    pub metric: String,
    pub value: f64,
}

/// The counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunCounts {
    pub honest_downloads: u64,
    pub inauthentic: u64,
    pub last_downloads: u64,
    pub last_inauthentic: u64,
}

/// A run just finished, as told to [`run_with_progress`]'s callback: which
/// one, and how far the simulation is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunDone {
    pub model: Model,
    pub malicious: f64,
    pub seed: u64,
    /// Runs finished so far, this one included.
    pub done: u64,
    /// All runs of the simulation, [`SimConfig::runs`].
    pub total: u64,
}

impl SimConfig {
    /// Runs of the whole simulation: shares × seeds × models.
    pub fn runs(&self) -> u64 {
        (self.malicious.len() as u64)
            .saturating_mul(self.seeds)
            .saturating_mul(self.models.len() as u64)
    }
}

/// Runs every share × seed × model in that order, sequentially (the engine
/// parallelises each solve; a result never depends on the thread count).
pub fn run(cfg: &SimConfig, backend: &dyn TrustBackend) -> Result<Vec<ResultRow>> {
    run_with_progress(cfg, backend, &mut |_| {})
}

/// Runs at most this many at once: each is a thread, and a batched engine
/// call waits for all of them.
pub const MAX_CONCURRENT_RUNS: usize = 256;

/// [`run`], calling `on_run` after each run, in run order. The caller shows
/// progress as it likes (the CLI draws a bar); the library draws nothing.
///
/// Runs go on side by side, a thread each, in groups of at most
/// [`MAX_CONCURRENT_RUNS`]; every run scores its own log through the `score`
/// entry points, and the solves of a group are gathered into batched engine
/// calls ([`rendezvous`]). The back ends solve each column as if alone, so
/// the results are those of running one run at a time.
pub fn run_with_progress(
    cfg: &SimConfig,
    backend: &dyn TrustBackend,
    on_run: &mut dyn FnMut(RunDone),
) -> Result<Vec<ResultRow>> {
    cfg.validate()?;
    let mut jobs = Vec::new();
    for &m in &cfg.malicious {
        for seed in 0..cfg.seeds {
            for &model in &cfg.models {
                jobs.push((m, seed, model));
            }
        }
    }
    let total = jobs.len() as u64;
    let mut metrics: Vec<Option<Result<Metrics>>> = jobs.iter().map(|_| None).collect();
    let mut reported = 0usize;
    for (g, group) in jobs.chunks(MAX_CONCURRENT_RUNS).enumerate() {
        let first = g * MAX_CONCURRENT_RUNS;
        let coordinator = rendezvous::Coordinator::new(backend);
        let hubs: Vec<_> = group.iter().map(|_| coordinator.join()).collect();
        std::thread::scope(|scope| {
            for (k, (&(m, seed, model), hub)) in group.iter().zip(hubs).enumerate() {
                scope.spawn(move || {
                    let r = run_metrics(cfg, model, m, seed, &hub);
                    hub.finish((first + k, r));
                });
            }
            coordinator.serve(&mut |(i, r)| {
                metrics[i] = Some(r);
                // Report in run order: each run once all before it are done.
                while reported < jobs.len() && metrics[reported].is_some() {
                    let (m, seed, model) = jobs[reported];
                    reported += 1;
                    on_run(RunDone {
                        model,
                        malicious: m,
                        seed,
                        done: reported as u64,
                        total,
                    });
                }
            });
        });
    }
    let mut rows = Vec::new();
    for ((m, seed, model), r) in jobs.into_iter().zip(metrics) {
        let r = r.ok_or_else(|| Error::internal("a simulation run gave no result"))?;
        for (metric, value) in r? {
            rows.push(ResultRow {
                scenario: cfg.scenario.name().to_string(),
                model: model.name().to_string(),
                malicious: m,
                seed,
                metric: metric.to_string(),
                value,
            });
        }
    }
    Ok(rows)
}

/// A run's metrics: (name, value), in the scenario's order.
pub type Metrics = Vec<(&'static str, f64)>;

/// One run's metrics, in the scenario's order.
pub fn run_metrics(
    cfg: &SimConfig,
    model: Model,
    m: f64,
    seed: u64,
    backend: &dyn TrustBackend,
) -> Result<Metrics> {
    let Some(scenario) = cfg.classic() else {
        return dgpan::run_one(cfg, model, m, seed, backend);
    };
    let c = run_one(cfg, &scenario, model, m, seed, backend)?;
    let share = |bad: u64, all: u64| {
        if all == 0 {
            0.0
        } else {
            bad as f64 / all as f64
        }
    };
    Ok(vec![
        (
            metric::INAUTHENTIC,
            share(c.inauthentic, c.honest_downloads),
        ),
        (
            metric::INAUTHENTIC_LAST,
            share(c.last_inauthentic, c.last_downloads),
        ),
        (metric::DOWNLOADS, c.honest_downloads as f64),
    ])
}

/// A seed of its own for each (seed, scenario, share), mixed by splitmix64.
fn world_seed(seed: u64, scenario: &str, m: f64) -> u64 {
    let tag = scenario.bytes().fold(0u64, |h, b| (h << 8) | u64::from(b));
    [seed, tag, m.to_bits()]
        .iter()
        .fold(0u64, |h, &x| SplitMix64::new(h ^ x).next_u64())
}

/// One run: epochs of the market, each written as a log, trust recomputed
/// from all logs so far by `score` after every epoch but the last.
pub fn run_one(
    cfg: &SimConfig,
    scenario: &dyn Scenario,
    model: Model,
    m: f64,
    seed: u64,
    backend: &dyn TrustBackend,
) -> Result<RunCounts> {
    let mut rng = SplitMix64::new(world_seed(seed, scenario.name(), m));
    let roles = scenario.roles(cfg.peers, cfg.pretrusted, cfg.adversaries(m), &mut rng);
    let market = Market {
        roles,
        queries: cfg.queries,
        candidates: cfg.candidates,
        exploration: cfg.exploration,
        rule: cfg.choice,
    };
    // Peers first, then any fake identities the scenario adds.
    let names: Vec<String> = (0..market.roles.len())
        .map(|i| {
            if i < cfg.peers {
                format!("p{i:05}")
            } else {
                format!("s{:05}", i - cfg.peers)
            }
        })
        .collect();
    let index: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();

    let dir = cfg
        .work_dir
        .join(format!("{}-{}-m{m}-s{seed}", scenario.name(), model.name()));
    let log_dir = dir.join("log");
    // A directory left by an earlier run would add its epochs to this one's.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::write(e).with_path(&dir))?;
    }
    std::fs::create_dir_all(&log_dir).map_err(|e| Error::write(e).with_path(&log_dir))?;
    let mut score_cfg = ScoreConfig::new(vec![path_arg(&log_dir)?]);
    if cfg.pretrusted > 0 {
        let file = dir.join("pretrusted.txt");
        let list: String = names[..cfg.pretrusted]
            .iter()
            .map(|n| format!("{n}\n"))
            .collect();
        std::fs::write(&file, list).map_err(|e| Error::write(e).with_path(&file))?;
        score_cfg.pretrusted = Some(file);
    }
    let mut mg_cfg = score_cfg.clone();
    scenario.mg_defences(&mut mg_cfg);
    if scenario.registry() && model == Model::Mg {
        mg_cfg.registry = Some(registry(&dir, &names, &market.roles)?);
    }

    // Before any interaction EigenTrust's vector is the pre-trust p.
    let mut trust = model
        .uses_trust()
        .then(|| scoring::TopicTrust::shared(initial_trust(cfg, names.len())));
    let mut counts = RunCounts::default();
    for e in 0..cfg.epochs {
        let epoch = scenario.epoch(&market, trust.as_ref().map(|t| t.topic(0)), &mut rng);
        log::write_epoch(
            &log_dir.join(format!("epoch-{e:05}.parquet")),
            e,
            &names,
            scenario.layers(),
            &epoch.rows,
        )?;
        counts.honest_downloads += epoch.honest_downloads;
        counts.inauthentic += epoch.inauthentic;
        counts.last_downloads = epoch.honest_downloads;
        counts.last_inauthentic = epoch.inauthentic;
        if model.uses_trust() && e + 1 < cfg.epochs {
            let inputs = scoring::Inputs {
                base: &score_cfg,
                mg_base: &mg_cfg,
                topics: scenario.layers(),
                by_topic: false,
                stake: None,
                fraud_proofs: None,
                index: &index,
                identities: names.len(),
            };
            trust = scoring::trust(model, &inputs, backend)?;
        }
    }
    if !cfg.keep_logs {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::write(e).with_path(&dir))?;
    }
    Ok(counts)
}

/// An identity registry (BAID ledger) at `dir/registry.jsonl` with every
/// identity that serves, under a fresh key each; fake identities are left
/// out.
fn registry(dir: &Path, names: &[String], roles: &[Role]) -> Result<PathBuf> {
    let path = dir.join("registry.jsonl");
    for (name, role) in names.iter().zip(roles) {
        if role.serves() {
            let key = crate::identity::key::generate();
            crate::identity::ledger::Ledger::append_register(&path, &key, name, None, 0)
                .map_err(|e| Error::internal(format!("simulated registry: {e}")))?;
        }
    }
    Ok(path)
}

/// p: uniform over the pre-trusted peers, or over all `identities` when
/// there are none.
fn initial_trust(cfg: &SimConfig, identities: usize) -> Vec<f64> {
    let k = if cfg.pretrusted == 0 {
        identities
    } else {
        cfg.pretrusted
    };
    (0..identities)
        .map(|i| if i < k { 1.0 / k as f64 } else { 0.0 })
        .collect()
}

/// A directory as a [`ScoreConfig::logs`] entry, which is a string (it may
/// be a glob).
fn path_arg(p: &Path) -> Result<String> {
    p.to_str()
        .map(String::from)
        .ok_or_else(|| Error::invalid(format!("{}: the path is not UTF-8", p.display())))
}
