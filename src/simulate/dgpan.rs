//! Scenario `dgpan`: the topic-switching experiment of the DG-PAN paper
//! (Zhang, Ma, Lin, Wang, "Distributed General-Purpose Agent Networks",
//! arXiv:2606.17368, 2026), as far as its summaries describe it; what they
//! leave open is decided here and written down in docs/attacks.md.
//!
//! Peers serve queries in five topics. Attackers serve honestly in every
//! topic but one, `code_review_security`, where they defect; spies serve
//! honestly everywhere and rate every attacker up in `code_generation`,
//! where the attackers build their reputation, and the attackers rate the
//! spies back. A defection (a security
//! review that waves a flaw through) looks like good service to the querier,
//! who rates it +1: only a fraud proof exposes it, which is why the paper
//! needs them. Every identity holds stake. A defection is
//! caught by a verified fraud proof with probability `detection`; under the
//! models that slash, that burns the identity's stake and the attacker
//! whitewashes: the identity leaves and the attacker re-enters under a fresh
//! one, posting stake again. A few honest peers join half-way, so the
//! models' cold start can be compared.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::log::{self, Interaction};
use super::scenario::{draw_adversaries, partial_shuffle, Role};
use super::scoring::{self, TopicTrust};
use super::{path_arg, world_seed, Model, SimConfig};
use crate::error::{params, Error, Result};
use crate::graph::synthetic::SplitMix64;
use crate::score::ScoreConfig;
use crate::trust::TrustBackend;

/// The paper's five topics, the log's layers in this order.
pub const TOPICS: [&str; 5] = [
    "code_generation",
    "code_review_security",
    "devops_tool_execution",
    "data_analysis",
    "creative_writing",
];
/// The topic where attackers build reputation, with the spies' help.
pub const BUILD_TOPIC: usize = 0;
/// The topic attackers defect in.
pub const ATTACK_TOPIC: usize = 1;

/// The one layer of the `public` model's log: a topic-blind platform keeps
/// no topic, and one EigenTrust over all topics merged is EigenTrust over
/// one graph. (Scoring the five topics as layers would instead average five
/// row-normalised layers, in which a rater silent in a topic sends that
/// topic's share to pre-trust: a different model.)
pub const MERGED_LAYER: &str = "all";

/// The name of the scenario in results.
pub const NAME: &str = "dgpan";

/// Metric names of this scenario.
pub mod metric {
    /// Queries of the attacked topic served by a defecting attacker, over
    /// all queries of that topic, all epochs.
    pub const ATTACK_SUCCESS: &str = "attack_success";
    /// Burn-only return on stake of the attackers: (gain − stake burned) /
    /// stake posted, over all attackers and their fresh identities.
    pub const ROI: &str = "attacker_roi";
    /// Honest newcomers' trust after their first epoch over established
    /// honest peers' trust (means over topics and peers).
    pub const COLD_START: &str = "cold_start";
    /// Fresh identities the attackers took after being slashed.
    pub const WHITEWASHES: &str = "whitewashes";
}

/// What the scenario adds to [`SimConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct DgpanParams {
    /// Queries per topic per epoch (the paper's 50).
    pub queries: usize,
    /// Probability that a defection yields a verified fraud proof (the
    /// paper's 0.95).
    pub detection: f64,
    /// Stake every identity posts on joining.
    pub stake: f64,
    /// An attacker's gain per defection, in units of stake.
    pub gain: f64,
    /// Share of the adversaries that are spies; the rest are attackers.
    pub spy_share: f64,
    /// Share of the peers that are honest newcomers, joining half-way.
    pub newcomers: f64,
}

impl Default for DgpanParams {
    fn default() -> Self {
        DgpanParams {
            queries: 50,
            detection: 0.95,
            stake: 10.0,
            gain: 1.0,
            spy_share: 0.25,
            newcomers: 0.05,
        }
    }
}

