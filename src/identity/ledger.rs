//! The BAID registry: an append-only, hash-chained ledger that binds agent ids
//! to ed25519 keys and to salted commitments to their configuration (after
//! Lin et al., "Binding Agent ID", arXiv:2512.17538).
//!
//! # Rules
//!
//! - `register` binds a new agent id to a public key and a commitment. It is
//!   signed by the key it registers (proof that the registrant holds it). An
//!   agent id is registered at most once.
//! - `rotate` replaces an agent's key and commitment. It is signed by the
//!   agent's *current* key (the one registered or rotated to last), and from
//!   then on the new key is the agent's key; rotating to the same key only
//!   renews the commitment. The new key does not sign (it may be held
//!   elsewhere, e.g. offline).
//! - Entries are numbered from 0 with no gap (`seq`), each names the hash of
//!   the one before (`prev`), and times never go backwards (equal times are
//!   allowed). An append-only log written by one appender is in time order,
//!   so an entry dated before its predecessor was inserted or edited: it is
//!   rejected rather than tolerated.
//! - Opening a ledger verifies all of it; appending verifies the existing
//!   file first and never extends a broken chain.
//!
//! What a chain cannot show: that entries were cut from the *end*. Pin the
//! head ([`LedgerSummary::head`], with [`LedgerSummary::entries`]) somewhere
//! else (a signed snapshot, a config file) to detect truncation.
//!
//! # File format (JSON Lines)
//!
//! UTF-8, one entry per line, each line terminated by `\n` (0x0a), no blank
//! lines, at most [`MAX_LINE_BYTES`] bytes per line without its `\n`. Each
//! line is exactly the JSON object below, fields in this order, no
//! whitespace, strings escaped as `serde_json` writes them (`\"`, `\\`,
//! `\b \f \n \r \t`, other control characters as `\u00xx`, everything else as
//! itself), so an entry has exactly one spelling:
//!
//! ```text
//! {"seq":0,"kind":"register","agent":"alice","public_key":"<64 hex>","commitment":"<64 hex>","time":1767225600,"prev":"<64 hex>","signature":"<128 hex>"}
//! ```
//!
//! | field | JSON type | value |
//! |---|---|---|
//! | `seq` | integer | position of the entry, from 0 (u64) |
//! | `kind` | string | `register` or `rotate` |
//! | `agent` | string | agent id, 1 to [`MAX_AGENT_BYTES`] bytes of UTF-8 |
//! | `public_key` | string | the agent's key after this entry: 32 bytes, RFC 8032 encoding, lowercase hex |
//! | `commitment` | string | SHA-256(`config` ‖ `salt`), lowercase hex; `salt` is 32 random bytes, `config` is empty when none is given |
//! | `time` | integer | unix seconds (i64) |
//! | `prev` | string | SHA-256 of the previous entry (see *Entry hash*), lowercase hex; 64 zeros for seq 0 |
//! | `signature` | string | ed25519 signature (RFC 8032 Ed25519, 64 bytes) over the entry's canonical bytes, lowercase hex |
//!
//! A reader refuses any other spelling (extra spaces, another field order,
//! uppercase hex, `\u0041` for `A`) as [`LedgerFault::NonCanonical`]: the
//! file is written only by trustmesh, so a difference means it was edited.
//!
//! # Canonical bytes (what is signed)
//!
//! The signature is over a binary encoding, not over the JSON, so that JSON
//! spelling can never change what was signed. All integers big-endian:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 19 | `trustmesh-ledger-v1` (ASCII domain tag) |
//! | 19 | 8 | `seq`, u64 |
//! | 27 | 1 | kind: `0x01` register, `0x02` rotate |
//! | 28 | 4 | `n`, the agent id's length in bytes, u32 |
//! | 32 | n | the agent id, UTF-8 |
//! | 32+n | 32 | public key (RFC 8032 encoding) |
//! | 64+n | 32 | commitment |
//! | 96+n | 8 | `time`, i64 (two's complement) |
//! | 104+n | 32 | `prev` |
//!
//! 136 + n bytes in all. `signature` = Ed25519-Sign(key, canonical bytes)
//! (pure Ed25519, no context or prehash); it is checked with ed25519-dalek's
//! `verify_strict` (canonical `s`, canonical `R`, no small-order `R` or key).
//!
//! # Entry hash (what `prev` names)
//!
//! SHA-256(canonical bytes ‖ signature), the signature as its 64 raw bytes.
//! Covering the signature makes an entry re-signed by anyone (even by its own
//! key, with new content) change its hash, which breaks the next `prev`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::key::{check_public_key, parse_public_key_inner, public_key_hex, sync_parent_dir};
use super::{decode_hex, AgentIdError, FieldError, IdentityError, LedgerFault, Result};

/// Domain tag at the start of an entry's canonical bytes.
pub const LEDGER_DOMAIN: &[u8] = b"trustmesh-ledger-v1";

/// Longest line (without its newline) a reader accepts. An entry with the
/// longest agent id, every byte escaped as `\u00xx`, is about 6.5 KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Longest agent id, in bytes of UTF-8.
pub const MAX_AGENT_BYTES: usize = 1024;

/// `prev` of the first entry.
pub const ZERO_HASH: [u8; 32] = [0; 32];

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Binds a new agent id to its first key; signed by that key.
    Register,
    /// Replaces an agent's key and commitment; signed by its current key.
    Rotate,
}

impl EntryKind {
    /// The `kind` field's text.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Register => "register",
            EntryKind::Rotate => "rotate",
        }
    }

    /// The byte that stands for the kind in the canonical bytes.
    fn code(self) -> u8 {
        match self {
            EntryKind::Register => 1,
            EntryKind::Rotate => 2,
        }
    }
}

/// One ledger entry (one line of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub kind: EntryKind,
    pub agent: String,
    /// The agent's key after this entry.
    pub public_key: VerifyingKey,
    pub commitment: [u8; 32],
    /// Unix seconds.
    pub time: i64,
    pub prev: [u8; 32],
    pub signature: [u8; 64],
}

