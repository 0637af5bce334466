//! Trust-tiered contracts (docs/mechanism.md, "Trust-tiered contracts"): the
//! leader splits the agents into tiers by trust-score quantile and posts one
//! reward per tier, paid on success; each agent picks its best effort; the
//! leader picks the schedule that maximises its expected utility, within a
//! budget on expected payments when one is given.
//!
//! The stages, one module each:
//!
//! - [`agents`], [`scores`] (read with `ingest::tables`): the two input tables, validated,
//!   errors naming file, column and row;
//! - [`tiers`]: percentiles and tiers from the ranks of the scores;
//! - [`model`]: the reward grid, an agent's best effort, and per tier the
//!   expected successes at every reward (rayon, the same bits for any thread
//!   count);
//! - [`knapsack`]: the exact multiple-choice knapsack over the tiers that the
//!   budget makes of the choice;
//! - [`solve`]: [`Problem`] and [`Solution`]; [`warm`]: re-solves that
//!   evaluate only the tiers whose members changed;
//! - [`synthetic`]: seeded markets for benchmarks and tests.
//!
//! ```ignore
//! let problem = Problem::new(Agents::read(agents_path)?, ContractParams::default())?;
//! let first = problem.solve(&ScoreVector::read(scores_path, None)?)?;
//! let next = problem.resolve(&first, &ScoreVector::read(tomorrow, None)?)?;
//! ```

pub mod agents;
pub mod knapsack;
pub mod model;
pub mod params;
pub mod scores;
pub mod solve;
pub mod synthetic;
pub mod tiers;
pub mod warm;

use std::path::Path;

pub use agents::Agents;
pub use params::{ContractParams, Unscored};
pub use scores::ScoreVector;
pub use solve::{Problem, Solution};

use crate::error::Result;

/// Reads the agents table and the scores (`vector` of a long scores file)
/// and solves: the whole job of `trustmesh mechanism`. Every error about a
/// file's contents names that file (an agent without a score names its row
/// of the agents table).
pub fn solve_files(
    agents: &Path,
    scores: &Path,
    vector: Option<&str>,
    params: ContractParams,
) -> Result<(Problem, Solution)> {
    // The parameters first: no reason to read a file for a bad --tiers.
    params.validate()?;
    let problem = Problem::new(Agents::read(agents)?, params)?;
    let scores = ScoreVector::read(scores, vector)?;
    let solution = problem.solve(&scores).map_err(|e| {
        // Only the agents table's rows are named by a solve.
        if e.row().is_some() {
            e.with_path(agents)
        } else {
            e
        }
    })?;
    Ok((problem, solution))
}