impl DgpanParams {
    pub fn validate(&self) -> Result<()> {
        if self.queries == 0 {
            return Err(Error::param_value(
                params::QUERIES_PER_TOPIC,
                "must be at least 1, got 0",
            ));
        }
        let unit = [
            (params::DETECTION, self.detection, true),
            (params::SPY_SHARE, self.spy_share, false),
            (params::NEWCOMERS, self.newcomers, false),
        ];
        for (name, v, closed) in unit {
            let ok = if closed {
                (0.0..=1.0).contains(&v)
            } else {
                (0.0..1.0).contains(&v)
            };
            if !ok {
                let range = if closed { "[0, 1]" } else { "[0, 1)" };
                return Err(Error::param_value(
                    name,
                    format!("must be in {range}, got {v}"),
                ));
            }
        }
        if !(self.stake.is_finite() && self.stake > 0.0) {
            return Err(Error::param_value(
                params::SIM_STAKE,
                format!("must be a finite number > 0, got {}", self.stake),
            ));
        }
        if !(self.gain.is_finite() && self.gain >= 0.0) {
            return Err(Error::param_value(
                params::GAIN,
                format!("must be a finite number >= 0, got {}", self.gain),
            ));
        }
        Ok(())
    }
}

/// The identities of one run: the first `peers` are the market's peers,
/// then the attackers' fresh identities in the order they were taken.
struct Identities {
    names: Vec<String>,
    roles: Vec<Role>,
    active: Vec<bool>,
    /// Named by some row of the logs so far (the engine knows it).
    seen: Vec<bool>,
    slashed: Vec<bool>,
    index: HashMap<String, usize>,
}

impl Identities {
    fn push(&mut self, name: String, role: Role, active: bool) {
        self.index.insert(name.clone(), self.names.len());
        self.names.push(name);
        self.roles.push(role);
        self.active.push(active);
        self.seen.push(false);
        self.slashed.push(false);
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// What one run counted.
#[derive(Debug, Default)]
struct Counts {
    attack_queries: u64,
    successes: u64,
    gain: f64,
    burned: f64,
    posted: f64,
    whitewashes: u64,
    cold_start: Option<f64>,
}

/// One run of `model` at adversary share `m`: the metrics, in order.
pub fn run_one(
    cfg: &SimConfig,
    model: Model,
    m: f64,
    seed: u64,
    backend: &dyn TrustBackend,
) -> Result<Vec<(&'static str, f64)>> {
    let p = &cfg.dgpan;
    let mut rng = SplitMix64::new(world_seed(seed, NAME, m));
    let n = cfg.peers;

    // Roles: adversaries never among the pre-trusted; spies first.
    let mut ids = Identities {
        names: Vec::new(),
        roles: Vec::new(),
        active: Vec::new(),
        seen: Vec::new(),
        slashed: Vec::new(),
        index: HashMap::new(),
    };
    for i in 0..n {
        ids.push(format!("p{i:05}"), Role::Honest, true);
    }
    let drawn = draw_adversaries(n, cfg.pretrusted, cfg.adversaries(m), &mut rng);
    let spies = (drawn.len() as f64 * p.spy_share).floor() as usize;
    for (k, &i) in drawn.iter().enumerate() {
        ids.roles[i] = if k < spies {
            Role::Spy
        } else {
            Role::Malicious
        };
    }
    let attackers = drawn.len() - spies;
    // Honest newcomers: among honest peers that are not pre-trusted, leaving
    // at least one honest peer from the start to query.
    let join_epoch = cfg.epochs / 2;
    let mut honest: Vec<usize> = (cfg.pretrusted..n)
        .filter(|&i| ids.roles[i] == Role::Honest)
        .collect();
    let room = (honest.len() + cfg.pretrusted)
        .saturating_sub(1)
        .min(honest.len());
    let newcomer_count = if join_epoch == 0 {
        0
    } else {
        ((p.newcomers * n as f64).round() as usize).min(room)
    };
    partial_shuffle(&mut honest, newcomer_count, &mut rng);
    let newcomers: Vec<usize> = honest[..newcomer_count].to_vec();
    for &i in &newcomers {
        ids.active[i] = false;
    }

    let dir = cfg
        .work_dir
        .join(format!("{NAME}-{}-m{m}-s{seed}", model.name()));
    let log_dir = dir.join("log");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::write(e).with_path(&dir))?;
    }
    std::fs::create_dir_all(&log_dir).map_err(|e| Error::write(e).with_path(&log_dir))?;
    let base = ScoreConfig::new(vec![path_arg(&log_dir)?]);

