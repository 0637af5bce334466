//! Snapshot directories on disk: `create` from a scores file, `verify`,
//! `prove`. The pure checks live in the sibling modules; this one reads and
//! writes files and decodes the Parquet body.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, UInt32Type};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;

use super::header::{canonical_json, header_hash, open, sort_inputs, Header, InputDigest};
use super::merkle::Hash;
use super::policy::{Chain, Policy, TrustState};
use super::proof::{prove, Proof};
use super::{
    body_digest, check_body, check_tree, leaf_hashes, SnapshotError, BODY_FILE, HEADER_FILE,
};
use crate::error::{Error, Result, ResultExt};
use crate::provenance::METADATA_KEY;

/// Everything `create` needs besides the scores and the key.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub network: String,
    pub epoch: u64,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds, after `created`.
    pub expires: i64,
    /// The previous snapshot's directory: its header is opened (signature
    /// checked), its hash becomes `prev_header_hash`, and `epoch` must be
    /// above its epoch.
    pub prev: Option<PathBuf>,
}

/// The part of a scores file's provenance (or of a `--report`) a header needs.
#[derive(Debug, Deserialize)]
struct Provenance {
    device: String,
    precision: String,
    parameters: serde_json::Value,
    inputs: Vec<ProvenanceInput>,
    iterations: u64,
    residual: f64,
    error_bound: f64,
}

#[derive(Debug, Deserialize)]
struct ProvenanceInput {
    role: String,
    path: String,
    bytes: u64,
    sha256: String,
}

/// One vector of scores as a body holds them, in the body's row order.
#[derive(Debug, Clone, Default)]
pub struct BodyScores {
    pub agents: Vec<String>,
    pub scores: Vec<f64>,
    pub ranks: Vec<u64>,
}

impl BodyScores {
    /// The same scores ordered by agent id (UTF-8 bytes), the leaves' order.
    fn by_agent(mut self) -> Self {
        let mut idx: Vec<usize> = (0..self.agents.len()).collect();
        idx.sort_unstable_by(|&a, &b| self.agents[a].as_bytes().cmp(self.agents[b].as_bytes()));
        BodyScores {
            agents: idx
                .iter()
                .map(|&i| std::mem::take(&mut self.agents[i]))
                .collect(),
            scores: idx.iter().map(|&i| self.scores[i]).collect(),
            ranks: idx.iter().map(|&i| self.ranks[i]).collect(),
        }
    }
}

