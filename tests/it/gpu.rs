//! GPU back end against the CPU reference (DESIGN.md §6): every kernel path
//! (short rows, segmented long rows, per-source and per-edge weights, split
//! matrices, scalar and vec4 blocks, device-side stopping) on the same input.
//!
//! With no Vulkan/Metal/DX12 adapter at all each test prints
//! `SKIPPED (no GPU adapter): <reason>` and returns; set
//! TRUSTMESH_REQUIRE_GPU=1 to make that a failure instead (CI on lavapipe).
//! An adapter that exists but fails to open is always a failure.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use trustmesh::gpu::{list_adapters, GpuBackend, GpuContext};
use trustmesh::graph::synthetic::{self, SplitMix64, WeightedGraph, Weighting};
use trustmesh::trust::{
    Column, CpuBackend, EdgeWeights, FlatTail, IterParams, StopReason, TrustBackend, TrustMatrix,
    TrustVector,
};

/// One device for the whole test binary: opening lavapipe and compiling the
/// pipelines is the slow part.
fn context() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let r = CTX.get_or_init(|| {
        if list_adapters().is_empty() {
            return Err("no Vulkan, Metal or DX12 adapter on this machine".to_string());
        }
        Ok(Arc::new(GpuContext::new(None).expect(
            "an adapter exists but the GPU context failed to open",
        )))
    });
    match r {
        Ok(c) => Some(Arc::clone(c)),
        Err(why) => {
            if std::env::var("TRUSTMESH_REQUIRE_GPU").is_ok_and(|v| v != "0") {
                panic!("TRUSTMESH_REQUIRE_GPU is set but: {why}");
            }
            // Straight to the stderr handle, not eprintln!: the test harness
            // captures the print macros of passing tests, and a skip must show.
            let _ = writeln!(std::io::stderr(), "SKIPPED (no GPU adapter): {why}");
            None
        }
    }
}

fn gpu() -> Option<GpuBackend> {
    context().map(|c| GpuBackend::from_context(c).unwrap())
}

/// A context whose storage-binding limit is lowered to `bytes`, so that the
/// matrix is split into chunks.
fn gpu_split(bytes: u64) -> Option<GpuBackend> {
    static SMALL: OnceLock<Arc<GpuContext>> = OnceLock::new();
    context()?;
    let ctx = SMALL.get_or_init(|| {
        Arc::new(
            GpuContext::new(None)
                .expect("second GPU context")
                .with_max_binding(bytes),
        )
    });
    assert_eq!(ctx.max_binding(), bytes);
    Some(GpuBackend::from_context(Arc::clone(ctx)).unwrap())
}

const SPLIT_BINDING: u64 = 64 << 10;

/// The graphs of synthetic.rs as matrices.
fn matrix(g: WeightedGraph) -> TrustMatrix {
    TrustMatrix::try_from(g).unwrap()
}

fn power_law(n: usize, min_deg: f64, max_deg: usize, per_edge: bool, seed: u64) -> TrustMatrix {
    let w = if per_edge {
        Weighting::Random
    } else {
        Weighting::Uniform
    };
    matrix(synthetic::power_law_trust(n, min_deg, max_deg, w, seed))
}