    let mut counts = Counts {
        posted: attackers as f64 * p.stake,
        ..Counts::default()
    };
    // Fraud proofs found so far: (identity, evidence).
    let mut proofs: Vec<(usize, String)> = Vec::new();
    let mut trust: Option<TopicTrust> = None;
    let mut pool: Vec<usize> = Vec::new();
    let merged = model == Model::Public;
    let layers: &[&str] = if merged { &[MERGED_LAYER] } else { &TOPICS };
    let layer = |k: usize| if merged { 0 } else { k };
    for e in 0..cfg.epochs {
        if e == join_epoch {
            for &i in &newcomers {
                ids.active[i] = true;
            }
        }
        let active: Vec<usize> = (0..ids.len()).filter(|&i| ids.active[i]).collect();
        let queriers: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| ids.roles[i] == Role::Honest)
            .collect();
        let mut rows = Vec::new();
        for (k, topic) in TOPICS.iter().enumerate() {
            for q in 0..p.queries {
                let src = queriers
                    [((rng.next_f64() * queriers.len() as f64) as usize).min(queriers.len() - 1)];
                pool.clear();
                pool.extend(active.iter().copied().filter(|&j| j != src));
                let c = cfg.candidates.min(pool.len());
                partial_shuffle(&mut pool, c, &mut rng);
                let (u_explore, u_pick, u_detect) =
                    (rng.next_f64(), rng.next_f64(), rng.next_f64());
                let dst = cfg.choice.pick(
                    &pool[..c],
                    trust.as_ref().map(|t| t.topic(k)),
                    cfg.exploration,
                    u_explore,
                    u_pick,
                );
                let defect = ids.roles[dst] == Role::Malicious && k == ATTACK_TOPIC;
                // The querier cannot tell a defection from good service.
                rows.push(Interaction {
                    src,
                    dst,
                    layer: layer(k),
                    outcome: 1.0,
                });
                if k == ATTACK_TOPIC {
                    counts.attack_queries += 1;
                    counts.successes += u64::from(defect);
                }
                if defect {
                    counts.gain += p.gain;
                    if model.slashes() && u_detect < p.detection && !ids.slashed[dst] {
                        ids.slashed[dst] = true;
                        counts.burned += p.stake;
                        proofs.push((dst, format!("epoch {e} {topic} query {q}")));
                    }
                }
            }
        }
        // Spies and attackers vouch for each other where reputation is
        // built: every spy for every attacker and back, a closed loop that
        // keeps the trust honest peers give any of them.
        let spies: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| ids.roles[i] == Role::Spy)
            .collect();
        let attackers: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| ids.roles[i] == Role::Malicious)
            .collect();
        for &s in &spies {
            for &a in &attackers {
                for (src, dst) in [(s, a), (a, s)] {
                    rows.push(Interaction {
                        src,
                        dst,
                        layer: layer(BUILD_TOPIC),
                        outcome: 1.0,
                    });
                }
            }
        }
        for r in &rows {
            ids.seen[r.src] = true;
            ids.seen[r.dst] = true;
        }
        log::write_epoch(
            &log_dir.join(format!("epoch-{e:05}.parquet")),
            e,
            &ids.names,
            layers,
            &rows,
        )?;
        // Whitewashing: a slashed identity is worthless; its attacker leaves
        // it and re-enters under a fresh one, staking again.
        for i in 0..ids.len() {
            if ids.active[i] && ids.slashed[i] {
                ids.active[i] = false;
                let name = format!("x{:05}", counts.whitewashes);
                ids.push(name, Role::Malicious, true);
                counts.whitewashes += 1;
                counts.posted += p.stake;
            }
        }

        if model.uses_trust() && (e + 1 < cfg.epochs || e == join_epoch) {
            let base = side_tables(cfg, &dir, &ids, &proofs, model, base.clone())?;
            let inputs = scoring::Inputs {
                base: &base.0,
                mg_base: &base.0,
                topics: layers,
                by_topic: !merged,
                stake: base.1,
                fraud_proofs: base.2,
                index: &ids.index,
                identities: ids.len(),
            };
            let t = scoring::trust(model, &inputs, backend)?;
            if e == join_epoch && !newcomers.is_empty() {
                if let Some(t) = &t {
                    counts.cold_start = cold_start(t, &ids, &newcomers, cfg.pretrusted);
                }
            }
            trust = t;
        }
    }
    if !cfg.keep_logs {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::write(e).with_path(&dir))?;
    }

    let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut out = vec![
        (
            metric::ATTACK_SUCCESS,
            share(counts.successes, counts.attack_queries),
        ),
        (
            metric::ROI,
            if counts.posted > 0.0 {
                (counts.gain - counts.burned) / counts.posted
            } else {
                0.0
            },
        ),
        (metric::WHITEWASHES, counts.whitewashes as f64),
    ];
    if let Some(c) = counts.cold_start {
        out.push((metric::COLD_START, c));
    }
    Ok(out)
}

