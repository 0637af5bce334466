//! The announcement: the one small message gossip carries (bodyless
//! gossip, DESIGN.md §5). Its bytes, all integers big-endian:
//!
//! | field          | bytes    | what                                        |
//! |----------------|----------|---------------------------------------------|
//! | magic          | 8        | `TMANN\0\0\x02` (format version 2)          |
//! | network        | 1 + n    | length, then 1–64 bytes of `[A-Za-z0-9._-]` |
//! | publisher      | 32       | the snapshot publisher's ed25519 key        |
//! | epoch          | 8        | the snapshot's epoch                        |
//! | header hash    | 32       | SHA-256 of its `header.bin`                 |
//! | mechanism      | 1 (+ 32) | 0: none; 1, then SHA-256 of `mechanism.json` |
//! | publisher sig  | 64       | the publisher's signature of the claim      |
//! | node           | 32       | the announcing node's ed25519 key           |
//! | http           | 1 + n    | length, then the node's HTTP `IP:PORT`      |
//! | node sig       | 64       | the node's signature of all bytes above     |
//!
//! Two signatures, because chitchat authenticates nothing:
//!
//! - the **claim** (network, publisher, epoch, header hash, mechanism) is
//!   signed by the publisher, over `trustmesh-announce-claim-v2\0` followed
//!   by its bytes as above. Any node may relay it, but none can invent or
//!   alter it; two claims of one publisher for one epoch with different
//!   header hashes are signed evidence of equivocation. The mechanism field
//!   commits to the mechanism posted beside the snapshot (or to none), so a
//!   peer can neither strip it (answer 404) nor add one;
//! - the whole announcement is signed by the **node** that says it holds
//!   the snapshot and serves it at `http`, over
//!   `trustmesh-announce-node-v2\0` followed by the bytes before the node
//!   signature. A peer cannot put its address under another node's name.
//!
//! Signatures are checked with `verify_strict` (no small-order keys, no
//! malleable signatures). [`Announcement::decode`] is strict and total: any
//! input gives an announcement or an error, never a panic; it refuses more
//! than [`MAX_BYTES`] before reading, any trailing byte, a non-canonical
//! address spelling. In gossip the bytes travel as lowercase hex
//! ([`Announcement::to_text`]).

use std::net::SocketAddr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::snapshot::merkle::Hash;

/// The first bytes of every announcement.
pub const MAGIC: [u8; 8] = *b"TMANN\x00\x00\x02";
/// What the publisher's signature signs before the claim's bytes.
pub const CLAIM_DOMAIN: &[u8] = b"trustmesh-announce-claim-v2\x00";
/// What the node's signature signs before the announcement's bytes.
pub const NODE_DOMAIN: &[u8] = b"trustmesh-announce-node-v2\x00";
/// The longest network id.
pub const MAX_NETWORK_BYTES: usize = 64;
/// The longest HTTP address (`[IPv6%scope]:port` fits).
pub const MAX_ADDR_BYTES: usize = 64;
/// The largest announcement.
pub const MAX_BYTES: usize =
    8 + 1 + MAX_NETWORK_BYTES + 32 + 8 + 32 + 33 + 64 + 32 + 1 + MAX_ADDR_BYTES + 64;

/// Why an announcement was refused. [`AnnounceError::reason`] is the label
/// `/metrics` counts it under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    #[error("{size} bytes, above the limit of {limit}")]
    Oversized { size: usize, limit: usize },
    #[error("truncated at byte {at}: expected {field}")]
    Truncated { at: usize, field: &'static str },
    #[error("byte {at}: {why}")]
    Malformed { at: usize, why: String },
    #[error("the publisher's signature of the claim does not verify")]
    BadPublisherSignature,
    #[error("the node's signature of the announcement does not verify")]
    BadNodeSignature,
}

