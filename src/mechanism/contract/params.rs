//! The contract generator's parameters, their defaults (the CLI's too) and
//! their checks.

use serde::Serialize;

use crate::error::{params, Error, Message, Result};

pub const DEFAULT_TIERS: usize = 4;
pub const DEFAULT_TASK_VALUE: f64 = 100.0;
pub const DEFAULT_REWARD_MAX: f64 = 100.0;
pub const DEFAULT_REWARD_STEPS: usize = 32;

/// At most this many tiers: beyond it tiers hold a handful of agents each
/// and the budgeted search only grows.
pub const MAX_TIERS: usize = 1024;
/// At most this many rewards on the grid.
pub const MAX_REWARD_STEPS: usize = 1 << 16;
/// At most this many (tier, reward) options in all: the tables and the
/// knapsack's items grow with it.
pub const MAX_OPTIONS: usize = 1 << 22;

/// What an agent of the agents table that the scores file lacks gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unscored {
    /// The run stops and names the agent: usually the files do not match.
    #[default]
    Error,
    /// The score 0 (no trust), ranked with the others.
    Zero,
}

/// The leader's problem: tiers, the value of a success, the reward grid and
/// the budget on expected payments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractParams {
    /// Trust tiers, ≥ 1.
    pub tiers: usize,
    /// The leader's value of one success: finite, > 0.
    pub task_value: f64,
    /// The largest reward: finite, > 0.
    pub reward_max: f64,
    /// Rewards on the grid 0, Δ, …, reward_max (Δ = reward_max / (steps − 1)):
    /// ≥ 2.
    pub reward_steps: usize,
    /// Bound on the expected payments, finite and ≥ 0; `None` for none.
    pub budget: Option<f64>,
    pub unscored: Unscored,
}

impl Default for ContractParams {
    fn default() -> Self {
        ContractParams {
            tiers: DEFAULT_TIERS,
            task_value: DEFAULT_TASK_VALUE,
            reward_max: DEFAULT_REWARD_MAX,
            reward_steps: DEFAULT_REWARD_STEPS,
            budget: None,
            unscored: Unscored::default(),
        }
    }
}

impl ContractParams {
    /// Every check, each error naming its parameter.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_TIERS).contains(&self.tiers) {
            return Err(Error::param_value(
                params::TIERS,
                format!("must be in 1..={MAX_TIERS}, got {}", self.tiers),
            ));
        }
        if !(2..=MAX_REWARD_STEPS).contains(&self.reward_steps) {
            return Err(Error::param_value(
                params::REWARD_STEPS,
                format!(
                    "must be in 2..={MAX_REWARD_STEPS} (the grid holds 0 and the maximum), got {}",
                    self.reward_steps
                ),
            ));
        }
        if self.tiers * self.reward_steps > MAX_OPTIONS {
            return Err(Error::param(
                params::REWARD_STEPS,
                Message::new()
                    .param(params::TIERS)
                    .text(" × ")
                    .param(params::REWARD_STEPS)
                    .text(format!(
                        " must be at most {MAX_OPTIONS}, got {} × {}",
                        self.tiers, self.reward_steps
                    )),
            ));
        }
        for (name, v) in [
            (params::TASK_VALUE, self.task_value),
            (params::REWARD_MAX, self.reward_max),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::param_value(
                    name,
                    format!("must be a finite number > 0, got {v}"),
                ));
            }
        }
        if let Some(b) = self.budget {
            if !(b.is_finite() && b >= 0.0) {
                return Err(Error::param(
                    params::BUDGET,
                    Message::new().param(params::BUDGET).text(format!(
                        " must be a finite number >= 0, got {b} (leave it out for no budget)"
                    )),
                ));
            }
        }
        Ok(())
    }

    /// Δ, the distance between two rewards of the grid.
    pub fn reward_step(&self) -> f64 {
        self.reward_max / (self.reward_steps - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_value_names_its_parameter() {
        assert!(ContractParams::default().validate().is_ok());
        let with = |f: fn(&mut ContractParams)| {
            let mut p = ContractParams::default();
            f(&mut p);
            let e = p.validate().unwrap_err();
            (e.as_param().map(|p| p.name), e.to_string())
        };
        type Case = (fn(&mut ContractParams), &'static str, &'static str);
        let cases: [Case; 8] = [
            (
                |p| p.tiers = 0,
                params::TIERS,
                "tiers must be in 1..=1024, got 0",
            ),
            (|p| p.tiers = 5000, params::TIERS, "got 5000"),
            (
                |p| p.reward_steps = 1,
                params::REWARD_STEPS,
                "reward_steps must be in 2..=",
            ),
            (
                |p| p.task_value = f64::NAN,
                params::TASK_VALUE,
                "task_value must be a finite number > 0, got NaN",
            ),
            (|p| p.task_value = 0.0, params::TASK_VALUE, "got 0"),
            (
                |p| p.reward_max = f64::INFINITY,
                params::REWARD_MAX,
                "got inf",
            ),
            (
                |p| p.budget = Some(-1.0),
                params::BUDGET,
                "budget must be a finite number >= 0, got -1",
            ),
            (|p| p.budget = Some(f64::NAN), params::BUDGET, "got NaN"),
        ];
        for (f, name, text) in cases {
            let (n, e) = with(f);
            assert_eq!(n, Some(name), "{e}");
            assert!(e.contains(text), "{e}");
        }
        let mut big = ContractParams::default();
        (big.tiers, big.reward_steps) = (1024, 8192);
        let e = big.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "tiers × reward_steps must be at most 4194304, got 1024 × 8192"
        );
        let p = ContractParams {
            reward_max: 62.0,
            ..Default::default()
        };
        assert_eq!(p.reward_step(), 2.0);
    }
}
