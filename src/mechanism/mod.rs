//! The mechanism engine (docs/design.md §4): given today's trust, which
//! incentives should a coordinator post? Each mechanism is a module; they read
//! score vectors that `score` wrote and never reach back into the trust stage.
//!
//! - [`contract`]: trust-tiered contracts, one reward per trust tier, chosen
//!   exactly over the whole reward grid under an optional budget.

pub mod contract;