impl AnnounceError {
    /// The `reason` label of `trustmesh_snapshots_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AnnounceError::Oversized { .. }
            | AnnounceError::Truncated { .. }
            | AnnounceError::Malformed { .. } => "malformed_announcement",
            AnnounceError::BadPublisherSignature | AnnounceError::BadNodeSignature => {
                "bad_signature"
            }
        }
    }
}

type Result<T, E = AnnounceError> = std::result::Result<T, E>;

/// What a publisher states: its snapshot of `network` at `epoch` has the
/// header hash `header_hash`, and beside it the mechanism file with SHA-256
/// `mechanism` (None: no mechanism).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    pub network: String,
    pub publisher: [u8; 32],
    pub epoch: u64,
    pub header_hash: Hash,
    pub mechanism: Option<Hash>,
}

impl Claim {
    fn encode_into(&self, out: &mut Vec<u8>) {
        // `check_network` bounds the length below 256.
        out.push(self.network.len() as u8);
        out.extend_from_slice(self.network.as_bytes());
        out.extend_from_slice(&self.publisher);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.header_hash);
        match &self.mechanism {
            None => out.push(0),
            Some(h) => {
                out.push(1);
                out.extend_from_slice(h);
            }
        }
    }

    fn message(&self) -> Vec<u8> {
        let mut m = CLAIM_DOMAIN.to_vec();
        self.encode_into(&mut m);
        m
    }

    /// The publisher's signature of the claim; `key` must be the claim's
    /// publisher (checked: a node never signs a claim for another key).
    pub fn sign(&self, key: &SigningKey) -> Result<[u8; 64]> {
        check_network(&self.network).map_err(|why| AnnounceError::Malformed { at: 9, why })?;
        if key.verifying_key().to_bytes() != self.publisher {
            return Err(AnnounceError::BadPublisherSignature);
        }
        Ok(key.sign(&self.message()).to_bytes())
    }

    /// Checks the publisher's signature of the claim.
    pub fn verify(&self, signature: &[u8; 64]) -> Result<()> {
        verify(&self.publisher, &self.message(), signature)
            .map_err(|()| AnnounceError::BadPublisherSignature)
    }
}

/// A claim, its publisher's signature, and the node that relays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub claim: Claim,
    pub publisher_sig: [u8; 64],
    /// The announcing node's key.
    pub node: [u8; 32],
    /// Where the node serves the snapshot (`/snapshot/{epoch}/...`).
    pub http: SocketAddr,
    pub node_sig: [u8; 64],
}

impl Announcement {
    /// The announcement of `claim` (signed by its publisher:
    /// `publisher_sig`) by the node holding `node_key`, serving at `http`.
    pub fn new(
        claim: Claim,
        publisher_sig: [u8; 64],
        node_key: &SigningKey,
        http: SocketAddr,
    ) -> Result<Announcement> {
        claim.verify(&publisher_sig)?;
        let mut a = Announcement {
            claim,
            publisher_sig,
            node: node_key.verifying_key().to_bytes(),
            http,
            node_sig: [0; 64],
        };
        let unsigned = a.unsigned_bytes()?;
        a.node_sig = node_key.sign(&node_message(&unsigned)).to_bytes();
        Ok(a)
    }

    /// The bytes up to the node signature.
    fn unsigned_bytes(&self) -> Result<Vec<u8>> {
        check_network(&self.claim.network)
            .map_err(|why| AnnounceError::Malformed { at: 9, why })?;
        let addr = self.http.to_string();
        if addr.len() > MAX_ADDR_BYTES {
            return Err(AnnounceError::Oversized {
                size: addr.len(),
                limit: MAX_ADDR_BYTES,
            });
        }
        let mut out = Vec::with_capacity(MAX_BYTES);
        out.extend_from_slice(&MAGIC);
        self.claim.encode_into(&mut out);
        out.extend_from_slice(&self.publisher_sig);
        out.extend_from_slice(&self.node);
        out.push(addr.len() as u8);
        out.extend_from_slice(addr.as_bytes());
        Ok(out)
    }

