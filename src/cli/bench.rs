//! `trustmesh bench`: ms per iteration per device and block width K, or
//! (`--best-response`) Stackelberg best-response evaluations per second.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;

use trustmesh::bench::{
    self, BenchGraph, DEFAULT_ITERS, DEFAULT_K, DEFAULT_MECHANISM_AGENTS, DEFAULT_SEED,
    DEFAULT_SYNTHETIC, MECHANISM_REPS,
};
use trustmesh::mechanism::stackelberg::bench as stackelberg_bench;

use super::device::{self, concrete_device, AdapterArg, Device};
use super::output::write_json;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Interaction log to benchmark on (all layers, default parameters).
    #[arg(long, conflicts_with = "synthetic")]
    graph: Option<PathBuf>,
    /// Seeded power-law graph N,M (nodes, edges), used when there is no --graph.
    #[arg(long, default_value_t = GraphSize::from(DEFAULT_SYNTHETIC))]
    synthetic: GraphSize,
    /// Seed of the synthetic graph.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Block widths K (vectors per matrix pass), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_K_ARG.as_str())]
    k: Vec<usize>,
    /// Devices, comma-separated: cpu, gpu.
    #[arg(
        long = "device",
        value_name = "DEVICE",
        value_delimiter = ',',
        value_parser = concrete_device,
        default_value = "cpu,gpu"
    )]
    devices: Vec<Device>,
    #[command(flatten)]
    adapter: AdapterArg,
    /// Timed iterations per case (after warm-up).
    #[arg(long, default_value_t = DEFAULT_ITERS)]
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
    /// Also time each GPU kernel of an iteration (timestamp queries; where
    /// an iteration's time goes, per K).
    #[arg(long)]
    profile_kernels: bool,
    /// Time `trustmesh mechanism` (trust-tiered contracts, CPU) on seeded
    /// synthetic markets instead of the power iteration.
    #[arg(long, conflicts_with_all = ["graph", "save_matrix", "profile_kernels", "best_response"])]
    mechanism: bool,
    /// Agents of each --mechanism case, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_MECHANISM_ARG.as_str(), requires = "mechanism")]
    mechanism_agents: Vec<usize>,
    /// Instead, time Stackelberg best-response evaluations per second on a
    /// seeded random game of M leader actions, N follower actions and TYPES
    /// types (docs/mechanism.md).
    #[arg(
        long,
        value_name = "M,N,TYPES",
        num_args = 0..=1,
        default_missing_value = DEFAULT_SHAPE_ARG.as_str()
    )]
    best_response: Option<Shape>,
}

/// `--best-response`'s value when given without one.
static DEFAULT_SHAPE_ARG: LazyLock<String> = LazyLock::new(|| {
    let (m, n, t) = stackelberg_bench::DEFAULT_SHAPE;
    format!("{m},{n},{t}")
});

/// `M,N,TYPES` of `--best-response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape(usize, usize, usize);

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<usize> = s
            .split(',')
            .map(|p| p.trim().parse().ok().filter(|&x| x > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("`{s}`: expected M,N,TYPES, three positive counts"))?;
        match v[..] {
            [m, n, t] => Ok(Shape(m, n, t)),
            _ => Err(format!("`{s}`: expected M,N,TYPES, three positive counts")),
        }
    }
}

/// Seconds each device is timed for `--best-response`.
const BEST_RESPONSE_SECONDS: f64 = 2.0;