fn uniform(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

/// K pre-trust vectors: uniform, then personalised ones (a few observers each).
fn pretrusts(n: usize, k: usize, seed: u64) -> Vec<Column> {
    let mut rng = SplitMix64::new(seed);
    (0..k)
        .map(|c| {
            if c == 0 {
                return Column::new(uniform(n));
            }
            let mut p = vec![0.0; n];
            let m = 1 + c % 5;
            for _ in 0..m {
                p[(rng.next_u64() % n as u64) as usize] += 1.0 / m as f64;
            }
            Column::new(p)
        })
        .collect()
}

fn l1(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// The exact answer: the CPU iteration run far below f32 noise.
fn reference(m: &TrustMatrix, cols: &[Column], params: &IterParams) -> Vec<TrustVector> {
    let exact = IterParams {
        epsilon: 1e-13,
        max_iter: 10_000,
        flat_tail: None,
        ..*params
    };
    CpuBackend.solve(m, cols, &exact).unwrap()
}

/// The CPU's iterate after exactly `iterations` steps.
fn cpu_after(m: &TrustMatrix, col: &Column, alpha: f64, iterations: u32) -> TrustVector {
    let p = IterParams {
        alpha,
        epsilon: f64::MIN_POSITIVE,
        max_iter: iterations,
        flat_tail: None,
    };
    CpuBackend
        .solve(m, std::slice::from_ref(col), &p)
        .unwrap()
        .remove(0)
}

/// The GPU's own defaults (epsilon 1e-6, the f32 setting of DESIGN.md §3).
fn gpu_params() -> IterParams {
    IterParams {
        epsilon: 1e-6,
        ..Default::default()
    }
}

/// Solves on both back ends with the same parameters and checks every column:
/// - L1 difference to the CPU's iterate after the same number of steps < 1e-6
///   (and to the CPU's own result when both stopped at the same step);
/// - same stop reason, iteration counts within 2 (residuals near epsilon
///   differ by f32 rounding, which can move the stop by a step);
/// - distance to the exact fixed point within the certified bound
///   residual / alpha, plus the same 1e-6 budget;
/// - scores sum to 1.
///
/// Returns the largest L1 difference seen.
fn compare_with(
    label: &str,
    gpu: &GpuBackend,
    m: &TrustMatrix,
    cols: &[Column],
    params: &IterParams,
) -> f64 {
    let t0 = std::time::Instant::now();
    let g = gpu.solve(m, cols, params).unwrap();
    let gpu_time = t0.elapsed();
    let cpu = CpuBackend.solve(m, cols, params).unwrap();
    let exact = reference(m, cols, params);
    assert_eq!(g.len(), cols.len());
    let mut worst = 0.0f64;
    for (k, (((gv, cv), ev), col)) in g.iter().zip(&cpu).zip(&exact).zip(cols).enumerate() {
        let same = cpu_after(m, col, params.alpha, gv.iterations);
        let d = l1(&gv.scores, &same.scores);
        worst = worst.max(d);
        assert!(
            d < 1e-6,
            "{label} column {k}: L1 difference {d:e} after {} iterations",
            gv.iterations
        );
        if gv.iterations == cv.iterations {
            let d = l1(&gv.scores, &cv.scores);
            worst = worst.max(d);
            assert!(
                d < 1e-6,
                "{label} column {k}: L1 difference {d:e} to the CPU result"
            );
        }
        assert_eq!(
            gv.stop, cv.stop,
            "{label} column {k}: GPU {gv:?} CPU residual {}",
            cv.residual
        );
        assert!(
            gv.iterations.abs_diff(cv.iterations) <= 2,
            "{label} column {k}: {} GPU iterations vs {} on the CPU",
            gv.iterations,
            cv.iterations
        );
        if gv.stop == StopReason::Converged {
            assert!(gv.residual < params.epsilon);
            let to_exact = l1(&gv.scores, &ev.scores);
            assert!(
                to_exact <= gv.error_bound(params.alpha) + 1e-6,
                "{label} column {k}: {to_exact:e} from the fixed point, bound {:e}",
                gv.error_bound(params.alpha)
            );
        }
        let sum: f64 = gv.scores.iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-5,
            "{label} column {k}: scores sum to {sum}"
        );
    }
    eprintln!(
        "{label}: n={} nnz={} K={} worst L1 {worst:.3e}, GPU iterations {:?}, {:.0} ms on {}",
        m.n(),
        m.nnz(),
        cols.len(),
        g.iter().map(|v| v.iterations).collect::<Vec<_>>(),
        gpu_time.as_secs_f64() * 1e3,
        gpu.name()
    );
    worst
}

fn compare(label: &str, gpu: &GpuBackend, m: &TrustMatrix, cols: &[Column]) -> f64 {
    compare_with(label, gpu, m, cols, &gpu_params())
}

#[test]
fn gpu_lists_adapters() {
    let Some(g) = gpu() else { return };
    let all = list_adapters();
    assert!(!all.is_empty());
    let text = all[0].to_string();
    assert!(text.contains("storage binding"), "{text}");
    assert!(g.name().contains(&g.context().adapter_info().name));
    assert_eq!(g.default_epsilon(), 1e-6);
    let filtered = GpuContext::new(Some(&all[0].name.to_uppercase())).unwrap();
    assert_eq!(filtered.adapter_info().name, all[0].name);
    let err = GpuContext::new(Some("no such adapter, surely")).unwrap_err();
    assert!(err.to_string().contains("available:"), "{err}");
}

#[test]
fn gpu_empty_matrix_all_dangling() {
    let Some(g) = gpu() else { return };
    let n = 40;
    let m = TrustMatrix::from_entries(n, vec![], vec![1.0; n]).unwrap();
    let mut cols = pretrusts(n, 3, 7);
    // Everything follows p, so t = p after one step; from a warm start too.
    cols[1].start = Some((0..n).map(|i| 1.0 + i as f64).collect());
    compare("empty matrix", &g, &m, &cols);
    let v = g.solve(&m, &cols, &gpu_params()).unwrap();
    assert_eq!(v[0].iterations, 1);
    assert!(l1(&v[0].scores, &cols[0].pretrust) < 1e-7);
    // Zero agents.
    let m0 = TrustMatrix::from_entries(0, vec![], vec![]).unwrap();
    let v = g.solve(&m0, &[Column::new(vec![])], &gpu_params()).unwrap();
    assert_eq!((v[0].scores.len(), v[0].stop), (0, StopReason::Converged));
    // No columns.
    assert!(g.solve(&m, &[], &gpu_params()).unwrap().is_empty());
}

#[test]
fn gpu_agents_without_edges_and_one_agent() {
    let Some(g) = gpu() else { return };
    // 0 <-> 1, 2 -> 0; 3 and 4 isolated (dangling, nobody trusts them).
    let m = TrustMatrix::from_entries(
        5,
        vec![(0, 1, 1.0), (1, 0, 1.0), (2, 0, 1.0)],
        vec![0.0, 0.0, 0.0, 1.0, 1.0],
    )
    .unwrap();
    compare("isolated agents", &g, &m, &pretrusts(5, 4, 3));
    let one = TrustMatrix::from_entries(1, vec![], vec![1.0]).unwrap();
    compare("one agent, no edge", &g, &one, &[Column::new(vec![1.0])]);
    let looped = TrustMatrix::from_entries(1, vec![(0, 0, 1.0)], vec![0.0]).unwrap();
    let v = compare(
        "one agent, self loop",
        &g,
        &looped,
        &[Column::new(vec![1.0])],
    );
    assert!(v < 1e-7);
}

#[test]
fn gpu_star_with_100k_entry_row() {
    let Some(g) = gpu() else { return };
    let m = matrix(synthetic::star(100_001));
    assert_eq!(m.ptr()[1], 100_000);
    let mut cols = pretrusts(m.n(), 5, 11);
    compare("star K=5", &g, &m, &cols);
    cols.truncate(1);
    compare("star K=1", &g, &m, &cols);
}

#[test]
fn gpu_power_law_per_source_k1_and_k33() {
    let Some(g) = gpu() else { return };
    let m = power_law(20_000, 2.0, 2_000, false, 42);
    assert!(matches!(m.weights(), EdgeWeights::PerSource(_)));
    let longest = m.ptr().windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest > 1000,
        "generator should produce long rows, got {longest}"
    );
    compare("power law per-source K=1", &g, &m, &pretrusts(m.n(), 1, 5));
    compare(
        "power law per-source K=33",
        &g,
        &m,
        &pretrusts(m.n(), 33, 5),
    );
}

