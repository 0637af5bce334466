//! The signed header of a snapshot: its fields ([`Header`]), its canonical
//! bytes, the signature over them, and the strict parser that reads them
//! back.
//!
//! A snapshot directory holds `header.bin` (this) and the body (the scores).
//! The header is small, signed, and says everything about the body a
//! verifier needs: its size and SHA-256, the Merkle root over its scores
//! (see [`super::merkle`]), and how it was made.
//!
//! # `header.bin`
//!
//! `header.bin` is the header's *canonical bytes* followed by a 64-byte
//! ed25519 signature, and nothing else:
//!
//! ```text
//! header.bin = canonical bytes || signature (64 bytes)
//! ```
//!
//! Every integer is big-endian; a *string* is a 32-bit big-endian length L
//! followed by L bytes of UTF-8 (no terminator, no byte-order mark, any
//! Unicode scalar value allowed); a *float* is the 64 bits of its IEEE-754
//! binary64 pattern as a big-endian u64; a *hash* is 32 raw bytes. There
//! are no optional fields, no padding, no alignment and no extension
//! points: the fields follow each other in this order, and the signature
//! starts right after the last one.
//!
//! | #  | field              | bytes        | encoding and rule                                                      |
//! |----|--------------------|--------------|------------------------------------------------------------------------|
//! | 1  | magic              | 8            | `54 4d 53 4e 41 50 00 01` (ASCII `TMSNAP`, then 0x00, 0x01)             |
//! | 2  | format version     | 2            | u16, must be 1                                                          |
//! | 3  | network id         | 4 + N        | string, N ≤ 65 535                                                      |
//! | 4  | epoch              | 8            | u64                                                                     |
//! | 5  | created            | 8            | i64 (two's complement), Unix time in seconds                            |
//! | 6  | expires            | 8            | i64, Unix time in seconds, must be > created                            |
//! | 7  | prev header hash   | 32           | hash: SHA-256 of the previous snapshot's whole `header.bin`; 32 zero bytes in the first snapshot of a chain |
//! | 8  | parameters         | 4 + P        | string, P ≤ 1 048 576, must be one JSON value (RFC 8259)                |
//! | 9  | input count        | 4            | u32 K, K ≤ 100 000                                                      |
//! | 10 | K inputs           | K × (44 + L) | each: name (string, L ≤ 65 535), size (u64, bytes), SHA-256 (hash)      |
//! | 11 | iterations         | 8            | u64                                                                     |
//! | 12 | residual           | 8            | float, finite, sign bit clear (so ≥ 0, and never −0)                    |
//! | 13 | error bound        | 8            | float, finite, sign bit clear                                           |
//! | 14 | device             | 4 + D        | string, D ≤ 65 535                                                      |
//! | 15 | precision          | 4 + 3        | string, exactly `f64` or `f32`                                          |
//! | 16 | agent count        | 8            | u64: the number of scores, = the Merkle tree's size                     |
//! | 17 | Merkle root        | 32           | hash: RFC 6962 root over the score leaves (see `merkle`)                |
//! | 18 | body size          | 8            | u64: the body file's size in bytes                                      |
//! | 19 | body SHA-256       | 32           | hash: SHA-256 of the body file's bytes                                  |
//! | 20 | publisher key      | 32           | ed25519 public key (RFC 8032 §5.1.5 encoding)                           |
//!
//! Then the signature (64 bytes, RFC 8032 `R || S`), by the publisher key
//! of field 20, over the message
//!
//! ```text
//! "trustmesh-snapshot-v1" || 0x00 || canonical bytes
//! ```
//!
//! (22 bytes of prefix, [`SIGNATURE_DOMAIN`]), pure Ed25519 (not Ed25519ph,
//! no context string). The prefix keeps a header signature from ever being
//! valid for any other message trustmesh signs (log rows, ledger entries,
//! announcements), and the NUL ends it, so no other tag can be a prefix of
//! it.
//!
//! The **header hash**, which the next snapshot puts in its field 7 and a
//! gossip announcement names, is SHA-256 of the whole `header.bin`,
//! signature included ([`header_hash`]). Strict verification (below) makes
//! signatures non-malleable: no one without the secret key can turn a
//! valid signature into another valid one, so a snapshot's header hash
//! changes only if its publisher signs it anew (and RFC 8032 signing is
//! deterministic: signing the same bytes again gives the same file).
//!
//! Fields 4–6 and 16–19 are what a verifier's policy and the body checks
//! use (`policy`, [`super::check_body`], [`super::check_tree`]). Field 8 is
//! the `parameters` object of the run's provenance (every option that
//! changes scores: alpha, epsilon, layers and weights, flags), as
//! [`canonical_json`] writes it: compact, object keys sorted by their UTF-8
//! bytes. A verifier only checks that it is valid JSON: it is carried as
//! the signed bytes, not recomputed. Fields 12 and 13 are the last step's
//! L1 residual r and the certified bound r/alpha (the L1 distance of the
//! published vector to the exact fixed point is at most r/alpha);
//! `snapshot audit` checks them, the header only checks their range.
//!
//! ## Inputs (field 10)
//!
//! One entry per file the scores were computed from (the logs, then stake,
//! proofs, pre-trust and other side files), each with its size in bytes
//! and the SHA-256 of its content. The name is the publisher's label for
//! the file, free text to the format (suggested: `role:file name`, e.g.
//! `log:day1.parquet`, without the directories, which say nothing about
//! the content); an auditor matches its own files to entries by hash.
//! Entries are sorted by name, byte-wise over the UTF-8, then by hash,
//! byte-wise, and strictly increasing in that order: no two entries have
//! both the same name and the same hash ([`sort_inputs`] sorts).
//!
//! ## Parsing and verifying
//!
//! A verifier reads `header.bin` from the front ([`parse_signed`]) and
//! rejects it if:
//!
//! - it is longer than 16 MiB (16 777 216 bytes, signature included;
//!   [`MAX_HEADER_BYTES`]), checked before it is read any further;
//! - any field is cut short, or a length prefix or count is larger than
//!   the bytes left could hold;
//! - a string, the parameters or the input list is over its limit above
//!   (checked on the length prefix, before anything is allocated);
//! - the magic, the version or the precision is not the one above, a
//!   string is not UTF-8, the parameters are not JSON, a float is not
//!   finite or has its sign bit set, `expires ≤ created`, or the inputs are
//!   not strictly increasing;
//! - after the last field there are not exactly 64 bytes (fewer: truncated;
//!   more: trailing bytes);
//! - the signature does not verify ([`verify_signature`]): with ed25519
//!   "strict" verification (ed25519-dalek 2's `verify_strict`), that is
//!   RFC 8032 §5.1.7 with S < L required, the public key A and the
//!   signature's R rejected when of small order, and the cofactorless
//!   equation \[S\]B = R + \[k\]A checked on R's encoding.
//!
//! A header that passes is then judged by the verifier's policy (publisher,
//! epoch, expiry, chain: `policy`), and the body against fields 16–19.
//! There is exactly one encoding of each header: a parsed header encodes
//! back to the same bytes.
//!
//! # Example
//!
//! The header of network `tm`, epoch 1, created 1 700 000 000 and expiring
//! 1 700 604 800 (a week later), first of its chain, parameters
//! `{"alpha":0.15}`, one input `log:a.parquet` of 3 bytes (the SHA-256 of
//! `abc`), 12 iterations, residual 2⁻³⁰, error bound 2⁻³⁰/0.15, device
//! `cpu`, precision `f64`, 2 agents (`alice` with 0.75 and `carol` with
//! 0.25: the Merkle root is that of their two leaves, and `proof`'s
//! examples prove against this header), a body of 1 234 bytes whose
//! SHA-256 is 32 × `0x22`, signed by the key whose
//! RFC 8032 secret seed is 32 × `0x01`, encodes as these 301 canonical
//! bytes (the test `doc_example_is_exact` checks this text):
//!
//! ```text
//! 54 4d 53 4e 41 50 00 01                              magic
//! 00 01                                                version 1
//! 00 00 00 02  74 6d                                   network "tm"
//! 00 00 00 00 00 00 00 01                              epoch 1
//! 00 00 00 00 65 53 f1 00                              created 1700000000
//! 00 00 00 00 65 5d 2b 80                              expires 1700604800
//! 00 × 32                                              prev header hash
//! 00 00 00 0e  7b 22 61 6c 70 68 61 22 3a 30 2e 31 35 7d   {"alpha":0.15}
//! 00 00 00 01                                          1 input
//! 00 00 00 0d  6c 6f 67 3a 61 2e 70 61 72 71 75 65 74   "log:a.parquet"
//! 00 00 00 00 00 00 00 03                              3 bytes
//! ba 78 16 bf 8f 01 cf ea 41 41 40 de 5d ae 22 23
//! b0 03 61 a3 96 17 7a 9c b4 10 ff 61 f2 00 15 ad      SHA-256("abc")
//! 00 00 00 00 00 00 00 0c                              12 iterations
//! 3e 10 00 00 00 00 00 00                              residual 2^-30
//! 3e 3a aa aa aa aa aa ab                              error bound
//! 00 00 00 03  63 70 75                                device "cpu"
//! 00 00 00 03  66 36 34                                precision "f64"
//! 00 00 00 00 00 00 00 02                              2 agents
//! ba d4 c8 f8 c8 08 4c 4a d5 67 a4 f9 37 d6 03 83
//! c6 23 40 e4 71 62 27 12 e6 bd 6a 93 cb ce 1f d9      Merkle root
//! 00 00 00 00 00 00 04 d2                              body size 1234
//! 22 × 32                                              body SHA-256
//! 8a 88 e3 dd 74 09 f1 95 fd 52 db 2d 3c ba 5d 72
//! ca 67 09 bf 1d 94 12 1b f3 74 88 01 b4 0f 6f 5c      publisher key
//! ```
//!
//! followed by the signature
//!
//! ```text
//! f3 d1 9d 7c be b5 7c 29 9c 63 8b b7 f7 ed 1d e4
//! 20 9c bf 8d 1a f5 3e 05 90 ed ec 08 8b 26 2d fe
//! 8d 6d 50 3e 11 8d 7e 8b ee 15 2a 2c a3 f3 75 ea
//! 26 e2 93 14 7f e1 a9 e6 e8 80 42 77 1d 54 95 08
//! ```
//!
//! and the header hash (SHA-256 of those 365 bytes) is
//! `006e3b12b896e7134e9982a1f79f701e9d4969a7aefffd3592aaf046f10ffa77`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::error::SnapshotError;
use super::json_error_offset;
use super::merkle::Hash;

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// The first 8 bytes of every header.
pub const MAGIC: [u8; 8] = *b"TMSNAP\x00\x01";
/// The format version this module writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// What the signature signs before the canonical bytes.
pub const SIGNATURE_DOMAIN: &[u8] = b"trustmesh-snapshot-v1\x00";
/// The length of the signature at the end of `header.bin`.
pub const SIGNATURE_LEN: usize = 64;
/// The longest `header.bin` accepted, signature included.
pub const MAX_HEADER_BYTES: usize = 16 << 20;
/// The longest network id, input name or device string (the network id
/// must also fit the Merkle leaf's 16-bit length).
pub const MAX_STRING_BYTES: usize = 65_535;
/// The longest parameters JSON.
pub const MAX_PARAMETERS_BYTES: usize = 1 << 20;
/// The most input files a header lists.
pub const MAX_INPUTS: usize = 100_000;
/// The precisions a header may state.
pub const PRECISIONS: [&str; 2] = ["f64", "f32"];
/// The previous header hash of the first snapshot of a chain.
pub const NO_PREVIOUS: Hash = [0; 32];

