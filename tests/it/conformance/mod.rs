//! Back-end conformance (DESIGN.md §6): one list of cases, run against every
//! [`TrustBackend`] in [`backends`], each held to its own [`Budget`] against
//! the f64 CPU reference.
//!
//! The cases cover the shapes that break kernels (empty and one-agent
//! matrices, isolated agents, a 100k-entry row, power laws with per-source
//! and per-edge weights, matrices split into chunks, K = 1 and K = 33
//! columns) and the contract of `engine.rs` (warm starts, damping, the three
//! stopping rules, columns stopping on their own, batch = single bit for bit,
//! rejected inputs, `solve_many` and `load`).
//!
//! **Adding a back end** is one line in [`backends`]: a [`Subject`] with its
//! name, the back end, its budget and, where it can split a matrix into
//! chunks, that variant. Every case then runs against it.
//!
//! A case is a function of `cases.rs` taking the [`Subject`]; listing it in
//! `conformance!` below makes it a test that runs it on every back end (a
//! case left out of the list is dead code, which clippy rejects).
//! `check.rs` holds the comparison with the reference and the fixtures.

mod cases;
pub mod check;

use trustmesh::trust::{CpuBackend, IterParams, TrustBackend};

/// How far a back end's results may be from the f64 CPU reference.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// L1 distance to the CPU iterate after the same number of steps (and to
    /// the CPU result when both stopped at the same step); allowed beyond the
    /// certified bound residual / alpha to the exact fixed point; between two
    /// runs that must reach the same iterate; between residuals.
    pub l1: f64,
    /// L1 distance where the answer is exact: p itself when every agent is
    /// dangling, the single score of one agent.
    pub l1_exact: f64,
    /// Iteration counts may differ from the CPU's by this much (residuals near
    /// epsilon round differently, which can move the stop by a step).
    pub iterations: u32,
    /// |Σ scores - 1|.
    pub sum: f64,
    /// Iterations by which a flat tail may be noticed after the CPU notices it
    /// (a back end may check the ranking only now and then).
    pub flat_tail_lag: u32,
}

/// A back end under test.
pub struct Subject {
    /// Short name for messages.
    pub name: &'static str,
    pub backend: Box<dyn TrustBackend>,
    /// The same back end made to split each matrix into chunks of at most
    /// [`SPLIT_BINDING`] bytes, where it has such a mode; the split cases run
    /// on `backend` otherwise.
    pub split: Option<Box<dyn TrustBackend>>,
    pub budget: Budget,
}

impl Subject {
    pub fn new(name: &'static str, backend: impl TrustBackend + 'static, budget: Budget) -> Self {
        Subject {
            name,
            backend: Box::new(backend),
            split: None,
            budget,
        }
    }

    pub fn with_split(mut self, split: impl TrustBackend + 'static) -> Self {
        self.split = Some(Box::new(split));
        self
    }

    /// Default parameters with this back end's own epsilon (1e-9 for the f64
    /// CPU, 1e-6 for the f32 GPU), for cases that set no other.
    pub fn params(&self) -> IterParams {
        IterParams {
            epsilon: self.backend.default_epsilon(),
            ..Default::default()
        }
    }
}

/// The storage-binding size a back end's split variant is given; the split
/// cases' matrices need several chunks of it.
pub const SPLIT_BINDING: u64 = 64 << 10;

/// The CPU reference runs the cases too: they must hold for it exactly, and
/// its results must sit within its own f64 bound of the fixed point.
const F64: Budget = Budget {
    l1: 1e-12,
    l1_exact: 1e-15,
    iterations: 0,
    sum: 1e-10,
    flat_tail_lag: 0,
};

/// Every back end: a new one is one more line here.
pub fn backends() -> Vec<Subject> {
    let all = [
        Some(Subject::new("cpu", CpuBackend, F64)),
        // None, after a SKIPPED line on stderr, where there is no adapter.
        crate::gpu::subject(),
    ];
    all.into_iter().flatten().collect()
}

/// `conformance![case, …]`: a test per case of `cases.rs`, each running it on
/// every back end. What runs is written to stderr first, which the harness
/// shows when a test fails.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            for subject in backends() {
                eprintln!("{} on {}", stringify!($case), subject.backend.name());
                cases::$case(&subject);
            }
        }
    )*};
}

conformance![
    empty_matrix_all_dangling,
    zero_agents,
    no_columns,
    isolated_agents,
    one_agent_without_edges,
    one_agent_with_self_loop,
    star_with_100k_entry_row,
    power_law_per_source_k1_and_k33,
    power_law_per_edge_k1_and_k33,
    split_matrix_gives_the_same_answer,
    warm_start_from_the_answer_takes_one_iteration,
    warm_start_elsewhere_reaches_the_answer,
    alpha_half_and_pure_teleport,
    max_iter_caps_at_the_cpu_iterate,
    columns_stop_on_their_own,
    flat_tail_stops_early,
    batch_equals_single_bit_for_bit,
    many_rows_take_the_fold_pass,
    every_row_length_batch_equals_single_bit_for_bit,
    bad_columns_rejected_with_their_messages,
    solve_many_equals_separate_solves,
    loaded_matrices_solve_again_as_solve_does,
];
