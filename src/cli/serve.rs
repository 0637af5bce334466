//! `trustmesh serve`: a gossip node that recomputes, signs and spreads
//! reputation, and serves it over HTTP (docs/serve.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use trustmesh::ingest::time::parse_duration_s;
use trustmesh::mechanism::contract::params::{
    DEFAULT_REWARD_MAX, DEFAULT_REWARD_STEPS, DEFAULT_TASK_VALUE, DEFAULT_TIERS,
};
use trustmesh::mechanism::contract::{Agents, ContractParams, Unscored};
use trustmesh::serve::mechanism::MechanismConfig;
use trustmesh::serve::node::{self, NodeConfig, PublishConfig};

use super::mechanism::UnscoredArg;
use super::score::JobArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Directory of *.parquet logs; a publisher rescans it every --interval.
    #[arg(long = "log")]
    log: Option<PathBuf>,
    /// This node's key file (`id new`): signs its announcements and, with
    /// --publisher, its snapshots.
    #[arg(long)]
    key: PathBuf,
    /// HTTP address (also announced to peers, so one they can reach).
    #[arg(long, default_value = "127.0.0.1:7700")]
    http: SocketAddr,
    /// Gossip (UDP) address.
    #[arg(long, default_value = "127.0.0.1:7701")]
    gossip: SocketAddr,
    /// A node to join through, HOST:PORT of its gossip address; repeatable.
    #[arg(long = "seed")]
    seeds: Vec<String>,
    /// How often a publisher rescans --log (500ms, 30s, 2m, ...).
    #[arg(long, default_value = "30s")]
    interval: String,
    /// How often gossip exchanges state with peers.
    #[arg(long, default_value = "200ms")]
    gossip_interval: String,
    /// Recompute and publish snapshots signed by --key.
    #[arg(long, requires = "log")]
    publisher: bool,
    /// Start each recompute from the previous snapshot's vector: fewer
    /// iterations on a log that grew a little. The header records the start
    /// snapshot, and `snapshot audit --start-from` re-derives from it.
    #[arg(long, requires = "publisher")]
    warm_start: bool,
    /// Follow this publisher's snapshots (64 hex characters); repeatable.
    #[arg(long = "trust-publisher")]
    trust_publisher: Vec<String>,
    /// Where snapshots and the state live.
    #[arg(long, default_value = "trustmesh-state")]
    state: PathBuf,
    /// Also publish accepted announcements to this MQTT broker
    /// (mqtt://HOST:PORT).
    #[arg(long)]
    mqtt: Option<String>,
    /// Network id (letters, digits, '.', '_', '-').
    #[arg(long, default_value = "trustmesh")]
    network: String,
    /// How long each published snapshot is valid (s, m, h, d, w).
    #[arg(long, default_value = "7d")]
    expires: String,
    /// How long a fetch from a peer may take.
    #[arg(long, default_value = "10s")]
    fetch_timeout: String,
    /// Print errors only.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    mechanism: MechanismFlags,
    #[command(flatten)]
    job: JobArgs,
}

/// A publisher's mechanism: trust-tiered contracts posted beside each
/// snapshot (docs/serve.md, docs/mechanism.md); the flags of `trustmesh
/// mechanism`, prefixed.
#[derive(Args, Debug)]
struct MechanismFlags {
    /// Post trust-tiered contracts beside each snapshot, for this agents
    /// table (agent, cost, capability).
    #[arg(long, requires = "publisher")]
    mechanism_agents: Option<PathBuf>,
    /// Trust tiers of the mechanism.
    #[arg(long, default_value_t = DEFAULT_TIERS, requires = "mechanism_agents")]
    mechanism_tiers: usize,
    /// The leader's value of one success.
    #[arg(long, default_value_t = DEFAULT_TASK_VALUE, allow_negative_numbers = true, requires = "mechanism_agents")]
    mechanism_task_value: f64,
    /// The largest reward.
    #[arg(long, default_value_t = DEFAULT_REWARD_MAX, allow_negative_numbers = true, requires = "mechanism_agents")]
    mechanism_reward_max: f64,
    /// Rewards on the grid, 0 and the largest included.
    #[arg(long, default_value_t = DEFAULT_REWARD_STEPS, requires = "mechanism_agents")]
    mechanism_reward_steps: usize,
    /// Bound on the expected payments (default: none).
    #[arg(long, allow_negative_numbers = true, requires = "mechanism_agents")]
    mechanism_budget: Option<f64>,
    /// What an agent of the table without a score gets: error (the publish
    /// fails and names it) or zero.
    #[arg(long, value_enum, default_value_t = UnscoredArg::from(Unscored::default()), requires = "mechanism_agents")]
    mechanism_unscored: UnscoredArg,
}

impl MechanismFlags {
    /// The configuration, checked now (parameters and the agents table), so
    /// a bad flag stops the node at start rather than every publish.
    fn config(&self) -> Result<Option<MechanismConfig>> {
        let Some(agents) = &self.mechanism_agents else {
            return Ok(None);
        };
        let params = ContractParams {
            tiers: self.mechanism_tiers,
            task_value: self.mechanism_task_value,
            reward_max: self.mechanism_reward_max,
            reward_steps: self.mechanism_reward_steps,
            budget: self.mechanism_budget,
            unscored: self.mechanism_unscored.into(),
        };
        params.validate().context("--mechanism-* flags")?;
        Agents::read(agents).context("--mechanism-agents")?;
        Ok(Some(MechanismConfig {
            agents: agents.clone(),
            params,
        }))
    }
}

