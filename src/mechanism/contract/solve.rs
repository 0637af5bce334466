//! The leader's choice: from the tiers' tables of expected successes, the
//! per-tier (payment, utility) of every reward, the best uniform reward and
//! the best schedule (one reward per tier) within the budget, exactly.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::error::{params, Error, Message, Result};

use super::agents::Agents;
use super::knapsack::{self, Item};
use super::model::{reward_grid, Member};
use super::params::{ContractParams, Unscored};
use super::scores::ScoreVector;
use super::tiers::{self, Tiering};
use super::warm::{self, TierTable};
use crate::ingest::tables::bad;

/// The agents and the parameters, checked once; solved against any number of
/// score vectors ([`Problem::solve`], and [`Problem::resolve`] to reuse a
/// previous solution's tier tables).
#[derive(Debug, Clone)]
pub struct Problem {
    agents: Agents,
    params: ContractParams,
    grid: Vec<f64>,
}

/// Where a solve's time went, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Matching scores to agents, percentiles and tiers.
    pub tiers: f64,
    /// The tier tables (expected successes per reward).
    pub tables: f64,
    /// The uniform reward and the budgeted schedule.
    pub schedule: f64,
}

/// One tier's members and what the schedule gets from them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierOutcome {
    /// 1 = lowest trust.
    pub tier: usize,
    pub members: usize,
    /// The lowest and highest score of the members (`None` when empty): the
    /// tier's score bounds; tiers do not overlap.
    pub score_min: Option<f64>,
    pub score_max: Option<f64>,
    /// The members' lowest and highest percentile h.
    pub percentile_min: Option<f64>,
    pub percentile_max: Option<f64>,
    /// The tier's reward and its index on the grid.
    pub reward: f64,
    pub reward_step: usize,
    pub expected_successes: f64,
    pub expected_payment: f64,
    pub expected_utility: f64,
}

/// The best tier-blind schedule: one reward for every agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uniform {
    pub reward: f64,
    pub reward_step: usize,
    pub expected_successes: f64,
    pub expected_payment: f64,
    pub expected_utility: f64,
}

/// How much the search did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Search {
    /// log10(reward_steps ^ tiers) = tiers · log10(reward_steps): the
    /// schedules the result is the best of, as a power of ten (the count
    /// itself passes f64 from about 300 tiers of 10 steps).
    pub schedules_in_grid_log10: f64,
    /// (payment, utility) pairs the knapsack kept over all tiers.
    pub frontier_states: usize,
    /// Tiers whose table this solve computed (the others were reused).
    pub tiers_evaluated: usize,
}

/// The best schedule and its outcome, per tier and in total; the best
/// uniform schedule and the gain over it.
#[derive(Debug, Clone, Serialize)]
pub struct Solution {
    /// The reward of each tier (lowest trust first).
    pub schedule: Vec<f64>,
    pub expected_utility: f64,
    pub expected_payment: f64,
    pub expected_successes: f64,
    pub tiers: Vec<TierOutcome>,
    pub uniform: Uniform,
    /// expected_utility − uniform.expected_utility (never negative).
    pub gain_over_uniform: f64,
    /// The gain relative to the uniform utility, when that is positive.
    pub gain_over_uniform_relative: Option<f64>,
    /// Agents of the agents table without a score (given 0).
    pub unscored_agents: usize,
    pub search: Search,
    /// Per agent (the agents table's order): percentile h and tier (0-based).
    #[serde(skip)]
    pub percentile: Vec<f64>,
    #[serde(skip)]
    pub tier_of: Vec<u32>,
    /// Per tier: whether this solve computed its table.
    #[serde(skip)]
    pub evaluated: Vec<bool>,
    #[serde(skip)]
    pub timings: Timings,
    /// The tables, for a warm re-solve.
    #[serde(skip)]
    pub(super) tables: Vec<Arc<TierTable>>,
    /// The grid the tables were computed on.
    #[serde(skip)]
    pub(super) grid: Vec<f64>,
}

impl Solution {
    /// The outcome without the timings: equal for equal inputs, to the bit.
    pub fn result_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self)
            .map_err(|e| Error::internal(format!("the contract solution does not serialise: {e}")))
    }
}

impl Problem {
    /// Checks the parameters.
    pub fn new(agents: Agents, params: ContractParams) -> Result<Self> {
        params.validate()?;
        if u32::try_from(agents.len()).is_err() {
            return Err(Error::invalid(format!(
                "{} agents are more than 2^32 - 1",
                agents.len()
            )));
        }
        let grid = reward_grid(params.reward_max, params.reward_steps);
        Ok(Problem {
            agents,
            params,
            grid,
        })
    }

    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    pub fn params(&self) -> &ContractParams {
        &self.params
    }