    /// The announcement's bytes (module documentation).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = self.unsigned_bytes()?;
        out.extend_from_slice(&self.node_sig);
        Ok(out)
    }

    /// The bytes as lowercase hex: a gossip value.
    pub fn to_text(&self) -> Result<String> {
        Ok(hex::encode(self.encode()?))
    }

    /// Parses an announcement without checking its signatures.
    pub fn decode(bytes: &[u8]) -> Result<Announcement> {
        if bytes.len() > MAX_BYTES {
            return Err(AnnounceError::Oversized {
                size: bytes.len(),
                limit: MAX_BYTES,
            });
        }
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8, "the magic bytes")? != MAGIC {
            return Err(AnnounceError::Malformed {
                at: 0,
                why: "not a trustmesh announcement of format version 2".into(),
            });
        }
        let at = r.pos;
        let network = r.string(MAX_NETWORK_BYTES, "the network id")?;
        check_network(&network).map_err(|why| AnnounceError::Malformed { at, why })?;
        let publisher = r.array::<32>("the publisher key")?;
        let epoch = u64::from_be_bytes(r.array::<8>("the epoch")?);
        let header_hash = r.array::<32>("the header hash")?;
        let at = r.pos;
        let mechanism = match r.array::<1>("the mechanism flag")?[0] {
            0 => None,
            1 => Some(r.array::<32>("the mechanism hash")?),
            f => {
                return Err(AnnounceError::Malformed {
                    at,
                    why: format!("mechanism flag {f}: expected 0 or 1"),
                })
            }
        };
        let publisher_sig = r.array::<64>("the publisher's signature")?;
        let node = r.array::<32>("the node key")?;
        let at = r.pos;
        let addr = r.string(MAX_ADDR_BYTES, "the HTTP address")?;
        let http: SocketAddr = addr.parse().map_err(|_| AnnounceError::Malformed {
            at,
            why: format!("HTTP address {addr:?} is not IP:PORT"),
        })?;
        if http.to_string() != addr {
            return Err(AnnounceError::Malformed {
                at,
                why: format!("HTTP address {addr:?} is not spelled canonically ({http})"),
            });
        }
        let node_sig = r.array::<64>("the node's signature")?;
        if r.pos != bytes.len() {
            return Err(AnnounceError::Malformed {
                at: r.pos,
                why: format!("{} trailing bytes", bytes.len() - r.pos),
            });
        }
        Ok(Announcement {
            claim: Claim {
                network,
                publisher,
                epoch,
                header_hash,
                mechanism,
            },
            publisher_sig,
            node,
            http,
            node_sig,
        })
    }

    /// Parses an announcement and checks both signatures: the node's over
    /// the announcement, the publisher's over the claim.
    pub fn open(bytes: &[u8]) -> Result<Announcement> {
        let a = Announcement::decode(bytes)?;
        let signed = &bytes[..bytes.len() - 64];
        verify(&a.node, &node_message(signed), &a.node_sig)
            .map_err(|()| AnnounceError::BadNodeSignature)?;
        a.claim.verify(&a.publisher_sig)?;
        Ok(a)
    }

    /// [`Announcement::open`] on a gossip value (hex), refusing a long one
    /// before decoding it.
    pub fn open_text(text: &str) -> Result<Announcement> {
        if text.len() > 2 * MAX_BYTES {
            return Err(AnnounceError::Oversized {
                size: text.len() / 2,
                limit: MAX_BYTES,
            });
        }
        let bytes = hex::decode(text).map_err(|e| AnnounceError::Malformed {
            at: 0,
            why: format!("not hex: {e}"),
        })?;
        Announcement::open(&bytes)
    }
}

fn node_message(unsigned: &[u8]) -> Vec<u8> {
    let mut m = NODE_DOMAIN.to_vec();
    m.extend_from_slice(unsigned);
    m
}

fn verify(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Result<(), ()> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| ())?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| ())
}