/// `bench --best-response`: evaluations per second per device.
fn best_response(a: &BenchArgs, Shape(m, n, t): Shape) -> Result<()> {
    use trustmesh::mechanism::stackelberg::Device as SearchDevice;
    let game = stackelberg_bench::random_game(m, n, t, a.seed)?;
    println!(
        "game: random, {m} leader actions, {n} follower actions, {t} types, seed {}",
        a.seed
    );
    println!(
        "evaluation: one (candidate strategy, type) best response over the {n} follower actions"
    );
    let mut rates = Vec::new();
    for &dev in &a.devices {
        let d = match dev {
            Device::Cpu | Device::Auto => SearchDevice::Cpu,
            Device::Gpu => match trustmesh::gpu::GpuContext::new(a.adapter.adapter.as_deref()) {
                Ok(ctx) => SearchDevice::Gpu(std::sync::Arc::new(ctx)),
                Err(e) => {
                    eprintln!("trustmesh: skipping gpu: {e}");
                    continue;
                }
            },
        };
        rates.push(stackelberg_bench::evaluation_rate(
            &game,
            &d,
            BEST_RESPONSE_SECONDS,
        )?);
    }
    println!(
        "{:<48} {:>12} {:>14} {:>8} {:>14}",
        "device", "candidates", "evaluations", "s", "evaluations/s"
    );
    for r in &rates {
        println!(
            "{:<48} {:>12} {:>14} {:>8.2} {:>14.3e}",
            r.device, r.candidates, r.evaluations, r.seconds, r.evaluations_per_second
        );
    }
    if let Some(path) = &a.json {
        write_json(path, &rates)?;
    }
    Ok(())
}

/// `--k`'s default written as the user writes the flag, comma-separated
/// (clap would list a default list with spaces).
static DEFAULT_K_ARG: LazyLock<String> = LazyLock::new(|| {
    let k: Vec<String> = DEFAULT_K.iter().map(usize::to_string).collect();
    k.join(",")
});

/// `--mechanism-agents`'s default, written the same way.
static DEFAULT_MECHANISM_ARG: LazyLock<String> = LazyLock::new(|| {
    let n: Vec<String> = DEFAULT_MECHANISM_AGENTS
        .iter()
        .map(usize::to_string)
        .collect();
    n.join(",")
});

/// `N,M`: nodes and edges of a synthetic graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct GraphSize {
    n: u32,
    m: usize,
}

impl From<(u32, usize)> for GraphSize {
    fn from((n, m): (u32, usize)) -> Self {
        GraphSize { n, m }
    }
}

impl std::fmt::Display for GraphSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.n, self.m)
    }
}

impl std::str::FromStr for GraphSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_pair(s).map(GraphSize::from)
    }
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

