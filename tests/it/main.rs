//! The single integration-test binary (each file in tests/ would link
//! DataFusion again); one module per area.

mod batched;
mod cli;
mod common;
mod conformance;
mod contract;
mod determinism;
mod gpu;
mod identity;
mod reference;
mod serve;
mod simulate;
mod snapshot;
mod stackelberg;
mod topics;
mod util;
