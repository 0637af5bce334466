//! Realistic snapshots for the tests.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::header::{canonical_json, sort_inputs, Header, InputDigest, FORMAT_VERSION};
use super::merkle::{self, Hash};
use super::{body_digest, leaf_hashes};

/// The verifier's clock in the tests.
pub const NOW: i64 = 1_800_000_000;
pub const NET: &str = "trustmesh-main";
pub const EPOCH: u64 = 42;

/// The publisher's key in the tests.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

/// Another key.
pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[0x43; 32])
}

/// `n` agent ids, sorted, with gaps between them: agent-001, agent-003, ...
pub fn agents(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("agent-{:03}", 2 * i + 1)).collect()
}

/// The `parameters` object trustmesh's provenance carries.
pub fn parameters() -> serde_json::Value {
    serde_json::json!({
        "layers": ["payments", "reviews"],
        "layer_weights": [0.7, 0.3],
        "cheap": ["reviews"],
        "costly": ["payments"],
        "beta": 0.5,
        "tau": 0.25,
        "since_ms": null,
        "until_ms": 1_799_999_000_000u64,
        "half_life_s": 604800.0,
        "pretrusted": "pretrusted.csv",
        "alpha": 0.15,
        "epsilon": 1e-9,
        "max_iter": 1000,
        "flat_tail": {"iterations": 3, "top": 100},
        "distrust": "none",
        "consistency_gate": false,
    })
}

pub fn inputs() -> Vec<InputDigest> {
    let mut v = vec![
        InputDigest {
            name: "log:day2.parquet".into(),
            size: 1_234_567,
            sha256: [0x5a; 32],
        },
        InputDigest {
            name: "log:day1.parquet".into(),
            size: 7_654_321,
            sha256: [0xa5; 32],
        },
        InputDigest {
            name: "pretrusted:pretrusted.csv".into(),
            size: 77,
            sha256: [0x3c; 32],
        },
        InputDigest {
            name: "stake:stake.csv".into(),
            size: 0,
            sha256: [0xe3; 32],
        },
    ];
    sort_inputs(&mut v);
    v
}

/// A snapshot of the given sorted agents: header, header.bin, a stand-in
/// body, and the scores and ranks it holds.
pub struct Snap {
    pub header: Header,
    pub header_bin: Vec<u8>,
    pub body: Vec<u8>,
    pub agents: Vec<String>,
    pub scores: Vec<f64>,
    pub ranks: Vec<u64>,
    pub leaves: Vec<Hash>,
}

impl Snap {
    pub fn new(agents: &[String]) -> Self {
        Snap::with(agents, |_| {})
    }

    /// A snapshot whose header `edit` changes before it is signed (the
    /// body, tree and count are set after: `edit` changes the rest).
    pub fn with(agents: &[String], edit: impl FnOnce(&mut Header)) -> Self {
        let key = key();
        let n = agents.len();
        let weights: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101 + 1) as f64).collect();
        let total: f64 = weights.iter().sum();
        let scores: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut ranks = vec![0u64; n];
        for (pos, &i) in order.iter().enumerate() {
            ranks[i] = pos as u64 + 1;
        }
        // A stand-in for the Parquet body: what matters here is its bytes.
        let mut body = b"PAR1".to_vec();
        for i in &order {
            body.extend_from_slice(agents[*i].as_bytes());
            body.extend_from_slice(&scores[*i].to_be_bytes());
        }
        body.extend_from_slice(b"PAR1");
        let mut header = Header {
            version: FORMAT_VERSION,
            network: NET.into(),
            epoch: EPOCH,
            created: NOW - 3600,
            expires: NOW + 7 * 86400,
            prev_header_hash: [0x77; 32],
            parameters: canonical_json(&parameters()),
            inputs: inputs(),
            iterations: 37,
            residual: 7.5e-10,
            error_bound: 7.5e-10 / 0.15,
            device: "cpu".into(),
            precision: "f64".into(),
            agent_count: 0,
            merkle_root: [0; 32],
            body_size: 0,
            body_sha256: [0; 32],
            publisher: key.verifying_key().to_bytes(),
        };
        edit(&mut header);
        let leaves = leaf_hashes(&header.network, header.epoch, agents, &scores).unwrap();
        let (size, sha) = body_digest(&body);
        header.agent_count = n as u64;
        header.merkle_root = merkle::root(&leaves);
        header.body_size = size;
        header.body_sha256 = sha;
        let header_bin = header.sign(&key).unwrap();
        Snap {
            header,
            header_bin,
            body,
            agents: agents.to_vec(),
            scores,
            ranks,
            leaves,
        }
    }

    /// An inclusion or absence proof for `agent`, as JSON.
    pub fn prove(&self, agent: &str) -> String {
        super::prove(
            &self.header,
            &self.agents,
            &self.scores,
            &self.ranks,
            &self.leaves,
            agent,
        )
        .unwrap()
        .to_json()
    }
}

/// A mutation of a byte string: flips, overwrites, insertions,
/// deletions, cuts.
#[derive(Debug, Clone)]
pub enum Edit {
    Xor(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

pub fn any_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, m)| Edit::Xor(i, m)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..5)
        )
            .prop_map(|(i, v)| Edit::Insert(i, v)),
        (any::<prop::sample::Index>(), 1..8usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

pub fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let n = bytes.len();
        match e {
            Edit::Xor(i, m) if n > 0 => bytes[i.index(n)] ^= m,
            Edit::Set(i, v) if n > 0 => bytes[i.index(n)] = *v,
            Edit::Insert(i, v) => {
                let at = i.index(n + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            Edit::Delete(i, k) if n > 0 => {
                let at = i.index(n);
                bytes.drain(at..(at + k).min(n));
            }
            Edit::Truncate(i) => bytes.truncate(i.index(n + 1)),
            _ => {}
        }
    }
}

/// The scores of the documentation's example snapshot.
pub const DOC_AGENTS: [&str; 2] = ["alice", "carol"];
pub const DOC_SCORES: [f64; 2] = [0.75, 0.25];

/// The key of the documentation's example: RFC 8032 seed 32 × 0x01.
pub fn doc_key() -> SigningKey {
    SigningKey::from_bytes(&[0x01; 32])
}

/// The header of the documentation's example (header.rs, proof.rs).
pub fn doc_example() -> Header {
    use sha2::{Digest, Sha256};
    let leaves = leaf_hashes("tm", 1, &DOC_AGENTS, &DOC_SCORES).unwrap();
    Header {
        version: 1,
        network: "tm".into(),
        epoch: 1,
        created: 1_700_000_000,
        expires: 1_700_604_800,
        prev_header_hash: super::header::NO_PREVIOUS,
        parameters: canonical_json(&serde_json::json!({"alpha": 0.15})),
        inputs: vec![InputDigest {
            name: "log:a.parquet".into(),
            size: 3,
            sha256: Sha256::digest(b"abc").into(),
        }],
        iterations: 12,
        residual: 2f64.powi(-30),
        error_bound: 2f64.powi(-30) / 0.15,
        device: "cpu".into(),
        precision: "f64".into(),
        agent_count: 2,
        merkle_root: merkle::root(&leaves),
        body_size: 1234,
        body_sha256: [0x22; 32],
        publisher: doc_key().verifying_key().to_bytes(),
    }
}