    /// The rewards the leader may post.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }

    /// The best schedule for `scores`. An agent without a score is an error
    /// naming its row of the agents table, or gets 0 (`unscored`); scores of
    /// agents not in the table are ignored.
    pub fn solve(&self, scores: &ScoreVector) -> Result<Solution> {
        self.solve_from(scores, None)
    }

    pub(super) fn solve_from(
        &self,
        scores: &ScoreVector,
        previous: Option<&Solution>,
    ) -> Result<Solution> {
        let t = Instant::now();
        let (agent_scores, unscored) = self.match_scores(scores)?;
        let tiering = tiers::assign(&agent_scores, self.params.tiers);
        let members: Vec<Vec<Member>> = tiering
            .members
            .iter()
            .map(|m| {
                m.iter()
                    .map(|&i| {
                        let i = i as usize;
                        Member::new(
                            tiering.percentile[i],
                            self.agents.capability()[i],
                            self.agents.cost()[i],
                        )
                    })
                    .collect()
            })
            .collect();
        let t_tiers = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let (tables, evaluated) = warm::tables(members, &self.grid, previous);
        let t_tables = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut s = self.choose(&tables, &tiering, &agent_scores)?;
        s.unscored_agents = unscored;
        s.search.tiers_evaluated = evaluated.iter().filter(|e| **e).count();
        s.evaluated = evaluated;
        s.timings = Timings {
            tiers: t_tiers,
            tables: t_tables,
            schedule: t.elapsed().as_secs_f64(),
        };
        s.tables = tables;
        s.grid = self.grid.clone();
        Ok(s)
    }

    /// Each agent's score, and how many had none (given 0).
    fn match_scores(&self, scores: &ScoreVector) -> Result<(Vec<f64>, usize)> {
        let map = scores.map();
        let mut out = Vec::with_capacity(self.agents.len());
        let mut missing = Vec::new();
        for (i, name) in self.agents.names().iter().enumerate() {
            match map.get(name.as_str()) {
                Some(&s) => out.push(s),
                None => {
                    missing.push(i);
                    out.push(0.0);
                }
            }
        }
        if let (Some(&first), Unscored::Error) = (missing.first(), self.params.unscored) {
            return Err(bad(
                "agent",
                first,
                Message::new()
                    .text(format!(
                        "agent `{}` has no score in the scores file ({} of {} agents have none); \
                         give them the score 0 with ",
                        self.agents.names()[first],
                        missing.len(),
                        self.agents.len()
                    ))
                    .param(params::UNSCORED)
                    .text(" zero"),
            ));
        }
        Ok((out, missing.len()))
    }

