//! The mechanism a publisher posts beside each snapshot: trust-tiered
//! contracts (docs/mechanism.md) solved on the snapshot's own scores, bound
//! to the snapshot by its header hash and signed by the publisher, so a
//! follower can pass it on without trusting the peer it fetched it from.
//!
//! The file is the JSON that `trustmesh mechanism --out` writes, with the
//! snapshot's identity in front (network, publisher, epoch, header hash). Its
//! signature is a separate 64-byte file over
//! `MECHANISM_DOMAIN || len(network) || network || epoch || header hash || SHA-256(file)`:
//! the bytes are signed as served, so nothing has to be re-serialised to
//! check them. An auditor re-derives the solution with `trustmesh mechanism`
//! on the snapshot's scores, the agents table (named by file name, size and
//! SHA-256: the publisher's path is not published) and the parameters
//! recorded.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Result, ServeError};
use crate::mechanism::contract::{self, ContractParams, Solution};
use crate::snapshot::merkle::Hash;

/// The mechanism of a snapshot, in its snapshot directory.
pub const MECHANISM_FILE: &str = "mechanism.json";
/// Its publisher's signature (64 bytes).
pub const MECHANISM_SIG_FILE: &str = "mechanism.sig";
/// Largest mechanism file a follower fetches.
pub const MAX_MECHANISM_BYTES: usize = 1 << 20;

/// Domain of the signature, distinct from every other signed message.
pub const MECHANISM_DOMAIN: &[u8] = b"trustmesh-mechanism-v1\x00";

/// What a publisher is told to post beside each snapshot.
#[derive(Debug, Clone)]
pub struct MechanismConfig {
    /// Agents table: agent, cost, capability (docs/mechanism.md).
    pub agents: PathBuf,
    pub params: ContractParams,
}

#[derive(Serialize)]
struct File<'a> {
    network: &'a str,
    publisher: String,
    epoch: u64,
    header_hash: String,
    model: &'static str,
    agents_file: AgentsFile,
    agents: usize,
    parameters: Parameters<'a>,
    #[serde(flatten)]
    solution: &'a Solution,
}

/// The agents table as read for this solve.
#[derive(Serialize)]
struct AgentsFile {
    name: String,
    bytes: u64,
    sha256: String,
}

#[derive(Serialize)]
struct Parameters<'a> {
    #[serde(flatten)]
    params: &'a ContractParams,
    /// Δ.
    reward_step: f64,
}

/// The snapshot a mechanism belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub network: &'a str,
    pub publisher: &'a [u8; 32],
    pub epoch: u64,
    pub header_hash: &'a Hash,
}

