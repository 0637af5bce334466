//! One agent's score, or its absence, proven against a signed header:
//! the JSON that `snapshot prove` writes and `snapshot verify-proof` checks.
//!
//! # Inclusion: `trustmesh-proof-v1`
//!
//! ```json
//! {"format":"trustmesh-proof-v1","network":"tm","epoch":1,"agent":"alice",
//!  "score":0.75,"score_bits":"3fe8000000000000","rank":1,"index":0,"tree_size":2,
//!  "path":["6937f15f1800d8bf4aa3a1a93ca32fff0b3cc976bf1e8c7b8a680181b92f1e30"]}
//! ```
//!
//! (one line as `snapshot prove` writes it; here wrapped). It proves
//! alice's score in the example snapshot of `header`'s documentation
//! (network `tm`, epoch 1, `alice` 0.75 and `carol` 0.25): alice's leaf
//! hash is `584ac4677a0cfbc059a7b4037513304550be7440637a786a1f1df3f7296f38b1`
//! and carol's, the one hash of the path, `6937f15f1800d8bf4aa3a1a93ca32fff0b3cc976bf1e8c7b8a680181b92f1e30`;
//! SHA-256(0x01 ‖ alice's ‖ carol's) is the header's Merkle root
//! `bad4c8f8c8084c4ad567a4f937d60383c62340e471622712e6bd6a93cbce1fd9`.
//! The test `doc_examples_are_exact` checks every example here.
//!
//! | key          | JSON type         | meaning                                                              |
//! |--------------|-------------------|----------------------------------------------------------------------|
//! | `format`     | string            | exactly `trustmesh-proof-v1`                                         |
//! | `network`    | string            | the snapshot's network id; must equal the header's                   |
//! | `epoch`      | integer           | the snapshot's epoch; must equal the header's                        |
//! | `agent`      | string            | the agent id                                                         |
//! | `score`      | number or `null`  | the score in decimal, for people; `null` when not finite             |
//! | `score_bits` | string            | 16 lowercase hex digits: the score's IEEE-754 binary64 bits, big-endian; **this** is what is hashed |
//! | `rank`       | integer           | the agent's rank in the body (1 = best): **informative, not verified** |
//! | `index`      | integer           | the leaf's index in the tree (agents sorted by id)                   |
//! | `tree_size`  | integer           | the number of leaves; must equal the header's agent count            |
//! | `path`       | array of strings  | the RFC 9162 §2.1.3 audit path, leaf first, each 64 lowercase hex digits; at most 64 |
//!
//! A verifier recomputes the leaf hash from (network, epoch, agent, score
//! bits) as [`super::merkle`] defines it and runs RFC 9162 §2.1.3.2's
//! algorithm with `index`, `tree_size` and `path` up to the header's Merkle
//! root. The decimal `score` must parse to exactly `score_bits` (so the
//! number a person reads is the one proven; trustmesh writes the shortest
//! decimal that round-trips), but it is never hashed: decimal parsers
//! differ by an ulp, the bits do not.
//!
//! `rank` is not in the leaf. The leaf binds (domain, network, epoch,
//! agent, score) only; the rank is the agent's position in the body's
//! `rank` column (every score compared with every other), which a proof
//! does not carry, so a verifier holding only the header cannot check it, and
//! [`ProofOutcome::Included`] calls it `claimed_rank`. Binding the rank
//! into the leaf would not make it true either: the publisher could sign
//! any rank. Whoever holds the body checks ranks there.
//!
//! # Absence: `trustmesh-absence-v1`
//!
//! ```json
//! {"format":"trustmesh-absence-v1","network":"tm","epoch":1,"agent":"bob","tree_size":2,
//!  "predecessor":{"index":0,"agent":"alice","score_bits":"3fe8000000000000",
//!   "path":["6937f15f1800d8bf4aa3a1a93ca32fff0b3cc976bf1e8c7b8a680181b92f1e30"]},
//!  "successor":{"index":1,"agent":"carol","score_bits":"3fd0000000000000",
//!   "path":["584ac4677a0cfbc059a7b4037513304550be7440637a786a1f1df3f7296f38b1"]}}
//! ```
//!
//! and, before the first leaf,
//!
//! ```json
//! {"format":"trustmesh-absence-v1","network":"tm","epoch":1,"agent":"aaron","tree_size":2,
//!  "predecessor":null,
//!  "successor":{"index":0,"agent":"alice","score_bits":"3fe8000000000000",
//!   "path":["6937f15f1800d8bf4aa3a1a93ca32fff0b3cc976bf1e8c7b8a680181b92f1e30"]}}
//! ```
//!
//! `format`, `network`, `epoch`, `agent` and `tree_size` as above;
//! `predecessor` and `successor` are the leaves just below and just above
//! the missing id in byte-wise UTF-8 order, each with its index, agent id,
//! score bits and audit path, or `null` at either end of the list (both
//! `null` only in an empty tree). The verifier checks them as
//! `merkle::verify_absence` does: each neighbour on the right side of the
//! missing id, the two adjacent, a lone successor first, a lone predecessor
//! last, and each neighbour's inclusion.
//!
//! # Parsing
//!
//! Both are one JSON object: at most 1 MiB ([`MAX_PROOF_BYTES`], else
//! [`SnapshotError::Oversized`]); keys other than the ones above, a key
//! twice, a missing key, a hash or bits not in lowercase hex of the right
//! length, a path longer than 64 hashes, and anything after the object but
//! whitespace are rejected ([`SnapshotError::Malformed`], with the byte
//! where the parser stopped). Key order and whitespace are free.

