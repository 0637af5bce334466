//! trustmesh: trust and mechanism analytics for open agent networks.
//!
//! Data flows one way through the stage modules:
//! `ingest` (Parquet logs → validated contributions) → `graph` (dense ids,
//! per-layer CSR) → `trust` (MG-EigenTrust, CPU reference back end) with `gpu`
//! as a second back end of the same trait → output. `mechanism` turns score
//! vectors and payoffs into incentives (trust-tiered contracts, Stackelberg
//! games), on the CPU or the same GPU context. `simulate` plays threat models
//! against the trust model, scoring its logs through `score`.

pub mod bench;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod identity;
pub mod ingest;
pub mod mechanism;
pub mod output;
pub mod parquet_out;
pub mod provenance;
pub mod runtime;
pub mod score;
pub mod serve;
pub mod simulate;
pub mod snapshot;
pub mod trust;

pub use error::{Error, Result};