/// The fixed part of one input entry: name length, size, hash.
const INPUT_FIXED_BYTES: usize = 4 + 8 + 32;

/// One input file: its label, its size in bytes and the SHA-256 of its
/// content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InputDigest {
    pub name: String,
    pub size: u64,
    pub sha256: Hash,
}

/// Sorts input digests into the order a header requires: by name (UTF-8
/// bytes), then by hash. Exact duplicates stay, and `encode` rejects them.
pub fn sort_inputs(inputs: &mut [InputDigest]) {
    inputs.sort_by(|a, b| (a.name.as_bytes(), &a.sha256).cmp(&(b.name.as_bytes(), &b.sha256)));
}

/// A snapshot header: every field of `header.bin` but the signature (see
/// the module documentation for the bytes and the rules).
///
/// The fields are public; [`Header::encode`] and [`Header::sign`] check the
/// rules, so a header that does not follow them is never written.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Always [`FORMAT_VERSION`].
    pub version: u16,
    pub network: String,
    pub epoch: u64,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; after `created`.
    pub expires: i64,
    /// [`header_hash`] of the previous snapshot, [`NO_PREVIOUS`] for the
    /// first.
    pub prev_header_hash: Hash,
    /// One JSON value, the run's parameters ([`canonical_json`]).
    pub parameters: String,
    /// Sorted ([`sort_inputs`]), no exact duplicates.
    pub inputs: Vec<InputDigest>,
    pub iterations: u64,
    /// Finite, sign bit clear.
    pub residual: f64,
    /// residual / alpha; finite, sign bit clear.
    pub error_bound: f64,
    pub device: String,
    /// `f64` or `f32`.
    pub precision: String,
    /// The number of scores: the Merkle tree's size.
    pub agent_count: u64,
    pub merkle_root: Hash,
    pub body_size: u64,
    pub body_sha256: Hash,
    /// The ed25519 public key that signs the header.
    pub publisher: [u8; 32],
}