use serde::{Deserialize, Serialize};

use super::error::SnapshotError;
use super::header::{open, Header};
use super::merkle::{self, Hash};
use super::{check_sorted, json_error_offset};

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// The `format` of an inclusion proof.
pub const INCLUSION_FORMAT: &str = "trustmesh-proof-v1";
/// The `format` of an absence proof.
pub const ABSENCE_FORMAT: &str = "trustmesh-absence-v1";
/// The largest proof JSON accepted, in bytes.
pub const MAX_PROOF_BYTES: usize = 1 << 20;
/// The longest audit path accepted (a tree of up to 2⁶⁴ leaves).
pub const MAX_PATH_LEN: usize = 64;

/// An inclusion proof as its JSON says it (module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProofJson {
    pub format: String,
    pub network: String,
    pub epoch: u64,
    pub agent: String,
    /// `None` (`null`) when the score is not finite; the key is required.
    #[serde(deserialize_with = "Option::deserialize")]
    pub score: Option<f64>,
    #[serde(with = "bits_hex")]
    pub score_bits: u64,
    /// Informative: not bound by the leaf, not verified.
    pub rank: u64,
    pub index: u64,
    pub tree_size: u64,
    #[serde(with = "path_hex")]
    pub path: Vec<Hash>,
}

/// One neighbour in an absence proof's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourJson {
    pub index: u64,
    pub agent: String,
    #[serde(with = "bits_hex")]
    pub score_bits: u64,
    #[serde(with = "path_hex")]
    pub path: Vec<Hash>,
}

/// An absence proof as its JSON says it (module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbsenceProofJson {
    pub format: String,
    pub network: String,
    pub epoch: u64,
    pub agent: String,
    pub tree_size: u64,
    /// `null` before the first leaf; the key is required.
    #[serde(deserialize_with = "Option::deserialize")]
    pub predecessor: Option<NeighbourJson>,
    /// `null` after the last leaf; the key is required.
    #[serde(deserialize_with = "Option::deserialize")]
    pub successor: Option<NeighbourJson>,
}

/// A proof of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Proof {
    Inclusion(InclusionProofJson),
    Absence(AbsenceProofJson),
}

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq)]
pub enum ProofOutcome {
    /// `agent` has `score` (its exact bits) at leaf `index` of the header's
    /// tree. `claimed_rank` is what the proof says, unverified.
    Included {
        agent: String,
        score: f64,
        index: u64,
        claimed_rank: u64,
    },
    /// `agent` is not in the header's tree.
    Absent { agent: String },
}

impl Proof {
    /// The proof's JSON: one line, keys in the documented order.
    pub fn to_json(&self) -> String {
        // Serialising these structs cannot fail: no maps with non-string
        // keys, and non-finite floats are `None`.
        match self {
            Proof::Inclusion(p) => serde_json::to_string(p),
            Proof::Absence(p) => serde_json::to_string(p),
        }
        .unwrap_or_default()
    }

    /// Parses a proof of either kind (see the module documentation for
    /// what is rejected). Never panics; allocates at most a small multiple
    /// of the input's length.
    pub fn parse(json: &[u8]) -> Result<Proof> {
        if json.len() > MAX_PROOF_BYTES {
            return Err(SnapshotError::Oversized {
                what: "proof size in bytes",
                size: json.len() as u64,
                limit: MAX_PROOF_BYTES as u64,
            });
        }
        let text = std::str::from_utf8(json)
            .map_err(|e| SnapshotError::malformed("proof is not valid UTF-8", e.valid_up_to()))?;
        let bad_json = |e: serde_json::Error| {
            SnapshotError::malformed(format!("proof: {e}"), json_error_offset(text, &e))
        };
        /// The `format` key alone, the rest ignored, to pick the kind.
        #[derive(Deserialize)]
        struct Format {
            format: String,
        }
        let format = serde_json::from_str::<Format>(text)
            .map_err(bad_json)?
            .format;
        match format.as_str() {
            INCLUSION_FORMAT => Ok(Proof::Inclusion(
                serde_json::from_str(text).map_err(bad_json)?,
            )),
            ABSENCE_FORMAT => Ok(Proof::Absence(
                serde_json::from_str(text).map_err(bad_json)?,
            )),
            other => Err(SnapshotError::inconsistent(format!(
                "proof format is {other:?}, expected {INCLUSION_FORMAT:?} or {ABSENCE_FORMAT:?}"
            ))),
        }
    }
}

