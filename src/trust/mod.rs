//! Trust stage: MG-EigenTrust over the graph (DESIGN.md §3).
//!
//! `local` turns aggregated interactions into the matrix C, `engine` is the
//! back-end contract, `cpu` the f64 reference back end, `pretrust` and
//! `distrust` the two ends of the model, and `scores` the type later stages
//! (mechanism, snapshot, gossip) consume.

pub mod cpu;
pub mod distrust;
pub mod engine;
pub mod local;
pub mod matrix;
pub mod pretrust;
pub mod scores;
pub mod topics;

pub use cpu::CpuBackend;
pub use engine::{
    Batch, Column, FlatTail, IterParams, LoadedMatrices, Problem, StopReason, TrustBackend,
    TrustVector,
};
pub use local::{build_matrices, LocalTrustConfig, ScoredLayer};
pub use matrix::{EdgeWeights, TrustMatrix};
pub use scores::Scores;
