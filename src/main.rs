//! The `trustmesh` command line. Parsing and printing only: every job lives in
//! the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use trustmesh::bench::{self, BenchGraph};
use trustmesh::gpu::GpuBackend;
use trustmesh::ingest::convert::{self, Format};
use trustmesh::ingest::time::{parse_duration_s, parse_instant_ms};
use trustmesh::score::batched::{self, BatchKind};
use trustmesh::score::per_topic::{self, TopicOptions};
use trustmesh::score::{self, DistrustMode, RunSummary, ScoreConfig};
use trustmesh::trust::{CpuBackend, FlatTail, TrustBackend};

#[derive(Parser)]
#[command(
    name = "trustmesh",
    version,
    about = "Trust and mechanism analytics for open agent networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// ScoreArgs is large, but the enum exists once per process: boxing would only
// add noise to the match arms.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Compute MG-EigenTrust scores from Parquet interaction logs.
    Score(ScoreArgs),
    /// Turn a public trust data set (SNAP, KONECT, TSV) into a Parquet log.
    Convert(ConvertArgs),
    /// List GPU adapters (Vulkan, Metal, DX12) with their limits and features.
    Devices,
    /// Time the power iteration per device and block width.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Interaction log to benchmark on (all layers, default parameters).
    #[arg(long, conflicts_with = "synthetic")]
    graph: Option<PathBuf>,
    /// Seeded power-law graph N,M (nodes, edges); the default if no --graph.
    #[arg(long, value_parser = parse_pair)]
    synthetic: Option<(u32, usize)>,
    /// Seed of the synthetic graph.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Block widths K (vectors per matrix pass), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    k: Vec<usize>,
    /// Devices, comma-separated: cpu, gpu.
    #[arg(long, value_delimiter = ',', default_value = "cpu,gpu")]
    device: Vec<String>,
    /// GPU adapter name substring.
    #[arg(long)]
    adapter: Option<String>,
    /// Timed iterations per case (after warm-up).
    #[arg(long, default_value_t = 20)]
    iters: u32,
    /// GPU memory bandwidth in GB/s, for the fraction-of-bound column.
    #[arg(long)]
    gpu_bandwidth: Option<f64>,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the benchmark's iteration matrix (binary CSR, docs/benchmarks.md)
    /// so peers can time the very same matrix.
    #[arg(long)]
    save_matrix: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Device {
    Auto,
    Cpu,
    Gpu,
}

#[derive(Clone, Copy, ValueEnum)]
enum Distrust {
    Ignore,
    Discount,
}

#[derive(Args)]
struct ScoreArgs {
    /// Log file, directory of *.parquet, or glob; repeatable.
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
    /// Output Parquet file (agent, score, rank).
    #[arg(long)]
    out: PathBuf,
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
    #[arg(long, default_value_t = 0.2)]
    beta: f64,
    /// Costly volume at which a cheap edge keeps all its trust.
    #[arg(long, default_value_t = 1.0)]
    tau: f64,
    /// File with one pre-trusted agent id per line.
    #[arg(long)]
    pretrusted: Option<PathBuf>,
    /// Teleport probability (weight of pre-trust).
    #[arg(long, default_value_t = 0.15)]
    alpha: f64,
    /// Stop when the L1 change is below this (default 1e-9 on CPU, 1e-6 on GPU).
    #[arg(long)]
    epsilon: Option<f64>,
    /// Iteration cap.
    #[arg(long, default_value_t = 200)]
    max_iter: u32,
    /// Time-decay half-life, e.g. 7d, 12h, 3600 (seconds).
    #[arg(long)]
    half_life: Option<String>,
    /// Keep rows at or after this time (RFC 3339 or date, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Keep rows before this time.
    #[arg(long)]
    until: Option<String>,
    /// Also stop once the top order is unchanged for this many iterations.
    #[arg(long)]
    flat_tail: Option<u32>,
    /// How many top agents --flat-tail watches.
    #[arg(long, default_value_t = 100, requires = "flat_tail")]
    flat_tail_top: usize,
    /// Use negative trust: ignore (original EigenTrust) or discount.
    #[arg(long, value_enum, default_value_t = Distrust::Ignore)]
    distrust: Distrust,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    device: Device,
    /// GPU adapter name substring (with --device gpu or auto).
    #[arg(long)]
    adapter: Option<String>,
    /// Write a JSON report of counts, iterations and stage timings.
    #[arg(long)]
    report: Option<PathBuf>,
    /// How many top agents to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Scale each rater's feedback by its agreement with the other raters.
    #[arg(long)]
    consistency_gate: bool,
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
    /// Stake table (Parquet or CSV: agent, stake >= 0) for dynamic pre-trust.
    #[arg(long, requires = "per_topic")]
    stake: Option<PathBuf>,
    /// Fraud proofs (Parquet or CSV: agent, topic, evidence); each slashes.
    #[arg(long, requires = "per_topic")]
    fraud_proofs: Option<PathBuf>,
    /// Weight of seed pre-trust against stake.
    #[arg(long, default_value_t = 0.5, requires = "per_topic")]
    sigma: f64,
    /// Share of the cross-topic cold-start prior.
    #[arg(long, default_value_t = 0.1, requires = "per_topic")]
    rho: f64,
    /// Topic similarity matrix (CSV: topic,<t1>,<t2>,...).
    #[arg(long, requires = "per_topic")]
    topic_similarity: Option<PathBuf>,
}

