//! The cases: each takes a [`Subject`] and checks one behaviour of the
//! back-end contract on it; `mod.rs` lists them.

use trustmesh::graph::synthetic;
use trustmesh::trust::{
    Batch, Column, CpuBackend, EdgeWeights, FlatTail, IterParams, Problem, StopReason,
    TrustBackend, TrustMatrix,
};

use super::check::{all_dangling, l1, matrix, power_law, pretrusts, reference, uniform};
use super::{Subject, SPLIT_BINDING};

pub fn empty_matrix_all_dangling(s: &Subject) {
    let n = 40;
    let m = all_dangling(n);
    let mut cols = pretrusts(n, 3, 7);
    // Everything follows p, so t = p after one step; from a warm start too.
    cols[1].start = Some((0..n).map(|i| 1.0 + i as f64).collect());
    s.compare("empty matrix", &m, &cols);
    let v = s.backend.solve(&m, &cols, &s.params()).unwrap();
    assert_eq!(v[0].iterations, 1);
    assert!(l1(&v[0].scores, &cols[0].pretrust) < s.budget.l1_exact);
}

pub fn zero_agents(s: &Subject) {
    let m = all_dangling(0);
    let v = s
        .backend
        .solve(&m, &[Column::new(vec![])], &s.params())
        .unwrap();
    assert_eq!((v[0].scores.len(), v[0].stop), (0, StopReason::Converged));
}

pub fn no_columns(s: &Subject) {
    let m = all_dangling(40);
    assert!(s.backend.solve(&m, &[], &s.params()).unwrap().is_empty());
}

/// 0 <-> 1, 2 -> 0; 3 and 4 isolated (dangling, nobody trusts them).
fn with_isolated_agents() -> TrustMatrix {
    TrustMatrix::from_entries(
        5,
        vec![(0, 1, 1.0), (1, 0, 1.0), (2, 0, 1.0)],
        vec![0.0, 0.0, 0.0, 1.0, 1.0],
    )
    .unwrap()
}

pub fn isolated_agents(s: &Subject) {
    s.compare(
        "isolated agents",
        &with_isolated_agents(),
        &pretrusts(5, 4, 3),
    );
}

pub fn one_agent_without_edges(s: &Subject) {
    let one = all_dangling(1);
    s.compare("one agent, no edge", &one, &[Column::new(vec![1.0])]);
}

pub fn one_agent_with_self_loop(s: &Subject) {
    let looped = TrustMatrix::from_entries(1, vec![(0, 0, 1.0)], vec![0.0]).unwrap();
    let worst = s.compare("one agent, self loop", &looped, &[Column::new(vec![1.0])]);
    assert!(worst < s.budget.l1_exact);
}

pub fn star_with_100k_entry_row(s: &Subject) {
    let m = matrix(synthetic::star(100_001));
    assert_eq!(m.ptr()[1], 100_000);
    let mut cols = pretrusts(m.n(), 5, 11);
    s.compare("star K=5", &m, &cols);
    cols.truncate(1);
    s.compare("star K=1", &m, &cols);
}

pub fn power_law_per_source_k1_and_k33(s: &Subject) {
    let m = power_law(20_000, 2.0, 2_000, false, 42);
    assert!(matches!(m.weights(), EdgeWeights::PerSource(_)));
    let longest = m.ptr().windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest > 1000,
        "generator should produce long rows, got {longest}"
    );
    s.compare("power law per-source K=1", &m, &pretrusts(m.n(), 1, 5));
    s.compare("power law per-source K=33", &m, &pretrusts(m.n(), 33, 5));
}

pub fn power_law_per_edge_k1_and_k33(s: &Subject) {
    let m = power_law(20_000, 2.0, 2_000, true, 43);
    assert!(matches!(m.weights(), EdgeWeights::PerEdge(_)));
    s.compare("power law per-edge K=1", &m, &pretrusts(m.n(), 1, 6));
    s.compare("power law per-edge K=33", &m, &pretrusts(m.n(), 33, 6));
}

/// On the back end's split variant (a GPU context with a lowered binding
/// limit): the same answers as the CPU, and as the whole matrix.
pub fn split_matrix_gives_the_same_answer(s: &Subject) {
    let whole = &*s.backend;
    let split = s.split.as_deref().unwrap_or(whole);
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
            s.compare_on(split, &label, &m, &cols, &s.params());
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
                assert!(l1(&x.scores, &y.scores) < s.budget.l1);
            }
        }
    }
    // Long rows that span chunks; the per-agent arrays still fit the binding.
    let m = matrix(synthetic::hubs(5_001, 4));
    assert!(m.nnz() as u64 * 4 > SPLIT_BINDING);
    let p = s.params();
    s.compare_on(split, "split hubs K=1", &m, &pretrusts(m.n(), 1, 4), &p);
    s.compare_on(split, "split hubs K=3", &m, &pretrusts(m.n(), 3, 4), &p);
}