/// The proof for `agent` in a snapshot: inclusion if it is there, absence
/// otherwise.
///
/// `agents` (sorted strictly increasing by UTF-8 bytes), `scores`, `ranks`
/// and `leaf_hashes` are the snapshot's leaves in tree order, as many as
/// the header's agent count, and their tree must have the header's root:
/// all checked (O(n)), so a proof that would not verify is never written.
pub fn prove<S: AsRef<str>>(
    header: &Header,
    agents: &[S],
    scores: &[f64],
    ranks: &[u64],
    leaf_hashes: &[Hash],
    agent: &str,
) -> Result<Proof> {
    check_leaves(
        header,
        agents,
        scores,
        ranks,
        leaf_hashes.len(),
        merkle::root(leaf_hashes),
    )?;
    build_proof(
        header,
        agents,
        scores,
        ranks,
        leaf_hashes,
        agent,
        |i| merkle::inclusion_proof(leaf_hashes, i),
        |missing| {
            merkle::absence_proof(
                &header.network,
                header.epoch,
                agents,
                scores,
                leaf_hashes,
                missing,
            )
        },
    )
}

/// [`prove`] from a [`merkle::MerkleTree`] of the leaves, in O(log n)
/// hashes: for a node that answers many proofs from one snapshot. The
/// leaves must have passed [`check_leaves`] once.
pub fn prove_in<S: AsRef<str>>(
    header: &Header,
    agents: &[S],
    scores: &[f64],
    ranks: &[u64],
    tree: &merkle::MerkleTree,
    agent: &str,
) -> Result<Proof> {
    build_proof(
        header,
        agents,
        scores,
        ranks,
        tree.leaves(),
        agent,
        |i| tree.inclusion_proof(i),
        |missing| {
            merkle::absence_proof_in(&header.network, header.epoch, agents, scores, tree, missing)
        },
    )
}

/// What [`prove`] checks of a snapshot's leaves before proving anything
/// (O(n) comparisons): as many as the header's agent count, agents strictly
/// increasing, and `root`, their tree's hash (however the caller computed
/// it), the header's Merkle root.
pub fn check_leaves<S: AsRef<str>>(
    header: &Header,
    agents: &[S],
    scores: &[f64],
    ranks: &[u64],
    leaf_count: usize,
    root: Hash,
) -> Result<()> {
    for len in [agents.len(), scores.len(), ranks.len(), leaf_count] {
        if len as u64 != header.agent_count {
            return Err(SnapshotError::AgentCountMismatch {
                expected: header.agent_count,
                found: len as u64,
            });
        }
    }
    check_sorted(agents)?;
    if root != header.merkle_root {
        return Err(SnapshotError::MerkleRootMismatch {
            expected: header.merkle_root,
            found: root,
        });
    }
    Ok(())
}

/// The proof for `agent` from checked leaves, given how to make an
/// inclusion path and an absence proof.
#[allow(clippy::too_many_arguments)]
fn build_proof<S: AsRef<str>>(
    header: &Header,
    agents: &[S],
    scores: &[f64],
    ranks: &[u64],
    leaf_hashes: &[Hash],
    agent: &str,
    path: impl Fn(usize) -> std::result::Result<Vec<Hash>, merkle::MerkleError>,
    absence: impl Fn(&str) -> std::result::Result<merkle::AbsenceProof, merkle::MerkleError>,
) -> Result<Proof> {
    let (network, epoch) = (header.network.as_str(), header.epoch);
    match agents.binary_search_by(|a| a.as_ref().cmp(agent)) {
        Ok(i) => {
            let score = scores[i];
            let computed = merkle::score_leaf_hash(network, epoch, agent, score)?;
            if computed != leaf_hashes[i] {
                return Err(merkle::MerkleError::LeafMismatch {
                    index: i as u64,
                    given: leaf_hashes[i],
                    computed,
                }
                .into());
            }
            Ok(Proof::Inclusion(InclusionProofJson {
                format: INCLUSION_FORMAT.into(),
                network: network.into(),
                epoch,
                agent: agent.into(),
                score: score.is_finite().then_some(score),
                score_bits: score.to_bits(),
                rank: ranks[i],
                index: i as u64,
                tree_size: header.agent_count,
                path: path(i)?,
            }))
        }
        Err(_) => {
            let p = absence(agent)?;
            let side = |n: merkle::Neighbour| NeighbourJson {
                index: n.index,
                agent: n.agent,
                score_bits: n.score.to_bits(),
                path: n.proof,
            };
            Ok(Proof::Absence(AbsenceProofJson {
                format: ABSENCE_FORMAT.into(),
                network: network.into(),
                epoch,
                agent: agent.into(),
                tree_size: header.agent_count,
                predecessor: p.predecessor.map(side),
                successor: p.successor.map(side),
            }))
        }
    }
}

/// Opens `header_bin` (parse, `publisher` if given, signature) and checks
/// `proof_json` against it ([`check_proof`]). The header's policy (epoch,
/// expiry) is the caller's: see `policy::check`.
pub fn verify_proof(
    header_bin: &[u8],
    proof_json: &[u8],
    publisher: Option<&[u8; 32]>,
) -> Result<ProofOutcome> {
    let header = open(header_bin, publisher)?;
    check_proof(&header, proof_json)
}