#[test]
fn gpu_power_law_per_edge_k1_and_k33() {
    let Some(g) = gpu() else { return };
    let m = power_law(20_000, 2.0, 2_000, true, 43);
    assert!(matches!(m.weights(), EdgeWeights::PerEdge(_)));
    compare("power law per-edge K=1", &g, &m, &pretrusts(m.n(), 1, 6));
    compare("power law per-edge K=33", &g, &m, &pretrusts(m.n(), 33, 6));
}

#[test]
fn gpu_split_matrix_gives_the_same_answer() {
    let Some(whole) = gpu() else { return };
    let Some(split) = gpu_split(SPLIT_BINDING) else {
        return;
    };
    for per_edge in [false, true] {
        // 3000 agents keep every vector inside the lowered binding (as K
        // drops to fit), while the entries need several chunks.
        let m = power_law(3_000, 20.0, 1_500, per_edge, 44 + per_edge as u64);
        let bytes = m.nnz() * 4;
        assert!(
            bytes as u64 > 4 * SPLIT_BINDING,
            "{bytes} bytes of sources should need several chunks"
        );
        for k in [1, 33] {
            let cols = pretrusts(m.n(), k, 9);
            let label = format!("split per_edge={per_edge} K={k}");
            compare(&label, &split, &m, &cols);
            // Split and whole agree on the same iterate.
            let fixed = IterParams {
                epsilon: 1e-12,
                max_iter: 30,
                ..Default::default()
            };
            let a = split.solve(&m, &cols, &fixed).unwrap();
            let b = whole.solve(&m, &cols, &fixed).unwrap();
            for (x, y) in a.iter().zip(&b) {
                // f32 may reach an exact fixed point (residual 0) first.
                assert!(x.iterations <= 30 && y.iterations <= 30);
                assert!(l1(&x.scores, &y.scores) < 1e-6);
            }
        }
    }
    // Long rows that span chunks; the per-agent arrays still fit the binding.
    let m = matrix(synthetic::hubs(5_001, 4));
    assert!(m.nnz() as u64 * 4 > SPLIT_BINDING);
    compare("split hubs K=1", &split, &m, &pretrusts(m.n(), 1, 4));
    compare("split hubs K=3", &split, &m, &pretrusts(m.n(), 3, 4));
}

