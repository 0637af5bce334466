//! The contract between the trust model and its compute back ends.
//!
//! A back end solves t = (1-a)·(Cᵀt + (d·t)·p) + a·p for a block of columns
//! that share one matrix: each column has its own pre-trust p and optional warm
//! start, and stops on its own criterion, so a column's result is the same
//! whether it is solved alone or in a batch. Later stages (mechanism search,
//! snapshots, attack simulation) call this trait, not a concrete back end.

use super::matrix::TrustMatrix;
use crate::error::{params, Error, Message, Result};

/// Stopping rule and damping of the power iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterParams {
    /// Teleport probability a (weight of pre-trust), in (0, 1].
    pub alpha: f64,
    /// Stop when ‖t(n+1) - t(n)‖₁ < epsilon.
    pub epsilon: f64,
    pub max_iter: u32,
    pub flat_tail: Option<FlatTail>,
}

impl IterParams {
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            let got = self.alpha;
            return Err(Error::param_value(
                params::ALPHA,
                format!("must be in (0, 1], got {got}"),
            ));
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            let got = self.epsilon;
            return Err(Error::param_value(
                params::EPSILON,
                format!("must be positive, got {got}"),
            ));
        }
        if self.max_iter == 0 {
            return Err(Error::param_value(params::MAX_ITER, "must be at least 1"));
        }
        if let Some(ft) = self.flat_tail {
            if ft.iterations == 0 || ft.top == 0 {
                let name = if ft.iterations == 0 {
                    params::FLAT_TAIL
                } else {
                    params::FLAT_TAIL_TOP
                };
                let message = Message::new()
                    .param(params::FLAT_TAIL)
                    .text(" and ")
                    .param(params::FLAT_TAIL_TOP)
                    .text(" must be at least 1");
                return Err(Error::param(name, message));
            }
        }
        Ok(())
    }
}

impl Default for IterParams {
    fn default() -> Self {
        IterParams {
            alpha: 0.15,
            epsilon: 1e-9,
            max_iter: 200,
            flat_tail: None,
        }
    }
}

/// Also stop once the order of the top `top` agents has not changed for
/// `iterations` consecutive iterations (ranking users rarely need more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlatTail {
    pub iterations: u32,
    pub top: usize,
}

/// One trust vector to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Pre-trust distribution p (length n, sums to 1).
    pub pretrust: Vec<f64>,
    /// Warm start t(0); p when absent.
    pub start: Option<Vec<f64>>,
}

impl Column {
    pub fn new(pretrust: Vec<f64>) -> Self {
        Column {
            pretrust,
            start: None,
        }
    }
}

/// Why a column stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Converged,
    FlatTail,
    MaxIter,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Converged => "converged",
            StopReason::FlatTail => "flat tail",
            StopReason::MaxIter => "max iterations",
        })
    }
}

/// A solved column.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustVector {
    pub scores: Vec<f64>,
    pub iterations: u32,
    /// Final ‖t(n+1) - t(n)‖₁.
    pub residual: f64,
    pub stop: StopReason,
}

impl TrustVector {
    /// L1 distance to the exact fixed point is at most residual / a, because
    /// the iteration contracts by (1 - a) in L1.
    pub fn error_bound(&self, alpha: f64) -> f64 {
        self.residual / alpha
    }
}

/// A compute back end for the power iteration.
pub trait TrustBackend {
    /// Human-readable name (device, adapter) for reports.
    fn name(&self) -> String;

    /// Default epsilon for this back end's arithmetic (f64 CPU vs f32 GPU).
    fn default_epsilon(&self) -> f64;

    /// The floating-point type the iteration runs in (`f64`, `f32`), for
    /// reports and provenance.
    fn precision(&self) -> &'static str;

