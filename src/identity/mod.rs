//! Agent identity: ed25519 keys and key files ([`key`]), the BAID registry —
//! an append-only, hash-chained ledger binding agent ids to keys and
//! configuration commitments ([`ledger`]) — and signatures over interaction
//! log rows with fast batch verification ([`rowsig`]).
//!
//! BAID is after Lin et al., "Binding Agent ID" (arXiv:2512.17538): an agent
//! registers a public key and a salted commitment to its configuration
//! (model, prompt template, tool policy); it can later prove which
//! configuration it registered by revealing the configuration and the salt
//! ([`ledger::Ledger::reveal`]), and ingest can require that every row of a
//! log is signed by its rater's registered key ([`rowsig::verify_rows`]).
//!
//! Every file format and every byte string that is hashed or signed is
//! documented byte for byte in its module, so other implementations can
//! produce and check them.
//!
//! # Errors
//!
//! One error type, [`IdentityError`], with typed variants a caller can branch
//! on; a foreign error (an `io::Error`, a JSON error, a curve error) stays the
//! [`std::error::Error::source`] of the variant that wraps it, and its message
//! is part of the variant's text, so `Display` is complete (print it once).
//! As in the rest of trustmesh, messages do not name the file: the caller
//! knows it and adds it around the error (`Error::with_path` once this stage
//! is wired into `trustmesh::Error`). A ledger error names the line and the
//! entry (`line 3 (seq 2): …`), because the line is what a person must look at.
//!
//! Nothing here ever formats secret key material: errors about a key file say
//! *where* it is wrong (a length, a character position, a file mode), never
//! what the bytes are, and [`ed25519_dalek::SigningKey`]'s `Debug` omits the
//! secret (a test checks both).

use std::fmt;

pub mod key;
pub mod ledger;
pub mod rowsig;

pub use key::{
    check_public_key, generate, parse_public_key, public_key_hex, read_key_file, write_key_file,
    KEY_FILE_HEADER,
};
pub use ledger::{
    commitment, verify_ledger, Entry, EntryKind, Ledger, LedgerSummary, LEDGER_DOMAIN,
    MAX_AGENT_BYTES, MAX_LINE_BYTES, ZERO_HASH,
};
pub use rowsig::{
    row_message, sign_row, verify_row, verify_rows, verify_rows_chunked, verify_rows_strict,
    write_row_message, Row, RowCheck, BATCH_CHUNK, ROW_DOMAIN,
};

/// Result alias of this stage.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

/// Everything that can go wrong in the identity stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    // ---- key files ----
    /// [`write_key_file`] found a file (or anything else) at the path: a key
    /// file is never overwritten.
    #[error("key file already exists; refusing to overwrite it")]
    KeyFileExists,

    /// A key file could not be opened or read.
    #[error("cannot read key file: {source}")]
    KeyRead { source: std::io::Error },

    /// A key file could not be created or written.
    #[error("cannot write key file: {source}")]
    KeyWrite { source: std::io::Error },

    /// A key file is accessible by its group or by others (unix only); like
    /// ssh, the key is refused until its mode is 0600 or stricter.
    #[error(
        "key file mode is {mode:04o}: it is accessible by group or others; \
         it must be 0600 or stricter (chmod 600)"
    )]
    KeyFileMode { mode: u32 },

    /// A key file's content is not the documented format.
    #[error("not a trustmesh key file: {0}")]
    KeyFormat(#[source] KeyFormatError),

    /// A public key (hex text or key bytes) is unusable.
    #[error("invalid public key: {0}")]
    PublicKey(#[source] PublicKeyError),

    // ---- ledger files ----
    /// The ledger file could not be opened or read.
    #[error("cannot read ledger: {source}")]
    LedgerRead { source: std::io::Error },

    /// The ledger file could not be created, written or synced.
    #[error("cannot write ledger: {source}")]
    LedgerWrite { source: std::io::Error },

    /// Another append holds the ledger's lock file (`<ledger>.lock`), or one
    /// crashed and left it behind.
    #[error(
        "ledger is locked: {} exists (another append is running, or one crashed: \
         remove the lock if none is running)",
        lock.display()
    )]
    LedgerLocked { lock: std::path::PathBuf },

    /// An entry of the ledger fails verification. `line` is 1-based; `seq` is
    /// the entry's own `seq` field when the line could be parsed that far.
    #[error("line {line}{}: {fault}", SeqSuffix(*seq))]
    LedgerEntry {
        line: u64,
        seq: Option<u64>,
        #[source]
        fault: LedgerFault,
    },

    // ---- requests against a valid ledger ----
    /// An agent id is empty or too long.
    #[error("invalid agent id: {0}")]
    AgentId(#[source] AgentIdError),

    /// A register request for an agent that is already registered.
    #[error("agent `{agent}` is already registered (line {line})")]
    AlreadyRegistered { agent: String, line: u64 },

    /// A rotate or reveal request for an agent that is not registered.
    #[error("agent `{agent}` is not registered")]
    UnknownAgent { agent: String },

    /// A rotate request signed with a key that is not the agent's current
    /// key (`current`, hex).
    #[error("the signing key is not agent `{agent}`'s current key {current}")]
    NotCurrentKey { agent: String, current: String },

    /// An append whose time is before the last entry's: ledger times never go
    /// backwards.
    #[error("time {time} is before the last entry's time {last}; ledger times never go backwards")]
    TimeBackwards { time: i64, last: i64 },

    /// A revealed configuration and salt do not hash to the agent's current
    /// commitment.
    #[error("the revealed configuration and salt do not match agent `{agent}`'s commitment")]
    CommitmentMismatch { agent: String },

    // ---- rows ----
    /// A row's string is longer than its u32 length prefix can say (4 GiB;
    /// Arrow's utf8 arrays cannot hold such a string).
    #[error(
        "row field `{field}` is {len} bytes, more than the row format's limit of {} bytes",
        u32::MAX
    )]
    RowFieldTooLong { field: &'static str, len: usize },
}

