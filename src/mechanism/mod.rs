//! Mechanism design for agent networks (DESIGN.md §4): given today's trust,
//! which incentives should a coordinator post?
//!
//! - `stackelberg`: general Bayesian Stackelberg games, solved exactly
//!   (multiple LPs) or by a best-response search on the CPU or the GPU
//!   (docs/mechanism.md).

pub mod stackelberg;
