//! `trustmesh bench`: ms per iteration, edges/s and the fraction of a memory
//! bandwidth bound, per device and block width K, measured in one run so the
//! figures can be compared as ratios.
//!
//! Per-iteration time is the difference between a long and a short solve
//! divided by the difference in iterations, so set-up (matrix upload, buffer
//! allocation) cancels out and only the steady-state iteration is timed.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{params, Error, Result};
use crate::graph::synthetic::{power_law_edges, row_normalised};
use crate::score::{self, ScoreConfig};
use crate::trust::{
    build_matrices, pretrust, Batch, Column, EdgeWeights, IterParams, TrustBackend, TrustMatrix,
};

/// Defaults of `trustmesh bench`: a seeded power-law graph of 100,000 nodes
/// and 1M edges, block widths 1, 8 and 32, 20 timed iterations per case.
pub const DEFAULT_SYNTHETIC: (u32, usize) = (100_000, 1_000_000);
pub const DEFAULT_SEED: u64 = 1;
pub const DEFAULT_K: [usize; 3] = [1, 8, 32];
pub const DEFAULT_ITERS: u32 = 20;

/// Where the benchmark graph comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchGraph {
    /// An interaction log, scored with default parameters (all layers, equal weights).
    Log(PathBuf),
    /// Seeded power-law graph with n nodes and m edges.
    Synthetic { n: u32, m: usize, seed: u64 },
}

impl BenchGraph {
    pub fn describe(&self) -> String {
        match self {
            BenchGraph::Log(p) => p.display().to_string(),
            BenchGraph::Synthetic { n, m, seed } => {
                format!("synthetic power-law n={n} m={m} seed={seed}")
            }
        }
    }
}

/// Builds the iteration matrix of a benchmark graph.
pub fn load_matrix(g: &BenchGraph) -> Result<TrustMatrix> {
    match g {
        BenchGraph::Log(path) if is_saved_matrix(path) => read_matrix(path),
        BenchGraph::Log(path) => {
            let cfg = ScoreConfig::new(vec![path.to_string_lossy().into_owned()]);
            let (graph, local, _) = score::prepare(&cfg)?;
            Ok(build_matrices(&graph, &local)?.0)
        }
        BenchGraph::Synthetic { n, m, seed } => {
            if *n < 2 || *m == 0 {
                return Err(Error::param_value(
                    params::SYNTHETIC,
                    "needs N >= 2 nodes and M >= 1 edges",
                ));
            }
            let edges = power_law_edges(*n, *m, *seed);
            TrustMatrix::try_from(row_normalised(*n as usize, &edges))
        }
    }
}

/// Magic bytes that open a file written by [`save_matrix`].
pub const MATRIX_MAGIC: &[u8; 8] = b"TMCSR001";