    /// Makes `matrices` ready for repeated solves: a GPU back end uploads each
    /// once and keeps it on the device until the returned set is dropped, so
    /// callers that solve the same matrices again (per-topic passes, a
    /// benchmark, a node that recomputes every epoch) pay the upload once.
    fn load<'m>(&self, matrices: &[&'m TrustMatrix]) -> Result<Box<dyn LoadedMatrices + 'm>>;

    /// Solves every column against `matrix`, reading the matrix once per
    /// iteration for the whole block.
    fn solve(
        &self,
        matrix: &TrustMatrix,
        columns: &[Column],
        params: &IterParams,
    ) -> Result<Vec<TrustVector>> {
        let set = self.load(&[matrix])?;
        let mut v = set.solve_many(&[Batch { matrix: 0, columns }], params)?;
        Ok(v.remove(0))
    }

    /// Solves independent systems, each with its own matrix (per-topic or
    /// per-layer vectors), in one call. Results are as if each problem were
    /// solved alone; back ends advance all problems in one iteration loop.
    fn solve_many(
        &self,
        problems: &[Problem<'_>],
        params: &IterParams,
    ) -> Result<Vec<Vec<TrustVector>>> {
        let matrices: Vec<&TrustMatrix> = problems.iter().map(|p| p.matrix).collect();
        let set = self.load(&matrices)?;
        let batches: Vec<Batch> = problems
            .iter()
            .enumerate()
            .map(|(matrix, p)| Batch {
                matrix,
                columns: p.columns,
            })
            .collect();
        set.solve_many(&batches, params)
    }
}

/// Matrices made ready by [`TrustBackend::load`].
pub trait LoadedMatrices {
    /// How many matrices the set holds.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Solves every batch (columns against one of the set's matrices, by
    /// index) in one iteration loop; results in batch order, as if each batch
    /// were solved alone.
    fn solve_many(
        &self,
        batches: &[Batch<'_>],
        params: &IterParams,
    ) -> Result<Vec<Vec<TrustVector>>>;
}

/// One matrix with the columns to solve against it.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    pub matrix: &'a TrustMatrix,
    pub columns: &'a [Column],
}

/// Columns to solve against matrix `matrix` of a [`LoadedMatrices`] set.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub matrix: usize,
    pub columns: &'a [Column],
}

/// Checks that every batch names a matrix of a set of `len`; shared by back ends.
pub fn check_batches(len: usize, batches: &[Batch<'_>]) -> Result<()> {
    match batches.iter().find(|b| b.matrix >= len) {
        Some(b) => Err(Error::param(
            params::BATCHES,
            format!("batch refers to matrix {} of a set of {len}", b.matrix),
        )),
        None => Ok(()),
    }
}

/// Checks column shapes against the matrix; shared by back ends.
pub fn check_columns(matrix: &TrustMatrix, columns: &[Column]) -> Result<()> {
    for (k, c) in columns.iter().enumerate() {
        if c.pretrust.len() != matrix.n() || c.start.as_ref().is_some_and(|s| s.len() != matrix.n())
        {
            return Err(Error::param(
                params::COLUMNS,
                format!(
                    "column {k}: vector length differs from agent count {}",
                    matrix.n()
                ),
            ));
        }
    }
    Ok(())
}

/// The results of a solve, each column of each batch in place; shared by
/// back ends, whose loops must retire every column (one left unsolved is a
/// bug, reported as [`Error::Internal`] rather than a panic).
pub fn all_solved(out: Vec<Vec<Option<TrustVector>>>) -> Result<Vec<Vec<TrustVector>>> {
    out.into_iter()
        .enumerate()
        .map(|(b, batch)| {
            batch
                .into_iter()
                .enumerate()
                .map(|(k, c)| {
                    c.ok_or_else(|| {
                        Error::internal(format!("column {k} of batch {b} was never solved"))
                    })
                })
                .collect()
        })
        .collect()
}

/// A warm start scaled to sum 1; shared by back ends so they reject the same
/// inputs with the same message.
pub fn normalised_start(v: &[f64], id: usize) -> Result<Vec<f64>> {
    let s: f64 = v.iter().sum();
    if !(s > 0.0 && s.is_finite()) || v.iter().any(|x| x.is_nan() || *x < 0.0) {
        return Err(Error::param(
            params::COLUMNS,
            format!("column {id}: warm start must be non-negative with a positive sum"),
        ));
    }
    Ok(v.iter().map(|x| x / s).collect())
}
