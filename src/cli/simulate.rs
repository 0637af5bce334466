//! `trustmesh simulate`: the classic EigenTrust threat models played against
//! the trust models, every epoch's log scored by the `score` code path.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use trustmesh::simulate::choice::Rule;
use trustmesh::simulate::dgpan::DgpanParams;
use trustmesh::simulate::{self, plot, report, Model, ScenarioKind, SimConfig};

use super::device::DeviceArgs;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Threat model: A individual malicious, B malicious collective, C
    /// camouflaged collective, D spies (EigenTrust paper, §7.2); ring a
    /// camouflaged ring praising itself in a free review layer; sybil
    /// malicious peers with fake identities praising them; dgpan the
    /// DG-PAN paper's topic-switching attack.
    #[arg(long, value_enum, ignore_case = true)]
    scenario: Scenario,
    /// Peers in the market.
    #[arg(long, default_value_t = simulate::DEFAULT_PEERS)]
    peers: usize,
    /// Shares of adversaries, comma-separated; each is a series of runs.
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.2, 0.3, 0.4])]
    malicious: Vec<f64>,
    /// Epochs per run; trust is recomputed from all logs after each.
    #[arg(long, default_value_t = simulate::DEFAULT_EPOCHS)]
    epochs: usize,
    /// Seeds per share (0..S): mean and spread are over these.
    #[arg(long, default_value_t = simulate::DEFAULT_SEEDS)]
    seeds: u64,
    /// Trust models, comma-separated: random, public, mg; with topics
    /// (dgpan) also per-topic and the ablations mg-no-slashing, mg-no-prior,
    /// mg-no-gate.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ModelArg::Random, ModelArg::Public])]
    models: Vec<ModelArg>,
    /// Queries each peer issues per epoch.
    #[arg(long, default_value_t = simulate::DEFAULT_QUERIES)]
    queries: usize,
    /// Peers answering each query, drawn uniformly.
    #[arg(long, default_value_t = simulate::DEFAULT_CANDIDATES)]
    candidates: usize,
    /// Share of choices made uniformly among zero-trust candidates.
    #[arg(long, default_value_t = simulate::DEFAULT_EXPLORATION)]
    exploration: f64,
    /// How choices follow trust: proportional (EigenTrust's rule) or top
    /// (the most trusted candidate).
    #[arg(long, value_enum, default_value_t = ChoiceArg::Proportional)]
    choice: ChoiceArg,
    /// Pre-trusted peers (honest); 0 for uniform pre-trust.
    #[arg(long, default_value_t = simulate::DEFAULT_PRETRUSTED)]
    pretrusted_peers: usize,
    /// Scenarios C and ring: shares of the collective's service that are
    /// authentic, comma-separated; several make a series each, named
    /// `C f=0.3` and so on.
    #[arg(long, value_delimiter = ',', default_values_t = [simulate::DEFAULT_CAMOUFLAGE])]
    camouflage: Vec<f64>,
    /// sybil: fake identities per malicious peer.
    #[arg(long, default_value_t = simulate::DEFAULT_SYBILS)]
    sybils: usize,
    /// dgpan: queries per topic per epoch.
    #[arg(long, default_value_t = DgpanParams::default().queries)]
    queries_per_topic: usize,
    /// dgpan: probability that a defection yields a verified fraud proof.
    #[arg(long, default_value_t = DgpanParams::default().detection)]
    detection: f64,
    /// dgpan: stake each identity posts on joining.
    #[arg(long, default_value_t = DgpanParams::default().stake)]
    stake: f64,
    /// dgpan: an attacker's gain per defection (in units of stake).
    #[arg(long, default_value_t = DgpanParams::default().gain)]
    gain: f64,
    /// dgpan: share of the adversaries that are spies (the rest attack).
    #[arg(long, default_value_t = DgpanParams::default().spy_share)]
    spy_share: f64,
    /// dgpan: share of the peers that are honest newcomers joining half-way.
    #[arg(long, default_value_t = DgpanParams::default().newcomers)]
    newcomers: f64,
    #[command(flatten)]
    device: DeviceArgs,
    /// Report directory: results.parquet, report.md and an SVG plot per
    /// scenario and metric.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Keep every run's logs under OUT/logs.
    #[arg(long)]
    keep_logs: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    #[value(name = "A")]
    A,
    #[value(name = "B")]
    B,
    #[value(name = "C")]
    C,
    #[value(name = "D")]
    D,
    Ring,
    Sybil,
    Dgpan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ChoiceArg {
    Proportional,
    Top,
}