/// Formats ` (seq N)` when the seq is known.
struct SeqSuffix(Option<u64>);

impl fmt::Display for SeqSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(seq) => write!(f, " (seq {seq})"),
            None => Ok(()),
        }
    }
}

/// Hex text that is not what a field expects. The offending character is
/// never shown: in a key file it would be part of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    #[error("expected {expected} lowercase hex characters, found {found}")]
    Length { expected: usize, found: usize },
    /// `index` is the 0-based character position.
    #[error("character {index} is not a lowercase hex digit (0-9, a-f)")]
    NotHex { index: usize },
}

/// Why a key file's content is not the format (see [`key`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// The first line is not [`KEY_FILE_HEADER`]. Its content is not shown:
    /// a misplaced seed would be.
    #[error("the first line is not `{KEY_FILE_HEADER}`")]
    Header,
    /// Nothing (or an empty line) follows the header.
    #[error("the seed line is missing")]
    MissingSeed,
    /// The seed line is not 64 lowercase hex characters.
    #[error("the seed line: {0}")]
    Seed(#[source] HexError),
    /// The seed line does not end with a newline.
    #[error("the seed line does not end with a newline")]
    MissingNewline,
    /// Bytes follow the seed line, or the file is far larger than a key file.
    #[error("unexpected data after the seed line")]
    TrailingData,
}

/// Why a public key is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    #[error("{0}")]
    Hex(#[source] HexError),
    /// The 32 bytes do not decode to a point of the curve.
    #[error("not a point of the ed25519 curve: {source}")]
    NotOnCurve {
        source: ed25519_dalek::SignatureError,
    },
    /// The bytes are a non-canonical encoding of a point (y ≥ p): the same
    /// point has another, canonical, encoding.
    #[error("not the canonical encoding of its curve point")]
    NonCanonical,
    /// A point of small order: signatures under it are meaningless (a weak
    /// key, rejected by strict verification).
    #[error("a small-order (weak) point, not a usable key")]
    Weak,
    /// A point with a small-order component: no honestly generated key has
    /// one, and strict verification under it accepts or rejects depending
    /// on the message.
    #[error("a point with a small-order component, not a usable key")]
    Torsion,
}

/// Why an agent id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentIdError {
    #[error("empty")]
    Empty,
    #[error("{len} bytes, more than the limit of {limit}")]
    TooLong { len: usize, limit: usize },
}