/// A network id usable in announcements and MQTT topics: 1 to 64 bytes of
/// ASCII letters, digits, `.`, `_`, `-` (no `/`, `+`, `#`).
pub fn check_network(network: &str) -> std::result::Result<(), String> {
    if network.is_empty() || network.len() > MAX_NETWORK_BYTES {
        return Err(format!(
            "network id {network:?}: expected 1 to {MAX_NETWORK_BYTES} bytes"
        ));
    }
    if let Some(c) = network
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "network id {network:?}: {c:?} is not a letter, digit, '.', '_' or '-'"
        ));
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(AnnounceError::Truncated {
                at: self.pos,
                field,
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn string(&mut self, limit: usize, field: &'static str) -> Result<String> {
        let at = self.pos;
        let len = self.take(1, field)?[0] as usize;
        if len > limit {
            return Err(AnnounceError::Malformed {
                at,
                why: format!("{field}: {len} bytes, above the limit of {limit}"),
            });
        }
        let raw = self.take(len, field)?;
        String::from_utf8(raw.to_vec()).map_err(|_| AnnounceError::Malformed {
            at: at + 1,
            why: format!("{field} is not UTF-8"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sample() -> (Announcement, Vec<u8>) {
        sample_with(Some([0xcd; 32]))
    }

    fn sample_with(mechanism: Option<Hash>) -> (Announcement, Vec<u8>) {
        let publisher = key(1);
        let claim = Claim {
            network: "testnet".into(),
            publisher: publisher.verifying_key().to_bytes(),
            epoch: 7,
            header_hash: [0xab; 32],
            mechanism,
        };
        let sig = claim.sign(&publisher).unwrap();
        let a = Announcement::new(claim, sig, &key(2), "127.0.0.1:7700".parse().unwrap()).unwrap();
        let bytes = a.encode().unwrap();
        (a, bytes)
    }

    #[test]
    fn round_trip_and_text() {
        let (none, bytes) = sample_with(None);
        assert_eq!(Announcement::open(&bytes).unwrap(), none);
        let (a, bytes) = sample();
        assert_eq!(Announcement::open(&bytes).unwrap(), a);
        assert_eq!(Announcement::open_text(&a.to_text().unwrap()).unwrap(), a);
        assert!(bytes.len() <= MAX_BYTES);
        let v6 = Announcement::new(
            a.claim.clone(),
            a.publisher_sig,
            &key(2),
            "[::1]:8080".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(Announcement::open(&v6.encode().unwrap()).unwrap(), v6);
    }

    #[test]
    fn every_truncation_fails() {
        for m in [None, Some([0xcd; 32])] {
            let (_, bytes) = sample_with(m);
            for n in 0..bytes.len() {
                let e = Announcement::open(&bytes[..n]).unwrap_err();
                assert_eq!(e.reason(), "malformed_announcement", "{n}: {e}");
            }
        }
    }

    /// A relay cannot strip the mechanism from a claim, swap it, or add one:
    /// the publisher signed it. A flag other than 0 or 1 is malformed.
    #[test]
    fn the_mechanism_is_part_of_the_signed_claim() {
        let (a, bytes) = sample();
        for m in [None, Some([0xce; 32])] {
            let mut b = a.clone();
            b.claim.mechanism = m;
            assert_eq!(
                Announcement::new(b.claim, a.publisher_sig, &key(2), a.http),
                Err(AnnounceError::BadPublisherSignature)
            );
        }
        let (none, _) = sample_with(None);
        let mut added = none.clone();
        added.claim.mechanism = Some([0xcd; 32]);
        assert_eq!(
            Announcement::new(added.claim, none.publisher_sig, &key(2), none.http),
            Err(AnnounceError::BadPublisherSignature)
        );
        let flag_at = 8 + 1 + "testnet".len() + 32 + 8 + 32;
        assert_eq!(bytes[flag_at], 1);
        let mut raw = bytes.clone();
        raw[flag_at] = 2;
        let e = Announcement::decode(&raw).unwrap_err();
        assert!(e.to_string().contains("mechanism flag 2"), "{e}");
    }

    #[test]
    fn oversized_and_trailing_bytes_fail() {
        let (_, mut bytes) = sample();
        bytes.push(0);
        assert!(matches!(
            Announcement::open(&bytes),
            Err(AnnounceError::Malformed { .. })
        ));
        let big = vec![0u8; MAX_BYTES + 1];
        assert!(matches!(
            Announcement::open(&big),
            Err(AnnounceError::Oversized { .. })
        ));
        let text = "00".repeat(MAX_BYTES + 1);
        assert!(matches!(
            Announcement::open_text(&text),
            Err(AnnounceError::Oversized { .. })
        ));
        assert!(matches!(
            Announcement::open_text("zz"),
            Err(AnnounceError::Malformed { .. })
        ));
    }

    #[test]
    fn every_flipped_bit_fails() {
        for m in [None, Some([0xcd; 32])] {
            let (_, bytes) = sample_with(m);
            for at in 0..bytes.len() {
                for bit in 0..8 {
                    let mut b = bytes.clone();
                    b[at] ^= 1 << bit;
                    assert!(Announcement::open(&b).is_err(), "byte {at} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn wrong_keys_fail() {
        let (a, _) = sample();
        // The claim signed by a key that is not its publisher.
        let forged = key(3).sign(&a.claim.message()).to_bytes();
        assert_eq!(
            Announcement::new(a.claim.clone(), forged, &key(2), a.http),
            Err(AnnounceError::BadPublisherSignature)
        );
        assert_eq!(
            a.claim.sign(&key(3)),
            Err(AnnounceError::BadPublisherSignature)
        );
        // The node field names another key than the one that signed.
        let mut other = a.clone();
        other.node = key(4).verifying_key().to_bytes();
        assert_eq!(
            Announcement::open(&other.encode().unwrap()),
            Err(AnnounceError::BadNodeSignature)
        );
        // Unsigned: zero signatures.
        let mut unsigned = a.clone();
        unsigned.node_sig = [0; 64];
        assert_eq!(
            Announcement::open(&unsigned.encode().unwrap())
                .unwrap_err()
                .reason(),
            "bad_signature"
        );
        // A relay re-signs a claim whose publisher signature is zero.
        let mut bad_claim = a.clone();
        bad_claim.publisher_sig = [0; 64];
        let unsigned_bytes = bad_claim.unsigned_bytes().unwrap();
        bad_claim.node_sig = key(2).sign(&node_message(&unsigned_bytes)).to_bytes();
        assert_eq!(
            Announcement::open(&bad_claim.encode().unwrap()),
            Err(AnnounceError::BadPublisherSignature)
        );
    }

    #[test]
    fn hostile_fields_fail() {
        let (a, _) = sample();
        for net in ["", "a/b", "a+", "#", &"x".repeat(65), "ünï"] {
            let mut b = a.clone();
            b.claim.network = net.to_string();
            assert!(b.encode().is_err(), "{net:?}");
        }
        // A non-canonical address spelling, re-signed by the node.
        let (_, bytes) = sample();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.contains("127.0.0.1:7700"));
        let addr_at = bytes.len() - 64 - "127.0.0.1:7700".len();
        let mut raw = bytes[..addr_at - 1].to_vec();
        let spelled = "127.000.0.1:7700";
        raw.push(spelled.len() as u8);
        raw.extend_from_slice(spelled.as_bytes());
        raw.extend_from_slice(&key(2).sign(&node_message(&raw)).to_bytes());
        assert!(matches!(
            Announcement::open(&raw),
            Err(AnnounceError::Malformed { .. })
        ));
        // A length byte above the limit.
        let mut raw = bytes.clone();
        raw[8] = 200;
        assert!(Announcement::open(&raw).is_err());
        // Random bytes never panic.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for n in 0..2000 {
            let len = n % (MAX_BYTES + 10);
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            if n % 3 == 0 && b.len() >= 8 {
                b[..8].copy_from_slice(&MAGIC);
            }
            assert!(Announcement::open(&b).is_err());
        }
    }
}
