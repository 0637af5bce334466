//! General Bayesian Stackelberg games: a leader commits to a mixed strategy
//! over m actions; a follower of type θ (probability p_θ, payoffs R_θ for the
//! leader and C_θ for itself, m × n) observes it and best-responds. The
//! strong Stackelberg equilibrium is the commitment that maximises the
//! leader's expected utility when every type best-responds and ties go to
//! the leader (docs/mechanism.md).
//!
//! - `game`, `json`: the model, validated; its JSON form;
//! - `eval`: f64 best responses, the CPU reference (and what one
//!   "evaluation" is);
//! - `grid`: candidate strategies, whole-simplex and refining grids;
//! - `lp`: the linear program of a reply profile;
//! - `exact`: multiple LPs by branch and bound;
//! - `search`: the grid search on a [`Device`], `polish`: its LP finish;
//! - `result`: the solution and its JSON;
//! - `bench`: best-response evaluations per second.
//!
//! The GPU side of the search is `crate::gpu::mechanism`.

pub mod bench;
pub mod eval;
pub mod exact;
pub mod game;
pub mod grid;
pub mod json;
pub(crate) mod lp;
mod polish;
pub mod result;
pub mod search;

pub use exact::{solve_exact, ExactConfig};
pub use game::{FollowerType, Game, TypeSpec};
pub use json::{parse_game, read_game};
pub use result::{Comparison, Method, Solution};
pub use search::{search, Bounds, Device, SearchConfig};