pub fn run(a: BenchArgs) -> Result<()> {
    if a.mechanism {
        return run_mechanism(&a);
    }
    if let Some(shape) = a.best_response {
        return best_response(&a, shape);
    }
    let graph = match a.graph {
        Some(p) => BenchGraph::Log(p),
        None => BenchGraph::Synthetic {
            n: a.synthetic.n,
            m: a.synthetic.m,
            seed: a.seed,
        },
    };
    if a.iters == 0 || a.k.contains(&0) {
        bail!("--iters and every --k must be at least 1");
    }
    let t = Instant::now();
    // Synchronous: the graph is read through the library's blocking API,
    // which runs on the process's one shared runtime.
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
    for &dev in &a.devices {
        // Bytes per value (f64 on the CPU, f32 on the GPU) and bandwidth bound.
        let (value_bytes, bw) = match dev {
            Device::Cpu => (8, Some(cpu_bw)),
            Device::Gpu | Device::Auto => (4, a.gpu_bandwidth),
        };
        let b = match device::backend(dev, a.adapter.adapter.as_deref()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("trustmesh: skipping {dev}: {e}");
                continue;
            }
        };
        let dev = dev.to_string();
        println!("{}: {}", dev, b.name());
        if value_bytes == 4 {
            use trustmesh::gpu::trust as gt;
            let plan = trustmesh::gpu::PlanConfig::from_env()?;
            let on = |b: bool| if b { "on" } else { "off" };
            let st = gt::LayoutStats::of(m.ptr(), plan.per_lane);
            println!(
                "gpu: rows fitted to {} entries per lane (${}), binned by lane count {}{} (${})",
                plan.per_lane,
                gt::PER_LANE_ENV,
                on(plan.bins(&st)),
                if plan.binned.is_none() {
                    " (automatic)"
                } else {
                    ""
                },
                gt::BINNED_ENV,
            );
            println!(
                "gpu: rows: {:.1}% of the lanes of consecutive row blocks idle, {:.1}% of the short rows on one lane",
                100.0 * st.idle_consecutive,
                100.0 * st.one_lane_rows
            );
            println!(
                "gpu: gather-ahead {} (${}), subgroup tree {} where the adapter has subgroups (${})",
                on(gt::gather_ahead_from_env()?),
                gt::GATHER_AHEAD_ENV,
                on(gt::subgroups_from_env()?),
                gt::SUBGROUPS_ENV,
            );
        }
        for &k in &a.k {
            cases.push(bench::measure(
                b.as_ref(),
                &dev,
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
        "{:<6} {:>4} {:>10} {:>10} {:>11} {:>8} {:>9} {:>10} {:>10}",
        "device",
        "K",
        "ms/iter",
        "ms/vector",
        "Medges/s",
        "GB/s",
        "of bound",
        "speed-up",
        "peak RSS"
    );
    for c in &cases {
        println!(
            "{:<6} {:>4} {:>10.3} {:>10.3} {:>11.1} {:>8.2} {:>9} {:>9.2}x {:>10}",
            c.device,
            c.k,
            c.ms_per_iteration,
            c.ms_per_vector,
            c.edges_per_second / 1e6,
            c.gb_per_second,
            c.fraction_of_bound
                .map_or("unknown".to_string(), |f| format!("{:.0}%", f * 100.0)),
            base / c.ms_per_vector,
            c.peak_rss_bytes.map_or("unknown".to_string(), |b| format!(
                "{:.0} MB",
                b as f64 / 1e6
            ))
        );
    }
    println!("speed-up: per vector, against the first row (measured in this run)");
    if a.profile_kernels && a.devices.contains(&Device::Gpu) {
        profile_kernels(&m, &a.k, a.iters, a.adapter.adapter.as_deref())?;
    }
    if let Some(path) = &a.json {
        write_json(path, &cases)?;
    }
    Ok(())
}

/// `--mechanism`: ms per solve of seeded markets, one case per size.
fn run_mechanism(a: &BenchArgs) -> Result<()> {
    if a.mechanism_agents.contains(&0) {
        bail!("every --mechanism-agents must be at least 1");
    }
    println!(
        "mechanism: seeded markets (seed {}), 4 tiers x 32 rewards, budget = half the unbudgeted payment; \
         best of {MECHANISM_REPS} in-memory solves; cpu, {} threads",
        a.seed,
        rayon::current_num_threads()
    );
    println!(
        "{:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9}",
        "agents", "solve ms", "tiers ms", "tables ms", "sched ms", "warm ms", "Meval/s", "frontier"
    );
    let mut cases = Vec::new();
    for &n in &a.mechanism_agents {
        let c = bench::measure_mechanism(n, a.seed)?;
        println!(
            "{:>8} {:>10.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>11.1} {:>9}",
            c.agents,
            c.ms_solve,
            c.ms_tiers,
            c.ms_tables,
            c.ms_schedule,
            c.ms_warm,
            c.evaluations_per_second / 1e6,
            c.frontier_states
        );
        cases.push(c);
    }
    println!(
        "warm: a re-solve after two agents of the top tier swapped scores (one tier re-evaluated)"
    );
    if let Some(path) = &a.json {
        write_json(path, &cases)?;
    }
    Ok(())
}

/// Prints ms per iteration of each GPU kernel stage for every K.
fn profile_kernels(
    m: &trustmesh::trust::TrustMatrix,
    ks: &[usize],
    iters: u32,
    adapter: Option<&str>,
) -> Result<()> {
    use trustmesh::gpu::trust::Stage;
    let gpu = trustmesh::gpu::GpuBackend::new(adapter)?;
    println!(
        "gpu kernels, ms per iteration ({} iterations in one pass, a timestamp after each stage):",
        iters
    );
    print!("{:>4}", "K");
    for s in Stage::ALL {
        print!(" {:>24}", s.name());
    }
    println!(" {:>10}", "whole");
    for &k in ks {
        let t = gpu.profile_kernels(m, k, iters)?;
        print!("{:>4}", k.min(trustmesh::gpu::trust::MAX_BLOCK));
        for (_, ms) in &t.stages {
            print!(" {ms:>24.4}");
        }
        println!(" {:>10.4}", t.whole_ms);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    fn args(extra: &[&str]) -> Result<BenchArgs, clap::Error> {
        let v: Vec<&str> = std::iter::once("bench")
            .chain(extra.iter().copied())
            .collect();
        parse(&v).map(|c| match c {
            Command::Bench(a) => a,
            _ => unreachable!("parsed `bench`"),
        })
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let a = args(&[]).unwrap();
        assert_eq!(a.synthetic, GraphSize::from(DEFAULT_SYNTHETIC));
        assert_eq!((a.seed, a.iters), (DEFAULT_SEED, DEFAULT_ITERS));
        assert_eq!(a.k, DEFAULT_K);
        assert_eq!(a.devices, [Device::Cpu, Device::Gpu]);
        let a = args(&["--graph", "g.parquet"]).unwrap();
        assert_eq!(a.graph, Some(PathBuf::from("g.parquet")));
        assert!(!a.mechanism);
        let a = args(&["--mechanism"]).unwrap();
        assert_eq!(a.mechanism_agents, DEFAULT_MECHANISM_AGENTS);
        assert_eq!(
            args(&["--mechanism", "--mechanism-agents", "5,7"])
                .unwrap()
                .mechanism_agents,
            [5, 7]
        );
        assert!(
            args(&["--mechanism-agents", "5"]).is_err(),
            "needs --mechanism"
        );
        assert!(args(&["--mechanism", "--graph", "g"]).is_err());
        assert_eq!(a.best_response, None);
    }

    #[test]
    fn best_response_takes_an_optional_shape() {
        let (m, n, t) = stackelberg_bench::DEFAULT_SHAPE;
        assert_eq!(
            args(&["--best-response"]).unwrap().best_response,
            Some(Shape(m, n, t))
        );
        assert_eq!(
            args(&["--best-response", "2,3,4"]).unwrap().best_response,
            Some(Shape(2, 3, 4))
        );
        for bad in ["2,3", "2,3,0", "a,b,c", "1,2,3,4"] {
            assert!(args(&["--best-response", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn pair_is_nodes_comma_edges() {
        assert_eq!(parse_pair("10, 20"), Ok((10, 20)));
        assert!(parse_pair("10").unwrap_err().contains("expected N,M"));
        assert!(parse_pair("x,20").unwrap_err().contains("node count"));
        assert!(parse_pair("10,-1").unwrap_err().contains("edge count"));
        let a = args(&["--synthetic", "500,5000"]).unwrap();
        assert_eq!(a.synthetic, GraphSize { n: 500, m: 5000 });
        assert_eq!(GraphSize { n: 500, m: 5000 }.to_string(), "500,5000");
        assert!(args(&["--synthetic", "1,2", "--graph", "g"]).is_err());
    }

    #[test]
    fn devices_are_a_list() {
        assert_eq!(
            args(&["--device", "gpu,cpu"]).unwrap().devices,
            [Device::Gpu, Device::Cpu]
        );
        assert_eq!(args(&["--device", "cpu"]).unwrap().devices, [Device::Cpu]);
        assert_eq!(args(&["--k", "4,2"]).unwrap().k, [4, 2]);
        for bad in ["auto", "tpu", "cpu,tpu"] {
            let e = args(&["--device", bad]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
    }
}