/// Solves the contracts on `scores` (the snapshot's scores file) and returns
/// the mechanism file's bytes.
pub fn solve(cfg: &MechanismConfig, scores: &Path, b: Binding<'_>) -> Result<Vec<u8>> {
    // Hashed before the solve reads it: a table replaced in between makes
    // the digest disagree with the solution, which an audit then notices.
    let table = std::fs::read(&cfg.agents).map_err(ServeError::io(&cfg.agents))?;
    let agents_file = AgentsFile {
        name: cfg
            .agents
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        bytes: table.len() as u64,
        sha256: hex::encode(Sha256::digest(&table)),
    };
    let (problem, solution) = contract::solve_files(&cfg.agents, scores, None, cfg.params.clone())?;
    let file = File {
        network: b.network,
        publisher: hex::encode(b.publisher),
        epoch: b.epoch,
        header_hash: hex::encode(b.header_hash),
        model: "trust-tiered contracts (docs/mechanism.md)",
        agents_file,
        agents: problem.agents().len(),
        parameters: Parameters {
            params: problem.params(),
            reward_step: problem.params().reward_step(),
        },
        solution: &solution,
    };
    let mut bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| ServeError::Config(format!("mechanism JSON: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn message(b: Binding<'_>, file: &[u8]) -> Vec<u8> {
    let mut m = MECHANISM_DOMAIN.to_vec();
    // Network ids are at most 64 bytes (announce::check_network).
    m.push(b.network.len() as u8);
    m.extend_from_slice(b.network.as_bytes());
    m.extend_from_slice(&b.epoch.to_be_bytes());
    m.extend_from_slice(b.header_hash);
    m.extend_from_slice(&Sha256::digest(file));
    m
}

/// SHA-256 of a mechanism file: what the publisher's claim commits to
/// (src/serve/announce.rs), so a peer can neither strip nor add one.
pub fn digest(file: &[u8]) -> Hash {
    Sha256::digest(file).into()
}

/// [`digest`] of the mechanism in snapshot directory `dir`; None when the
/// snapshot has none.
pub fn digest_in(dir: &Path) -> Result<Option<Hash>> {
    let p = dir.join(MECHANISM_FILE);
    match std::fs::read(&p) {
        Ok(bytes) => Ok(Some(digest(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServeError::io(&p)(e)),
    }
}

/// The publisher's signature of `file` for the snapshot `b`.
pub fn sign(key: &SigningKey, b: Binding<'_>, file: &[u8]) -> [u8; 64] {
    key.sign(&message(b, file)).to_bytes()
}

/// Whether `signature` is `b.publisher`'s signature of `file` for the
/// snapshot `b`, and the file names that snapshot.
pub fn verify(b: Binding<'_>, file: &[u8], signature: &[u8]) -> std::result::Result<(), String> {
    let sig: [u8; 64] = signature
        .try_into()
        .map_err(|_| format!("signature of {} bytes, expected 64", signature.len()))?;
    let key = VerifyingKey::from_bytes(b.publisher).map_err(|e| format!("publisher key: {e}"))?;
    key.verify_strict(&message(b, file), &Signature::from_bytes(&sig))
        .map_err(|_| "the publisher's signature does not verify".to_string())?;
    // Signed, so from the publisher; it must also say which snapshot it is
    // of, as the signature binds it.
    let v: serde_json::Value =
        serde_json::from_slice(file).map_err(|e| format!("not JSON: {e}"))?;
    let names = v.get("epoch").and_then(|e| e.as_u64()) == Some(b.epoch)
        && v.get("header_hash").and_then(|h| h.as_str()) == Some(&hex::encode(b.header_hash));
    if !names {
        return Err("the file names another snapshot".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_binds_network_epoch_header_and_bytes() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let publisher = key.verifying_key().to_bytes();
        let hash = [3u8; 32];
        let b = Binding {
            network: "net",
            publisher: &publisher,
            epoch: 5,
            header_hash: &hash,
        };
        let file = format!(
            "{{\"epoch\": 5, \"header_hash\": \"{}\"}}",
            hex::encode(hash)
        );
        let sig = sign(&key, b, file.as_bytes());
        assert_eq!(verify(b, file.as_bytes(), &sig), Ok(()));
        let other_hash = [4u8; 32];
        let other_key = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        for (what, bad) in [
            (
                "network",
                Binding {
                    network: "net2",
                    ..b
                },
            ),
            ("epoch", Binding { epoch: 6, ..b }),
            (
                "header",
                Binding {
                    header_hash: &other_hash,
                    ..b
                },
            ),
            (
                "publisher",
                Binding {
                    publisher: &other_key,
                    ..b
                },
            ),
        ] {
            assert!(verify(bad, file.as_bytes(), &sig).is_err(), "{what}");
        }
        let mut tampered = file.clone().into_bytes();
        tampered[2] ^= 1;
        assert!(verify(b, &tampered, &sig).is_err());
        assert!(verify(b, file.as_bytes(), &sig[..63]).is_err());
        assert!(verify(b, file.as_bytes(), &[sig.as_slice(), &[0]].concat()).is_err());
        assert!(verify(b, file.as_bytes(), &[]).is_err());
        // Validly signed garbage, truncated JSON, an empty file: refused.
        for bad in [&b"\xff\xfe garbage"[..], &file.as_bytes()[..10], b""] {
            let sig = sign(&key, b, bad);
            assert!(verify(b, bad, &sig).is_err(), "{bad:?}");
        }
        // Validly signed, but naming another epoch: refused.
        let wrong = format!(
            "{{\"epoch\": 4, \"header_hash\": \"{}\"}}",
            hex::encode(hash)
        );
        let sig = sign(&key, b, wrong.as_bytes());
        assert_eq!(
            verify(b, wrong.as_bytes(), &sig),
            Err("the file names another snapshot".to_string())
        );
    }
}