/// The graph and columns of the warm-start and stopping-rule cases.
fn stopping_fixture() -> (TrustMatrix, Vec<Column>) {
    let m = power_law(5_000, 2.0, 500, false, 45);
    let cols = pretrusts(m.n(), 3, 8);
    (m, cols)
}

/// The columns, each started from its exact answer.
fn started_at_the_answer(s: &Subject, m: &TrustMatrix, cols: &[Column]) -> Vec<Column> {
    let exact = reference(m, cols, &s.params());
    cols.iter()
        .zip(exact)
        .map(|(c, e)| Column {
            pretrust: c.pretrust.clone(),
            start: Some(e.scores),
        })
        .collect()
}

pub fn warm_start_from_the_answer_takes_one_iteration(s: &Subject) {
    let (m, cols) = stopping_fixture();
    let warm = started_at_the_answer(s, &m, &cols);
    for v in s.backend.solve(&m, &warm, &s.params()).unwrap() {
        assert_eq!((v.iterations, v.stop), (1, StopReason::Converged));
    }
}

pub fn warm_start_elsewhere_reaches_the_answer(s: &Subject) {
    let (m, mut cols) = stopping_fixture();
    cols[0].start = Some((0..m.n()).map(|i| (i % 7) as f64).collect());
    s.compare("warm start", &m, &cols);
}

/// Other damping factors, including pure teleport.
pub fn alpha_half_and_pure_teleport(s: &Subject) {
    let (m, cols) = stopping_fixture();
    for alpha in [0.5, 1.0] {
        let p = IterParams {
            alpha,
            ..s.params()
        };
        s.compare_with(&format!("alpha {alpha}"), &m, &cols, &p);
    }
}

/// max_iter: the same iterate as the CPU after exactly that many steps.
pub fn max_iter_caps_at_the_cpu_iterate(s: &Subject) {
    let (m, cols) = stopping_fixture();
    let capped = IterParams {
        epsilon: 1e-12,
        max_iter: 5,
        ..Default::default()
    };
    let got = s.backend.solve(&m, &cols, &capped).unwrap();
    let cpu = CpuBackend.solve(&m, &cols, &capped).unwrap();
    for (a, b) in got.iter().zip(&cpu) {
        assert_eq!((a.stop, a.iterations), (StopReason::MaxIter, 5));
        assert!(l1(&a.scores, &b.scores) < s.budget.l1);
        assert!((a.residual - b.residual).abs() < s.budget.l1);
    }
}

/// A column that converges at once does not wait for the others, and each
/// column's result is the one from a solve alone.
pub fn columns_stop_on_their_own(s: &Subject) {
    let (m, cols) = stopping_fixture();
    let warm = started_at_the_answer(s, &m, &cols);
    let mixed = vec![warm[0].clone(), cols[1].clone()];
    let v = s.backend.solve(&m, &mixed, &s.params()).unwrap();
    assert_eq!(v[0].iterations, 1);
    assert!(v[1].iterations > 10);
    for (c, b) in mixed.iter().zip(&v) {
        let alone = s.backend.solve(&m, std::slice::from_ref(c), &s.params());
        assert_eq!(&alone.unwrap()[0], b);
    }
}

/// Flat tail: stops early, at most the budget's lag after the CPU.
pub fn flat_tail_stops_early(s: &Subject) {
    let (m, cols) = stopping_fixture();
    let flat = IterParams {
        epsilon: 1e-12,
        flat_tail: Some(FlatTail {
            iterations: 4,
            top: 10,
        }),
        ..Default::default()
    };
    let got = s.backend.solve(&m, &cols, &flat).unwrap();
    let cpu = CpuBackend.solve(&m, &cols, &flat).unwrap();
    for (a, b) in got.iter().zip(&cpu) {
        assert_eq!(a.stop, StopReason::FlatTail);
        assert_eq!(b.stop, StopReason::FlatTail);
        assert!(
            a.iterations >= b.iterations && a.iterations <= b.iterations + s.budget.flat_tail_lag,
            "{} vs {}",
            a.iterations,
            b.iterations
        );
    }
}

/// Solves `cols` together and each alone, and requires the same bits: a
/// column's result does not depend on the other columns of its block, as the
/// TrustBackend contract says.
fn assert_batch_equals_single(s: &Subject, m: &TrustMatrix, cols: &[Column], p: &IterParams) {
    let batch = s.backend.solve(m, cols, p).unwrap();
    for (k, (c, b)) in cols.iter().zip(&batch).enumerate() {
        let single = s.backend.solve(m, std::slice::from_ref(c), p).unwrap();
        assert_eq!(&single[0], b, "n={} nnz={} column {k}", m.n(), m.nnz());
    }
}

