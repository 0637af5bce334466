//! The command line. One module per subcommand holds its clap `Args` and its
//! `run`; argument groups that several commands share (iteration parameters,
//! device selection, outputs) have a module each and are flattened where they
//! apply. As in ripgrep's `flags`, a flag's documentation is its doc comment,
//! beside its parse rule and its test. Defaults are the library's constants,
//! so `--help` shows what a library caller gets too.
//!
//! `anyhow` lives here only: the library returns `trustmesh::Error`, and the
//! CLI adds the flag a failure concerns as context; `errors` prints the
//! library's parameter names as the flags that set them.

mod bench;
mod convert;
mod device;
mod devices;
mod errors;
mod id;
mod iter;
mod mechanism;
mod output;
mod score;
mod serve;
mod sign_log;
mod simulate;
mod snapshot;
mod stackelberg;

use clap::{Parser, Subcommand};

pub use errors::error_line;

#[derive(Parser)]
#[command(
    name = "trustmesh",
    version,
    about = "Trust and mechanism analytics for open agent networks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// ScoreArgs is large, but the enum exists once per process: boxing would only
// add noise to the match arms.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Compute MG-EigenTrust scores from Parquet interaction logs.
    Score(score::ScoreArgs),
    /// Turn a public trust data set (SNAP, KONECT, TSV) into a Parquet log.
    Convert(convert::ConvertArgs),
    /// List GPU adapters (Vulkan, Metal, DX12) with their limits and features.
    Devices(devices::DevicesArgs),
    /// Time the power iteration per device and block width (or, with
    /// --mechanism, `mechanism` solves; with --best-response, Stackelberg
    /// best responses per second).
    Bench(bench::BenchArgs),
    /// Keys and the BAID identity registry (append-only, hash-chained).
    Id(id::IdArgs),
    /// Signed, verifiable reputation snapshots and Merkle proofs.
    Snapshot(snapshot::SnapshotArgs),
    /// Sign a rater's rows of a log (fills the `sig` column).
    SignLog(sign_log::SignLogArgs),
    /// Trust-tiered contracts: one reward per trust tier, the best schedule
    /// within a budget.
    Mechanism(mechanism::MechanismArgs),
    /// Solve a Bayesian Stackelberg game (JSON): exact, search or both.
    Stackelberg(stackelberg::StackelbergArgs),
    /// Play a threat model (EigenTrust's A, B, C, D) against the trust
    /// models; every epoch's log is scored as `score` would.
    Simulate(simulate::SimulateArgs),
    /// Run a node: recompute and sign snapshots as logs arrive (publisher),
    /// follow trusted publishers by gossip, serve snapshots, scores and
    /// proofs over HTTP.
    Serve(serve::ServeArgs),
}

impl Command {
    pub fn run(self) -> anyhow::Result<()> {
        quiet_mesa_wsi();
        match self {
            Command::Score(a) => score::run(a),
            Command::Convert(a) => convert::run(a),
            Command::Devices(a) => devices::run(a),
            Command::Bench(a) => bench::run(a),
            Command::Id(a) => id::run(a),
            Command::Snapshot(a) => snapshot::run(a),
            Command::SignLog(a) => sign_log::run(a),
            Command::Mechanism(a) => mechanism::run(a),
            Command::Stackelberg(a) => stackelberg::run(a),
            Command::Simulate(a) => simulate::run(a),
            Command::Serve(a) => serve::run(a),
        }
    }
}

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" to
/// stderr once per adapter probe when the variable is unset (headless servers,
/// CI), which buries our one-line messages. We never present to a window, so
/// pointing it at the temp dir is harmless. Done first, while single-threaded.
fn quiet_mesa_wsi() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

/// The clock as unix seconds: ledger entries and snapshot headers record it.
fn unix_now() -> anyhow::Result<i64> {
    use anyhow::Context;
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(d.as_secs() as i64)
}

/// Parses a command line as the binary would; for the groups' tests.
#[cfg(test)]
fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("trustmesh").chain(args.iter().copied())).map(|c| c.command)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
