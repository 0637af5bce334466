//! `trustmesh mechanism`: trust-tiered contracts from a scores file and an
//! agents table (docs/mechanism.md, "Trust-tiered contracts").

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;

use trustmesh::mechanism::contract::params::{
    DEFAULT_REWARD_MAX, DEFAULT_REWARD_STEPS, DEFAULT_TASK_VALUE, DEFAULT_TIERS,
};
use trustmesh::mechanism::contract::solve::Timings;
use trustmesh::mechanism::contract::{self, ContractParams, Solution, Unscored};

use super::output::write_json;

#[derive(Args, Debug)]
pub struct MechanismArgs {
    /// Scores file, as `trustmesh score --out` writes it (agent, score).
    #[arg(long)]
    scores: PathBuf,
    /// The vector of a long scores file (--per-topic, --per-layer,
    /// --pretrusted-sets): a value of its topic, layer or set column, e.g.
    /// global.
    #[arg(long)]
    vector: Option<String>,
    /// Agents table (Parquet): agent, cost (per unit of effort, > 0),
    /// capability (in [0, 1]).
    #[arg(long)]
    agents: PathBuf,
    /// Output JSON: the schedule, the tiers and their outcomes, the best
    /// uniform schedule and the gain over it.
    #[arg(long)]
    out: PathBuf,
    /// Trust tiers (quantiles of the scores; tied agents share a tier).
    #[arg(long, default_value_t = DEFAULT_TIERS)]
    tiers: usize,
    /// The leader's value of one success.
    #[arg(long, default_value_t = DEFAULT_TASK_VALUE, allow_negative_numbers = true)]
    task_value: f64,
    /// The largest reward; the grid is 0, Δ, …, this.
    #[arg(long, default_value_t = DEFAULT_REWARD_MAX, allow_negative_numbers = true)]
    reward_max: f64,
    /// Rewards on the grid, 0 and --reward-max included.
    #[arg(long, default_value_t = DEFAULT_REWARD_STEPS)]
    reward_steps: usize,
    /// Bound on the expected payments (default: none).
    #[arg(long, allow_negative_numbers = true)]
    budget: Option<f64>,
    /// What an agent of --agents without a score gets: error (stop and name
    /// it) or zero (the score 0).
    #[arg(long, value_enum, default_value_t = UnscoredArg::from(Unscored::default()))]
    unscored: UnscoredArg,
}

/// `--unscored`, the command-line face of [`Unscored`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum UnscoredArg {
    Error,
    Zero,
}

impl From<Unscored> for UnscoredArg {
    fn from(u: Unscored) -> Self {
        match u {
            Unscored::Error => UnscoredArg::Error,
            Unscored::Zero => UnscoredArg::Zero,
        }
    }
}

impl From<UnscoredArg> for Unscored {
    fn from(u: UnscoredArg) -> Self {
        match u {
            UnscoredArg::Error => Unscored::Error,
            UnscoredArg::Zero => Unscored::Zero,
        }
    }
}

impl std::fmt::Display for UnscoredArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

impl MechanismArgs {
    fn params(&self) -> ContractParams {
        ContractParams {
            tiers: self.tiers,
            task_value: self.task_value,
            reward_max: self.reward_max,
            reward_steps: self.reward_steps,
            budget: self.budget,
            unscored: self.unscored.into(),
        }
    }
}

/// The file `--out` writes (docs/mechanism.md).
#[derive(Serialize)]
struct Output<'a> {
    model: &'static str,
    scores: String,
    vector: Option<&'a str>,
    agents_file: String,
    agents: usize,
    parameters: Parameters<'a>,
    #[serde(flatten)]
    solution: &'a Solution,
    seconds: Seconds,
}

#[derive(Serialize)]
struct Parameters<'a> {
    #[serde(flatten)]
    params: &'a ContractParams,
    /// Δ.
    reward_step: f64,
}

#[derive(Serialize)]
struct Seconds {
    read: f64,
    #[serde(flatten)]
    solve: Timings,
    total: f64,
}

pub fn run(a: MechanismArgs) -> Result<()> {
    let t = Instant::now();
    let (problem, s) =
        contract::solve_files(&a.agents, &a.scores, a.vector.as_deref(), a.params())?;
    let total = t.elapsed().as_secs_f64();
    let solve = s.timings;
    let out = Output {
        model: "trust-tiered contracts (docs/mechanism.md)",
        scores: display(&a.scores),
        vector: a.vector.as_deref(),
        agents_file: display(&a.agents),
        agents: problem.agents().len(),
        parameters: Parameters {
            params: problem.params(),
            reward_step: problem.params().reward_step(),
        },
        solution: &s,
        seconds: Seconds {
            read: (total - solve.tiers - solve.tables - solve.schedule).max(0.0),
            solve,
            total,
        },
    };
    write_json(&a.out, &out)?;
    print_summary(problem.agents().len(), problem.params(), &s);
    println!("wrote {}", a.out.display());
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn print_summary(agents: usize, p: &ContractParams, s: &Solution) {
    let budget = p
        .budget
        .map_or("no budget".to_string(), |b| format!("budget {b}"));
    println!(
        "{} agents in {} tiers, {} rewards from 0 to {} ({budget}); {} unscored",
        agents, p.tiers, p.reward_steps, p.reward_max, s.unscored_agents
    );
    println!(
        "{:>4} {:>8} {:>25} {:>9} {:>11} {:>11} {:>11}",
        "tier", "members", "scores", "reward", "successes", "payment", "utility"
    );
    for t in &s.tiers {
        let scores = match (t.score_min, t.score_max) {
            (Some(lo), Some(hi)) => format!("[{lo:.4e}, {hi:.4e}]"),
            _ => "-".to_string(),
        };
        println!(
            "{:>4} {:>8} {:>25} {:>9.3} {:>11.3} {:>11.3} {:>11.3}",
            t.tier,
            t.members,
            scores,
            t.reward,
            t.expected_successes,
            t.expected_payment,
            t.expected_utility
        );
    }
    let u = &s.uniform;
    println!(
        "expected utility {:.3}, payment {:.3}, successes {:.3}",
        s.expected_utility, s.expected_payment, s.expected_successes
    );
    println!(
        "uniform reward {:.3}: utility {:.3}, payment {:.3}; tiers gain {:.3}{}",
        u.reward,
        u.expected_utility,
        u.expected_payment,
        s.gain_over_uniform,
        s.gain_over_uniform_relative
            .map_or(String::new(), |r| format!(" ({:+.2}%)", r * 100.0))
    );
}

#[cfg(test)]
mod tests {
    use crate::cli::{parse, Command};

    use super::*;

    fn args(extra: &[&str]) -> Result<MechanismArgs, clap::Error> {
        let v: Vec<&str> = [
            "mechanism",
            "--scores",
            "s.parquet",
            "--agents",
            "a.parquet",
            "--out",
            "m.json",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
        parse(&v).map(|c| match c {
            Command::Mechanism(a) => a,
            _ => unreachable!("parsed `mechanism`"),
        })
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        assert_eq!(args(&[]).unwrap().params(), ContractParams::default());
        let a = args(&["--budget", "-5", "--tiers", "2", "--unscored", "zero"]).unwrap();
        assert_eq!(a.params().budget, Some(-5.0), "the library checks the sign");
        assert_eq!((a.params().tiers, a.params().unscored), (2, Unscored::Zero));
        assert!(args(&["--unscored", "skip"]).is_err());
        assert!(
            parse(&["mechanism", "--scores", "s"]).is_err(),
            "--agents and --out are required"
        );
    }
}