#[test]
fn gpu_warm_start_and_stopping_rules() {
    let Some(g) = gpu() else { return };
    let m = power_law(5_000, 2.0, 500, false, 45);
    let cols = pretrusts(m.n(), 3, 8);
    let exact = reference(&m, &cols, &gpu_params());
    // Warm start from the answer: one iteration.
    let warm: Vec<Column> = cols
        .iter()
        .zip(&exact)
        .map(|(c, e)| Column {
            pretrust: c.pretrust.clone(),
            start: Some(e.scores.clone()),
        })
        .collect();
    let params = IterParams {
        epsilon: 1e-6,
        ..Default::default()
    };
    for v in g.solve(&m, &warm, &params).unwrap() {
        assert_eq!((v.iterations, v.stop), (1, StopReason::Converged));
    }
    // Warm start elsewhere still reaches the same answer.
    let mut off = cols.clone();
    off[0].start = Some((0..m.n()).map(|i| (i % 7) as f64).collect());
    compare("warm start", &g, &m, &off);
    // Other damping factors, including pure teleport.
    for alpha in [0.5, 1.0] {
        let p = IterParams {
            alpha,
            ..gpu_params()
        };
        compare_with(&format!("alpha {alpha}"), &g, &m, &cols, &p);
    }

    // max_iter: same iterate as the CPU after exactly that many steps.
    let capped = IterParams {
        epsilon: 1e-12,
        max_iter: 5,
        ..Default::default()
    };
    let gv = g.solve(&m, &cols, &capped).unwrap();
    let cv = CpuBackend.solve(&m, &cols, &capped).unwrap();
    for (a, b) in gv.iter().zip(&cv) {
        assert_eq!((a.stop, a.iterations), (StopReason::MaxIter, 5));
        assert!(l1(&a.scores, &b.scores) < 1e-6);
        assert!((a.residual - b.residual).abs() < 1e-6);
    }

    // Columns stop on their own: a column that converges at once does not
    // wait for the others, and its result is the one from a solve alone.
    let mixed = vec![warm[0].clone(), cols[1].clone()];
    let v = g.solve(&m, &mixed, &params).unwrap();
    assert_eq!(v[0].iterations, 1);
    assert!(v[1].iterations > 10);

    // Flat tail (checked on the host at readback points): stops early.
    let flat = IterParams {
        epsilon: 1e-12,
        flat_tail: Some(FlatTail {
            iterations: 4,
            top: 10,
        }),
        ..Default::default()
    };
    let gv = g.solve(&m, &cols, &flat).unwrap();
    let cv = CpuBackend.solve(&m, &cols, &flat).unwrap();
    for (a, b) in gv.iter().zip(&cv) {
        assert_eq!(a.stop, StopReason::FlatTail);
        assert_eq!(b.stop, StopReason::FlatTail);
        assert!(
            a.iterations >= b.iterations && a.iterations <= b.iterations + 8,
            "{} vs {}",
            a.iterations,
            b.iterations
        );
    }
}