impl std::fmt::Display for ChoiceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Random,
    Public,
    PerTopic,
    Mg,
    MgNoSlashing,
    MgNoPrior,
    MgNoGate,
}

impl std::fmt::Display for ModelArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

impl SimulateArgs {
    fn config(&self) -> SimConfig {
        let scenario = match self.scenario {
            Scenario::A => ScenarioKind::A,
            Scenario::B => ScenarioKind::B,
            Scenario::C => ScenarioKind::C,
            Scenario::D => ScenarioKind::D,
            Scenario::Ring => ScenarioKind::Ring,
            Scenario::Sybil => ScenarioKind::Sybil,
            Scenario::Dgpan => ScenarioKind::Dgpan,
        };
        let mut models = Vec::new();
        for m in &self.models {
            let m = match m {
                ModelArg::Random => Model::Random,
                ModelArg::Public => Model::Public,
                ModelArg::PerTopic => Model::PerTopic,
                ModelArg::Mg => Model::Mg,
                ModelArg::MgNoSlashing => Model::MgNoSlashing,
                ModelArg::MgNoPrior => Model::MgNoPrior,
                ModelArg::MgNoGate => Model::MgNoGate,
            };
            if !models.contains(&m) {
                models.push(m);
            }
        }
        SimConfig {
            peers: self.peers,
            epochs: self.epochs,
            seeds: self.seeds,
            models,
            queries: self.queries,
            candidates: self.candidates,
            exploration: self.exploration,
            pretrusted: self.pretrusted_peers,
            camouflage: self.camouflage[0],
            sybils: self.sybils,
            choice: match self.choice {
                ChoiceArg::Proportional => Rule::Proportional,
                ChoiceArg::Top => Rule::Top,
            },
            dgpan: DgpanParams {
                queries: self.queries_per_topic,
                detection: self.detection,
                stake: self.stake,
                gain: self.gain,
                spy_share: self.spy_share,
                newcomers: self.newcomers,
            },
            keep_logs: self.keep_logs,
            ..SimConfig::new(scenario, self.malicious.clone(), self.out.join("logs"))
        }
    }
}

pub fn run(a: SimulateArgs) -> Result<()> {
    let cfg = a.config();
    // Checked before a GPU is opened or a directory made.
    cfg.validate()?;
    let backend = a
        .device
        .backend()
        .with_context(|| format!("--device {}", a.device.device))?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    // One series per camouflage value where the scenario has one.
    let sweep: Vec<f64> = if matches!(cfg.scenario, ScenarioKind::C | ScenarioKind::Ring) {
        a.camouflage.clone()
    } else {
        vec![cfg.camouflage]
    };
    let bar = progress_bar(cfg.runs() * sweep.len() as u64);
    let mut rows = Vec::new();
    for (k, &f) in sweep.iter().enumerate() {
        let mut series = SimConfig {
            camouflage: f,
            ..cfg.clone()
        };
        if sweep.len() > 1 {
            series.work_dir = cfg.work_dir.join(format!("f{f}"));
        }
        let before = k as u64 * cfg.runs();
        let got = simulate::run_with_progress(&series, backend.as_ref(), &mut |d| {
            bar.set_message(format!(
                "last: {} m={} seed {}",
                d.model.name(),
                d.malicious,
                d.seed
            ));
            bar.set_position(before + d.done);
        });
        let mut got = match got {
            Ok(r) => r,
            Err(e) => {
                // Cleared on failure too, so the error is not printed after a bar.
                bar.finish_and_clear();
                return Err(e.into());
            }
        };
        if sweep.len() > 1 {
            for r in &mut got {
                r.scenario = format!("{} f={f}", r.scenario);
            }
            let _ = std::fs::remove_dir(&series.work_dir);
        }
        rows.extend(got);
    }
    bar.finish_and_clear();
    if !cfg.keep_logs {
        // Each run removed its own directory; the parent goes if empty.
        let _ = std::fs::remove_dir(&cfg.work_dir);
    }
    let results = a.out.join("results.parquet");
    report::write_results(&results, &rows)?;
    // Next to report.md, which links them by file name.
    let plots = plot::write_plots(&rows, &a.out)?;
    let camouflage = sweep
        .iter()
        .map(f64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let header = header(&cfg, &camouflage, &backend.name());
    let md = report::markdown(&header, &rows, &plots);
    let md_path = a.out.join("report.md");
    std::fs::write(&md_path, format!("# trustmesh simulate\n\n{md}"))
        .with_context(|| format!("cannot write {}", md_path.display()))?;
    // The terminal gets the tables alone: an image link is no use there.
    print!("{}", report::markdown(&header, &rows, &[]));
    println!(
        "wrote {}, {} and {} plots in {}",
        results.display(),
        md_path.display(),
        plots.len(),
        a.out.display()
    );
    Ok(())
}

/// A bar over all runs on stderr. indicatif's default target hides itself
/// when stderr is not a terminal (or TERM is `dumb`), so piped output, logs
/// and CI get nothing from it.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs, {elapsed} (eta {eta}) {wide_msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    // Shows 0/N before the first run, which may take a while.
    bar.tick();
    bar
}