#[derive(Args)]
struct ConvertArgs {
    /// Input format: snap-signed, konect or tsv.
    #[arg(long = "from")]
    from: String,
    /// Input text file (plain or gzip).
    input: PathBuf,
    /// Output Parquet log.
    #[arg(long)]
    out: PathBuf,
    /// Layer name for every row.
    #[arg(long, default_value = "trust")]
    layer: String,
    /// Ratings are divided by this to give outcomes in [-1, 1].
    #[arg(long, default_value_t = 1.0)]
    rating_scale: f64,
}

fn parse_pair(s: &str) -> std::result::Result<(u32, usize), String> {
    let (n, m) = s
        .split_once(',')
        .ok_or_else(|| format!("`{s}`: expected N,M, e.g. 100000,1000000"))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a node count"))?;
    let m = m
        .trim()
        .parse()
        .map_err(|_| format!("`{m}` is not an edge count"))?;
    Ok((n, m))
}

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

fn main() -> ExitCode {
    quiet_mesa_wsi();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(a) => run_score(a),
        Command::Convert(a) => run_convert(a),
        Command::Devices => run_devices(),
        Command::Bench(a) => run_bench(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
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

/// `gpu` must get a GPU; `auto` takes a hardware GPU when there is one and
/// otherwise says in one line why it uses the CPU. A software adapter
/// (lavapipe, WARP) counts as no GPU for `auto`: the CPU path is faster than
/// an emulated GPU and is the exact f64 reference.
fn backend(device: Device, adapter: Option<&str>) -> Result<Box<dyn TrustBackend>> {
    match device {
        Device::Cpu => Ok(Box::new(CpuBackend)),
        Device::Gpu => Ok(Box::new(GpuBackend::new(adapter).context("--device gpu")?)),
        Device::Auto => match GpuBackend::new(adapter) {
            Ok(gpu) if gpu.context().adapter_info().device_type != wgpu::DeviceType::Cpu => {
                Ok(Box::new(gpu))
            }
            Ok(gpu) => {
                eprintln!(
                    "trustmesh: only a software GPU adapter ({}) found; using the CPU (--device gpu forces it)",
                    gpu.context().adapter_info().name
                );
                Ok(Box::new(CpuBackend))
            }
            Err(e) => {
                eprintln!("trustmesh: no usable GPU ({e}); using the CPU");
                Ok(Box::new(CpuBackend))
            }
        },
    }
}

fn run_score(a: ScoreArgs) -> Result<()> {
    let mut cfg = ScoreConfig::new(a.logs);
    cfg.ingest.layers = a.layers;
    cfg.ingest.half_life_s = a.half_life.as_deref().map(parse_duration_s).transpose()?;
    cfg.ingest.since_ms = a.since.as_deref().map(parse_instant_ms).transpose()?;
    cfg.ingest.until_ms = a.until.as_deref().map(parse_instant_ms).transpose()?;
    cfg.layer_weights = a.layer_weight;
    cfg.cheap = a.cheap;
    cfg.costly = a.costly;
    cfg.beta = a.beta;
    cfg.tau = a.tau;
    cfg.pretrusted = a.pretrusted;
    cfg.alpha = a.alpha;
    cfg.epsilon = a.epsilon;
    cfg.max_iter = a.max_iter;
    cfg.flat_tail = a.flat_tail.map(|iterations| FlatTail {
        iterations,
        top: a.flat_tail_top,
    });
    cfg.distrust = match a.distrust {
        Distrust::Ignore => DistrustMode::Ignore,
        Distrust::Discount => DistrustMode::Discount,
    };
    cfg.consistency_gate = a.consistency_gate;
    let backend = backend(a.device, a.adapter.as_deref())?;
    let backend = backend.as_ref();
    let outputs = Outputs {
        out: &a.out,
        report: a.report.as_deref(),
        top: a.top,
        announced: Default::default(),
    };
    if a.per_topic {
        let opts = TopicOptions {
            stake: a.stake,
            fraud_proofs: a.fraud_proofs,
            sigma: a.sigma,
            rho: a.rho,
            similarity: a.topic_similarity,
        };
        let mut out = per_topic::run(&cfg, &opts, backend)?;
        let r = &mut out.report;
        r.seconds.write =
            outputs.write(|p| trustmesh::output::write_topic_scores(p, &out.scores))?;
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
        return Ok(());
    }
    let batch = match (a.pretrusted_sets, a.per_layer) {
        (Some(p), _) => Some(BatchKind::PretrustSets(p)),
        (None, true) => Some(BatchKind::PerLayer),
        (None, false) => None,
    };
    if let Some(kind) = batch {
        let mut out = batched::run(&cfg, &kind, backend)?;
        let groups: Vec<(&str, &[f64])> = out
            .groups
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let r = &mut out.report;
        r.seconds.write = outputs
            .write(|p| trustmesh::output::write_long(p, kind.key(), &out.agents, &groups))?;
        outputs.write_report(r)?;
        println!(
            "{}: {} vectors in one batched call",
            summary(&r.run),
            groups.len()
        );
        for (name, scores) in &groups {
            outputs.print_top(&format!("{} {name}", kind.key()), &out.agents, scores);
        }
        return Ok(());
    }
    let mut out = score::run(&cfg, backend)?;
    let r = &mut out.report;
    r.seconds.write = outputs.write(|p| trustmesh::output::write_scores(p, &out.scores))?;
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

/// Where a scoring run's results go.
struct Outputs<'a> {
    out: &'a Path,
    report: Option<&'a Path>,
    top: usize,
    /// Whether "wrote FILE" was printed (after the summary, before the tables).
    announced: std::cell::Cell<bool>,
}

impl Outputs<'_> {
    /// Writes the score file and returns the seconds it took.
    fn write(&self, f: impl FnOnce(&Path) -> trustmesh::Result<()>) -> Result<f64> {
        let t = Instant::now();
        f(self.out)?;
        Ok(t.elapsed().as_secs_f64())
    }

    fn write_report<T: serde::Serialize>(&self, report: &T) -> Result<()> {
        match self.report {
            Some(path) => write_report(path, report),
            None => Ok(()),
        }
    }

    fn print_top(&self, title: &str, agents: &[String], scores: &[f64]) {
        if !self.announced.replace(true) {
            println!("wrote {}", self.out.display());
        }
        if self.top == 0 {
            return;
        }
        println!("{title}:");
        println!("{:>6}  {:<24} {:>12}", "rank", "agent", "score");
        for (pos, i) in trustmesh::trust::scores::order(scores)
            .into_iter()
            .take(self.top)
            .enumerate()
        {
            println!("{:>6}  {:<24} {:>12.6e}", pos + 1, agents[i], scores[i]);
        }
    }
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

fn write_report<T: serde::Serialize>(path: &Path, report: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("{}: cannot write report", path.display()))
}

fn run_devices() -> Result<()> {
    let adapters = trustmesh::gpu::list_adapters();
    if adapters.is_empty() {
        println!("no Vulkan, Metal or DX12 adapter found (on Debian, `apt-get install mesa-vulkan-drivers` adds the software one)");
    }
    for a in adapters {
        println!("{a}");
    }
    Ok(())
}

fn run_bench(a: BenchArgs) -> Result<()> {
    let graph = match (a.graph, a.synthetic) {
        (Some(p), _) => BenchGraph::Log(p),
        (None, Some((n, m))) => BenchGraph::Synthetic { n, m, seed: a.seed },
        (None, None) => BenchGraph::Synthetic {
            n: 100_000,
            m: 1_000_000,
            seed: a.seed,
        },
    };
    if a.iters == 0 || a.k.contains(&0) {
        bail!("--iters and every --k must be at least 1");
    }
    let t = Instant::now();
    let m = bench::load_matrix(&graph)?;
    println!(
        "graph: {} ({} agents, {} stored edges, {:.1} s to load)",
        graph.describe(),
        m.n(),
        m.nnz(),
        t.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.save_matrix {
        bench::save_matrix(&m, path)?;
        println!("matrix written to {}", path.display());
    }
    let cpu_bw = bench::cpu_read_bandwidth_gbps();
    println!(
        "cpu: {} threads, read bandwidth {:.1} GB/s (measured now)",
        rayon::current_num_threads(),
        cpu_bw
    );
    let mut cases = Vec::new();
    for dev in &a.device {
        let (b, value_bytes, bw): (Box<dyn TrustBackend>, usize, Option<f64>) = match dev.as_str() {
            "cpu" => (Box::new(CpuBackend), 8, Some(cpu_bw)),
            "gpu" => match GpuBackend::new(a.adapter.as_deref()) {
                Ok(g) => {
                    println!(
                        "gpu: rows fitted to {} entries per lane (${})",
                        g.plan().per_lane,
                        trustmesh::gpu::trust::PER_LANE_ENV
                    );
                    (Box::new(g), 4, a.gpu_bandwidth)
                }
                Err(e) => {
                    eprintln!("trustmesh: skipping gpu: {e}");
                    continue;
                }
            },
            other => bail!("--device {other}: expected cpu or gpu"),
        };
        println!("{}: {}", dev, b.name());
        for &k in &a.k {
            cases.push(bench::measure(
                b.as_ref(),
                dev,
                &m,
                k,
                a.iters,
                value_bytes,
                bw,
            )?);
        }
    }
    let base = cases.first().map(|c| c.ms_per_vector).unwrap_or(1.0);
    println!(
        "{:<6} {:>4} {:>10} {:>10} {:>11} {:>8} {:>9} {:>10}",
        "device", "K", "ms/iter", "ms/vector", "Medges/s", "GB/s", "of bound", "speed-up"
    );
    for c in &cases {
        println!(
            "{:<6} {:>4} {:>10.3} {:>10.3} {:>11.1} {:>8.2} {:>9} {:>9.2}x",
            c.device,
            c.k,
            c.ms_per_iteration,
            c.ms_per_vector,
            c.edges_per_second / 1e6,
            c.gb_per_second,
            c.fraction_of_bound
                .map_or("unknown".to_string(), |f| format!("{:.0}%", f * 100.0)),
            base / c.ms_per_vector
        );
    }
    println!("speed-up: per vector, against the first row (measured in this run)");
    if let Some(path) = &a.json {
        write_report(path, &cases)?;
    }
    Ok(())
}

fn run_convert(a: ConvertArgs) -> Result<()> {
    let format: Format = a.from.parse()?;
    let s = convert::convert(format, &a.input, &a.out, &a.layer, a.rating_scale)?;
    println!(
        "wrote {} rows to {} ({} lines skipped: comments, blanks, header)",
        s.rows,
        a.out.display(),
        s.skipped_lines
    );
    Ok(())
}
