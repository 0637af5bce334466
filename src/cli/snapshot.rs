//! `trustmesh snapshot`: signed, verifiable reputation snapshots
//! (docs/snapshot-format.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use trustmesh::ingest::time::{parse_duration_s, parse_instant_ms};
use trustmesh::snapshot::{self, dir, Chain, Policy, ProofOutcome};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Sign a scores file (from `score --out`) as snapshot DIR: header.bin
    /// (signed) and body.parquet (the scores).
    Create {
        /// Scores of one vector (agent, score, rank) with their provenance.
        #[arg(long)]
        scores: PathBuf,
        /// The publisher's key file (`id new`).
        #[arg(long)]
        key: PathBuf,
        /// Epoch number; strictly above the previous snapshot's.
        #[arg(long)]
        epoch: u64,
        /// Network id the scores belong to (bound into every leaf).
        #[arg(long, default_value = "trustmesh")]
        network: String,
        /// The previous snapshot's directory, whose header this one chains to.
        #[arg(long)]
        prev: Option<PathBuf>,
        /// The run's `--report` JSON, when the scores file has no provenance.
        #[arg(long)]
        report: Option<PathBuf>,
        /// How long verifiers accept the snapshot (s, m, h, d, w).
        #[arg(long, default_value = "7d")]
        expires: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a snapshot: signature, publisher, epoch, expiry, chain, body
    /// hash and the Merkle root over the body's scores.
    Verify {
        dir: PathBuf,
        /// Accept only this publisher (64 hex characters).
        #[arg(long)]
        publisher: Option<String>,
        /// Accept only epochs above this (the last one you accepted).
        #[arg(long)]
        after_epoch: Option<u64>,
        /// The previous snapshot you hold: its epoch must be lower and, for
        /// the next epoch, its header hash must be this one's `prev`.
        #[arg(long)]
        prev: Option<PathBuf>,
        /// Judge expiry at this time (RFC 3339 or a date) instead of now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Print one agent's score, rank and inclusion proof (or a proof that
    /// the agent is absent) as JSON.
    Prove {
        dir: PathBuf,
        #[arg(long)]
        agent: String,
    },
    /// Re-derive a snapshot from its inputs with the header's parameters: the
    /// inputs must be the ones it names (SHA-256); an f64 snapshot must be
    /// reproduced bit for bit on the CPU; any snapshot's error bound is
    /// certified by one f64 iteration from its published vector.
    Audit {
        dir: PathBuf,
        /// The logs (file, directory or glob; repeatable).
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
        /// The pre-trust file, if the snapshot was made with one.
        #[arg(long)]
        pretrusted: Option<PathBuf>,
        /// The registry ledger, if the snapshot was made with one.
        #[arg(long)]
        registry: Option<PathBuf>,
        /// The snapshot a warm-started one began from (its directory), if
        /// the header's parameters name one (`start_snapshot`).
        #[arg(long, value_name = "SNAPSHOT_DIR")]
        start_from: Option<PathBuf>,
    },
    /// Check a proof against a header alone, without the body.
    VerifyProof {
        /// A snapshot's header.bin.
        #[arg(long)]
        header: PathBuf,
        /// The proof JSON (`snapshot prove`).
        #[arg(long)]
        proof: PathBuf,
        /// Accept only this publisher (64 hex characters).
        #[arg(long)]
        publisher: Option<String>,
    },
}

pub fn run(a: SnapshotArgs) -> Result<()> {
    match a.command {
        SnapshotCommand::Create {
            scores,
            key,
            epoch,
            network,
            prev,
            report,
            expires,
            out,
        } => {
            let k = trustmesh::identity::read_key_file(&key)
                .with_context(|| key.display().to_string())?;
            let created = super::unix_now()?;
            let ttl = parse_duration_s(&expires).context("--expires")?;
            let expires = created
                .checked_add(ttl.ceil().min(i64::MAX as f64) as i64)
                .context("--expires: too far in the future")?;
            let opts = dir::CreateOptions {
                network,
                epoch,
                created,
                expires,
                prev,
            };
            let h = dir::create(&scores, report.as_deref(), &k, &opts, &out)?;
            println!(
                "snapshot {}: network `{}`, epoch {}, {} agents, root {}, expires {}",
                out.display(),
                h.network,
                h.epoch,
                h.agent_count,
                hex::encode(h.merkle_root),
                h.expires
            );
        }
        SnapshotCommand::Verify {
            dir: d,
            publisher,
            after_epoch,
            prev,
            at,
        } => {
            let policy = Policy {
                publisher: publisher
                    .as_deref()
                    .map(parse_key)
                    .transpose()
                    .context("--publisher")?,
                after_epoch,
            };
            let now = match at {
                Some(t) => parse_instant_ms(&t).context("--at")?.div_euclid(1000),
                None => super::unix_now()?,
            };
            let v = dir::verify(&d, prev.as_deref(), now, &policy)?;
            let chain = match v.chain {
                Chain::Linked {
                    last_epoch: Some(e),
                } => format!("chained to epoch {e}"),
                Chain::Linked { last_epoch: None } => "chained to the header given".to_string(),
                Chain::Gap { last_epoch } => {
                    format!("epochs after {last_epoch} missing, chain not checked across them")
                }
                Chain::Unchecked => "chain not checked (no --prev)".to_string(),
            };
            println!(
                "valid: {} network `{}` epoch {} by {}, {} agents, {} ({}); header {}",
                d.display(),
                v.header.network,
                v.header.epoch,
                hex::encode(v.header.publisher),
                v.header.agent_count,
                chain,
                v.header.precision,
                hex::encode(v.hash)
            );
        }
        SnapshotCommand::Audit {
            dir: d,
            logs,
            pretrusted,
            registry,
            start_from,
        } => {
            let inputs = snapshot::audit::AuditInputs {
                logs,
                pretrusted,
                registry,
                start: start_from,
            };
            let o = snapshot::audit::audit(&d, &inputs)
                .with_context(|| format!("audit of {}", d.display()))?;
            println!(
                "audit passed: {}: {} input files match the header; {}",
                d.display(),
                o.inputs,
                if o.reproduced {
                    format!("{} scores reproduced bit for bit on the CPU", o.agents)
                } else {
                    "an f32 snapshot: not reproduced bit for bit (not claimed)".to_string()
                }
            );
            if let Some((epoch, publisher, chained)) = o.start {
                // Any signed vector can start an iteration; whose it was is
                // the auditor's to judge.
                println!(
                    "warm-started from epoch {epoch} of publisher {}{}",
                    hex::encode(publisher),
                    if chained {
                        ", the snapshot this one chains on"
                    } else {
                        ": NOT the snapshot this one chains on"
                    }
                );
            }
            match o.one_step_residual {
                Some(r) => println!(
                    "one f64 iteration from the published vector changes it by {r:e} (L1): it is within {:e} of the exact scores",
                    r / o.alpha
                ),
                None => println!("--distrust discount: the published vector is not the iteration's fixed point; no bound certified"),
            }
        }
        SnapshotCommand::Prove { dir: d, agent } => {
            let p = dir::prove_agent(&d, &agent)?;
            println!("{}", p.to_json());
        }
        SnapshotCommand::VerifyProof {
            header,
            proof,
            publisher,
        } => {
            let publisher = publisher
                .as_deref()
                .map(parse_key)
                .transpose()
                .context("--publisher")?;
            let h = read(
                &header,
                snapshot::header::MAX_HEADER_BYTES as u64,
                "header.bin size in bytes",
            )?;
            let p = read(
                &proof,
                snapshot::proof::MAX_PROOF_BYTES as u64,
                "proof size in bytes",
            )?;
            let outcome = snapshot::verify_proof(&h, &p, publisher.as_ref())
                .map_err(trustmesh::Error::from)
                .with_context(|| format!("{} with {}", proof.display(), header.display()))?;
            match outcome {
                ProofOutcome::Included {
                    agent,
                    score,
                    claimed_rank,
                    ..
                } => println!(
                    "valid: `{agent}` has score {score:e} in this snapshot (rank {claimed_rank} as claimed; ranks are not bound by the tree)"
                ),
                ProofOutcome::Absent { agent } => {
                    println!("valid: `{agent}` is not in this snapshot")
                }
            }
        }
    }
    Ok(())
}

fn read(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    Ok(dir::read_capped(path, limit, what)?)
}

fn parse_key(s: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s.trim()).ok().filter(|v| v.len() == 32);
    match v {
        Some(v) => Ok(v.try_into().expect("length checked")),
        None => bail!("expected a public key as 64 hex characters, got `{s}`"),
    }
}