/// The report's first paragraph: the configuration the tables come from.
fn header(cfg: &SimConfig, camouflage: &str, device: &str) -> String {
    let market = if cfg.scenario == ScenarioKind::Dgpan {
        let d = &cfg.dgpan;
        format!(
            "{} peers, {} pre-trusted, {} epochs of {} queries per topic in {} topics, \
             {} candidates per query, exploration {}, choice {}, spies {} of the adversaries, \
             detection {}, stake {} and gain {} per defection, newcomers {} of the peers \
             joining at epoch {}",
            cfg.peers,
            cfg.pretrusted,
            cfg.epochs,
            d.queries,
            simulate::dgpan::TOPICS.len(),
            cfg.candidates,
            cfg.exploration,
            cfg.choice.name(),
            d.spy_share,
            d.detection,
            d.stake,
            d.gain,
            d.newcomers,
            cfg.epochs / 2
        )
    } else {
        format!(
            "{} peers, {} pre-trusted, {} epochs of {} queries per peer, {} candidates per query, \
             exploration {}, choice {}{}",
            cfg.peers,
            cfg.pretrusted,
            cfg.epochs,
            cfg.queries,
            cfg.candidates,
            cfg.exploration,
            cfg.choice.name(),
            if matches!(cfg.scenario, ScenarioKind::C | ScenarioKind::Ring) {
                format!(", camouflage f = {camouflage}")
            } else if cfg.scenario == ScenarioKind::Sybil {
                format!(", {} fake identities per malicious peer", cfg.sybils)
            } else {
                String::new()
            },
        )
    };
    format!(
        "{market}, {} seeds; device {device}. Mean ± sample sd over seeds; \
         \"vs random\": change of the mean against random choice.",
        cfg.seeds
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    fn args(extra: &[&str]) -> SimulateArgs {
        let mut v = vec!["simulate"];
        v.extend(extra);
        match parse(&v).unwrap() {
            Command::Simulate(a) => a,
            _ => unreachable!("parsed `simulate`"),
        }
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let cfg = args(&["--scenario", "a"]).config();
        let lib = SimConfig::new(
            ScenarioKind::A,
            vec![0.1, 0.2, 0.3, 0.4],
            "report/logs".into(),
        );
        assert_eq!(format!("{cfg:?}"), format!("{lib:?}"));
    }

    #[test]
    fn lists_and_scenarios() {
        let cfg = args(&[
            "--scenario",
            "C",
            "--malicious",
            "0.2,0.4",
            "--models",
            "public,random,public",
        ])
        .config();
        assert_eq!(cfg.scenario, ScenarioKind::C);
        assert_eq!(cfg.malicious, vec![0.2, 0.4]);
        assert_eq!(cfg.models, vec![Model::Public, Model::Random]);
        assert!(parse(&["simulate"]).is_err(), "--scenario is required");
        assert!(parse(&["simulate", "--scenario", "E"]).is_err());
    }

    #[test]
    fn the_bar_counts_runs() {
        let cfg = args(&["--scenario", "A", "--malicious", "0.1,0.2", "--seeds", "3"]).config();
        assert_eq!(cfg.runs(), 2 * 3 * 2);
        let bar = progress_bar(cfg.runs());
        assert_eq!(bar.length(), Some(12));
        bar.finish_and_clear();
    }
}
