//! One f64 step of the plain score job from a given vector: what an auditor
//! needs to certify a published vector made on any device. If
//! ‖F(x) − x‖₁ = r for the iteration map F (a contraction by 1 − alpha in
//! L1), then ‖x − x*‖₁ ≤ r / alpha for the exact fixed point x*.

use crate::graph::ids::NameMap;

use super::{prepare, seed_pretrust, ScoreConfig};
use crate::error::{Error, Result};
use crate::trust::cpu::CpuBackend;
use crate::trust::{build_matrices, Column, IterParams, TrustBackend};

/// The L1 change of one f64 iteration of `cfg`'s job started from `vector`
/// (agent id → score; every agent of the logs must have one, and no other).
pub fn one_step_residual(cfg: &ScoreConfig, vector: &[(String, f64)]) -> Result<f64> {
    let (graph, local, _) = prepare(cfg)?;
    let (c, _) = build_matrices(&graph, &local)?;
    let p = seed_pretrust(cfg, &graph)?;
    let n = graph.n();
    if vector.len() != n {
        return Err(Error::invalid(format!(
            "the vector has {} agents, the logs {n}",
            vector.len()
        )));
    }
    let by_name: NameMap<&str, f64> = vector.iter().map(|(a, s)| (a.as_str(), *s)).collect();
    let mut start = vec![0.0; n];
    for (i, x) in start.iter_mut().enumerate() {
        let name = graph.agents.name(i as u32);
        *x = *by_name.get(name).ok_or_else(|| {
            Error::invalid(format!(
                "agent `{name}` of the logs has no score in the vector"
            ))
        })?;
    }
    let params = IterParams {
        alpha: cfg.alpha,
        epsilon: f64::MIN_POSITIVE,
        max_iter: 1,
        flat_tail: None,
    };
    let column = Column {
        pretrust: p,
        start: Some(start),
    };
    let v = CpuBackend.solve(&c, &[column], &params)?.remove(0);
    Ok(v.residual)
}
