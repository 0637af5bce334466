//! The mechanism engine (DESIGN.md §4): given today's trust, which
//! incentives should a coordinator post? Each mechanism is a module; they read
//! score vectors that `score` wrote (or payoffs) and never reach back into the
//! trust stage.
//!
//! - [`contract`]: trust-tiered contracts, one reward per trust tier, chosen
//!   exactly over the whole reward grid under an optional budget.
//! - [`stackelberg`]: general Bayesian Stackelberg games, solved exactly
//!   (multiple LPs) or by a best-response search on the CPU or the GPU
//!   (docs/mechanism.md).

pub mod contract;
pub mod stackelberg;