/// A column's result does not depend on the other columns of its block, as
/// the TrustBackend contract says: every reduction's grouping is fixed by row
/// and entry indices, not by the block width.
#[test]
fn gpu_batch_equals_single_bit_for_bit() {
    let Some(g) = gpu() else { return };
    for per_edge in [false, true] {
        let m = power_law(8_000, 2.0, 3_000, per_edge, 47);
        let cols = pretrusts(m.n(), 6, 12);
        let batch = g.solve(&m, &cols, &gpu_params()).unwrap();
        for (k, (c, b)) in cols.iter().zip(&batch).enumerate() {
            let single = g
                .solve(&m, std::slice::from_ref(c), &gpu_params())
                .unwrap()
                .remove(0);
            assert_eq!(&single, b, "per_edge={per_edge} column {k}");
        }
    }
}

/// Rows of every lane count (1 to 32 lanes, and segmented long rows), each
/// kind alone and mixed in one block: the single-column kernel (lanes side by
/// side, workgroup tree) and the batched one (each invocation walks a row's
/// lanes) must give the same bits. Uniform 40-entry rows caught a compiler
/// folding the merge's error term away in one kernel only.
#[test]
fn gpu_row_kernels_agree_bit_for_bit() {
    let Some(g) = gpu() else { return };
    let n = 600;
    let mixed: Vec<u32> = (0..n)
        .map(|i| [3, 100, 40, 9, 17, 200, 0, 300][i % 8])
        .collect();
    for lens in [vec![40; n], vec![9; n], vec![200; n], vec![100; n], mixed] {
        let mut edges = Vec::new();
        for (j, &len) in lens.iter().enumerate() {
            for k in 0..len as usize {
                edges.push((((j * 31 + k * 7 + 1) % n) as u32, j as u32));
            }
        }
        edges.sort_unstable();
        edges.dedup();
        let m = matrix(synthetic::row_normalised(n, &edges));
        let cols = pretrusts(n, 3, 21);
        let params = IterParams {
            epsilon: 1e-12,
            max_iter: 4,
            ..Default::default()
        };
        let batch = g.solve(&m, &cols, &params).unwrap();
        for (k, (c, b)) in cols.iter().zip(&batch).enumerate() {
            let single = g.solve(&m, std::slice::from_ref(c), &params).unwrap();
            assert_eq!(&single[0], b, "row lengths {:?}.. column {k}", &lens[..8]);
        }
    }
}

#[test]
fn gpu_rejects_bad_columns() {
    let Some(g) = gpu() else { return };
    let m = matrix(synthetic::star(10));
    let err = g
        .solve(&m, &[Column::new(vec![0.5; 3])], &gpu_params())
        .unwrap_err();
    assert!(err.to_string().contains("agent count"), "{err}");
    let bad = Column {
        pretrust: uniform(10),
        start: Some(vec![0.0; 10]),
    };
    let err = g.solve(&m, &[bad], &gpu_params()).unwrap_err();
    assert!(err.to_string().contains("warm start"), "{err}");
}