// What each length-prefixed field is called in messages, and its limit.
const NETWORK: (&str, usize) = ("network id length in bytes", MAX_STRING_BYTES);
const PARAMETERS: (&str, usize) = ("parameters length in bytes", MAX_PARAMETERS_BYTES);
const INPUT_NAME: (&str, usize) = ("input name length in bytes", MAX_STRING_BYTES);
const DEVICE: (&str, usize) = ("device length in bytes", MAX_STRING_BYTES);
const PRECISION: (&str, usize) = ("precision length in bytes", MAX_STRING_BYTES);
const INPUTS: (&str, usize) = ("number of inputs", MAX_INPUTS);
const WHOLE: (&str, usize) = ("header.bin size in bytes", MAX_HEADER_BYTES);

fn oversized((what, limit): (&'static str, usize), size: usize) -> SnapshotError {
    SnapshotError::Oversized {
        what,
        size: size as u64,
        limit: limit as u64,
    }
}

/// Appends a length-prefixed string, refusing one over its limit.
fn put_str(out: &mut Vec<u8>, field: (&'static str, usize), s: &str) -> Result<()> {
    if s.len() > field.1 {
        return Err(oversized(field, s.len()));
    }
    // Below the limit, hence below 2^32.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

impl Header {
    /// The canonical bytes, without checking the rules.
    fn encode_unchecked(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(
            512 + self.parameters.len()
                + self
                    .inputs
                    .iter()
                    .map(|i| INPUT_FIXED_BYTES + i.name.len())
                    .sum::<usize>(),
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_be_bytes());
        put_str(&mut out, NETWORK, &self.network)?;
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.created.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.extend_from_slice(&self.prev_header_hash);
        put_str(&mut out, PARAMETERS, &self.parameters)?;
        if self.inputs.len() > MAX_INPUTS {
            return Err(oversized(INPUTS, self.inputs.len()));
        }
        out.extend_from_slice(&(self.inputs.len() as u32).to_be_bytes());
        for input in &self.inputs {
            put_str(&mut out, INPUT_NAME, &input.name)?;
            out.extend_from_slice(&input.size.to_be_bytes());
            out.extend_from_slice(&input.sha256);
        }
        out.extend_from_slice(&self.iterations.to_be_bytes());
        out.extend_from_slice(&self.residual.to_bits().to_be_bytes());
        out.extend_from_slice(&self.error_bound.to_bits().to_be_bytes());
        put_str(&mut out, DEVICE, &self.device)?;
        put_str(&mut out, PRECISION, &self.precision)?;
        out.extend_from_slice(&self.agent_count.to_be_bytes());
        out.extend_from_slice(&self.merkle_root);
        out.extend_from_slice(&self.body_size.to_be_bytes());
        out.extend_from_slice(&self.body_sha256);
        out.extend_from_slice(&self.publisher);
        Ok(out)
    }

    /// The canonical bytes (see the module documentation), after checking
    /// every rule a parser checks: the bytes are parsed back, so `encode`
    /// accepts exactly the headers [`parse_signed`] would, and its errors
    /// name the byte of the encoding at fault.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let bytes = self.encode_unchecked()?;
        let signed_len = bytes.len() + SIGNATURE_LEN;
        if signed_len > MAX_HEADER_BYTES {
            return Err(oversized(WHOLE, signed_len));
        }
        let mut r = Reader::new(&bytes);
        read_fields(&mut r)?;
        debug_assert_eq!(r.pos, bytes.len(), "the parser reads what encode writes");
        Ok(bytes)
    }

    /// `header.bin`: the canonical bytes and their signature by `key`,
    /// which must be the header's publisher key (else
    /// [`SnapshotError::UnknownPublisher`], expected the header's key,
    /// found `key`'s).
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>> {
        let found = key.verifying_key().to_bytes();
        if found != self.publisher {
            return Err(SnapshotError::UnknownPublisher {
                expected: self.publisher,
                found,
            });
        }
        let mut out = self.encode()?;
        let signature = key.sign(&signed_message(&out));
        out.extend_from_slice(&signature.to_bytes());
        Ok(out)
    }
}

/// The message a header signature signs: the domain prefix, then the
/// canonical bytes.
fn signed_message(canonical: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNATURE_DOMAIN.len() + canonical.len());
    msg.extend_from_slice(SIGNATURE_DOMAIN);
    msg.extend_from_slice(canonical);
    msg
}

/// The header hash: SHA-256 of the whole `header.bin`, signature included.
pub fn header_hash(header_bin: &[u8]) -> Hash {
    Sha256::digest(header_bin).into()
}

/// Checks an ed25519 signature over a header's canonical bytes (the
/// domain prefix is added here) with strict verification (see the module
/// documentation). A key that is not a valid point fails like a wrong
/// signature.
pub fn verify_signature(
    canonical: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    publisher: &[u8; 32],
) -> Result<()> {
    let bad = || SnapshotError::BadSignature {
        publisher: *publisher,
    };
    let key = VerifyingKey::from_bytes(publisher).map_err(|_| bad())?;
    key.verify_strict(
        &signed_message(canonical),
        &Signature::from_bytes(signature),
    )
    .map_err(|_| bad())
}

/// Parses `header.bin` (canonical bytes and signature) without checking
/// the signature: every rule of the module documentation but the last.
///
/// Total: any input gives a header or an error, never a panic, and nothing
/// is allocated beyond what the input's length allows.
pub fn parse_signed(header_bin: &[u8]) -> Result<(Header, [u8; SIGNATURE_LEN])> {
    if header_bin.len() > MAX_HEADER_BYTES {
        return Err(oversized(WHOLE, header_bin.len()));
    }
    let mut r = Reader::new(header_bin);
    let header = read_fields(&mut r)?;
    let left = r.remaining();
    if left < SIGNATURE_LEN {
        return Err(SnapshotError::malformed(
            format!("truncated: expected a {SIGNATURE_LEN}-byte signature after the header, found {left} bytes"),
            r.pos,
        ));
    }
    if left > SIGNATURE_LEN {
        return Err(SnapshotError::malformed(
            format!(
                "{} trailing bytes after the signature, expected none",
                left - SIGNATURE_LEN
            ),
            r.pos + SIGNATURE_LEN,
        ));
    }
    let mut signature = [0; SIGNATURE_LEN];
    signature.copy_from_slice(&header_bin[r.pos..]);
    Ok((header, signature))
}

/// Parses `header.bin` and checks its signature, and that it is by
/// `publisher` when one is given ([`SnapshotError::UnknownPublisher`]
/// before the signature is checked). What a verifier calls first.
pub fn open(header_bin: &[u8], publisher: Option<&[u8; 32]>) -> Result<Header> {
    let (header, signature) = parse_signed(header_bin)?;
    if let Some(expected) = publisher {
        if *expected != header.publisher {
            return Err(SnapshotError::UnknownPublisher {
                expected: *expected,
                found: header.publisher,
            });
        }
    }
    let canonical = &header_bin[..header_bin.len() - SIGNATURE_LEN];
    verify_signature(canonical, &signature, &header.publisher)?;
    Ok(header)
}

/// The canonical text of a JSON value: compact (no whitespace), object
/// keys sorted by their UTF-8 bytes, strings and numbers as serde_json
/// writes them. For field 8; independent of serde_json's `preserve_order`
/// feature.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// A cursor over the input that never reads past its end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes of field `what`.
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(SnapshotError::malformed(
                format!(
                    "truncated: expected {n} bytes of {what}, found {}",
                    self.remaining()
                ),
                self.pos,
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// A float that must be finite with its sign bit clear.
    fn float(&mut self, what: &str) -> Result<f64> {
        let at = self.pos;
        let bits = self.u64(what)?;
        let x = f64::from_bits(bits);
        if !x.is_finite() || bits >> 63 != 0 {
            return Err(SnapshotError::malformed(
                format!("{what} is {x:?} (bits {bits:016x}), expected a finite number with its sign bit clear"),
                at,
            ));
        }
        Ok(x)
    }

    /// A u32 length checked against `field`'s limit and against what is
    /// left, read before anything is allocated for it.
    fn len(&mut self, field: (&'static str, usize), unit: usize, what: &str) -> Result<usize> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n > field.1 {
            return Err(oversized(field, n));
        }
        // Each unit takes at least `unit` bytes (n ≤ 2^32 and unit ≤ 44:
        // no overflow on 64-bit targets; saturate elsewhere).
        let need = n.saturating_mul(unit);
        if need > self.remaining() {
            return Err(SnapshotError::malformed(
                format!(
                    "truncated: {what} needs at least {need} more bytes, found {}",
                    self.remaining()
                ),
                at,
            ));
        }
        Ok(n)
    }

    /// A length-prefixed UTF-8 string; returns it and where its bytes start.
    fn string(&mut self, field: (&'static str, usize), what: &str) -> Result<(String, usize)> {
        let n = self.len(field, 1, what)?;
        let at = self.pos;
        let bytes = self.take(n, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok((s.to_owned(), at)),
            Err(e) => Err(SnapshotError::malformed(
                format!("{what} is not valid UTF-8"),
                at + e.valid_up_to(),
            )),
        }
    }
}

/// Reads and checks the fields, leaving the reader after the last one.
fn read_fields(r: &mut Reader<'_>) -> Result<Header> {
    let magic: [u8; 8] = r.array("magic")?;
    if magic != MAGIC {
        return Err(SnapshotError::malformed(
            format!(
                "wrong magic: expected {} (\"TMSNAP\\0\\x01\"), found {}",
                hex::encode(MAGIC),
                hex::encode(magic)
            ),
            0,
        ));
    }
    let at = r.pos;
    let version = r.u16("format version")?;
    if version != FORMAT_VERSION {
        return Err(SnapshotError::malformed(
            format!("unsupported format version {version}, expected {FORMAT_VERSION}"),
            at,
        ));
    }
    let (network, _) = r.string(NETWORK, "network id")?;
    let epoch = r.u64("epoch")?;
    let created = r.i64("created")?;
    let at = r.pos;
    let expires = r.i64("expires")?;
    if expires <= created {
        return Err(SnapshotError::malformed(
            format!("expires {expires} is not after created {created}"),
            at,
        ));
    }
    let prev_header_hash = r.array("previous header hash")?;
    let (parameters, at) = r.string(PARAMETERS, "parameters")?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&parameters) {
        return Err(SnapshotError::malformed(
            format!("parameters are not valid JSON: {e}"),
            at + json_error_offset(&parameters, &e),
        ));
    }
    let count = r.len(INPUTS, INPUT_FIXED_BYTES, "input list")?;
    // `len` checked that `count` entries fit in what is left.
    let mut inputs: Vec<InputDigest> = Vec::with_capacity(count);
    for i in 0..count {
        let at = r.pos;
        let (name, _) = r.string(INPUT_NAME, "input name")?;
        let size = r.u64("input size")?;
        let sha256 = r.array("input SHA-256")?;
        let input = InputDigest { name, size, sha256 };
        if let Some(prev) = inputs.last() {
            let order =
                (prev.name.as_bytes(), &prev.sha256).cmp(&(input.name.as_bytes(), &input.sha256));
            if order != std::cmp::Ordering::Less {
                return Err(SnapshotError::malformed(
                    format!(
                        "input {i} ({:?}, {}) is {} input {} ({:?}, {}), expected inputs strictly increasing by name then SHA-256",
                        input.name,
                        hex::encode(input.sha256),
                        if order == std::cmp::Ordering::Equal { "a duplicate of" } else { "before" },
                        i - 1,
                        prev.name,
                        hex::encode(prev.sha256),
                    ),
                    at,
                ));
            }
        }
        inputs.push(input);
    }
    let iterations = r.u64("iterations")?;
    let residual = r.float("residual")?;
    let error_bound = r.float("error bound")?;
    let (device, _) = r.string(DEVICE, "device")?;
    let at = r.pos;
    let (precision, _) = r.string(PRECISION, "precision")?;
    if !PRECISIONS.contains(&precision.as_str()) {
        return Err(SnapshotError::malformed(
            format!("precision is {precision:?}, expected \"f64\" or \"f32\""),
            at,
        ));
    }
    let agent_count = r.u64("agent count")?;
    let merkle_root = r.array("Merkle root")?;
    let body_size = r.u64("body size")?;
    let body_sha256 = r.array("body SHA-256")?;
    let publisher = r.array("publisher key")?;
    Ok(Header {
        version,
        network,
        epoch,
        created,
        expires,
        prev_header_hash,
        parameters,
        inputs,
        iterations,
        residual,
        error_bound,
        device,
        precision,
        agent_count,
        merkle_root,
        body_size,
        body_sha256,
        publisher,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use ed25519_dalek::Verifier;
    use proptest::prelude::*;

    fn realistic() -> (Header, Vec<u8>) {
        let snap = Snap::new(&agents(10));
        (snap.header, snap.header_bin)
    }

    /// The offset of a Malformed error, or a panic with the error.
    fn malformed_at(r: Result<impl std::fmt::Debug>) -> u64 {
        match r {
            Err(SnapshotError::Malformed {
                offset: Some(o), ..
            }) => o,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let (h, bin) = realistic();
        let (parsed, sig) = parse_signed(&bin).unwrap();
        assert_eq!(parsed, h);
        let canonical = h.encode().unwrap();
        assert_eq!(parsed.encode().unwrap(), canonical);
        assert_eq!(&bin[..canonical.len()], &canonical[..]);
        assert_eq!(&bin[canonical.len()..], &sig[..]);
        assert_eq!(open(&bin, Some(&h.publisher)).unwrap(), h);
        assert_eq!(open(&bin, None).unwrap(), h);
        // Signing is deterministic (RFC 8032).
        assert_eq!(h.sign(&key()).unwrap(), bin);
        // The floats keep their bits.
        assert_eq!(parsed.residual.to_bits(), h.residual.to_bits());
        assert_eq!(parsed.error_bound.to_bits(), h.error_bound.to_bits());
    }

    #[test]
    fn a_generated_key_signs_and_verifies() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let (mut h, _) = realistic();
        h.publisher = key.verifying_key().to_bytes();
        let bin = h.sign(&key).unwrap();
        assert_eq!(open(&bin, Some(&h.publisher)).unwrap(), h);
        assert_eq!(
            h.sign(&super::super::testutil::key()),
            Err(SnapshotError::UnknownPublisher {
                expected: h.publisher,
                found: super::super::testutil::key().verifying_key().to_bytes()
            })
        );
    }

    /// The first ```text block after `# Example` in this file's module
    /// documentation, as bytes (`xx × n` is n bytes xx; a comment follows
    /// three or more spaces).
    fn doc_block(nth: usize) -> String {
        let doc: Vec<&str> = include_str!("header.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.strip_prefix("//! ").unwrap_or(""))
            .collect();
        let example = doc.iter().position(|l| *l == "# Example").unwrap();
        let mut blocks = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for l in &doc[example..] {
            match (l.trim() == "```text" || l.trim() == "```", current.take()) {
                (true, None) => current = Some(Vec::new()),
                (true, Some(b)) => blocks.push(b.join("\n")),
                (false, Some(mut b)) => {
                    b.push(l);
                    current = Some(b);
                }
                (false, None) => {}
            }
        }
        blocks[nth].clone()
    }

    fn dump_bytes(block: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for line in block.lines() {
            let data = line.split("   ").next().unwrap();
            let tokens: Vec<&str> = data.split_whitespace().collect();
            let mut i = 0;
            while i < tokens.len() {
                let b = u8::from_str_radix(tokens[i], 16).unwrap();
                if tokens.get(i + 1) == Some(&"×") {
                    let n: usize = tokens[i + 2].parse().unwrap();
                    out.extend(std::iter::repeat_n(b, n));
                    i += 3;
                } else {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn doc_example_is_exact() {
        let h = doc_example();
        let key = doc_key();
        let canonical = h.encode().unwrap();
        let bin = h.sign(&key).unwrap();
        let sig_hex = hex::encode(&bin[canonical.len()..]);
        let hash_hex = hex::encode(header_hash(&bin));
        eprintln!(
            "{} canonical bytes {}\nsignature {sig_hex}\nheader hash {hash_hex}",
            canonical.len(),
            hex::encode(&canonical)
        );
        assert_eq!(dump_bytes(&doc_block(0)), canonical);
        let doc_sig: String = doc_block(1).split_whitespace().collect();
        assert_eq!(doc_sig, sig_hex);
        let text = include_str!("header.rs");
        let n = canonical.len();
        assert!(text.contains(&format!("encodes as these {n} canonical")));
        assert!(text.contains(&format!(
            "SHA-256 of those {} bytes) is\n//! `{hash_hex}`",
            n + SIGNATURE_LEN
        )));
        assert_eq!(open(&bin, Some(&h.publisher)).unwrap(), h);
    }

    #[test]
    fn every_single_byte_change_is_rejected() {
        let (h, bin) = realistic();
        let canonical_len = bin.len() - SIGNATURE_LEN;
        // The publisher key is the last field before the signature.
        let key_at = canonical_len - 32;
        assert!(bin.len() > 850, "a realistic header: {} bytes", bin.len());
        for at in 0..bin.len() {
            for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
                let mut b = bin.clone();
                b[at] ^= mask;
                let e = open(&b, None).expect_err(&format!("byte {at} ^ {mask:#04x} accepted"));
                if at >= canonical_len {
                    assert!(matches!(e, SnapshotError::BadSignature { .. }), "{at}: {e}");
                }
                if (key_at..canonical_len).contains(&at) {
                    assert!(matches!(e, SnapshotError::BadSignature { .. }), "{at}: {e}");
                    assert!(matches!(
                        open(&b, Some(&h.publisher)),
                        Err(SnapshotError::UnknownPublisher { .. })
                    ));
                }
            }
        }
    }

    #[test]
    fn every_truncation_and_any_extension_is_rejected() {
        let (_, bin) = realistic();
        for len in 0..bin.len() {
            let at = malformed_at(parse_signed(&bin[..len]));
            assert!(at <= len as u64, "{len}: offset {at}");
            assert!(open(&bin[..len], None).is_err());
        }
        for extra in [&[0u8][..], &[0; 64], b"trailing"] {
            let mut b = bin.clone();
            b.extend_from_slice(extra);
            assert_eq!(malformed_at(parse_signed(&b)), bin.len() as u64);
        }
    }

    /// A header's canonical bytes, edited as bytes and then re-signed, so
    /// the parser (not the signature) is what rejects them.
    fn resigned(canonical: &[u8]) -> Vec<u8> {
        let mut out = canonical.to_vec();
        out.extend_from_slice(&key().sign(&signed_message(canonical)).to_bytes());
        out
    }

    /// The canonical bytes of a header with `edit` applied, without the
    /// checks of `encode`.
    fn unchecked(edit: impl FnOnce(&mut Header)) -> Vec<u8> {
        let (mut h, _) = realistic();
        edit(&mut h);
        h.encode_unchecked().unwrap()
    }

    #[test]
    fn each_rule_is_enforced_by_parse_and_by_encode() {
        type Edit = Box<dyn Fn(&mut Header)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "version",
                Box::new(|h| h.version = 2),
                "unsupported format version 2",
            ),
            (
                "version 0",
                Box::new(|h| h.version = 0),
                "unsupported format version 0",
            ),
            (
                "expires = created",
                Box::new(|h| h.expires = h.created),
                "is not after created",
            ),
            (
                "expires < created",
                Box::new(|h| h.expires = h.created - 1),
                "is not after created",
            ),
            (
                "parameters",
                Box::new(|h| h.parameters = "{\"alpha\":".into()),
                "not valid JSON",
            ),
            (
                "parameters empty",
                Box::new(|h| h.parameters.clear()),
                "not valid JSON",
            ),
            (
                "parameters twice",
                Box::new(|h| h.parameters = "{} {}".into()),
                "not valid JSON",
            ),
            (
                "residual NaN",
                Box::new(|h| h.residual = f64::NAN),
                "residual is NaN",
            ),
            (
                "residual -inf",
                Box::new(|h| h.residual = f64::NEG_INFINITY),
                "residual is -inf",
            ),
            (
                "residual < 0",
                Box::new(|h| h.residual = -1e-9),
                "sign bit clear",
            ),
            (
                "residual -0",
                Box::new(|h| h.residual = -0.0),
                "sign bit clear",
            ),
            (
                "bound inf",
                Box::new(|h| h.error_bound = f64::INFINITY),
                "error bound is inf",
            ),
            (
                "precision",
                Box::new(|h| h.precision = "f16".into()),
                "precision is \"f16\"",
            ),
            (
                "precision case",
                Box::new(|h| h.precision = "F64".into()),
                "precision is",
            ),
            (
                "unsorted inputs",
                Box::new(|h| h.inputs.swap(0, 1)),
                "is before input 0",
            ),
            (
                "duplicate input",
                Box::new(|h| {
                    let d = h.inputs[1].clone();
                    h.inputs.insert(1, d);
                }),
                "is a duplicate of input 1",
            ),
            (
                "same name and hash, other size",
                Box::new(|h| {
                    let mut d = h.inputs[1].clone();
                    d.size += 1;
                    h.inputs.insert(2, d);
                }),
                "is a duplicate of input 1",
            ),
        ];
        for (name, edit, text) in cases {
            let (mut h, _) = realistic();
            edit(&mut h);
            let from_encode = h.encode().expect_err(name);
            let bytes = h.encode_unchecked().unwrap();
            let from_parse = parse_signed(&resigned(&bytes)).expect_err(name);
            assert_eq!(from_encode, from_parse, "{name}");
            assert!(
                from_parse.to_string().contains(text),
                "{name}: {from_parse}"
            );
            malformed_at(Err::<(), _>(from_parse));
            assert!(h.sign(&key()).is_err(), "{name}");
        }
        // Same name, different hashes, in hash order: fine.
        let (mut h, _) = realistic();
        let mut d = h.inputs[1].clone();
        d.sha256[31] ^= 1;
        h.inputs.push(d);
        sort_inputs(&mut h.inputs);
        h.encode().unwrap();
    }

    #[test]
    fn wrong_magic_and_bad_utf8_are_located() {
        let (_, bin) = realistic();
        for at in 0..8 {
            let mut b = bin.clone();
            b[at] ^= 0x20;
            let e = parse_signed(&b).unwrap_err();
            assert_eq!(malformed_at(Err::<(), _>(e.clone())), 0);
            assert!(e.to_string().contains("wrong magic"), "{e}");
        }
        // Network id "trustmesh-main" starts at byte 14; make its 4th byte
        // a lone continuation byte.
        let mut c = bin[..bin.len() - SIGNATURE_LEN].to_vec();
        assert_eq!(&c[14..18], b"trus");
        c[17] = 0x80;
        let e = parse_signed(&resigned(&c)).unwrap_err();
        assert_eq!(
            e,
            SnapshotError::Malformed {
                what: "network id is not valid UTF-8".into(),
                offset: Some(17)
            }
        );
        let c = unchecked(|h| h.parameters = "\"caf\u{e9}\"".into());
        let mut c = c.clone();
        let at = c.windows(3).position(|w| w == b"caf").unwrap() + 3;
        c[at] = 0xff;
        assert_eq!(malformed_at(parse_signed(&resigned(&c))), at as u64);
    }

    #[test]
    fn lengths_over_their_limit_are_oversized_before_anything_is_read() {
        let (_, bin) = realistic();
        // The network id's length prefix, at byte 10.
        for (len, oversized) in [(0xffff_ffffu32, true), (65_536, true), (65_535, false)] {
            let mut b = bin.clone();
            b[10..14].copy_from_slice(&len.to_be_bytes());
            let e = parse_signed(&b).unwrap_err();
            if oversized {
                assert_eq!(
                    e,
                    SnapshotError::Oversized {
                        what: "network id length in bytes",
                        size: len.into(),
                        limit: 65_535
                    }
                );
            } else {
                // Under the limit but beyond what is left? No: the header
                // is longer than 65 535 bytes only when big; here the id
                // swallows the rest and the next fields are cut short.
                assert!(matches!(e, SnapshotError::Malformed { .. }), "{e}");
            }
        }
        // A length prefix larger than what is left.
        let small = &bin[..40];
        let mut b = small.to_vec();
        b[10..14].copy_from_slice(&1000u32.to_be_bytes());
        let e = parse_signed(&b).unwrap_err();
        assert_eq!(malformed_at(Err::<(), _>(e.clone())), 10);
        assert!(
            e.to_string().contains("needs at least 1000 more bytes"),
            "{e}"
        );

        // Oversized strings and lists from encode, without building them
        // into bytes first.
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        for (edit, what) in [
            (
                Box::new(|h: &mut Header| h.network = long.clone()) as Box<dyn Fn(&mut Header)>,
                "network id length in bytes",
            ),
            (
                Box::new(|h: &mut Header| h.device = long.clone()),
                "device length in bytes",
            ),
            (
                Box::new(|h: &mut Header| h.inputs[0].name = long.clone()),
                "input name length in bytes",
            ),
            (
                Box::new(|h: &mut Header| h.parameters = format!("\"{}\"", "y".repeat(1 << 20))),
                "parameters length in bytes",
            ),
        ] {
            let (mut h, _) = realistic();
            edit(&mut h);
            assert!(
                matches!(h.encode(), Err(SnapshotError::Oversized { what: w, .. }) if w == what),
                "{what}"
            );
        }
        let (mut h, _) = realistic();
        h.network = "n".repeat(MAX_STRING_BYTES);
        h.encode().unwrap();
    }

    #[test]
    fn input_counts_are_capped_and_checked_against_what_is_left() {
        let c = unchecked(|h| h.inputs.clear());
        // The input count follows the parameters; find it as the 4 zero
        // bytes right after the parameters' text.
        let (h, _) = realistic();
        let p = h.parameters.as_bytes();
        let at = c.windows(p.len()).position(|w| w == p).unwrap() + p.len();
        assert_eq!(&c[at..at + 4], &[0, 0, 0, 0]);
        for (count, want_oversized) in [
            (u32::MAX, true),
            (100_001, true),
            (100_000, false),
            (20, false),
        ] {
            let mut b = c.clone();
            b[at..at + 4].copy_from_slice(&count.to_be_bytes());
            let e = parse_signed(&resigned(&b)).unwrap_err();
            if want_oversized {
                assert_eq!(
                    e,
                    SnapshotError::Oversized {
                        what: "number of inputs",
                        size: count.into(),
                        limit: MAX_INPUTS as u64
                    }
                );
            } else {
                // 100 000 entries need 4.4 MB; 20 need 880 bytes, more than
                // the ~230 left: rejected at the count, before allocating.
                assert_eq!(malformed_at(Err::<(), _>(e)), at as u64);
            }
        }
        // 100 000 inputs fit; 100 001 do not.
        let (mut h, _) = realistic();
        h.inputs = (0..MAX_INPUTS)
            .map(|i| InputDigest {
                name: format!("log:{i:06}"),
                size: i as u64,
                sha256: [0; 32],
            })
            .collect();
        let bin = h.sign(&key()).unwrap();
        assert_eq!(open(&bin, None).unwrap(), h);
        h.inputs.push(InputDigest {
            name: "log:z".into(),
            size: 0,
            sha256: [0; 32],
        });
        assert!(matches!(
            h.encode(),
            Err(SnapshotError::Oversized {
                what: "number of inputs",
                ..
            })
        ));
    }

    #[test]
    fn a_header_over_16_mib_is_oversized_unread() {
        let big = vec![0u8; MAX_HEADER_BYTES + 1];
        assert_eq!(
            parse_signed(&big),
            Err(SnapshotError::Oversized {
                what: "header.bin size in bytes",
                size: MAX_HEADER_BYTES as u64 + 1,
                limit: MAX_HEADER_BYTES as u64
            })
        );
        // Encode refuses to make one: 1 MiB of parameters and 100 000
        // inputs of 200-byte names are 25 MB.
        let (mut h, _) = realistic();
        h.inputs = (0..MAX_INPUTS)
            .map(|i| InputDigest {
                name: format!("log:{i:0200}"),
                size: 0,
                sha256: [0; 32],
            })
            .collect();
        assert!(matches!(
            h.encode(),
            Err(SnapshotError::Oversized {
                what: "header.bin size in bytes",
                ..
            })
        ));
    }

    #[test]
    fn deeply_nested_parameters_are_rejected_without_overflowing_the_stack() {
        let (mut h, _) = realistic();
        h.parameters = "[".repeat(MAX_PARAMETERS_BYTES);
        let e = h.encode().unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        // Deep but balanced and under serde_json's limit of 128: fine.
        h.parameters = format!("{}{}", "[".repeat(100), "]".repeat(100));
        h.encode().unwrap();
    }

    #[test]
    fn the_signature_covers_the_domain_prefix() {
        let (h, bin) = realistic();
        let canonical = &bin[..bin.len() - SIGNATURE_LEN];
        let raw = key().sign(canonical).to_bytes();
        assert_eq!(
            verify_signature(canonical, &raw, &h.publisher),
            Err(SnapshotError::BadSignature {
                publisher: h.publisher
            })
        );
        let mut b = canonical.to_vec();
        b.extend_from_slice(&raw);
        assert!(matches!(
            open(&b, None),
            Err(SnapshotError::BadSignature { .. })
        ));
    }

    #[test]
    fn weak_keys_and_malleable_signatures_are_rejected() {
        // The identity point as the publisher key, and the signature
        // R = identity, S = 0: [0]B = R + [k]A holds for every message, and
        // lax (non-strict) ed25519 verification accepts it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let c = unchecked(|h| h.publisher = identity);
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let key = VerifyingKey::from_bytes(&identity).unwrap();
        let msg = signed_message(&c);
        assert!(key.verify(&msg, &Signature::from_bytes(&sig)).is_ok());
        let mut b = c.clone();
        b.extend_from_slice(&sig);
        assert_eq!(
            open(&b, None),
            Err(SnapshotError::BadSignature {
                publisher: identity
            })
        );
        // S + L: the same signature, non-canonical.
        let (_, bin) = realistic();
        let n = bin.len();
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut b = bin.clone();
        let mut carry = 0u16;
        for i in 0..32 {
            let s = u16::from(b[n - 32 + i]) + u16::from(l[i]) + carry;
            b[n - 32 + i] = s as u8;
            carry = s >> 8;
        }
        assert_eq!(carry, 0, "S + L fits 256 bits");
        assert!(matches!(
            open(&b, None),
            Err(SnapshotError::BadSignature { .. })
        ));
        // A publisher key that is not a point at all.
        let not_a_point = (2u8..)
            .map(|y| {
                let mut k = [0u8; 32];
                k[0] = y;
                k
            })
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .unwrap();
        let c = unchecked(|h| h.publisher = not_a_point);
        let mut b = c.clone();
        b.extend_from_slice(&[0; 64]);
        assert!(matches!(
            open(&b, None),
            Err(SnapshotError::BadSignature { .. })
        ));
    }

    #[test]
    fn canonical_json_sorts_keys_and_is_compact() {
        let v = serde_json::json!({"b": [1, 2.5, {"z": null, "a": "é\n"}], "a": true, "B": -0.0});
        assert_eq!(
            canonical_json(&v),
            r#"{"B":-0.0,"a":true,"b":[1,2.5,{"a":"é\n","z":null}]}"#
        );
        let p = canonical_json(&parameters());
        let back: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(back, parameters());
        assert_eq!(canonical_json(&back), p);
    }

    #[test]
    fn header_hash_is_sha256_of_the_whole_file() {
        let (_, bin) = realistic();
        assert_eq!(header_hash(&bin), <[u8; 32]>::from(Sha256::digest(&bin)));
        assert_eq!(
            hex::encode(header_hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    // ---------------------------------------------------------------------
    // Properties.
    // ---------------------------------------------------------------------

    fn any_string(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect())
    }

    fn finite_nonneg() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
            Just(5e-324),
            (0u64..0x7ff0_0000_0000_0000).prop_map(f64::from_bits),
        ]
    }

    prop_compose! {
        fn any_header()(
            network in any_string(12),
            epoch in any::<u64>(),
            created in any::<i64>(),
            life in 1u64..=u64::MAX,
            prev in any::<[u8; 32]>(),
            parameters in prop_oneof![
                Just("null".to_string()),
                any::<f64>().prop_filter("finite", |x| x.is_finite())
                    .prop_map(|x| serde_json::json!({"alpha": x, "k": [x, "s"]}).to_string()),
                any_string(10).prop_map(|s| serde_json::Value::String(s).to_string()),
            ],
            mut inputs in prop::collection::vec(
                (any_string(6), any::<u64>(), any::<[u8; 32]>())
                    .prop_map(|(name, size, sha256)| InputDigest { name, size, sha256 }),
                0..6,
            ),
            iterations in any::<u64>(),
            residual in finite_nonneg(),
            error_bound in finite_nonneg(),
            device in any_string(8),
            f32 in any::<bool>(),
            agent_count in any::<u64>(),
            merkle_root in any::<[u8; 32]>(),
            body_size in any::<u64>(),
            body_sha256 in any::<[u8; 32]>(),
        ) -> Header {
            sort_inputs(&mut inputs);
            inputs.dedup_by(|a, b| a.name == b.name && a.sha256 == b.sha256);
            Header {
                version: FORMAT_VERSION,
                network,
                epoch,
                created,
                expires: created.checked_add_unsigned(life).unwrap_or(i64::MAX).max(created.saturating_add(1)),
                prev_header_hash: prev,
                parameters,
                inputs,
                iterations,
                residual,
                error_bound,
                device,
                precision: if f32 { "f32" } else { "f64" }.into(),
                agent_count,
                merkle_root,
                body_size,
                body_sha256,
                publisher: key().verifying_key().to_bytes(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_valid_header_round_trips(h in any_header()) {
            let bin = h.sign(&key()).unwrap();
            let (parsed, _) = parse_signed(&bin).unwrap();
            prop_assert_eq!(parsed.encode().unwrap(), h.encode().unwrap());
            prop_assert_eq!(open(&bin, Some(&h.publisher)).unwrap().encode().unwrap(), h.encode().unwrap());
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_are_never_accepted(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            prefix in any::<bool>(),
        ) {
            let mut b = if prefix { [&MAGIC[..], &[0, 1]].concat() } else { Vec::new() };
            b.extend_from_slice(&bytes);
            if let Ok((h, _)) = parse_signed(&b) {
                // Whatever parses is canonical.
                prop_assert_eq!(&h.encode().unwrap()[..], &b[..b.len() - SIGNATURE_LEN]);
            }
            prop_assert!(open(&b, None).is_err());
        }

        #[test]
        fn mutated_headers_are_never_accepted(
            h in any_header(),
            edits in prop::collection::vec(any_edit(), 1..4),
        ) {
            let bin = h.sign(&key()).unwrap();
            let mut b = bin.clone();
            apply(&mut b, &edits);
            if let Ok((parsed, _)) = parse_signed(&b) {
                prop_assert_eq!(&parsed.encode().unwrap()[..], &b[..b.len() - SIGNATURE_LEN]);
            }
            if b != bin {
                prop_assert!(open(&b, None).is_err());
            }
        }

        #[test]
        fn mutated_and_resigned_headers_parse_canonically_or_fail(
            h in any_header(),
            edits in prop::collection::vec(any_edit(), 1..4),
        ) {
            // Re-signed, so the parser alone stands between the bytes and
            // acceptance: whatever it accepts must encode back exactly.
            let mut c = h.encode().unwrap();
            apply(&mut c, &edits);
            let b = resigned(&c);
            if let Ok(parsed) = open(&b, None) {
                prop_assert_eq!(parsed.encode().unwrap(), c);
            }
        }
    }
}