/// Why a ledger entry fails verification (inside
/// [`IdentityError::LedgerEntry`], which names the line and seq).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerFault {
    /// The line is longer than [`MAX_LINE_BYTES`] (it is not read further).
    #[error("line is longer than {limit} bytes")]
    Oversized { limit: usize },
    /// The file's last bytes are not a complete line (no final newline): a
    /// torn write or trailing garbage.
    #[error("incomplete last line (no newline): a torn write or trailing garbage")]
    Incomplete,
    /// An empty line.
    #[error("empty line")]
    EmptyLine,
    /// The line is not a JSON object with exactly the entry's fields.
    #[error("not a ledger entry: {source}")]
    Malformed { source: serde_json::Error },
    /// A field has the right JSON type but an invalid value.
    #[error("field `{field}`: {reason}")]
    Field {
        field: &'static str,
        #[source]
        reason: FieldError,
    },
    /// A valid entry whose line is not its canonical JSON (field order,
    /// spacing or escapes differ from what trustmesh writes): the file was
    /// edited by hand.
    #[error("entry is not in canonical form (field order, spacing or escapes were changed)")]
    NonCanonical,
    /// The entry's seq is not its position: an entry before it was removed,
    /// or entries were duplicated or reordered.
    #[error("seq is {found}, expected {expected}: an entry was removed, duplicated or moved")]
    Seq { expected: u64, found: u64 },
    /// `prev` is not the hash of the entry before: that entry was edited (or
    /// re-signed), or entries were removed or reordered.
    #[error(
        "prev does not match the hash of the entry before it: \
         that entry was edited or re-signed, or entries were removed or moved"
    )]
    Prev,
    /// The entry's time is before the previous entry's (rejected: an
    /// append-only log is written in time order).
    #[error("time {time} is before the previous entry's time {previous}")]
    TimeBackwards { time: i64, previous: i64 },
    /// A second `register` for an agent.
    #[error("agent `{agent}` is registered again (first registered on line {first_line})")]
    DuplicateRegistration { agent: String, first_line: u64 },
    /// A `rotate` for an agent that was never registered.
    #[error("rotation of agent `{agent}`, which is not registered")]
    UnknownAgent { agent: String },
    /// A `register` whose signature does not verify under its own public key.
    #[error(
        "signature does not verify under the entry's public key: \
         the entry was edited, or signed by another key"
    )]
    BadSignature,
    /// A `rotate` whose signature does not verify under the agent's current
    /// key (`current`, hex).
    #[error(
        "rotation is not signed by agent `{agent}`'s current key {current}: \
         the entry was edited, or signed by another key"
    )]
    NotSignedByCurrentKey { agent: String, current: String },
}

/// Why a field of a ledger line is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    #[error("{0}")]
    Hex(#[source] HexError),
    #[error("{0}")]
    PublicKey(#[source] PublicKeyError),
    #[error("{0}")]
    Agent(#[source] AgentIdError),
    #[error("unknown kind `{0}` (expected `register` or `rotate`)")]
    UnknownKind(String),
}

/// Decodes exactly `N` bytes from `2N` lowercase hex characters. Uppercase is
/// refused so that every value has one spelling.
pub(crate) fn decode_hex<const N: usize>(s: &str) -> std::result::Result<[u8; N], HexError> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return Err(HexError::Length {
            expected: 2 * N,
            found: s.chars().count(),
        });
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or(HexError::NotHex { index: 2 * i })?;
        let lo = nibble(pair[1]).ok_or(HexError::NotHex { index: 2 * i + 1 })?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hex_errors_name_position_not_character() {
        assert_eq!(decode_hex::<2>("abcG"), Err(HexError::NotHex { index: 3 }));
        assert_eq!(decode_hex::<2>("ABCD"), Err(HexError::NotHex { index: 0 }));
        assert_eq!(
            decode_hex::<2>("abc"),
            Err(HexError::Length {
                expected: 4,
                found: 3
            })
        );
        // A multi-byte character counts as one character in the message and
        // is never split.
        assert_eq!(
            decode_hex::<2>("aé"),
            Err(HexError::Length {
                expected: 4,
                found: 2
            })
        );
        assert_eq!(
            decode_hex::<2>("aéb").unwrap_err(),
            HexError::NotHex { index: 1 }
        );
        let shown = HexError::NotHex { index: 3 }.to_string();
        assert_eq!(shown, "character 3 is not a lowercase hex digit (0-9, a-f)");
    }

    #[test]
    fn ledger_entry_error_names_line_and_seq() {
        let e = IdentityError::LedgerEntry {
            line: 3,
            seq: Some(2),
            fault: LedgerFault::Prev,
        };
        assert!(e
            .to_string()
            .starts_with("line 3 (seq 2): prev does not match"));
        let e = IdentityError::LedgerEntry {
            line: 4,
            seq: None,
            fault: LedgerFault::EmptyLine,
        };
        assert_eq!(e.to_string(), "line 4: empty line");
        // The fault stays the error's source.
        let src = std::error::Error::source(&e).expect("source");
        assert!(src.downcast_ref::<LedgerFault>().is_some());
    }

    proptest! {
        #[test]
        fn hex_roundtrip(bytes in any::<[u8; 32]>()) {
            let s = hex::encode(bytes);
            prop_assert_eq!(decode_hex::<32>(&s), Ok(bytes));
        }
    }
}