pub fn batch_equals_single_bit_for_bit(s: &Subject) {
    for per_edge in [false, true] {
        let m = power_law(8_000, 2.0, 3_000, per_edge, 47);
        assert_batch_equals_single(s, &m, &pretrusts(m.n(), 6, 12), &s.params());
    }
}

/// Rows of every lane count (1 to 32 lanes, and segmented long rows), each
/// kind alone and mixed in one block: on the GPU the single-column kernel
/// (lanes side by side, workgroup tree) and the batched one (each invocation
/// walks a row's lanes) must give the same bits. Uniform 40-entry rows caught
/// a compiler folding the merge's error term away in one kernel only.
pub fn every_row_length_batch_equals_single_bit_for_bit(s: &Subject) {
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
        let params = IterParams {
            epsilon: 1e-12,
            max_iter: 4,
            ..Default::default()
        };
        eprintln!("row lengths {:?}..", &lens[..8]);
        assert_batch_equals_single(s, &m, &pretrusts(n, 3, 21), &params);
    }
}

/// Enough rows that the GPU's update leaves more partials (one per 128 rows)
/// than finalize reads itself (16 · 256), so a fold pass runs between them:
/// still within budget of the CPU, and a batch still equals its columns
/// alone bit for bit.
pub fn many_rows_take_the_fold_pass(s: &Subject) {
    let n = 540_000;
    assert!(n > 16 * 256 * 128);
    let m = power_law(n, 2.0, 200, false, 48);
    s.compare("540k rows K=1", &m, &pretrusts(n, 1, 14));
    let params = IterParams {
        epsilon: 1e-12,
        max_iter: 5,
        ..Default::default()
    };
    assert_batch_equals_single(s, &m, &pretrusts(n, 5, 13), &params);
}

pub fn bad_columns_rejected_with_their_messages(s: &Subject) {
    let m = matrix(synthetic::star(10));
    let err = s
        .backend
        .solve(&m, &[Column::new(vec![0.5; 3])], &s.params())
        .unwrap_err();
    assert!(err.to_string().contains("agent count"), "{err}");
    let bad = Column {
        pretrust: uniform(10),
        start: Some(vec![0.0; 10]),
    };
    let err = s.backend.solve(&m, &[bad], &s.params()).unwrap_err();
    assert!(err.to_string().contains("warm start"), "{err}");
}

/// Several systems in one call: each result as its own solve, bit for bit.
pub fn solve_many_equals_separate_solves(s: &Subject) {
    let a = power_law(2_000, 2.0, 500, false, 48);
    let b = power_law(3_000, 2.0, 500, true, 49);
    let c = with_isolated_agents();
    let (ca, cb, cc) = (
        pretrusts(2_000, 3, 1),
        pretrusts(3_000, 1, 2),
        pretrusts(5, 2, 3),
    );
    let problem = |matrix, columns| Problem { matrix, columns };
    // The last problem has no columns.
    let problems = [
        problem(&a, &ca),
        problem(&b, &cb),
        problem(&c, &cc),
        problem(&a, &[]),
    ];
    let p = s.params();
    let many = s.backend.solve_many(&problems, &p).unwrap();
    assert_eq!(many.len(), problems.len());
    for (k, (got, pr)) in many.iter().zip(&problems).enumerate() {
        let alone = s.backend.solve(pr.matrix, pr.columns, &p).unwrap();
        assert_eq!(got, &alone, "problem {k}");
    }
    assert_ne!(many[0][0].iterations, many[1][0].iterations);
}

/// Matrices loaded once and solved twice, in any batch order (a matrix more
/// than once): each time as `solve` gives; a batch naming a matrix outside
/// the set is rejected.
pub fn loaded_matrices_solve_again_as_solve_does(s: &Subject) {
    let a = power_law(2_000, 2.0, 500, true, 50);
    let b = matrix(synthetic::hubs(1_000, 3));
    let (ca, cb) = (pretrusts(2_000, 4, 5), pretrusts(1_000, 2, 6));
    let p = s.params();
    let set = s.backend.load(&[&a, &b]).unwrap();
    assert_eq!(set.len(), 2);
    let batch = |matrix, columns| Batch { matrix, columns };
    let batches = [batch(1, &cb[..]), batch(0, &ca), batch(1, &cb[1..])];
    let first = set.solve_many(&batches, &p).unwrap();
    assert_eq!(first, set.solve_many(&batches, &p).unwrap(), "second solve");
    let alone = [
        s.backend.solve(&b, &cb, &p).unwrap(),
        s.backend.solve(&a, &ca, &p).unwrap(),
        s.backend.solve(&b, &cb[1..], &p).unwrap(),
    ];
    assert_eq!(first, alone);
    let err = set.solve_many(&[batch(2, &ca)], &p).unwrap_err();
    assert!(err.to_string().contains("matrix 2 of a set of 2"), "{err}");
}