impl Entry {
    /// The bytes that are signed (module doc, *Canonical bytes*).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let agent = self.agent.as_bytes();
        let mut out = Vec::with_capacity(136 + agent.len());
        out.extend_from_slice(LEDGER_DOMAIN);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(self.kind.code());
        // Agent ids are checked to be at most MAX_AGENT_BYTES when an entry
        // is read or built, so the length fits in a u32.
        out.extend_from_slice(&(agent.len() as u32).to_be_bytes());
        out.extend_from_slice(agent);
        out.extend_from_slice(self.public_key.as_bytes());
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(&self.time.to_be_bytes());
        out.extend_from_slice(&self.prev);
        out
    }

    /// The entry's hash, which the next entry names as `prev` (module doc,
    /// *Entry hash*).
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.canonical_bytes());
        h.update(self.signature);
        h.finalize().into()
    }

    /// The entry's line in the file, without the newline.
    pub fn json_line(&self) -> String {
        let line = self.to_line();
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    fn to_line(&self) -> EntryLine {
        EntryLine {
            seq: self.seq,
            kind: self.kind.as_str().to_owned(),
            agent: self.agent.clone(),
            public_key: public_key_hex(&self.public_key),
            commitment: hex::encode(self.commitment),
            time: self.time,
            prev: hex::encode(self.prev),
            signature: hex::encode(self.signature),
        }
    }

    /// Signs the entry's canonical bytes with `key`.
    fn sign_with(&mut self, key: &SigningKey) {
        self.signature = key.sign(&self.canonical_bytes()).to_bytes();
    }

    /// Strict check of the signature under `key`.
    fn signed_by(&self, key: &VerifyingKey) -> bool {
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.canonical_bytes(), &sig).is_ok()
    }
}

/// The JSON form of an entry; field order here is the order in the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLine {
    seq: u64,
    kind: String,
    agent: String,
    public_key: String,
    commitment: String,
    time: i64,
    prev: String,
    signature: String,
}

impl EntryLine {
    fn decode(&self) -> std::result::Result<Entry, LedgerFault> {
        let field = |field: &'static str, reason: FieldError| LedgerFault::Field { field, reason };
        let kind = match self.kind.as_str() {
            "register" => EntryKind::Register,
            "rotate" => EntryKind::Rotate,
            other => return Err(field("kind", FieldError::UnknownKind(other.to_owned()))),
        };
        check_agent(&self.agent).map_err(|e| field("agent", FieldError::Agent(e)))?;
        let public_key = parse_public_key_inner(&self.public_key)
            .map_err(|e| field("public_key", FieldError::PublicKey(e)))?;
        let commitment =
            decode_hex(&self.commitment).map_err(|e| field("commitment", FieldError::Hex(e)))?;
        let prev = decode_hex(&self.prev).map_err(|e| field("prev", FieldError::Hex(e)))?;
        let signature =
            decode_hex(&self.signature).map_err(|e| field("signature", FieldError::Hex(e)))?;
        Ok(Entry {
            seq: self.seq,
            kind,
            agent: self.agent.clone(),
            public_key,
            commitment,
            time: self.time,
            prev,
            signature,
        })
    }
}

fn check_agent(agent: &str) -> std::result::Result<(), AgentIdError> {
    if agent.is_empty() {
        return Err(AgentIdError::Empty);
    }
    if agent.len() > MAX_AGENT_BYTES {
        return Err(AgentIdError::TooLong {
            len: agent.len(),
            limit: MAX_AGENT_BYTES,
        });
    }
    Ok(())
}

/// SHA-256(`config` ‖ `salt`): the commitment an entry records.
pub fn commitment(config: &[u8], salt: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(config);
    h.update(salt);
    h.finalize().into()
}

/// What a verified ledger holds, in brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSummary {
    /// Number of entries (lines).
    pub entries: u64,
    /// Number of registered agents.
    pub agents: u64,
    /// Hash of the last entry ([`ZERO_HASH`] for an empty ledger): pin it to
    /// detect entries cut from the end.
    pub head: [u8; 32],
    /// Time of the last entry.
    pub last_time: Option<i64>,
}

/// An agent's state after the entries read so far.
#[derive(Debug, Clone)]
struct AgentState {
    key: VerifyingKey,
    commitment: [u8; 32],
    /// 1-based line of its `register`.
    registered_line: u64,
}

/// A fully verified ledger, in memory.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: Vec<Entry>,
    agents: HashMap<String, AgentState>,
    head: [u8; 32],
}

impl Ledger {
    /// Reads and verifies the ledger at `path`. Every failure of an entry is
    /// an [`IdentityError::LedgerEntry`] naming the line and seq.
    pub fn open(path: &Path) -> Result<Ledger> {
        let file = File::open(path).map_err(|source| IdentityError::LedgerRead { source })?;
        Ledger::read(file)
    }

    /// Reads and verifies a ledger from any reader (see [`Ledger::open`]).
    pub fn read<R: Read>(reader: R) -> Result<Ledger> {
        let mut reader = BufReader::with_capacity(MAX_LINE_BYTES, reader);
        let mut ledger = Ledger::default();
        let mut buf = Vec::new();
        let mut line_no: u64 = 0;
        loop {
            line_no += 1;
            let at = |fault| IdentityError::LedgerEntry {
                line: line_no,
                seq: None,
                fault,
            };
            match next_line(&mut reader, &mut buf, MAX_LINE_BYTES)
                .map_err(|source| IdentityError::LedgerRead { source })?
            {
                NextLine::Eof => return Ok(ledger),
                NextLine::TooLong => {
                    return Err(at(LedgerFault::Oversized {
                        limit: MAX_LINE_BYTES,
                    }))
                }
                NextLine::Partial => return Err(at(LedgerFault::Incomplete)),
                NextLine::Line => ledger.push_line(line_no, &buf)?,
            }
        }
    }

    /// Verifies one line (without its newline) as the next entry and adds it.
    fn push_line(&mut self, line_no: u64, bytes: &[u8]) -> Result<()> {
        let fail = |seq: Option<u64>, fault| IdentityError::LedgerEntry {
            line: line_no,
            seq,
            fault,
        };
        if bytes.is_empty() {
            return Err(fail(None, LedgerFault::EmptyLine));
        }
        let parsed: EntryLine = serde_json::from_slice(bytes)
            .map_err(|source| fail(None, LedgerFault::Malformed { source }))?;
        let seq = Some(parsed.seq);
        let entry = parsed.decode().map_err(|f| fail(seq, f))?;
        // One spelling per entry: the line must be what we would write.
        if entry.json_line().as_bytes() != bytes {
            return Err(fail(seq, LedgerFault::NonCanonical));
        }
        self.check_next(&entry).map_err(|f| fail(seq, f))?;
        self.accept(entry, line_no);
        Ok(())
    }

