//! `snapshot audit`: re-derive a snapshot from its inputs. The inputs given
//! must be the ones the header names (by SHA-256); the job is re-run on the
//! CPU with the header's parameters. A snapshot made on the CPU (f64) must
//! be reproduced bit for bit; a snapshot from any device is certified by one
//! f64 iteration from its published vector ([`crate::score::check`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::dir::{checked_body, read_header};
use crate::error::{Error, Result};
use crate::ingest::files;
use crate::provenance;
use crate::score::check::one_step_residual;
use crate::score::start::StartVector;
use crate::score::{DistrustMode, ScoreConfig};
use crate::trust::{CpuBackend, FlatTail};

/// The files an auditor holds.
#[derive(Debug, Clone, Default)]
pub struct AuditInputs {
    pub logs: Vec<String>,
    pub pretrusted: Option<PathBuf>,
    pub registry: Option<PathBuf>,
    /// The snapshot a warm-started job began from (its directory).
    pub start: Option<PathBuf>,
}

/// What the audit established.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditOutcome {
    pub agents: u64,
    /// Input files matched to the header's digests.
    pub inputs: usize,
    /// True when the snapshot is f64 and was reproduced bit for bit; false
    /// when it is f32 (bitwise reproduction is not claimed).
    pub reproduced: bool,
    /// ‖F(x) − x‖₁ of the published vector x, in f64; `None` with
    /// `--distrust discount` (the published vector is not F's fixed point).
    pub one_step_residual: Option<f64>,
    pub alpha: f64,
    /// A warm start's snapshot: (epoch, publisher, whether it is the one
    /// the audited snapshot chains on).
    pub start: Option<(u64, [u8; 32], bool)>,
}

/// The plain job's parameters as `score` records them (provenance
/// `parameters`); a field missing means another kind of job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    layers: Option<Vec<String>>,
    layer_weights: Vec<(String, f64)>,
    cheap: Vec<String>,
    costly: Vec<String>,
    beta: f64,
    tau: f64,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    half_life_s: Option<f64>,
    pretrusted: Option<String>,
    alpha: f64,
    epsilon: f64,
    max_iter: u32,
    flat_tail: Option<FlatTailParams>,
    distrust: DistrustMode,
    consistency_gate: bool,
    registry: Option<String>,
    require_signatures: bool,
    /// The header hash of the snapshot a warm start began from.
    #[serde(default)]
    start_snapshot: Option<String>,
    /// Recorded for provenance; every engine gives the same bits, so the
    /// audit re-derives with its own default.
    #[serde(default)]
    #[allow(dead_code)]
    ingest: Option<crate::ingest::IngestEngine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatTailParams {
    iterations: u32,
    top: usize,
}