/// Checks a proof against a header already opened: the proof's network,
/// epoch and tree size must be the header's, and its leaf must reach the
/// header's Merkle root.
pub fn check_proof(header: &Header, proof_json: &[u8]) -> Result<ProofOutcome> {
    let proof = Proof::parse(proof_json)?;
    let (network, epoch, tree_size) = match &proof {
        Proof::Inclusion(p) => (&p.network, p.epoch, p.tree_size),
        Proof::Absence(p) => (&p.network, p.epoch, p.tree_size),
    };
    if *network != header.network {
        return Err(SnapshotError::ProofMismatch {
            what: "network id",
            expected: format!("{:?}", header.network),
            found: format!("{network:?}"),
        });
    }
    for (what, expected, found) in [
        ("epoch", header.epoch, epoch),
        ("agent count (tree size)", header.agent_count, tree_size),
    ] {
        if expected != found {
            return Err(SnapshotError::ProofMismatch {
                what,
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
    }
    // Equal to the proof's; the header's, so the proof can be moved.
    let (network, epoch, tree_size) = (header.network.as_str(), header.epoch, header.agent_count);
    let root = &header.merkle_root;
    match proof {
        Proof::Inclusion(p) => {
            let score = f64::from_bits(p.score_bits);
            let agrees = match p.score {
                Some(x) => x.to_bits() == p.score_bits,
                None => !score.is_finite(),
            };
            if !agrees {
                return Err(SnapshotError::inconsistent(format!(
                    "proof's score {} does not match its score_bits {:016x} ({score:?})",
                    p.score.map_or("null".into(), |x| format!("{x:?}")),
                    p.score_bits,
                )));
            }
            let leaf = merkle::score_leaf_hash(network, epoch, &p.agent, score)?;
            merkle::verify_inclusion(&leaf, p.index, tree_size, &p.path, root)
                .map_err(SnapshotError::from_merkle)?;
            Ok(ProofOutcome::Included {
                agent: p.agent,
                score,
                index: p.index,
                claimed_rank: p.rank,
            })
        }
        Proof::Absence(p) => {
            let side = |n: &NeighbourJson| merkle::Neighbour {
                index: n.index,
                agent: n.agent.clone(),
                score: f64::from_bits(n.score_bits),
                proof: n.path.clone(),
            };
            let absence = merkle::AbsenceProof {
                predecessor: p.predecessor.as_ref().map(side),
                successor: p.successor.as_ref().map(side),
            };
            merkle::verify_absence(&absence, network, epoch, &p.agent, tree_size, root)
                .map_err(SnapshotError::from_merkle)?;
            Ok(ProofOutcome::Absent { agent: p.agent })
        }
    }
}

/// True for lowercase hex digits only.
fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `score_bits`: 16 lowercase hex digits.
mod bits_hex {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(bits: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{bits:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct Bits;
        impl Visitor<'_> for Bits {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("16 lowercase hex digits")
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<u64, E> {
                if s.len() != 16 || !super::is_lower_hex(s) {
                    return Err(E::invalid_value(serde::de::Unexpected::Str(s), &self));
                }
                u64::from_str_radix(s, 16).map_err(E::custom)
            }
        }
        d.deserialize_str(Bits)
    }
}

/// `path`: at most [`MAX_PATH_LEN`] hashes, each 64 lowercase hex digits;
/// the count is checked as elements arrive, before more are read.
mod path_hex {
    use super::{Hash, MAX_PATH_LEN};
    use serde::de::{Deserialize, Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(path: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(path.iter().map(hex::encode))
    }

    struct HexHash(Hash);

    impl<'de> Deserialize<'de> for HexHash {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = HexHash;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a hash as 64 lowercase hex digits")
                }
                fn visit_str<E: Error>(self, s: &str) -> Result<HexHash, E> {
                    let mut h = [0u8; 32];
                    if s.len() != 64 || !super::is_lower_hex(s) {
                        return Err(E::invalid_value(serde::de::Unexpected::Str(s), &self));
                    }
                    hex::decode_to_slice(s, &mut h).map_err(E::custom)?;
                    Ok(HexHash(h))
                }
            }
            d.deserialize_str(V)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        struct Path;
        impl<'de> Visitor<'de> for Path {
            type Value = Vec<Hash>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {MAX_PATH_LEN} hashes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Hash>, A::Error> {
                let mut out = Vec::new();
                while let Some(HexHash(h)) = seq.next_element()? {
                    if out.len() == MAX_PATH_LEN {
                        return Err(A::Error::custom(format!(
                            "path has more than {MAX_PATH_LEN} hashes, expected at most {MAX_PATH_LEN}"
                        )));
                    }
                    out.push(h);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Path)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    /// A JSON object of a proof, to edit.
    fn obj(json: &str) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(json).unwrap() {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn edited(
        json: &str,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Vec<u8> {
        let mut m = obj(json);
        edit(&mut m);
        serde_json::to_vec(&m).unwrap()
    }

    /// The ids just below, between and above `agents` (sorted).
    fn gaps(agents: &[String]) -> Vec<String> {
        let mut g = vec![String::new()];
        g.extend(agents.iter().map(|a| format!("{a}\0")));
        g.push("zzz".into());
        g
    }

    #[test]
    fn every_agent_and_every_gap_of_1_to_40_agents() {
        for n in 1..=40 {
            let snap = Snap::new(&agents(n));
            let h = &snap.header;
            for (i, a) in snap.agents.iter().enumerate() {
                let json = snap.prove(a);
                let got = verify_proof(&snap.header_bin, json.as_bytes(), Some(&h.publisher))
                    .unwrap_or_else(|e| panic!("{n} agents, {a}: {e}\n{json}"));
                assert_eq!(
                    got,
                    ProofOutcome::Included {
                        agent: a.clone(),
                        score: snap.scores[i],
                        index: i as u64,
                        claimed_rank: snap.ranks[i]
                    }
                );
                if let ProofOutcome::Included { score, .. } = got {
                    assert_eq!(score.to_bits(), snap.scores[i].to_bits());
                }
            }
            for m in gaps(&snap.agents) {
                let json = snap.prove(&m);
                assert!(json.contains(ABSENCE_FORMAT));
                let got = check_proof(h, json.as_bytes())
                    .unwrap_or_else(|e| panic!("{n} agents, {m:?}: {e}\n{json}"));
                assert_eq!(got, ProofOutcome::Absent { agent: m.clone() });
                // An absence proof says nothing about the agents present.
                for a in &snap.agents {
                    let forged = edited(&json, |o| {
                        o["agent"] = a.as_str().into();
                    });
                    assert!(check_proof(h, &forged).is_err(), "{m:?} as {a:?}");
                }
            }
        }
    }

    #[test]
    fn an_empty_snapshot_proves_every_absence() {
        let snap = Snap::new(&[]);
        let json = snap.prove("anyone");
        assert_eq!(obj(&json)["predecessor"], serde_json::Value::Null, "{json}");
        assert_eq!(
            check_proof(&snap.header, json.as_bytes()),
            Ok(ProofOutcome::Absent {
                agent: "anyone".into()
            })
        );
    }

    #[test]
    fn tampered_inclusion_proofs_are_rejected_with_their_kind() {
        let snap = Snap::new(&agents(9));
        let h = &snap.header;
        let json = snap.prove("agent-007");
        let p = obj(&json);
        check_proof(h, json.as_bytes()).unwrap();

        // Another score, bits and decimal agreeing: the leaf changes.
        let other = snap.scores[3] * 2.0;
        let b = edited(&json, |o| {
            o["score"] = other.into();
            o["score_bits"] = format!("{:016x}", other.to_bits()).into();
        });
        assert!(matches!(
            check_proof(h, &b),
            Err(SnapshotError::MerkleRootMismatch { .. })
        ));
        // One ulp off in the bits alone, or in the decimal alone: they
        // disagree.
        let bits = snap.scores[3].to_bits();
        for (score, bits) in [(snap.scores[3], bits + 1), (f64::from_bits(bits + 1), bits)] {
            let b = edited(&json, |o| {
                o["score"] = score.into();
                o["score_bits"] = format!("{bits:016x}").into();
            });
            let e = check_proof(h, &b).unwrap_err();
            assert!(
                matches!(e, SnapshotError::Malformed { offset: None, .. }),
                "{e}"
            );
            assert!(
                e.to_string().contains("does not match its score_bits"),
                "{e}"
            );
        }
        // Another agent, another index, a changed path hash.
        let b = edited(&json, |o| o["agent"] = "agent-009".into());
        assert!(matches!(
            check_proof(h, &b),
            Err(SnapshotError::MerkleRootMismatch { .. })
        ));
        let b = edited(&json, |o| o["index"] = 4.into());
        assert!(check_proof(h, &b).is_err());
        let b = edited(&json, |o| o["index"] = 9.into());
        assert_eq!(
            check_proof(h, &b),
            Err(SnapshotError::Merkle(
                merkle::MerkleError::IndexOutOfRange {
                    index: 9,
                    tree_size: 9
                }
            ))
        );
        let path = p["path"].as_array().unwrap().clone();
        for i in 0..path.len() {
            let mut path = path.clone();
            let mut hash = hex::decode(path[i].as_str().unwrap()).unwrap();
            hash[0] ^= 1;
            path[i] = hex::encode(hash).into();
            let b = edited(&json, |o| o["path"] = path.into());
            assert!(matches!(
                check_proof(h, &b),
                Err(SnapshotError::MerkleRootMismatch { .. })
            ));
        }
        let b = edited(&json, |o| {
            o["path"].as_array_mut().unwrap().pop();
        });
        assert!(matches!(
            check_proof(h, &b),
            Err(SnapshotError::Merkle(
                merkle::MerkleError::WrongProofLength { .. }
            ))
        ));
    }

    #[test]
    fn rank_is_informative_not_verified() {
        // The leaf binds the score, not the rank: a changed rank verifies,
        // and is reported as claimed. This test documents the limit.
        let snap = Snap::new(&agents(5));
        let json = snap.prove("agent-003");
        let b = edited(&json, |o| o["rank"] = 1234.into());
        match check_proof(&snap.header, &b).unwrap() {
            ProofOutcome::Included { claimed_rank, .. } => assert_eq!(claimed_rank, 1234),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tampered_absence_proofs_are_rejected() {
        let snap = Snap::new(&agents(7));
        let h = &snap.header;
        let json = snap.prove("agent-004");
        check_proof(h, json.as_bytes()).unwrap();
        let b = edited(&json, |o| {
            o["successor"]["score_bits"] = "3ff0000000000000".into();
        });
        assert!(matches!(
            check_proof(h, &b),
            Err(SnapshotError::MerkleRootMismatch { .. })
        ));
        let b = edited(&json, |o| o["successor"] = serde_json::Value::Null);
        assert!(matches!(
            check_proof(h, &b),
            Err(SnapshotError::Merkle(merkle::MerkleError::NotLast { .. }))
        ));
        let b = edited(&json, |o| {
            let (p, s) = (o["predecessor"].clone(), o["successor"].clone());
            o["predecessor"] = s;
            o["successor"] = p;
        });
        assert!(matches!(
            check_proof(h, &b),
            Err(SnapshotError::Merkle(merkle::MerkleError::KeyOrder { .. }))
        ));
        // The proof of another gap.
        let other = snap.prove("agent-008");
        let b = edited(&other, |o| o["agent"] = "agent-004".into());
        assert!(matches!(
            check_proof(h, &b),
            Err(SnapshotError::Merkle(merkle::MerkleError::KeyOrder { .. }))
        ));
    }

    #[test]
    fn a_proof_against_another_header_is_rejected() {
        let snap = Snap::new(&agents(6));
        let json = snap.prove("agent-005");
        let absent = snap.prove("agent-006");
        for (what, other) in [
            ("epoch", Snap::with(&agents(6), |h| h.epoch += 1)),
            (
                "network id",
                Snap::with(&agents(6), |h| h.network = "testnet".into()),
            ),
            ("agent count (tree size)", Snap::new(&agents(7))),
        ] {
            for proof in [&json, &absent] {
                match verify_proof(&other.header_bin, proof.as_bytes(), None) {
                    Err(SnapshotError::ProofMismatch { what: w, .. }) => assert_eq!(w, what),
                    r => panic!("{what}: {r:?}"),
                }
            }
        }
        // Same network, epoch and size; other scores: another root.
        let mut other = Snap::new(&agents(6));
        other.scores.reverse();
        let leaves = super::super::leaf_hashes(NET, EPOCH, &other.agents, &other.scores).unwrap();
        let mut h = other.header.clone();
        h.merkle_root = merkle::root(&leaves);
        let bin = h.sign(&key()).unwrap();
        for proof in [&json, &absent] {
            assert!(matches!(
                verify_proof(&bin, proof.as_bytes(), None),
                Err(SnapshotError::MerkleRootMismatch { .. })
            ));
        }
    }

    #[test]
    fn a_wrong_publisher_or_a_bad_header_is_rejected() {
        let snap = Snap::new(&agents(4));
        let json = snap.prove("agent-003");
        let other = other_key().verifying_key().to_bytes();
        assert_eq!(
            verify_proof(&snap.header_bin, json.as_bytes(), Some(&other)),
            Err(SnapshotError::UnknownPublisher {
                expected: other,
                found: snap.header.publisher
            })
        );
        // The same header, signed by another key that claims it.
        let mut h = snap.header.clone();
        h.publisher = other;
        let bin = h.sign(&other_key()).unwrap();
        assert!(matches!(
            verify_proof(&bin, json.as_bytes(), Some(&snap.header.publisher)),
            Err(SnapshotError::UnknownPublisher { .. })
        ));
        // Without an expected key it verifies: a proof is as good as the
        // key the verifier trusts.
        verify_proof(&bin, json.as_bytes(), None).unwrap();
        let mut bad = snap.header_bin.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(
            verify_proof(&bad, json.as_bytes(), None),
            Err(SnapshotError::BadSignature { .. })
        ));
        assert!(matches!(
            verify_proof(&snap.header_bin[..100], json.as_bytes(), None),
            Err(SnapshotError::Malformed { .. })
        ));
    }

    #[test]
    fn the_parser_is_strict() {
        let snap = Snap::new(&agents(5));
        let json = snap.prove("agent-005");
        let absent = snap.prove("agent-004");
        let h = &snap.header;
        let malformed = |b: &[u8], why: &str| match check_proof(h, b) {
            Err(SnapshotError::Malformed { what, .. }) => {
                assert!(what.contains(why), "{why:?} not in {what:?}")
            }
            other => panic!("{why}: {other:?}"),
        };
        malformed(
            &edited(&json, |o| {
                o.insert("extra".into(), 1.into());
            }),
            "unknown field `extra`",
        );
        malformed(
            &edited(&json, |o| {
                o.remove("rank");
            }),
            "missing field `rank`",
        );
        malformed(
            &edited(&json, |o| {
                o.remove("score");
            }),
            "missing field `score`",
        );
        malformed(
            &edited(&absent, |o| {
                o["successor"]["x"] = 1.into();
            }),
            "unknown field `x`",
        );
        malformed(
            &edited(&absent, |o| {
                o.remove("tree_size");
            }),
            "missing field `tree_size`",
        );
        malformed(
            &edited(&absent, |o| {
                o.remove("successor");
            }),
            "missing field `successor`",
        );
        let upper = json.replace(
            &format!("{:016x}", snap.scores[2].to_bits()),
            &format!("{:016X}", snap.scores[2].to_bits()),
        );
        assert_ne!(upper, json);
        malformed(upper.as_bytes(), "16 lowercase hex digits");
        malformed(
            &edited(&json, |o| o["score_bits"] = "3fe".into()),
            "16 lowercase hex digits",
        );
        malformed(
            &edited(&json, |o| o["path"][0] = "ab".into()),
            "64 lowercase hex digits",
        );
        malformed(
            &edited(&json, |o| o["path"][0] = 5.into()),
            "64 lowercase hex digits",
        );
        malformed(&edited(&json, |o| o["epoch"] = (-1).into()), "expected u64");
        malformed(
            &edited(&json, |o| o["format"] = "trustmesh-proof-v2".into()),
            "proof format is",
        );
        malformed(
            &edited(&json, |o| o["path"] = vec!["00".repeat(32); 65].into()),
            "more than 64 hashes",
        );
        let ok64 = edited(&json, |o| o["path"] = vec!["00".repeat(32); 64].into());
        assert!(matches!(
            check_proof(h, &ok64),
            Err(SnapshotError::Merkle(
                merkle::MerkleError::WrongProofLength { .. }
            ))
        ));
        let dup = json.replacen("{", "{\"rank\":1,", 1);
        malformed(dup.as_bytes(), "duplicate field `rank`");
        malformed(format!("{json}x").as_bytes(), "trailing characters");
        malformed(b"[]", "");
        malformed(b"", "EOF");
        malformed(&[b'"', 0xff, b'"'], "not valid UTF-8");
        // Whitespace and key order are free.
        let spaced = serde_json::to_string_pretty(&obj(&json)).unwrap();
        check_proof(h, spaced.as_bytes()).unwrap();
        let mut keys: Vec<_> = obj(&json).into_iter().collect();
        keys.reverse();
        let reordered = format!(
            "{{{}}}",
            keys.iter()
                .map(|(k, v)| format!("{k:?}:{v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        check_proof(h, reordered.as_bytes()).unwrap();
        // The error points at the byte.
        let b = json.replacen("\"epoch\":", "\"epoch\":x", 1);
        match check_proof(h, b.as_bytes()) {
            Err(SnapshotError::Malformed {
                offset: Some(o), ..
            }) => {
                assert_eq!(o as usize, b.find(":x").unwrap() + 1, "{b}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proofs_over_1_mib_are_oversized_unread() {
        let snap = Snap::new(&agents(2));
        let big = vec![b' '; MAX_PROOF_BYTES + 1];
        assert_eq!(
            check_proof(&snap.header, &big),
            Err(SnapshotError::Oversized {
                what: "proof size in bytes",
                size: MAX_PROOF_BYTES as u64 + 1,
                limit: MAX_PROOF_BYTES as u64
            })
        );
        // Padding up to the limit is just whitespace.
        let mut json = snap.prove("agent-001").into_bytes();
        json.resize(MAX_PROOF_BYTES, b' ');
        check_proof(&snap.header, &json).unwrap();
        json.push(b' ');
        assert!(matches!(
            check_proof(&snap.header, &json),
            Err(SnapshotError::Oversized { .. })
        ));
    }

    #[test]
    fn prove_checks_its_input() {
        let snap = Snap::new(&agents(4));
        let h = &snap.header;
        let (a, s, r, l) = (&snap.agents, &snap.scores, &snap.ranks, &snap.leaves);
        assert!(matches!(
            prove(h, &a[..3], s, r, l, "x"),
            Err(SnapshotError::AgentCountMismatch {
                expected: 4,
                found: 3
            })
        ));
        assert!(matches!(
            prove(h, a, s, &r[..3], l, "x"),
            Err(SnapshotError::AgentCountMismatch { .. })
        ));
        let mut unsorted = a.clone();
        unsorted.swap(1, 2);
        assert!(matches!(
            prove(h, &unsorted, s, r, l, "x"),
            Err(SnapshotError::Merkle(merkle::MerkleError::NotSorted { .. }))
        ));
        let mut other = l.clone();
        other.swap(1, 2);
        assert!(matches!(
            prove(h, a, s, r, &other, "x"),
            Err(SnapshotError::MerkleRootMismatch { .. })
        ));
        // Scores that are not the leaves'.
        let mut wrong = s.clone();
        wrong[1] += 1.0;
        assert!(matches!(
            prove(h, a, &wrong, r, l, "agent-003"),
            Err(SnapshotError::Merkle(merkle::MerkleError::LeafMismatch {
                index: 1,
                ..
            }))
        ));
        assert!(matches!(
            prove(h, a, &wrong, r, l, "agent-002"),
            Err(SnapshotError::Merkle(
                merkle::MerkleError::LeafMismatch { .. }
            ))
        ));
    }

    #[test]
    fn non_finite_scores_are_null_and_still_proven() {
        let agents = agents(3);
        let scores = [0.5, f64::NAN, f64::INFINITY];
        let leaves = super::super::leaf_hashes(NET, EPOCH, &agents, &scores).unwrap();
        let mut h = Snap::new(&agents).header;
        h.merkle_root = merkle::root(&leaves);
        for (i, a) in agents.iter().enumerate() {
            let json = prove(&h, &agents, &scores, &[1, 2, 3], &leaves, a)
                .unwrap()
                .to_json();
            assert_eq!(
                obj(&json)["score"].is_null(),
                !scores[i].is_finite(),
                "{json}"
            );
            match check_proof(&h, json.as_bytes()).unwrap() {
                ProofOutcome::Included { score, .. } => {
                    assert_eq!(score.to_bits(), scores[i].to_bits())
                }
                other => panic!("{other:?}"),
            }
            // A finite decimal cannot stand for a non-finite score.
            if !scores[i].is_finite() {
                let b = edited(&json, |o| o["score"] = 1.0.into());
                assert!(matches!(
                    check_proof(&h, &b),
                    Err(SnapshotError::Malformed { .. })
                ));
            }
        }
    }

    // ---------------------------------------------------------------------
    // Properties.
    // ---------------------------------------------------------------------

    /// Whether what a verified proof asserts is true of the snapshot.
    fn is_true(o: &ProofOutcome, snap: &Snap) -> bool {
        match o {
            ProofOutcome::Included {
                agent,
                score,
                index,
                ..
            } => usize::try_from(*index).is_ok_and(|i| {
                snap.agents.get(i) == Some(agent) && snap.scores[i].to_bits() == score.to_bits()
            }),
            ProofOutcome::Absent { agent } => !snap.agents.contains(agent),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic_and_are_never_accepted(
            bytes in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let snap = Snap::new(&agents(3));
            let _ = Proof::parse(&bytes);
            prop_assert!(check_proof(&snap.header, &bytes).is_err());
        }

        #[test]
        fn arbitrary_json_shaped_text_is_never_accepted(
            text in r#"\{("[a-z_]{1,10}":("[0-9a-f]{0,20}"|[0-9]{1,5}|null|\[\]),?){0,12}\}"#,
        ) {
            let snap = Snap::new(&agents(3));
            prop_assert!(check_proof(&snap.header, text.as_bytes()).is_err());
        }

        #[test]
        fn mutated_proofs_assert_only_truths(
            n in 1..24usize,
            pick in any::<prop::sample::Index>(),
            absent in any::<bool>(),
            edits in prop::collection::vec(any_edit(), 1..4),
        ) {
            let snap = Snap::new(&agents(n));
            let i = pick.index(n);
            let target = if absent { format!("{}\0", snap.agents[i]) } else { snap.agents[i].clone() };
            let json = snap.prove(&target);
            prop_assert!(is_true(&check_proof(&snap.header, json.as_bytes()).unwrap(), &snap));
            let mut b = json.clone().into_bytes();
            apply(&mut b, &edits);
            if let Ok(got) = check_proof(&snap.header, &b) {
                // Accepted: what it asserts is true. (It may be another
                // truth: the neighbours of a gap prove every id in the
                // gap absent, and the rank is not verified.)
                prop_assert!(is_true(&got, &snap), "{:?} from {:?}", got, String::from_utf8_lossy(&b));
            }
        }
    }
}

#[cfg(test)]
mod doc_tests {
    use super::super::leaf_hashes;
    use super::super::testutil::*;
    use super::*;

    fn doc_proof(agent: &str) -> String {
        let h = doc_example();
        let leaves = leaf_hashes("tm", 1, &DOC_AGENTS, &DOC_SCORES).unwrap();
        prove(&h, &DOC_AGENTS, &DOC_SCORES, &[1, 2], &leaves, agent)
            .unwrap()
            .to_json()
    }

    /// The ```json blocks of this file's module documentation.
    fn doc_json_blocks() -> Vec<serde_json::Value> {
        let doc: Vec<&str> = include_str!("proof.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.strip_prefix("//! ").unwrap_or(""))
            .collect();
        let mut out = Vec::new();
        let mut current: Option<String> = None;
        for l in doc {
            match (l.trim(), current.take()) {
                ("```json", None) => current = Some(String::new()),
                ("```", Some(b)) => out.push(serde_json::from_str(&b).unwrap()),
                (_, Some(mut b)) => {
                    b.push_str(l);
                    b.push('\n');
                    current = Some(b);
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn doc_examples_are_exact() {
        let header_bin = doc_example().sign(&doc_key()).unwrap();
        let values: Vec<serde_json::Value> = ["alice", "bob", "aaron"]
            .into_iter()
            .map(|agent| serde_json::from_str(&doc_proof(agent)).unwrap())
            .collect();
        for v in &values {
            eprintln!("{}", serde_json::to_string_pretty(v).unwrap());
        }
        let blocks = doc_json_blocks();
        for (i, value) in values.iter().enumerate() {
            assert_eq!(blocks.get(i), Some(value), "example {i}");
            let pretty = serde_json::to_string_pretty(&blocks[i]).unwrap();
            verify_proof(
                &header_bin,
                pretty.as_bytes(),
                Some(&doc_key().verifying_key().to_bytes()),
            )
            .unwrap();
        }
    }
}
