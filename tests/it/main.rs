//! The single integration-test binary (each file in tests/ would link
//! DataFusion again); one module per area.

mod cli;
mod common;
mod determinism;
mod reference;