    /// The checks an entry must pass to follow the entries so far. The
    /// structural checks (seq, prev, time) come before the signature: they
    /// name the cause (a removed or moved entry, an edit of the entry
    /// before) where a failed signature could only say "edited".
    fn check_next(&self, entry: &Entry) -> std::result::Result<(), LedgerFault> {
        let expected = self.entries.len() as u64;
        if entry.seq != expected {
            return Err(LedgerFault::Seq {
                expected,
                found: entry.seq,
            });
        }
        if entry.prev != self.head {
            return Err(LedgerFault::Prev);
        }
        if let Some(last) = self.entries.last() {
            if entry.time < last.time {
                return Err(LedgerFault::TimeBackwards {
                    time: entry.time,
                    previous: last.time,
                });
            }
        }
        match (entry.kind, self.agents.get(&entry.agent)) {
            (EntryKind::Register, Some(state)) => Err(LedgerFault::DuplicateRegistration {
                agent: entry.agent.clone(),
                first_line: state.registered_line,
            }),
            (EntryKind::Register, None) => {
                if entry.signed_by(&entry.public_key) {
                    Ok(())
                } else {
                    Err(LedgerFault::BadSignature)
                }
            }
            (EntryKind::Rotate, None) => Err(LedgerFault::UnknownAgent {
                agent: entry.agent.clone(),
            }),
            (EntryKind::Rotate, Some(state)) => {
                if entry.signed_by(&state.key) {
                    Ok(())
                } else {
                    Err(LedgerFault::NotSignedByCurrentKey {
                        agent: entry.agent.clone(),
                        current: public_key_hex(&state.key),
                    })
                }
            }
        }
    }

    /// Adds a checked entry.
    fn accept(&mut self, entry: Entry, line_no: u64) {
        self.head = entry.hash();
        let registered_line = match self.agents.get(&entry.agent) {
            Some(s) => s.registered_line,
            None => line_no,
        };
        self.agents.insert(
            entry.agent.clone(),
            AgentState {
                key: entry.public_key,
                commitment: entry.commitment,
                registered_line,
            },
        );
        self.entries.push(entry);
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for a ledger with no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hash of the last entry ([`ZERO_HASH`] when empty).
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// The agent's current key (after its last rotation), if registered.
    pub fn key_of(&self, agent: &str) -> Option<VerifyingKey> {
        self.agents.get(agent).map(|s| s.key)
    }

    /// The agent's current commitment, if registered.
    pub fn commitment_of(&self, agent: &str) -> Option<[u8; 32]> {
        self.agents.get(agent).map(|s| s.commitment)
    }

    /// Checks that `config` and `salt` are what the agent committed to in its
    /// latest entry (its registration, or its last rotation). A registration
    /// without a configuration is revealed with an empty `config`.
    pub fn reveal(&self, agent: &str, config: &[u8], salt: &[u8; 32]) -> Result<()> {
        let state = self
            .agents
            .get(agent)
            .ok_or_else(|| IdentityError::UnknownAgent {
                agent: agent.to_owned(),
            })?;
        if commitment(config, salt) == state.commitment {
            Ok(())
        } else {
            Err(IdentityError::CommitmentMismatch {
                agent: agent.to_owned(),
            })
        }
    }

    /// Counts and head of the ledger.
    pub fn summary(&self) -> LedgerSummary {
        LedgerSummary {
            entries: self.entries.len() as u64,
            agents: self.agents.len() as u64,
            head: self.head,
            last_time: self.entries.last().map(|e| e.time),
        }
    }

    /// Registers `agent` with `key` (the entry is signed by `key`) and a
    /// commitment to `config` (empty if `None`) with a fresh random salt,
    /// appending to the ledger at `path` (created if absent). Returns the
    /// entry and the salt: keep the salt (and the config) to reveal later.
    pub fn append_register(
        path: &Path,
        key: &SigningKey,
        agent: &str,
        config: Option<&[u8]>,
        time: i64,
    ) -> Result<(Entry, [u8; 32])> {
        check_agent(agent).map_err(IdentityError::AgentId)?;
        append(path, agent, config, time, |ledger| {
            if let Some(state) = ledger.agents.get(agent) {
                return Err(IdentityError::AlreadyRegistered {
                    agent: agent.to_owned(),
                    line: state.registered_line,
                });
            }
            Ok((EntryKind::Register, key.verifying_key(), key))
        })
    }

    /// Rotates `agent` to `new_key` with a commitment to `config` (empty if
    /// `None`) and a fresh salt; the entry is signed by `old_key`, which must
    /// be the agent's current key. Returns the entry and the salt.
    pub fn append_rotate(
        path: &Path,
        old_key: &SigningKey,
        new_key: &VerifyingKey,
        agent: &str,
        config: Option<&[u8]>,
        time: i64,
    ) -> Result<(Entry, [u8; 32])> {
        check_agent(agent).map_err(IdentityError::AgentId)?;
        check_public_key(new_key).map_err(IdentityError::PublicKey)?;
        append(path, agent, config, time, |ledger| {
            let state = ledger
                .agents
                .get(agent)
                .ok_or_else(|| IdentityError::UnknownAgent {
                    agent: agent.to_owned(),
                })?;
            if state.key != old_key.verifying_key() {
                return Err(IdentityError::NotCurrentKey {
                    agent: agent.to_owned(),
                    current: public_key_hex(&state.key),
                });
            }
            Ok((EntryKind::Rotate, *new_key, old_key))
        })
    }
}

/// Reads and verifies the ledger at `path`, returning its summary.
pub fn verify_ledger(path: &Path) -> Result<LedgerSummary> {
    Ledger::open(path).map(|l| l.summary())
}

/// The shared part of an append: lock, verify the whole file, let `decide`
/// check the request against it (returning the kind, the key the entry
/// records and the key that signs), build and sign the entry, write its line
/// with one write, fsync.
fn append<'k>(
    path: &Path,
    agent: &str,
    config: Option<&[u8]>,
    time: i64,
    decide: impl FnOnce(&Ledger) -> Result<(EntryKind, VerifyingKey, &'k SigningKey)>,
) -> Result<(Entry, [u8; 32])> {
    let _lock = LockFile::acquire(path)?;
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|source| IdentityError::LedgerWrite { source })?;
    // Never extend a broken chain: the whole file is verified first, under
    // the lock, from the same open file we append to.
    let ledger = Ledger::read(&file)?;
    let (kind, public_key, signer) = decide(&ledger)?;
    if let Some(last) = ledger.entries.last() {
        if time < last.time {
            return Err(IdentityError::TimeBackwards {
                time,
                last: last.time,
            });
        }
    }
    let mut salt = [0u8; 32];
    OsRng.fill_bytes(&mut salt);
    let mut entry = Entry {
        seq: ledger.entries.len() as u64,
        kind,
        agent: agent.to_owned(),
        public_key,
        commitment: commitment(config.unwrap_or_default(), &salt),
        time,
        prev: ledger.head,
        signature: [0; 64],
    };
    entry.sign_with(signer);
    let mut line = entry.json_line().into_bytes();
    line.push(b'\n');