/// Audits the snapshot in `dir` against `inputs` (see the module doc).
pub fn audit(dir: &Path, inputs: &AuditInputs) -> Result<AuditOutcome> {
    let (header, _) = read_header(dir, None)?;
    let (body, _) = checked_body(dir, &header)?;
    let p: Parameters = serde_json::from_str(&header.parameters).map_err(|e| {
        Error::invalid(format!(
            "the snapshot's parameters are not those of a plain `score` job ({e}); audit re-derives plain jobs only"
        ))
    })?;
    for (flag, recorded, given) in [
        ("--pretrusted", &p.pretrusted, &inputs.pretrusted),
        ("--registry", &p.registry, &inputs.registry),
    ] {
        if recorded.is_some() != given.is_some() {
            return Err(Error::invalid(match recorded {
                Some(r) => format!("the snapshot was made with {flag} {r}: give that file"),
                None => format!("the snapshot was made without {flag}: leave it out"),
            }));
        }
    }

    let start = match (&p.start_snapshot, &inputs.start) {
        (None, None) => None,
        (Some(h), None) => {
            return Err(Error::invalid(format!(
                "the snapshot was warm-started from snapshot {h}: give that snapshot's directory"
            )))
        }
        (None, Some(_)) => {
            return Err(Error::invalid(
                "the snapshot was made without a warm start: leave the start snapshot out",
            ))
        }
        (Some(h), Some(dir)) => {
            let s = StartVector::from_snapshot(dir)?;
            if hex::encode(s.snapshot) != *h {
                return Err(Error::invalid(format!(
                    "{}: header hash {}, but the snapshot was warm-started from {h}",
                    dir.display(),
                    hex::encode(s.snapshot)
                )));
            }
            Some(s)
        }
    };

    // The inputs must be the header's, by content.
    let files = files::resolve(&inputs.logs)?;
    let given = provenance::inputs(
        &files,
        &[
            ("pretrusted", inputs.pretrusted.as_deref()),
            ("registry", inputs.registry.as_deref()),
        ],
    )?;
    for want in &header.inputs {
        let sha = hex::encode(want.sha256);
        if !given
            .iter()
            .any(|g| g.sha256 == sha && g.bytes == want.size)
        {
            return Err(Error::invalid(format!(
                "input `{}` ({} bytes, SHA-256 {sha}): none of the files given has this content",
                want.name, want.size
            )));
        }
    }
    if given.len() != header.inputs.len() {
        return Err(Error::invalid(format!(
            "{} input files given, the snapshot names {}",
            given.len(),
            header.inputs.len()
        )));
    }

    let mut cfg = ScoreConfig::new(inputs.logs.clone());
    cfg.ingest.layers = p.layers;
    cfg.ingest.since_ms = p.since_ms;
    cfg.ingest.until_ms = p.until_ms;
    cfg.ingest.half_life_s = p.half_life_s;
    cfg.layer_weights = p.layer_weights;
    cfg.cheap = p.cheap;
    cfg.costly = p.costly;
    cfg.beta = p.beta;
    cfg.tau = p.tau;
    cfg.pretrusted = inputs.pretrusted.clone();
    cfg.alpha = p.alpha;
    cfg.epsilon = Some(p.epsilon);
    cfg.max_iter = p.max_iter;
    cfg.flat_tail = p.flat_tail.map(|f| FlatTail {
        iterations: f.iterations,
        top: f.top,
    });
    cfg.distrust = p.distrust;
    cfg.consistency_gate = p.consistency_gate;
    cfg.registry = inputs.registry.clone();
    cfg.require_signatures = p.require_signatures;
    let start_of = start
        .as_ref()
        .map(|s| (s.epoch, s.publisher, s.snapshot == header.prev_header_hash));
    cfg.start = start;

    let published: Vec<(String, f64)> = body
        .agents
        .iter()
        .cloned()
        .zip(body.scores.iter().copied())
        .collect();
    let reproduced = header.precision == "f64";
    if reproduced {
        let out = crate::score::run(&cfg, &CpuBackend)?;
        let mut mine: Vec<(&str, f64)> = out
            .scores
            .agents
            .iter()
            .map(String::as_str)
            .zip(out.scores.scores.iter().copied())
            .collect();
        mine.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (k, (agent, score)) in published.iter().enumerate() {
            match mine.get(k) {
                Some((a, s)) if a == agent && s.to_bits() == score.to_bits() => {}
                Some((a, s)) if a == agent => {
                    return Err(Error::invalid(format!(
                        "agent `{agent}`: the snapshot says {score:e}, the re-derivation gives {s:e} (first difference in agent-id order)"
                    )))
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "agent `{agent}` of the snapshot is not where the re-derivation has it (the agent sets differ)"
                    )))
                }
            }
        }
        if mine.len() != published.len() {
            return Err(Error::invalid(format!(
                "the re-derivation has {} agents, the snapshot {}",
                mine.len(),
                published.len()
            )));
        }
    }
    let one_step_residual = match cfg.distrust {
        DistrustMode::Discount => None,
        DistrustMode::Ignore => {
            let r = one_step_residual(&cfg, &published)?;
            // The published residual is the last step's change; one more
            // step from the published vector changes it by at most that
            // (the map contracts), up to the rounding of a sum of n terms.
            let slack = header.residual * 1e-9 + f64::EPSILON * 4.0;
            // NaN fails too.
            if r.is_nan() || r > header.residual + slack {
                return Err(Error::invalid(format!(
                    "one f64 iteration from the published vector changes it by {r:e} (L1), more than the published residual {:e}: the certified bound {:e} does not hold",
                    header.residual, header.error_bound
                )));
            }
            Some(r)
        }
    };
    Ok(AuditOutcome {
        agents: header.agent_count,
        inputs: given.len(),
        reproduced,
        one_step_residual,
        alpha: cfg.alpha,
        start: start_of,
    })
}