    /// The per-tier items, the best uniform schedule and the best schedule.
    fn choose(
        &self,
        tables: &[Arc<TierTable>],
        tiering: &Tiering,
        scores: &[f64],
    ) -> Result<Solution> {
        let v = self.params.task_value;
        let groups: Vec<Vec<Item>> = tables
            .iter()
            .map(|t| {
                t.successes
                    .iter()
                    .zip(&self.grid)
                    .map(|(&s, &r)| Item {
                        weight: r * s,
                        value: (v - r) * s,
                    })
                    .collect()
            })
            .collect();
        // Every total (tiered or uniform) is at most this in size: finite, so
        // no sum overflows.
        let most: f64 = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|i| i.weight.abs() + i.value.abs())
                    .fold(0.0, f64::max)
            })
            .sum();
        if !most.is_finite() {
            return Err(Error::param(
                params::TASK_VALUE,
                Message::new()
                    .text("expected utilities or payments overflow f64 with ")
                    .param(params::TASK_VALUE)
                    .text(format!(" {v} and "))
                    .param(params::REWARD_MAX)
                    .text(format!(" {}; use smaller values", self.params.reward_max)),
            ));
        }
        let capacity = self.params.budget.unwrap_or(f64::INFINITY);
        let tiers = groups.len();

        // Uniform: every tier at step s, summed as the knapsack sums.
        let mut uniform: Option<(usize, f64, f64)> = None;
        for s in 0..self.grid.len() {
            let (w, val) = knapsack::totals(&groups, &vec![s; tiers]);
            let better = uniform.is_none_or(|(_, bw, bv)| val > bv || (val == bv && w < bw));
            if w <= capacity && better {
                uniform = Some((s, w, val));
            }
        }
        let Some((u_step, u_pay, u_util)) = uniform else {
            return Err(Error::internal(
                "no uniform reward fits the budget, not even 0",
            ));
        };
        let solved = knapsack::solve(&groups, capacity, &[vec![u_step; tiers]])?;
        let Some(choice) = solved.choice else {
            return Err(Error::internal(
                "the knapsack found no schedule though the uniform one fits",
            ));
        };

        let successes = |steps: &dyn Fn(usize) -> usize| -> f64 {
            tables
                .iter()
                .enumerate()
                .map(|(t, table)| table.successes[steps(t)])
                .fold(0.0, |a, b| a + b)
        };
        let outcomes: Vec<TierOutcome> = (0..tiers)
            .map(|t| {
                let members = &tiering.members[t];
                let range = |f: &dyn Fn(usize) -> f64| -> (Option<f64>, Option<f64>) {
                    let vals = members.iter().map(|&i| f(i as usize));
                    (vals.clone().reduce(f64::min), vals.reduce(f64::max))
                };
                let (score_min, score_max) = range(&|i| scores[i]);
                let (percentile_min, percentile_max) = range(&|i| tiering.percentile[i]);
                let s = choice.picks[t];
                TierOutcome {
                    tier: t + 1,
                    members: members.len(),
                    score_min,
                    score_max,
                    percentile_min,
                    percentile_max,
                    reward: self.grid[s],
                    reward_step: s,
                    expected_successes: tables[t].successes[s],
                    expected_payment: groups[t][s].weight,
                    expected_utility: groups[t][s].value,
                }
            })
            .collect();
        let gain = choice.value - u_util;
        Ok(Solution {
            schedule: choice.picks.iter().map(|&s| self.grid[s]).collect(),
            expected_utility: choice.value,
            expected_payment: choice.weight,
            expected_successes: successes(&|t| choice.picks[t]),
            tiers: outcomes,
            uniform: Uniform {
                reward: self.grid[u_step],
                reward_step: u_step,
                expected_successes: successes(&|_| u_step),
                expected_payment: u_pay,
                expected_utility: u_util,
            },
            gain_over_uniform: gain,
            gain_over_uniform_relative: (u_util > 0.0).then(|| gain / u_util),
            unscored_agents: 0,
            search: Search {
                schedules_in_grid_log10: tiers as f64 * (self.grid.len() as f64).log10(),
                frontier_states: solved.states,
                tiers_evaluated: 0,
            },
            percentile: tiering.percentile.clone(),
            tier_of: tiering.tier_of.clone(),
            evaluated: Vec::new(),
            timings: Timings::default(),
            tables: Vec::new(),
            grid: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::mechanism::contract::synthetic::market;

    fn problem(costs: &[f64], caps: &[f64], p: ContractParams) -> Problem {
        let names = (0..costs.len()).map(|i| format!("x{i}")).collect();
        Problem::new(
            Agents::new(names, costs.to_vec(), caps.to_vec()).unwrap(),
            p,
        )
        .unwrap()
    }

    fn scores(v: &[f64]) -> ScoreVector {
        ScoreVector::new((0..v.len()).map(|i| format!("x{i}")).collect(), v.to_vec()).unwrap()
    }

    /// Two agents, two tiers, rewards 0..4: every figure by hand (all of
    /// them binary fractions, so exact). h = 1/4 and 3/4; with cost 1 and
    /// capability 1, P(r) = h·min(1, r·h/2).
    #[test]
    fn a_small_market_by_hand() {
        let p = ContractParams {
            tiers: 2,
            task_value: 10.0,
            reward_max: 4.0,
            reward_steps: 5,
            ..Default::default()
        };
        let pr = problem(&[1.0, 1.0], &[1.0, 1.0], p.clone());
        let s = pr.solve(&scores(&[1.0, 2.0])).unwrap();
        assert_eq!(s.percentile, [0.25, 0.75]);
        assert_eq!(s.tier_of, [0, 1]);
        // Low tier: utility (10 − r)·r/32 rises to r = 4; high tier: capped
        // at 3/4 successes from r = 8/3, so r = 3 (utility 5.25) beats 4.
        assert_eq!(s.schedule, [4.0, 3.0]);
        assert_eq!((s.expected_utility, s.expected_payment), (6.0, 2.75));
        assert_eq!(s.expected_successes, 0.875);
        assert_eq!(s.tiers[1].expected_successes, 0.75);
        assert_eq!(
            (s.tiers[0].score_min, s.tiers[1].score_max),
            (Some(1.0), Some(2.0))
        );
        assert_eq!(
            (s.uniform.reward, s.uniform.expected_utility),
            (3.0, 5.90625)
        );
        assert_eq!(s.gain_over_uniform, 0.09375);
        assert_eq!(s.search.schedules_in_grid_log10, 2.0 * 5f64.log10());

        // A budget of 2.5 couples the tiers: the high tier keeps 3 (pays
        // 2.25), the low one drops to 2 (pays 0.125); uniform must drop to 2.
        let pr = problem(
            &[1.0, 1.0],
            &[1.0, 1.0],
            ContractParams {
                budget: Some(2.5),
                ..p
            },
        );
        let s = pr.solve(&scores(&[1.0, 2.0])).unwrap();
        assert_eq!(s.schedule, [2.0, 3.0]);
        assert_eq!((s.expected_utility, s.expected_payment), (5.75, 2.375));
        assert_eq!((s.uniform.reward, s.uniform.expected_utility), (2.0, 5.0));
        assert_eq!(s.gain_over_uniform_relative, Some(0.15));
    }

    #[test]
    fn overflowing_utilities_are_a_parameter_error() {
        // h = 1/6, 1/2, 5/6 and full effort from the first reward: each
        // tier's utility is finite (at most 1.5e308 · 5/6), their sum is not.
        let solve = |task_value: f64, tiers: usize| {
            let p = ContractParams {
                task_value,
                tiers,
                ..Default::default()
            };
            problem(&[1e-300; 3], &[1.0; 3], p).solve(&scores(&[1.0, 2.0, 3.0]))
        };
        let e = solve(1.5e308, 3).unwrap_err();
        assert_eq!(e.as_param().map(|p| p.name), Some(params::TASK_VALUE));
        assert!(
            e.to_string()
                .contains("overflow f64 with task_value 150000000"),
            "{e}"
        );
        // One tier of 1.5 expected successes overflows alone.
        assert!(solve(1.5e308, 1).is_err());
        let s = solve(1e300, 3).unwrap();
        assert!(s.expected_utility.is_finite() && s.expected_utility > 1e300);
    }

    #[test]
    fn agents_without_scores() {
        let pr = problem(&[1.0; 3], &[0.5; 3], ContractParams::default());
        let partial = ScoreVector::new(vec!["x0".into(), "zz".into()], vec![1.0, 2.0]).unwrap();
        let e = pr.solve(&partial).unwrap_err();
        assert_eq!(e.row(), Some((2, "agent")));
        assert!(
            e.to_string().contains("agent `x1` has no score in the scores file (2 of 3 agents have none); give them the score 0 with unscored zero"),
            "{e}"
        );
        let pr = problem(
            &[1.0; 3],
            &[0.5; 3],
            ContractParams {
                unscored: Unscored::Zero,
                ..Default::default()
            },
        );
        let s = pr.solve(&partial).unwrap();
        assert_eq!(s.unscored_agents, 2);
        // x1 and x2 tie at 0 below x0: h = 1/3 for both, tier 0.
        assert_eq!(s.percentile, [5.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(s.tier_of, [2, 0, 0]);
        assert_eq!(s.tiers[1].members, 0);
        assert_eq!(s.tiers[1].score_min, None);
    }

    #[test]
    fn the_same_bits_for_any_thread_count() {
        let (agents, sc) = market(20_000, 3).unwrap();
        let pr = Problem::new(
            agents,
            ContractParams {
                budget: Some(20_000.0),
                ..Default::default()
            },
        )
        .unwrap();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| pr.solve(&sc).unwrap().result_json().unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert!(one["gain_over_uniform"].as_f64().unwrap() > 0.0, "{one}");
    }

    /// A random small market: agents' (score, cost, capability), tiers,
    /// reward steps, task value, reward maximum.
    type Market = (Vec<(f64, f64, f64)>, usize, usize, f64, f64);

    fn small_market() -> impl Strategy<Value = Market> {
        (
            proptest::collection::vec(
                (0u32..6, 0.05f64..20.0, 0.0f64..=1.0).prop_map(|(s, c, k)| (s as f64, c, k)),
                1..30,
            ),
            1usize..4,
            2usize..6,
            1.0f64..200.0,
            1.0f64..150.0,
        )
    }

    fn build(
        m: &[(f64, f64, f64)],
        tiers: usize,
        steps: usize,
        v: f64,
        rmax: f64,
        budget: Option<f64>,
    ) -> (Problem, ScoreVector) {
        let costs: Vec<f64> = m.iter().map(|x| x.1).collect();
        let caps: Vec<f64> = m.iter().map(|x| x.2).collect();
        let p = ContractParams {
            tiers,
            task_value: v,
            reward_max: rmax,
            reward_steps: steps,
            budget,
            ..Default::default()
        };
        let sc: Vec<f64> = m.iter().map(|x| x.0).collect();
        (problem(&costs, &caps, p), scores(&sc))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// The solve against every schedule of the grid evaluated agent by
        /// agent (a different summation, so within rounding; budget edges
        /// within rounding may go either way); the tiered schedule is never
        /// worse than the uniform one (to the bit); more budget never lowers
        /// the utility; each agent's effort is its best response on a fine
        /// grid.
        #[test]
        fn the_whole_grid_agent_by_agent(
            (m, tiers, steps, v, rmax) in small_market(),
            share in 0.0f64..1.2,
            extra in 0.0f64..50.0,
        ) {
            let (free, sc) = build(&m, tiers, steps, v, rmax, None);
            let unbudgeted = free.solve(&sc).unwrap();
            let budget = share * unbudgeted.expected_payment;
            let (pr, _) = build(&m, tiers, steps, v, rmax, Some(budget));
            let s = pr.solve(&sc).unwrap();
            prop_assert!(s.expected_utility >= s.uniform.expected_utility);
            prop_assert!(s.expected_payment <= budget);
            prop_assert!(s.uniform.expected_payment <= budget);

            // Every schedule, agent by agent.
            let grid = pr.grid().to_vec();
            let members: Vec<Member> = (0..m.len())
                .map(|i| Member::new(s.percentile[i], m[i].2, m[i].1))
                .collect();
            let tol = 1e-9 * (1.0 + v * m.len() as f64);
            let (mut inside, mut edge) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            // The same over uniform schedules (every tier at one step).
            let (mut u_inside, mut u_edge) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            let mut sched = vec![0usize; tiers];
            loop {
                let (mut u, mut pay) = (0.0, 0.0);
                for (i, mem) in members.iter().enumerate() {
                    let r = grid[sched[s.tier_of[i] as usize]];
                    u += (v - r) * mem.success(r);
                    pay += r * mem.success(r);
                }
                if pay <= budget - tol { inside = inside.max(u); }
                if pay <= budget + tol { edge = edge.max(u); }
                if sched.iter().all(|&x| x == sched[0]) {
                    if pay <= budget - tol { u_inside = u_inside.max(u); }
                    if pay <= budget + tol { u_edge = u_edge.max(u); }
                }
                let mut t = 0;
                while t < tiers { sched[t] += 1; if sched[t] < steps { break; } sched[t] = 0; t += 1; }
                if t == tiers { break; }
            }
            prop_assert!(s.expected_utility >= inside - tol, "{} < {inside}", s.expected_utility);
            prop_assert!(s.expected_utility <= edge + tol, "{} > {edge}", s.expected_utility);
            // The uniform result on its own, not only through the tiered one
            // (which has it as a hint, so is never below it).
            let uu = s.uniform.expected_utility;
            prop_assert!(uu >= u_inside - tol, "uniform {uu} < {u_inside}");
            prop_assert!(uu <= u_edge + tol, "uniform {uu} > {u_edge}");
            let r = s.uniform.reward;
            let u_check: f64 = members.iter().map(|mem| (v - r) * mem.success(r)).sum();
            prop_assert!((u_check - uu).abs() <= tol, "uniform {uu} vs {u_check} agent by agent");

            // More budget, never less utility; no budget is the most.
            let (more, _) = build(&m, tiers, steps, v, rmax, Some(budget + extra));
            let u2 = more.solve(&sc).unwrap().expected_utility;
            prop_assert!(u2 >= s.expected_utility, "{u2} < {}", s.expected_utility);
            prop_assert!(unbudgeted.expected_utility >= u2);

            // Best responses at the posted rewards.
            for (i, mem) in members.iter().enumerate() {
                let r = s.schedule[s.tier_of[i] as usize];
                let payoff = |e: f64| r * mem.a * e.sqrt() - m[i].1 * e;
                let best = payoff(mem.effort(r));
                for j in 0..=1000 {
                    let e = j as f64 / 1000.0;
                    prop_assert!(payoff(e) <= best + 1e-12 * (1.0 + r), "agent {i}: e = {e}");
                }
            }
        }
    }
}