/// The files a scoring reads beside the logs: the pre-trusted peers seen so
/// far, and for the staking models the stake of every identity seen so far
/// and the fraud proofs. The engine rejects names its logs do not have, so
/// only seen identities are listed.
fn side_tables(
    cfg: &SimConfig,
    dir: &Path,
    ids: &Identities,
    proofs: &[(usize, String)],
    model: Model,
    mut base: ScoreConfig,
) -> Result<(
    ScoreConfig,
    Option<std::path::PathBuf>,
    Option<std::path::PathBuf>,
)> {
    let write = |name: &str, text: String| -> Result<std::path::PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::write(e).with_path(&path))?;
        Ok(path)
    };
    let pre: String = (0..cfg.pretrusted)
        .filter(|&i| ids.seen[i])
        .map(|i| format!("{}\n", ids.names[i]))
        .collect();
    base.pretrusted = if pre.is_empty() {
        None
    } else {
        Some(write("pretrusted.txt", pre)?)
    };
    let stake = if model.stakes() {
        let mut t = String::from("agent,stake\n");
        for i in (0..ids.len()).filter(|&i| ids.seen[i]) {
            let _ = writeln!(t, "{},{}", ids.names[i], cfg.dgpan.stake);
        }
        Some(write("stake.csv", t)?)
    } else {
        None
    };
    let fraud = if model.slashes() && !proofs.is_empty() {
        let mut t = String::from("agent,topic,evidence\n");
        for (i, evidence) in proofs {
            let _ = writeln!(t, "{},{},{evidence}", ids.names[*i], TOPICS[ATTACK_TOPIC]);
        }
        Some(write("fraud.csv", t)?)
    } else {
        None
    };
    Ok((base, stake, fraud))
}

/// Newcomers' mean trust over established honest peers' (pre-trusted peers
/// excluded: their trust is pinned by the teleport); `None` when the
/// established peers have none.
fn cold_start(
    t: &TopicTrust,
    ids: &Identities,
    newcomers: &[usize],
    pretrusted: usize,
) -> Option<f64> {
    let mean = |v: &mut dyn Iterator<Item = usize>| {
        let (mut s, mut c) = (0.0, 0usize);
        for i in v {
            s += t.mean_over_topics(i);
            c += 1;
        }
        (c > 0).then(|| s / c as f64)
    };
    let fresh = mean(&mut newcomers.iter().copied())?;
    let established = mean(
        &mut (pretrusted..ids.len())
            .filter(|&i| ids.roles[i] == Role::Honest && !newcomers.contains(&i)),
    )?;
    (established > 0.0).then(|| fresh / established)
}
