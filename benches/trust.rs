//! Criterion benches of the CPU reference path on a real 3.2M-arc graph
//! (cnr-2000, from `$TRUSTMESH_DATA` or ../shared/data): one power iteration
//! for K = 1 and K = 16 columns, and the whole `score` job (read, aggregate,
//! build, iterate).
//!
//! Run: `cargo bench --bench trust`. Figures and peers: docs/benchmarks.md.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trustmesh::ingest::convert::{convert, Format};
use trustmesh::score::{self, ScoreConfig};
use trustmesh::trust::{build_matrices, pretrust, Column, CpuBackend, IterParams, TrustBackend};

/// cnr-2000 is too large to commit: it is looked for where the optional tests
/// look for full data sets, `$TRUSTMESH_DATA`, else `../shared/data`.
fn graph_log() -> Option<PathBuf> {
    const REL: &str = "cnr-2000/cnr-2000.arcs.tsv.gz";
    let root = std::env::var_os("TRUSTMESH_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
        PathBuf::from,
    );
    let src = root.join(REL);
    if !src.exists() {
        eprintln!(
            "SKIPPED (data not found: {}; put it at $TRUSTMESH_DATA/{REL} or ../shared/data/{REL} beside the checkout)",
            src.display()
        );
        return None;
    }
    let out = std::env::temp_dir().join("trustmesh-bench-cnr-2000.parquet");
    if !out.exists() {
        convert(Format::Tsv, &src, &out, "link", 1.0).expect("convert cnr-2000");
    }
    Some(out)
}

const ITERS: usize = 20;

fn benches(c: &mut Criterion) {
    let Some(log) = graph_log() else { return };
    let cfg = ScoreConfig::new(vec![log.to_str().unwrap().to_string()]);
    let (graph, local, _) = score::prepare(&cfg).expect("prepare");
    let (m, _) = build_matrices(&graph, &local).expect("matrix");
    let n = m.n();

    let mut g = c.benchmark_group("iteration_cnr2000");
    g.sample_size(20);
    // 20 iterations per sample (epsilon unreachable), so set-up is amortised:
    // divide the time by 20 for ms/iteration; throughput counts edges × K × 20.
    for k in [1usize, 16] {
        g.throughput(Throughput::Elements((m.nnz() * k * ITERS) as u64));
        let cols: Vec<Column> = (0..k).map(|_| Column::new(pretrust::uniform(n))).collect();
        let params = IterParams {
            max_iter: ITERS as u32,
            epsilon: 1e-300,
            ..Default::default()
        };
        g.bench_function(format!("cpu_k{k}_x{ITERS}"), |b| {
            b.iter(|| CpuBackend.solve(&m, &cols, &params).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("score_cnr2000");
    g.sample_size(10);
    g.bench_function("cpu_full_job", |b| {
        b.iter(|| score::run(&cfg, &CpuBackend).unwrap())
    });
    g.finish();
}

criterion_group!(trust, benches);
criterion_main!(trust);