    let old_len = file
        .metadata()
        .map_err(|source| IdentityError::LedgerWrite { source })?
        .len();
    // One write of the whole line (O_APPEND), then fsync: a reader sees the
    // old file or the old file plus one complete line, except after a crash
    // mid-write, which leaves an incomplete last line that every reader
    // refuses (LedgerFault::Incomplete) until it is cut off.
    let written = (&file).write_all(&line).and_then(|()| file.sync_all());
    if let Err(source) = written {
        // Best effort: take back a partial line so the chain stays valid.
        let _ = file.set_len(old_len);
        let _ = file.sync_all();
        return Err(IdentityError::LedgerWrite { source });
    }
    if old_len == 0 {
        sync_parent_dir(path);
    }
    Ok((entry, salt))
}

/// `<ledger>.lock`, created exclusively for the time of an append and
/// removed after (like git's `index.lock`): two appenders would otherwise
/// both verify the same head and write two entries with the same seq.
/// (`File::lock` would need Rust 1.89; trustmesh supports 1.85.)
struct LockFile {
    path: PathBuf,
}

impl LockFile {
    fn acquire(ledger: &Path) -> Result<LockFile> {
        let mut name = ledger.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => Ok(LockFile { path }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(IdentityError::LedgerLocked { lock: path })
            }
            Err(source) => Err(IdentityError::LedgerWrite { source }),
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

enum NextLine {
    /// A complete line is in the buffer (without its newline).
    Line,
    /// The file ended after some bytes that no newline terminates.
    Partial,
    /// The line is longer than the cap (not read further).
    TooLong,
    /// End of file at a line boundary.
    Eof,
}

/// Reads the next line into `buf`, holding at most `cap` bytes of it, so an
/// enormous line costs no more memory than the cap.
fn next_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<NextLine> {
    buf.clear();
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                NextLine::Eof
            } else {
                NextLine::Partial
            });
        }
        let (content, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if buf.len() + content > cap {
            return Ok(NextLine::TooLong);
        }
        buf.extend_from_slice(&avail[..content]);
        r.consume(content + usize::from(done));
        if done {
            return Ok(NextLine::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{generate, HexError, PublicKeyError};
    use proptest::prelude::*;

    /// A ledger of four entries on disk:
    /// line 1 seq 0 register alice (a), line 2 seq 1 register bob (b),
    /// line 3 seq 2 rotate alice a → a2, line 4 seq 3 register carol (c).
    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        a: SigningKey,
        a2: SigningKey,
        b: SigningKey,
        c: SigningKey,
        salt_a2: [u8; 32],
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.jsonl");
        let (a, a2, b, c) = (generate(), generate(), generate(), generate());
        Ledger::append_register(&path, &a, "alice", Some(b"model-a"), 100).unwrap();
        Ledger::append_register(&path, &b, "bob", None, 110).unwrap();
        let (_, salt_a2) = Ledger::append_rotate(
            &path,
            &a,
            &a2.verifying_key(),
            "alice",
            Some(b"model-a2"),
            120,
        )
        .unwrap();
        Ledger::append_register(&path, &c, "carol", None, 130).unwrap();
        Fixture {
            _dir: dir,
            path,
            a,
            a2,
            b,
            c,
            salt_a2,
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    fn decode(line: &str) -> Entry {
        serde_json::from_str::<EntryLine>(line)
            .unwrap()
            .decode()
            .unwrap()
    }

    /// Changes entry `i` (0-based) with `f`, then re-signs it with `resign`
    /// if given (else keeps the old signature).
    fn edit(path: &Path, i: usize, f: impl FnOnce(&mut Entry), resign: Option<&SigningKey>) {
        let mut ls = lines(path);
        let mut e = decode(&ls[i]);
        f(&mut e);
        if let Some(k) = resign {
            e.sign_with(k);
        }
        ls[i] = e.json_line();
        write_lines(path, &ls);
    }

    /// A correctly chained next entry (seq and prev right) signed by `signer`.
    fn forged_next(
        path: &Path,
        kind: EntryKind,
        agent: &str,
        key: VerifyingKey,
        signer: &SigningKey,
        time: i64,
    ) -> String {
        let l = Ledger::open(path).unwrap();
        let mut e = Entry {
            seq: l.len() as u64,
            kind,
            agent: agent.to_owned(),
            public_key: key,
            commitment: [7; 32],
            time,
            prev: l.head(),
            signature: [0; 64],
        };
        e.sign_with(signer);
        e.json_line()
    }

    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    /// The (line, seq, fault) of the error opening `path` gives.
    fn fault(path: &Path) -> (u64, Option<u64>, LedgerFault) {
        match Ledger::open(path) {
            Err(IdentityError::LedgerEntry { line, seq, fault }) => (line, seq, fault),
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn good_ledger_verifies() {
        let fx = fixture();
        let l = Ledger::open(&fx.path).unwrap();
        assert_eq!(l.len(), 4);
        let s = verify_ledger(&fx.path).unwrap();
        assert_eq!(s.entries, 4);
        assert_eq!(s.agents, 3);
        assert_eq!(s.last_time, Some(130));
        assert_eq!(s.head, l.entries()[3].hash());
        assert_eq!(l.key_of("alice"), Some(fx.a2.verifying_key()));
        assert_eq!(l.key_of("bob"), Some(fx.b.verifying_key()));
        assert_eq!(l.key_of("carol"), Some(fx.c.verifying_key()));
        assert_eq!(l.key_of("dave"), None);
        l.reveal("alice", b"model-a2", &fx.salt_a2).unwrap();
        for (i, e) in l.entries().iter().enumerate() {
            assert_eq!(e.seq, i as u64);
        }
        assert_eq!(l.entries()[0].prev, ZERO_HASH);
        assert_eq!(l.entries()[1].prev, l.entries()[0].hash());
        // The rotation is signed by the old key and records the new one.
        let rot = &l.entries()[2];
        assert_eq!(rot.kind, EntryKind::Rotate);
        assert!(rot.signed_by(&fx.a.verifying_key()));
        assert_eq!(rot.public_key, fx.a2.verifying_key());
        // No lock file is left behind.
        assert!(!fx.path.with_extension("jsonl.lock").exists());
    }

    #[test]
    fn reveal_checks_the_latest_commitment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let k = generate();
        let (e, salt) = Ledger::append_register(&path, &k, "x", Some(b"cfg-1"), 1).unwrap();
        assert_eq!(e.commitment, commitment(b"cfg-1", &salt));
        let l = Ledger::open(&path).unwrap();
        l.reveal("x", b"cfg-1", &salt).unwrap();
        assert!(matches!(
            l.reveal("x", b"cfg-2", &salt),
            Err(IdentityError::CommitmentMismatch { ref agent }) if agent == "x"
        ));
        let mut other = salt;
        other[0] ^= 1;
        assert!(matches!(
            l.reveal("x", b"cfg-1", &other),
            Err(IdentityError::CommitmentMismatch { .. })
        ));
        assert!(matches!(
            l.reveal("y", b"cfg-1", &salt),
            Err(IdentityError::UnknownAgent { .. })
        ));
        // After a rotation the new commitment counts, the old one not.
        let k2 = generate();
        let (_, salt2) =
            Ledger::append_rotate(&path, &k, &k2.verifying_key(), "x", None, 2).unwrap();
        let l = Ledger::open(&path).unwrap();
        l.reveal("x", b"", &salt2).unwrap();
        assert!(l.reveal("x", b"cfg-1", &salt).is_err());
        // Rotating to the same key renews only the commitment.
        let (_, salt3) =
            Ledger::append_rotate(&path, &k2, &k2.verifying_key(), "x", Some(b"cfg-3"), 2).unwrap();
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.key_of("x"), Some(k2.verifying_key()));
        l.reveal("x", b"cfg-3", &salt3).unwrap();
        // Fresh salts: the same config twice commits differently.
        let (e3, _) = Ledger::append_register(&path, &generate(), "z", Some(b"cfg-1"), 3).unwrap();
        assert_ne!(e3.commitment, e.commitment);
    }

    #[test]
    fn file_format_is_exact() {
        let fx = fixture();
        let text = std::fs::read_to_string(&fx.path).unwrap();
        assert!(text.ends_with('\n'));
        let first = text.lines().next().unwrap();
        let e = decode(first);
        let want = format!(
            "{{\"seq\":0,\"kind\":\"register\",\"agent\":\"alice\",\"public_key\":\"{}\",\
             \"commitment\":\"{}\",\"time\":100,\"prev\":\"{}\",\"signature\":\"{}\"}}",
            hex::encode(fx.a.verifying_key().as_bytes()),
            hex::encode(e.commitment),
            "0".repeat(64),
            hex::encode(e.signature),
        );
        assert_eq!(first, want);
    }

    #[test]
    fn canonical_bytes_layout() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let e = Entry {
            seq: 0x0102030405060708,
            kind: EntryKind::Rotate,
            agent: "ab".into(),
            public_key: key.verifying_key(),
            commitment: [0xcc; 32],
            time: -1,
            prev: [0xdd; 32],
            signature: [0xee; 64],
        };
        let b = e.canonical_bytes();
        let mut want = b"trustmesh-ledger-v1".to_vec();
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        want.push(2);
        want.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        want.extend_from_slice(key.verifying_key().as_bytes());
        want.extend_from_slice(&[0xcc; 32]);
        want.extend_from_slice(&[0xff; 8]);
        want.extend_from_slice(&[0xdd; 32]);
        assert_eq!(b, want);
        assert_eq!(b.len(), 136 + 2);
        let mut h = Sha256::new();
        h.update(&want);
        h.update([0xee; 64]);
        assert_eq!(e.hash(), <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn edited_field_is_named() {
        // bob's commitment (line 2), not re-signed.
        let fx = fixture();
        edit(&fx.path, 1, |e| e.commitment[0] ^= 1, None);
        let (line, seq, f) = fault(&fx.path);
        assert_eq!((line, seq), (2, Some(1)));
        assert!(matches!(f, LedgerFault::BadSignature), "{f:?}");

        // The rotation's time (line 3): not signed by alice's current key.
        let fx = fixture();
        edit(&fx.path, 2, |e| e.time = 125, None);
        let (line, seq, f) = fault(&fx.path);
        assert_eq!((line, seq), (3, Some(2)));
        match f {
            LedgerFault::NotSignedByCurrentKey { agent, current } => {
                assert_eq!(agent, "alice");
                assert_eq!(current, public_key_hex(&fx.a.verifying_key()));
            }
            other => panic!("{other:?}"),
        }

        // The last entry's agent id; and a flipped signature bit.
        let fx = fixture();
        edit(&fx.path, 3, |e| e.agent = "caro1".into(), None);
        assert!(matches!(
            fault(&fx.path),
            (4, Some(3), LedgerFault::BadSignature)
        ));
        let fx = fixture();
        edit(&fx.path, 3, |e| e.signature[10] ^= 4, None);
        assert!(matches!(
            fault(&fx.path),
            (4, Some(3), LedgerFault::BadSignature)
        ));

        // An edited prev is caught by the chain before the signature.
        let fx = fixture();
        edit(&fx.path, 1, |e| e.prev[0] ^= 1, None);
        assert!(matches!(fault(&fx.path), (2, Some(1), LedgerFault::Prev)));
    }

    #[test]
    fn removed_entry_is_named() {
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.remove(1);
        write_lines(&fx.path, &ls);
        let (line, seq, f) = fault(&fx.path);
        assert_eq!((line, seq), (2, Some(2)));
        assert!(
            matches!(
                f,
                LedgerFault::Seq {
                    expected: 1,
                    found: 2
                }
            ),
            "{f:?}"
        );

        // Removing the first entry: line 1 now holds seq 1.
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.remove(0);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (
                1,
                Some(1),
                LedgerFault::Seq {
                    expected: 0,
                    found: 1
                }
            )
        ));

        // Removed and the rest renumbered (and re-signed by their own keys):
        // the chain still breaks where the gap is.
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.remove(1);
        write_lines(&fx.path, &ls);
        edit(&fx.path, 1, |e| e.seq = 1, Some(&fx.a));
        assert!(matches!(fault(&fx.path), (2, Some(1), LedgerFault::Prev)));
    }

    #[test]
    fn reordered_entries_are_named() {
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.swap(1, 3);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (
                2,
                Some(3),
                LedgerFault::Seq {
                    expected: 1,
                    found: 3
                }
            )
        ));
        // Swapped and renumbered without the keys: the signature fails...
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.swap(1, 3);
        write_lines(&fx.path, &ls);
        edit(&fx.path, 1, |e| e.seq = 1, None);
        // ...but the chain (checked first) already names the line.
        assert!(matches!(fault(&fx.path), (2, Some(1), LedgerFault::Prev)));
        // Duplicated line.
        let fx = fixture();
        let mut ls = lines(&fx.path);
        let dup = ls[1].clone();
        ls.insert(2, dup);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (
                3,
                Some(1),
                LedgerFault::Seq {
                    expected: 2,
                    found: 1
                }
            )
        ));
    }

    #[test]
    fn re_signed_entries_are_named() {
        // Re-signed with the agent's own key: valid alone, but the next
        // entry's prev names the original.
        let fx = fixture();
        edit(&fx.path, 1, |e| e.commitment = [9; 32], Some(&fx.b));
        assert!(matches!(fault(&fx.path), (3, Some(2), LedgerFault::Prev)));

        // Re-signed by another key than the registered one.
        let fx = fixture();
        let mallory = generate();
        edit(&fx.path, 1, |e| e.commitment = [9; 32], Some(&mallory));
        assert!(matches!(
            fault(&fx.path),
            (2, Some(1), LedgerFault::BadSignature)
        ));

        // A rotation re-signed by its new key instead of the old one.
        let fx = fixture();
        edit(&fx.path, 2, |e| e.time = 121, Some(&fx.a2));
        assert!(matches!(
            fault(&fx.path),
            (3, Some(2), LedgerFault::NotSignedByCurrentKey { .. })
        ));

        // bob's registration replaced with mallory's key, self-consistent:
        // the next entry's prev breaks.
        let fx = fixture();
        edit(
            &fx.path,
            1,
            |e| e.public_key = mallory.verifying_key(),
            Some(&mallory),
        );
        assert!(matches!(fault(&fx.path), (3, Some(2), LedgerFault::Prev)));
    }

    /// The limit of any hash chain: the last entry, replaced wholesale by a
    /// self-consistent one, verifies; only the head (to pin) changes.
    #[test]
    fn replaced_last_entry_changes_the_head() {
        let fx = fixture();
        let head = verify_ledger(&fx.path).unwrap().head;
        let mallory = generate();
        edit(
            &fx.path,
            3,
            |e| e.public_key = mallory.verifying_key(),
            Some(&mallory),
        );
        let after = verify_ledger(&fx.path).unwrap();
        assert_eq!(after.entries, 4);
        assert_ne!(after.head, head);
    }

    #[test]
    fn duplicate_registration_is_named() {
        let fx = fixture();
        let mallory = generate();
        let line = forged_next(
            &fx.path,
            EntryKind::Register,
            "bob",
            mallory.verifying_key(),
            &mallory,
            140,
        );
        append_raw(&fx.path, format!("{line}\n").as_bytes());
        match fault(&fx.path) {
            (5, Some(4), LedgerFault::DuplicateRegistration { agent, first_line }) => {
                assert_eq!(agent, "bob");
                assert_eq!(first_line, 2);
            }
            other => panic!("{other:?}"),
        }
        // Re-registering alice (rotated) still points at her first line.
        let fx = fixture();
        let line = forged_next(
            &fx.path,
            EntryKind::Register,
            "alice",
            fx.a.verifying_key(),
            &fx.a,
            140,
        );
        append_raw(&fx.path, format!("{line}\n").as_bytes());
        assert!(matches!(
            fault(&fx.path),
            (
                5,
                Some(4),
                LedgerFault::DuplicateRegistration { first_line: 1, .. }
            )
        ));
    }

    #[test]
    fn rotation_not_by_current_key_is_named() {
        // By a stranger.
        let fx = fixture();
        let mallory = generate();
        let line = forged_next(
            &fx.path,
            EntryKind::Rotate,
            "bob",
            mallory.verifying_key(),
            &mallory,
            140,
        );
        append_raw(&fx.path, format!("{line}\n").as_bytes());
        assert!(matches!(
            fault(&fx.path),
            (5, Some(4), LedgerFault::NotSignedByCurrentKey { .. })
        ));
        // By alice's old key, rotated away on line 3.
        let fx = fixture();
        let line = forged_next(
            &fx.path,
            EntryKind::Rotate,
            "alice",
            mallory.verifying_key(),
            &fx.a,
            140,
        );
        append_raw(&fx.path, format!("{line}\n").as_bytes());
        match fault(&fx.path) {
            (5, Some(4), LedgerFault::NotSignedByCurrentKey { current, .. }) => {
                assert_eq!(current, public_key_hex(&fx.a2.verifying_key()))
            }
            other => panic!("{other:?}"),
        }
        // A rotation of an agent never registered.
        let fx = fixture();
        let line = forged_next(
            &fx.path,
            EntryKind::Rotate,
            "dave",
            mallory.verifying_key(),
            &mallory,
            140,
        );
        append_raw(&fx.path, format!("{line}\n").as_bytes());
        assert!(matches!(
            fault(&fx.path),
            (5, Some(4), LedgerFault::UnknownAgent { .. })
        ));
    }

    #[test]
    fn time_going_backwards_is_named() {
        let fx = fixture();
        let d = generate();
        let line = forged_next(
            &fx.path,
            EntryKind::Register,
            "dave",
            d.verifying_key(),
            &d,
            129,
        );
        append_raw(&fx.path, format!("{line}\n").as_bytes());
        assert!(matches!(
            fault(&fx.path),
            (
                5,
                Some(4),
                LedgerFault::TimeBackwards {
                    time: 129,
                    previous: 130
                }
            )
        ));
        // An equal time is fine.
        let fx = fixture();
        let line = forged_next(
            &fx.path,
            EntryKind::Register,
            "dave",
            d.verifying_key(),
            &d,
            130,
        );
        append_raw(&fx.path, format!("{line}\n").as_bytes());
        assert_eq!(verify_ledger(&fx.path).unwrap().entries, 5);
    }

    #[test]
    fn malformed_lines_are_named() {
        let bad = [
            "not json",
            "{\"seq\":1}",
            "[1,2,3]",
            "{\"seq\":\"1\",\"kind\":\"register\"}",
        ];
        for text in bad {
            let fx = fixture();
            let mut ls = lines(&fx.path);
            ls.insert(2, text.to_owned());
            write_lines(&fx.path, &ls);
            let (line, seq, f) = fault(&fx.path);
            assert_eq!((line, seq), (3, None), "{text}");
            assert!(matches!(f, LedgerFault::Malformed { .. }), "{text}: {f:?}");
        }
        // An unknown extra field.
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls[1] = ls[1].replacen('{', "{\"extra\":1,", 1);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (2, None, LedgerFault::Malformed { .. })
        ));
        // The JSON error stays the fault's source.
        let err = Ledger::open(&fx.path).unwrap_err();
        let fault_err = std::error::Error::source(&err).unwrap();
        let json = std::error::Error::source(fault_err).unwrap();
        assert!(json.downcast_ref::<serde_json::Error>().is_some());
        // Not UTF-8.
        let fx = fixture();
        append_raw(&fx.path, b"{\"seq\":4,\xff}\n");
        assert!(matches!(
            fault(&fx.path),
            (5, None, LedgerFault::Malformed { .. })
        ));
    }

    #[test]
    fn bad_fields_and_spelling_are_named() {
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls[1] = ls[1].replacen("\"seq\":1,", "\"seq\": 1,", 1);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (2, Some(1), LedgerFault::NonCanonical)
        ));

        let fx = fixture();
        let mut ls = lines(&fx.path);
        let e = decode(&ls[1]);
        let prev = hex::encode(e.prev);
        ls[1] = ls[1].replace(&prev, &prev.to_uppercase());
        write_lines(&fx.path, &ls);
        match fault(&fx.path) {
            (
                2,
                Some(1),
                LedgerFault::Field {
                    field: "prev",
                    reason,
                },
            ) => {
                assert!(matches!(reason, FieldError::Hex(HexError::NotHex { .. })))
            }
            other => panic!("{other:?}"),
        }

        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls[1] = ls[1].replacen("\"register\"", "\"revoke\"", 1);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (2, Some(1), LedgerFault::Field { field: "kind", .. })
        ));

        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls[1] = ls[1].replacen("\"bob\"", "\"\"", 1);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (
                2,
                Some(1),
                LedgerFault::Field {
                    field: "agent",
                    reason: FieldError::Agent(AgentIdError::Empty)
                }
            )
        ));

        // A public key that is the identity point.
        let fx = fixture();
        let mut ls = lines(&fx.path);
        let pk = public_key_hex(&fx.b.verifying_key());
        let mut id = "0".repeat(64);
        id.replace_range(0..2, "01");
        ls[1] = ls[1].replace(&pk, &id);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (
                2,
                Some(1),
                LedgerFault::Field {
                    field: "public_key",
                    reason: FieldError::PublicKey(PublicKeyError::Weak)
                }
            )
        ));

        // An escape where a plain character belongs.
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls[1] = ls[1].replacen("\"bob\"", "\"\\u0062ob\"", 1);
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (2, Some(1), LedgerFault::NonCanonical)
        ));
    }

    #[test]
    fn oversized_line_is_named() {
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.insert(2, "x".repeat(MAX_LINE_BYTES + 1));
        write_lines(&fx.path, &ls);
        let (line, seq, f) = fault(&fx.path);
        assert_eq!((line, seq), (3, None));
        assert!(matches!(f, LedgerFault::Oversized { limit } if limit == MAX_LINE_BYTES));
        // Exactly at the cap the line is read (and is then just malformed).
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.insert(2, "x".repeat(MAX_LINE_BYTES));
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (3, None, LedgerFault::Malformed { .. })
        ));
        // A huge last line without a newline is still "oversized".
        let fx = fixture();
        append_raw(&fx.path, &vec![b'{'; 4 * MAX_LINE_BYTES]);
        assert!(matches!(
            fault(&fx.path),
            (5, None, LedgerFault::Oversized { .. })
        ));
    }

    #[test]
    fn trailing_garbage_and_torn_writes_are_named() {
        let fx = fixture();
        append_raw(&fx.path, b"garbage");
        assert!(matches!(
            fault(&fx.path),
            (5, None, LedgerFault::Incomplete)
        ));

        let fx = fixture();
        append_raw(&fx.path, b"garbage\n");
        assert!(matches!(
            fault(&fx.path),
            (5, None, LedgerFault::Malformed { .. })
        ));

        // Half of a real entry: a torn append.
        let fx = fixture();
        let d = generate();
        let line = forged_next(
            &fx.path,
            EntryKind::Register,
            "dave",
            d.verifying_key(),
            &d,
            140,
        );
        append_raw(&fx.path, &line.as_bytes()[..line.len() / 2]);
        assert!(matches!(
            fault(&fx.path),
            (5, None, LedgerFault::Incomplete)
        ));
        // A complete entry missing only its newline is refused too.
        let fx = fixture();
        append_raw(&fx.path, line.as_bytes());
        assert!(matches!(
            fault(&fx.path),
            (5, None, LedgerFault::Incomplete)
        ));

        let fx = fixture();
        append_raw(&fx.path, b"\n");
        assert!(matches!(fault(&fx.path), (5, None, LedgerFault::EmptyLine)));
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls.insert(1, String::new());
        write_lines(&fx.path, &ls);
        assert!(matches!(fault(&fx.path), (2, None, LedgerFault::EmptyLine)));
        let fx = fixture();
        let mut ls = lines(&fx.path);
        ls[0].push('\r');
        write_lines(&fx.path, &ls);
        assert!(matches!(
            fault(&fx.path),
            (1, Some(0), LedgerFault::NonCanonical)
        ));
    }

    #[test]
    fn error_text_names_line_and_seq() {
        let fx = fixture();
        edit(&fx.path, 1, |e| e.commitment[0] ^= 1, None);
        let text = Ledger::open(&fx.path).unwrap_err().to_string();
        assert!(
            text.starts_with("line 2 (seq 1): signature does not verify"),
            "{text}"
        );
    }

    #[test]
    fn append_never_extends_a_broken_chain() {
        let fx = fixture();
        edit(&fx.path, 1, |e| e.commitment[0] ^= 1, None);
        let before = std::fs::read(&fx.path).unwrap();
        let err = Ledger::append_register(&fx.path, &generate(), "dave", None, 200).unwrap_err();
        assert!(
            matches!(err, IdentityError::LedgerEntry { line: 2, .. }),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&fx.path).unwrap(), before);
        // A torn last line blocks appends too.
        let fx = fixture();
        append_raw(&fx.path, b"{\"seq\":4");
        let before = std::fs::read(&fx.path).unwrap();
        assert!(Ledger::append_register(&fx.path, &generate(), "dave", None, 200).is_err());
        assert_eq!(std::fs::read(&fx.path).unwrap(), before);
    }

    #[test]
    fn append_refusals_leave_the_file_alone() {
        let fx = fixture();
        let before = std::fs::read(&fx.path).unwrap();
        let check = |r: Result<(Entry, [u8; 32])>| {
            assert_eq!(std::fs::read(&fx.path).unwrap(), before);
            r.unwrap_err()
        };
        let e = check(Ledger::append_register(
            &fx.path,
            &generate(),
            "bob",
            None,
            200,
        ));
        assert!(
            matches!(e, IdentityError::AlreadyRegistered { line: 2, .. }),
            "{e:?}"
        );
        let e = check(Ledger::append_rotate(
            &fx.path,
            &fx.a,
            &generate().verifying_key(),
            "alice",
            None,
            200,
        ));
        match e {
            IdentityError::NotCurrentKey { agent, current } => {
                assert_eq!(agent, "alice");
                assert_eq!(current, public_key_hex(&fx.a2.verifying_key()));
            }
            other => panic!("{other:?}"),
        }
        let e = check(Ledger::append_rotate(
            &fx.path,
            &fx.a,
            &generate().verifying_key(),
            "dave",
            None,
            200,
        ));
        assert!(matches!(e, IdentityError::UnknownAgent { .. }), "{e:?}");
        let e = check(Ledger::append_register(
            &fx.path,
            &generate(),
            "dave",
            None,
            129,
        ));
        assert!(
            matches!(
                e,
                IdentityError::TimeBackwards {
                    time: 129,
                    last: 130
                }
            ),
            "{e:?}"
        );
        let e = check(Ledger::append_register(
            &fx.path,
            &generate(),
            "",
            None,
            200,
        ));
        assert!(matches!(e, IdentityError::AgentId(AgentIdError::Empty)));
        let long = "x".repeat(MAX_AGENT_BYTES + 1);
        let e = check(Ledger::append_register(
            &fx.path,
            &generate(),
            &long,
            None,
            200,
        ));
        assert!(matches!(
            e,
            IdentityError::AgentId(AgentIdError::TooLong { .. })
        ));
        let mut id = [0u8; 32];
        id[0] = 1;
        let weak = VerifyingKey::from_bytes(&id).unwrap();
        let e = check(Ledger::append_rotate(
            &fx.path, &fx.a2, &weak, "alice", None, 200,
        ));
        assert!(matches!(e, IdentityError::PublicKey(PublicKeyError::Weak)));
        // And the lock is released after each refusal.
        Ledger::append_register(&fx.path, &generate(), "dave", None, 200).unwrap();
        assert_eq!(verify_ledger(&fx.path).unwrap().entries, 5);
        // The longest agent id fits a line.
        Ledger::append_register(&fx.path, &generate(), &"\u{1}".repeat(1024), None, 200).unwrap();
        assert_eq!(verify_ledger(&fx.path).unwrap().entries, 6);
    }

    #[test]
    fn lock_file_blocks_appends() {
        let fx = fixture();
        let mut lock = fx.path.as_os_str().to_owned();
        lock.push(".lock");
        std::fs::write(&lock, b"").unwrap();
        let before = std::fs::read(&fx.path).unwrap();
        let e = Ledger::append_register(&fx.path, &generate(), "dave", None, 200).unwrap_err();
        match &e {
            IdentityError::LedgerLocked { lock: l } => assert_eq!(l.as_os_str(), lock),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&fx.path).unwrap(), before);
        // Someone else's lock is not removed.
        assert!(Path::new(&lock).exists());
    }

    #[test]
    fn empty_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        match Ledger::open(&path) {
            Err(IdentityError::LedgerRead { source }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, b"").unwrap();
        let s = verify_ledger(&path).unwrap();
        assert_eq!(
            s,
            LedgerSummary {
                entries: 0,
                agents: 0,
                head: ZERO_HASH,
                last_time: None
            }
        );
        // Appending to an empty file works.
        Ledger::append_register(&path, &generate(), "a", None, 0).unwrap();
        assert_eq!(verify_ledger(&path).unwrap().entries, 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any single changed byte anywhere in a valid ledger is refused.
        #[test]
        fn any_byte_change_is_detected(
            rotations in proptest::collection::vec(0usize..3, 0..4),
            flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 16),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("l.jsonl");
            let mut keys: Vec<SigningKey> = (0..3).map(|_| generate()).collect();
            for (i, k) in keys.iter().enumerate() {
                Ledger::append_register(&path, k, &format!("agent-{i}"), None, i as i64).unwrap();
            }
            for (t, &who) in rotations.iter().enumerate() {
                let new = generate();
                Ledger::append_rotate(
                    &path, &keys[who], &new.verifying_key(), &format!("agent-{who}"),
                    Some(b"cfg"), 10 + t as i64,
                ).unwrap();
                keys[who] = new;
            }
            let bytes = std::fs::read(&path).unwrap();
            let l = Ledger::read(&bytes[..]).unwrap();
            for (i, k) in keys.iter().enumerate() {
                prop_assert_eq!(l.key_of(&format!("agent-{i}")), Some(k.verifying_key()));
            }
            for (at, x) in flips {
                let mut b = bytes.clone();
                let i = at % b.len();
                b[i] ^= x;
                prop_assert!(Ledger::read(&b[..]).is_err(), "byte {} ^ {:#x} accepted", i, x);
                // A cut anywhere but at a line end is refused, too.
                if bytes[i] != b'\n' {
                    prop_assert!(Ledger::read(&bytes[..=i]).is_err());
                }
            }
        }
    }
}