/// Decodes a scores file (`agent` utf8, `score` float64, `rank` uint32, no
/// nulls): one vector, as `score` writes it. Every score must be finite and
/// not negative (a leaf hashes the exact bits; NaN or -0.0 would be a
/// second spelling of "no trust").
pub fn read_body(bytes: Bytes) -> Result<BodyScores> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(Error::read)?;
    let schema = reader.schema().clone();
    for (name, want) in [
        ("agent", DataType::Utf8),
        ("score", DataType::Float64),
        ("rank", DataType::UInt32),
    ] {
        match schema.field_with_name(name) {
            Err(_) => {
                return Err(Error::MissingColumn {
                    column: name.to_string(),
                    expected: format!(
                        "{want} (a scores file of one vector, as `score --out` writes)"
                    ),
                })
            }
            Ok(f) if f.data_type() != &want => {
                return Err(Error::ColumnType {
                    column: name.to_string(),
                    found: f.data_type().to_string(),
                    expected: want.to_string(),
                })
            }
            Ok(_) => {}
        }
    }
    if schema.fields().len() != 3 {
        return Err(Error::invalid(format!(
            "expected the columns agent, score, rank of one vector; found {} (a long table of several vectors cannot be one snapshot)",
            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let col = |name: &str| schema.index_of(name).expect("checked above");
    let (ia, is, ir) = (col("agent"), col("score"), col("rank"));
    let mut out = BodyScores::default();
    for batch in reader.build().map_err(Error::read)? {
        let batch = batch.map_err(Error::read)?;
        for i in [ia, is, ir] {
            if batch.column(i).null_count() > 0 {
                return Err(Error::invalid(format!(
                    "column `{}` holds nulls",
                    schema.field(i).name()
                )));
            }
        }
        let a = batch.column(ia).as_string::<i32>();
        let s = batch.column(is).as_primitive::<Float64Type>();
        let r = batch.column(ir).as_primitive::<UInt32Type>();
        for j in 0..batch.num_rows() {
            let score = s.value(j);
            if !(score.is_finite() && score.is_sign_positive()) {
                return Err(Error::invalid(format!(
                    "agent `{}` has the score {score}: expected a finite, non-negative number",
                    a.value(j)
                ))
                .with_row(out.agents.len() as u64 + 1, "score"));
            }
            out.agents.push(a.value(j).to_string());
            out.scores.push(score);
            out.ranks.push(r.value(j) as u64);
        }
    }
    Ok(out)
}

/// Reads a file whole, refusing one above `limit` bytes before reading it
/// all (headers and proofs come from other parties).
pub fn read_capped(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(Error::read)
        .with_path(path)?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(Error::read)
        .with_path(path)?;
    if buf.len() as u64 > limit {
        return Err(Error::from(SnapshotError::Oversized {
            what,
            size: buf.len() as u64,
            limit,
        })
        .with_path(path));
    }
    Ok(buf)
}

pub(crate) fn read_header(dir: &Path, publisher: Option<&[u8; 32]>) -> Result<(Header, Vec<u8>)> {
    let path = dir.join(HEADER_FILE);
    let bin = read_capped(
        &path,
        super::header::MAX_HEADER_BYTES as u64,
        "header.bin size in bytes",
    )?;
    let header = open(&bin, publisher)
        .map_err(Error::from)
        .with_path(&path)?;
    Ok((header, bin))
}

/// Writes a snapshot directory `out` (created if absent; an existing header
/// there is never overwritten) from a scores file and its provenance (the
/// file's own footer unless `report` is given). Returns the signed header.
pub fn create(
    scores: &Path,
    report: Option<&Path>,
    key: &SigningKey,
    opts: &CreateOptions,
    out: &Path,
) -> Result<Header> {
    // One read of the file, shared (not copied) by the footer, the decoder
    // and the copy written as the body.
    let body = Bytes::from(
        std::fs::read(scores)
            .map_err(Error::read)
            .with_path(scores)?,
    );
    let provenance: String = match report {
        Some(r) => std::fs::read_to_string(r)
            .map_err(Error::read)
            .with_path(r)?,
        None => footer_provenance(body.clone()).with_path(scores)?,
    };
    let prov: Provenance = serde_json::from_str(&provenance)
        .map_err(|e| {
            Error::invalid(format!(
                "provenance: {e} (expected the JSON `score --report` writes, with device, precision, parameters, inputs, iterations, residual, error_bound)"
            ))
        })
        .with_path(report.unwrap_or(scores))?;
    let decoded = read_body(body.clone()).with_path(scores)?.by_agent();
    let leaves = leaf_hashes(&opts.network, opts.epoch, &decoded.agents, &decoded.scores)
        .map_err(Error::from)
        .with_path(scores)?;

    let prev_header_hash = match &opts.prev {
        None => super::header::NO_PREVIOUS,
        Some(dir) => {
            let (prev, bin) = read_header(dir, None)?;
            if opts.epoch <= prev.epoch {
                return Err(SnapshotError::Rollback {
                    epoch: opts.epoch,
                    last: prev.epoch,
                }
                .into());
            }
            if prev.network != opts.network {
                return Err(Error::invalid(format!(
                    "the previous snapshot is of network `{}`, not `{}`",
                    prev.network, opts.network
                )));
            }
            header_hash(&bin)
        }
    };
    let mut inputs: Vec<InputDigest> = prov
        .inputs
        .iter()
        .map(|i| {
            let sha256: Hash = hex::decode(&i.sha256)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "provenance: input `{}` has a malformed sha256",
                        i.path
                    ))
                })?;
            Ok(InputDigest {
                // Role and file name, not the whole path: an auditor holds
                // the same files under other directories.
                name: format!(
                    "{}:{}",
                    i.role,
                    Path::new(&i.path)
                        .file_name()
                        .map_or(i.path.clone(), |f| f.to_string_lossy().into_owned())
                ),
                size: i.bytes,
                sha256,
            })
        })
        .collect::<Result<_>>()?;
    sort_inputs(&mut inputs);
    let (body_size, body_sha256) = body_digest(&body);
    let header = Header {
        version: super::header::FORMAT_VERSION,
        network: opts.network.clone(),
        epoch: opts.epoch,
        created: opts.created,
        expires: opts.expires,
        prev_header_hash,
        parameters: canonical_json(&prov.parameters),
        inputs,
        iterations: prov.iterations,
        residual: prov.residual,
        error_bound: prov.error_bound,
        device: prov.device,
        precision: prov.precision,
        agent_count: leaves.len() as u64,
        merkle_root: super::merkle::root(&leaves),
        body_size,
        body_sha256,
        publisher: key.verifying_key().to_bytes(),
    };
    let bin = header.sign(key)?;
    std::fs::create_dir_all(out)
        .map_err(Error::write)
        .with_path(out)?;
    let hpath = out.join(HEADER_FILE);
    if hpath.exists() {
        return Err(
            Error::invalid("a snapshot is already there; choose another --out").with_path(&hpath),
        );
    }
    let bpath = out.join(BODY_FILE);
    std::fs::write(&bpath, &body)
        .map_err(Error::write)
        .with_path(&bpath)?;
    // The header last: a directory with a header is complete.
    std::fs::write(&hpath, &bin)
        .map_err(Error::write)
        .with_path(&hpath)?;
    Ok(header)
}