/// Writes `m` in a flat little-endian binary form that numpy reads with
/// `np.fromfile` (benches/peers/gpu_peers.py): the magic, then n, nnz and the
/// weight kind (0 per source, 1 per edge) as u64; then `ptr` (n + 1 × u32),
/// `src` (nnz × u32), the weights (n × f64 per source, nnz × f64 per edge) and
/// the deficit (n × f64). Entry e of row (target) j is the edge src[e] → j.
pub fn save_matrix(m: &TrustMatrix, path: &std::path::Path) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| Error::write(e).with_path(path);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let (kind, w): (u64, &[f64]) = match m.weights() {
        EdgeWeights::PerSource(s) => (0, s),
        EdgeWeights::PerEdge(w) => (1, w),
    };
    f.write_all(MATRIX_MAGIC).map_err(io)?;
    for v in [m.n() as u64, m.nnz() as u64, kind] {
        f.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    for v in m.ptr().iter().chain(m.sources()) {
        f.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    for v in w.iter().chain(m.deficit()) {
        f.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    f.flush().map_err(io)
}

/// True when `path` starts with [`MATRIX_MAGIC`] (a [`save_matrix`] file).
fn is_saved_matrix(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head == MATRIX_MAGIC)
}

/// Reads a matrix written by [`save_matrix`], checking its sizes and
/// invariants (a truncated or foreign file is an error, not a panic).
pub fn read_matrix(path: &std::path::Path) -> Result<TrustMatrix> {
    let bytes = std::fs::read(path).map_err(|e| Error::read(e).with_path(path))?;
    let bad =
        |why: String| Error::read(format!("not a trustmesh matrix file: {why}")).with_path(path);
    if bytes.len() < 32 || &bytes[..8] != MATRIX_MAGIC {
        return Err(bad("bad magic or header".into()));
    }
    let word = |i: usize| u64::from_le_bytes(bytes[8 + 8 * i..16 + 8 * i].try_into().unwrap());
    let (n, nnz, kind) = (word(0), word(1), word(2));
    if n >= u32::MAX as u64 || nnz >= u32::MAX as u64 || kind > 1 {
        return Err(bad(format!("n {n}, nnz {nnz}, kind {kind} out of range")));
    }
    let (n, nnz) = (n as usize, nnz as usize);
    let nw = if kind == 0 { n } else { nnz };
    let expect = 32 + 4 * (n + 1 + nnz) + 8 * (nw + n);
    if bytes.len() != expect {
        return Err(bad(format!("{} bytes, expected {expect}", bytes.len())));
    }
    let mut at = 32;
    let mut take = |len: usize| {
        let s = &bytes[at..at + len];
        at += len;
        s
    };
    let u32s = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let f64s = |b: &[u8]| -> Vec<f64> {
        b.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let ptr = u32s(take(4 * (n + 1)));
    let src = u32s(take(4 * nnz));
    let w = f64s(take(8 * nw));
    let deficit = f64s(take(8 * n));
    let weights = if kind == 0 {
        EdgeWeights::PerSource(w)
    } else {
        EdgeWeights::PerEdge(w)
    };
    TrustMatrix::from_parts(n, ptr, src, weights, deficit).map_err(|e| bad(e.to_string()))
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BenchCase {
    pub device: String,
    pub k: usize,
    pub ms_per_iteration: f64,
    pub ms_per_vector: f64,
    pub edges_per_second: f64,
    /// Compulsory bytes per iteration / time.
    pub gb_per_second: f64,
    /// gb_per_second / the device's bandwidth, where known.
    pub fraction_of_bound: Option<f64>,
    /// Peak resident memory of the process while this case ran (Linux: the
    /// high-water mark is reset before the case), bytes; `None` elsewhere.
    pub peak_rss_bytes: Option<u64>,
}

/// Resets the process's resident-memory high-water mark (Linux), so the
/// next [`peak_rss_bytes`] reports the peak from now on; false where the
/// kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's resident-memory high-water mark (Linux `VmHWM`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Compulsory memory traffic of one iteration: each stored index and weight
/// once, the row pointers, and per vector element the read of t and p and the
/// write of t' (plus the pre-scaled copy for per-source weights). Gathers of
/// t(i) are assumed to hit cache, so this is a lower bound on real traffic and
/// the fraction of the bandwidth bound it yields is conservative.
pub fn bytes_per_iteration(m: &TrustMatrix, k: usize, value_bytes: usize) -> f64 {
    let (nnz, n) = (m.nnz() as f64, m.n() as f64);
    let (w, per_vec) = match m.weights() {
        EdgeWeights::PerEdge(_) => (value_bytes as f64, 3.0),
        EdgeWeights::PerSource(_) => (0.0, 5.0),
    };
    nnz * (4.0 + w) + 4.0 * n + per_vec * value_bytes as f64 * n * k as f64
}

/// Steady-state ms per iteration of `backend` on `m` with k columns.
///
/// The matrix is loaded (uploaded, on a GPU) once; each timed solve runs a
/// fixed number of iterations (epsilon below any residual), and the figure is
/// (best long solve - best short solve) / extra iterations, so per-solve
/// set-up cancels out. Every timed solve must have run exactly the iterations
/// asked for, and the long one must take measurably longer than the short
/// one (by at least a short solve's time): otherwise the iteration count is
/// raised (up to 64× `iters`), and if the difference still drowns in the
/// set-up's noise the case fails rather than print a figure it did not
/// measure.
pub fn time_iteration(
    backend: &dyn TrustBackend,
    m: &TrustMatrix,
    k: usize,
    iters: u32,
) -> Result<f64> {
    let cols: Vec<Column> = (0..k)
        .map(|_| Column::new(pretrust::uniform(m.n())))
        .collect();
    let set = backend.load(&[m])?;
    let batch = [Batch {
        matrix: 0,
        columns: &cols,
    }];
    let run = |it: u32| -> Result<f64> {
        let params = IterParams {
            epsilon: f64::MIN_POSITIVE,
            max_iter: it,
            ..Default::default()
        };
        let t = Instant::now();
        let v = set.solve_many(&batch, &params)?;
        let secs = t.elapsed().as_secs_f64();
        if let Some(bad) = v[0].iter().find(|c| c.iterations != it) {
            return Err(Error::Measure(format!(
                "a timed solve stopped after {} of {it} iterations ({:?}); no figure",
                bad.iterations, bad.stop
            )));
        }
        Ok(secs)
    };
    let short = iters.div_ceil(4).max(1);
    run(short)?; // warm-up: caches, pipelines, page faults
    let most = iters.saturating_mul(64);
    let mut extra = iters;
    loop {
        let (mut a, mut b) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..3 {
            a = a.min(run(short)?);
            b = b.min(run(short + extra)?);
        }
        // The set-up (allocation, upload, read-back) varies by a few per cent
        // between runs, so the extra iterations must take at least as long
        // as a whole short solve for their difference to be a measurement.
        if b - a >= a {
            return Ok((b - a) / extra as f64 * 1e3);
        }
        if extra >= most {
            return Err(Error::Measure(format!(
                "{extra} extra iterations took {:.3} ms beside a {:.3} ms solve: \
                 too little to time against the set-up; no figure",
                (b - a) * 1e3,
                a * 1e3
            )));
        }
        // Aim straight for the length the first estimate says is needed.
        let per = (b - a) / extra as f64;
        let want = if per > 0.0 {
            (1.5 * a / per).ceil().min(most as f64) as u32
        } else {
            extra.saturating_mul(8)
        };
        extra = want.clamp(extra.saturating_mul(2), most);
    }
}

/// Measures one (device, k) case.
pub fn measure(
    backend: &dyn TrustBackend,
    device: &str,
    m: &TrustMatrix,
    k: usize,
    iters: u32,
    value_bytes: usize,
    bandwidth_gbps: Option<f64>,
) -> Result<BenchCase> {
    let reset = reset_peak_rss();
    let ms = time_iteration(backend, m, k, iters)?;
    let peak_rss_bytes = if reset { peak_rss_bytes() } else { None };
    let secs = ms / 1e3;
    let gbps = bytes_per_iteration(m, k, value_bytes) / secs / 1e9;
    Ok(BenchCase {
        device: device.to_string(),
        k,
        ms_per_iteration: ms,
        ms_per_vector: ms / k as f64,
        edges_per_second: m.nnz() as f64 * k as f64 / secs,
        gb_per_second: gbps,
        fraction_of_bound: bandwidth_gbps.map(|b| gbps / b),
        peak_rss_bytes,
    })
}

/// Sustained read bandwidth of this machine's memory with all threads (GB/s):
/// a parallel sum over 512 MiB, best of three, as the CPU's bandwidth bound.
pub fn cpu_read_bandwidth_gbps() -> f64 {
    let v: Vec<f64> = vec![1.0; 64 << 20];
    let mut best = f64::INFINITY;
    let mut sink = 0.0;
    for _ in 0..3 {
        let t = Instant::now();
        sink += v
            .par_chunks(1 << 16)
            .map(|c| c.iter().sum::<f64>())
            .sum::<f64>();
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    (v.len() * 8) as f64 / best / 1e9
}

/// Agents of the `trustmesh bench --mechanism` cases.
pub const DEFAULT_MECHANISM_AGENTS: [usize; 3] = [1_000, 10_000, 100_000];

/// Timed solves per `--mechanism` case; the best is reported.
pub const MECHANISM_REPS: u32 = 5;

/// One timed `mechanism` case: a seeded synthetic market
/// ([`crate::mechanism::contract::synthetic::market`]) of `agents` agents,
/// the default tiers and reward grid, and a budget of half the unbudgeted
/// schedule's payment (so it binds and couples the tiers). Times are the best
/// of [`MECHANISM_REPS`] in-memory solves (no Parquet reading), ms.
#[derive(Debug, Clone, Serialize)]
pub struct MechanismCase {
    pub agents: usize,
    pub tiers: usize,
    pub reward_steps: usize,
    pub budget: f64,
    /// A cold solve: percentiles and tiers, tables, schedule.
    pub ms_solve: f64,
    pub ms_tiers: f64,
    pub ms_tables: f64,
    pub ms_schedule: f64,
    /// A warm re-solve after two agents of the top tier swapped scores (that
    /// tier alone is evaluated again).
    pub ms_warm: f64,
    /// Agent × reward evaluations of the tables per second (cold).
    pub evaluations_per_second: f64,
    /// (payment, utility) pairs the budgeted search kept.
    pub frontier_states: usize,
}

/// Measures one `mechanism` case of `agents` agents from `seed`.
pub fn measure_mechanism(agents: usize, seed: u64) -> Result<MechanismCase> {
    use crate::mechanism::contract::{synthetic, ContractParams, Problem, ScoreVector};
    let (table, scores) = synthetic::market(agents, seed)?;
    let free = Problem::new(table.clone(), ContractParams::default())?.solve(&scores)?;
    let params = ContractParams {
        budget: Some(free.expected_payment / 2.0),
        ..Default::default()
    };
    let problem = Problem::new(table, params.clone())?;
    let mut best: Option<(f64, crate::mechanism::contract::Solution)> = None;
    for _ in 0..MECHANISM_REPS {
        let t = Instant::now();
        let s = problem.solve(&scores)?;
        let secs = t.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(b, _)| secs < *b) {
            best = Some((secs, s));
        }
    }
    let (secs, cold) = best.ok_or_else(|| Error::Measure("no solve ran".into()))?;
    // Two members of the top tier swap scores.
    let top: Vec<usize> = (0..agents)
        .filter(|&i| cold.tier_of[i] as usize == params.tiers - 1)
        .take(2)
        .collect();
    let mut moved = scores.scores().to_vec();
    if let [i, j] = top[..] {
        moved.swap(i, j);
    }
    let moved = ScoreVector::new(scores.agents().to_vec(), moved)?;
    let mut warm = f64::INFINITY;
    for _ in 0..MECHANISM_REPS {
        let t = Instant::now();
        problem.resolve(&cold, &moved)?;
        warm = warm.min(t.elapsed().as_secs_f64());
    }
    let tm = cold.timings;
    Ok(MechanismCase {
        agents,
        tiers: params.tiers,
        reward_steps: params.reward_steps,
        budget: params.budget.unwrap_or(f64::INFINITY),
        ms_solve: secs * 1e3,
        ms_tiers: tm.tiers * 1e3,
        ms_tables: tm.tables * 1e3,
        ms_schedule: tm.schedule * 1e3,
        ms_warm: warm * 1e3,
        evaluations_per_second: (agents * params.reward_steps) as f64 / tm.tables.max(1e-9),
        frontier_states: cold.search.frontier_states,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::CpuBackend;

    #[test]
    fn mechanism_case_runs_with_a_binding_budget() {
        let c = measure_mechanism(2000, 1).unwrap();
        assert_eq!((c.agents, c.tiers, c.reward_steps), (2000, 4, 32));
        assert!(c.budget > 0.0 && c.ms_solve > 0.0 && c.ms_warm > 0.0);
        assert!(c.frontier_states > 0 && c.evaluations_per_second > 0.0);
    }

    #[test]
    fn synthetic_matrix_is_stochastic_and_timing_runs() {
        let m = load_matrix(&BenchGraph::Synthetic {
            n: 500,
            m: 5000,
            seed: 1,
        })
        .unwrap();
        assert_eq!(m.n(), 500);
        let mut rows = vec![0.0; 500];
        for j in 0..500 {
            for e in m.ptr()[j] as usize..m.ptr()[j + 1] as usize {
                rows[m.sources()[e] as usize] += m.weight(e);
            }
        }
        for (r, d) in rows.iter().zip(m.deficit()) {
            assert!((r + d - 1.0).abs() < 1e-12);
        }
        let c = measure(&CpuBackend, "cpu", &m, 2, 4, 8, Some(10.0)).unwrap();
        if reset_peak_rss() {
            // Where the peak can be measured (Linux), the process holds at
            // least the matrix and two vectors.
            let floor = (m.nnz() * 4 + 500 * 2 * 8) as u64;
            assert!(
                c.peak_rss_bytes.is_some_and(|b| b > floor),
                "{:?}",
                c.peak_rss_bytes
            );
        }
        // Saved and read back, the matrix is the same; a damaged file is an error.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        save_matrix(&m, &path).unwrap();
        assert_eq!(read_matrix(&path).unwrap(), m);
        assert_eq!(
            load_matrix(&BenchGraph::Log(path.clone())).unwrap(),
            m,
            "--graph takes a saved matrix too"
        );
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_matrix(&path)
            .unwrap_err()
            .to_string()
            .contains("expected"));
        let mut bad = bytes.clone();
        let src0 = 32 + 4 * (m.n() + 1);
        bad[src0..src0 + 4].fill(0xff); // a source id out of range
        std::fs::write(&path, &bad).unwrap();
        assert!(read_matrix(&path).is_err());
        assert!(c.ms_per_iteration >= 0.0 && c.fraction_of_bound.is_some());
        assert!(load_matrix(&BenchGraph::Synthetic {
            n: 1,
            m: 5,
            seed: 1
        })
        .is_err());
    }
}