/// A duration: `500ms`, or what `--half-life` takes (`30s`, `2m`, `1h`,
/// seconds without a unit).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        let v: f64 = ms
            .trim()
            .parse()
            .with_context(|| format!("duration `{s}`: expected e.g. 500ms, 30s, 2m"))?;
        if !(v > 0.0 && v.is_finite() && v < 1e12) {
            bail!("duration `{s}`: expected a positive number of milliseconds");
        }
        return Ok(Duration::from_secs_f64(v / 1e3));
    }
    let secs = parse_duration_s(t)?;
    Duration::try_from_secs_f64(secs).with_context(|| format!("duration `{s}` is out of range"))
}

/// Bounds of `--gossip-interval`.
const MIN_GOSSIP_INTERVAL: Duration = Duration::from_millis(10);
const MAX_GOSSIP_INTERVAL: Duration = Duration::from_secs(60);

fn parse_publisher(s: &str) -> Result<[u8; 32]> {
    let k = trustmesh::identity::parse_public_key(s)
        .with_context(|| format!("--trust-publisher {s}"))?;
    Ok(k.to_bytes())
}

pub fn run(a: ServeArgs) -> Result<()> {
    let key =
        trustmesh::identity::read_key_file(&a.key).with_context(|| a.key.display().to_string())?;
    let trusted = a
        .trust_publisher
        .iter()
        .map(|s| parse_publisher(s))
        .collect::<Result<Vec<_>>>()?;
    if !a.publisher && trusted.is_empty() {
        bail!("nothing to serve: pass --publisher (with --log) or --trust-publisher KEY");
    }
    let interval = parse_duration(&a.interval).context("--interval")?;
    let gossip_interval = parse_duration(&a.gossip_interval).context("--gossip-interval")?;
    // Gossip timings are multiples of the interval (failure detection,
    // leaving); a bound keeps them meaningful and far from overflow.
    if !(MIN_GOSSIP_INTERVAL..=MAX_GOSSIP_INTERVAL).contains(&gossip_interval) {
        bail!(
            "--gossip-interval {}: expected {MIN_GOSSIP_INTERVAL:?} to {MAX_GOSSIP_INTERVAL:?}",
            a.gossip_interval
        );
    }
    let fetch_timeout = parse_duration(&a.fetch_timeout).context("--fetch-timeout")?;
    let ttl = parse_duration_s(&a.expires).context("--expires")?;
    let publish = match (a.publisher, &a.log) {
        (true, Some(log)) => {
            if !log.is_dir() {
                bail!("--log {}: not a directory", log.display());
            }
            let logs = log.to_str().context("--log: not UTF-8")?.to_string();
            let score = a.job.config(vec![logs])?;
            let device = a.job.device.clone();
            Some(PublishConfig {
                logs: log.clone(),
                score,
                interval,
                ttl_s: ttl.ceil().min(i64::MAX as f64) as i64,
                backend: Box::new(move || device.backend()),
                mechanism: a.mechanism.config()?,
                warm_start: a.warm_start,
            })
        }
        _ => None,
    };
    let cfg = NodeConfig {
        key,
        network: a.network,
        http: a.http,
        gossip: a.gossip,
        seeds: a.seeds,
        gossip_interval,
        state_dir: a.state,
        trusted,
        publish,
        mqtt: a.mqtt,
        fetch_timeout,
        quiet: a.quiet,
    };
    let rt = trustmesh::runtime::shared()?;
    rt.block_on(node::run(cfg, shutdown_signal()))?;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        for bad in ["", "ms", "-1s", "0ms", "soon", "1e400ms"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// A publisher's `serve` arguments with `extra` after them.
    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["serve", "--key", "k", "--publisher", "--log", "d"];
        argv.extend_from_slice(extra);
        match parse(&argv).unwrap() {
            Command::Serve(a) => a,
            _ => unreachable!("parsed `serve`"),
        }
    }

    #[test]
    fn flags() {
        let a = serve_args(&[
            "--seed",
            "127.0.0.1:1",
            "--seed",
            "127.0.0.1:2",
            "--alpha",
            "0.2",
        ]);
        assert_eq!(a.seeds.len(), 2);
        assert_eq!(a.job.config(vec!["d".into()]).unwrap().alpha, 0.2);
        // --publisher needs --log.
        assert!(parse(&["serve", "--key", "k", "--publisher"]).is_err());
        // The mechanism is a publisher's, and its parameters need its table.
        assert!(parse(&["serve", "--key", "k", "--mechanism-agents", "a.parquet"]).is_err());
        assert!(parse(&["serve", "--key", "k", "--mechanism-tiers", "3"]).is_err());
        let a = serve_args(&[
            "--mechanism-agents",
            "a.parquet",
            "--mechanism-budget",
            "50",
        ]);
        assert_eq!(a.mechanism.mechanism_budget, Some(50.0));
        // The table is read at start: a missing one is named.
        let err = a.mechanism.config().unwrap_err();
        assert!(format!("{err:#}").contains("--mechanism-agents"), "{err:#}");
    }
}