fn footer_provenance(parquet_file: Bytes) -> Result<String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(parquet_file).map_err(Error::read)?;
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == METADATA_KEY))
        .and_then(|k| k.value.clone())
        .ok_or_else(|| {
            Error::invalid(format!(
                "no `{METADATA_KEY}` in the file's metadata (written by an older trustmesh?); pass the run's --report"
            ))
        })
}

/// What a verified snapshot directory is.
#[derive(Debug, Clone)]
pub struct VerifiedDir {
    pub header: Header,
    pub hash: Hash,
    pub chain: Chain,
}

/// Verifies a snapshot directory: header (publisher, signature), policy at
/// `now` given the previous snapshot `prev` (its header is opened and must
/// be the same publisher's), body size and hash, and the Merkle root over the
/// body's scores.
pub fn verify(dir: &Path, prev: Option<&Path>, now: i64, policy: &Policy) -> Result<VerifiedDir> {
    let state = match prev {
        None => TrustState::default(),
        Some(p) => {
            let (h, bin) = read_header(p, policy.publisher.as_ref())?;
            TrustState::accept(&h, &bin)
        }
    };
    let (header, bin) = read_header(dir, policy.publisher.as_ref())?;
    let chain = super::policy::check(&header, now, &state, policy)
        .map_err(Error::from)
        .with_path(dir.join(HEADER_FILE))?;
    checked_body(dir, &header)?;
    Ok(VerifiedDir {
        hash: header_hash(&bin),
        header,
        chain,
    })
}

/// An inclusion proof of `agent`'s score, or a proof of its absence, from a
/// snapshot directory (verified first, without a clock or chain policy: a
/// publisher proves from its own snapshot).
pub fn prove_agent(dir: &Path, agent: &str) -> Result<Proof> {
    let (header, _) = read_header(dir, None)?;
    let (d, leaves) = checked_body(dir, &header)?;
    Ok(prove(
        &header, &d.agents, &d.scores, &d.ranks, &leaves, agent,
    )?)
}

/// A snapshot's body checked against its header (size, hash, agent count,
/// Merkle root): its scores in leaf order, and the leaf hashes.
pub(crate) fn checked_body(dir: &Path, header: &Header) -> Result<(BodyScores, Vec<Hash>)> {
    let bpath = dir.join(BODY_FILE);
    let body = std::fs::read(&bpath)
        .map_err(Error::read)
        .with_path(&bpath)?;
    let (size, sha) = body_digest(&body);
    check_body(header, size, &sha)
        .map_err(Error::from)
        .with_path(&bpath)?;
    let d = read_body(Bytes::from(body)).with_path(&bpath)?.by_agent();
    let leaves = leaf_hashes(&header.network, header.epoch, &d.agents, &d.scores)
        .map_err(Error::from)
        .with_path(&bpath)?;
    check_tree(header, &leaves)
        .map_err(Error::from)
        .with_path(&bpath)?;
    Ok((d, leaves))
}
