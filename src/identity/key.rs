//! Ed25519 keys: generation, secret key files, public keys as hex.
//!
//! # Key file format (`trustmesh-ed25519-secret-v1`)
//!
//! A key file is 93 bytes of ASCII text, exactly:
//!
//! | bytes | content |
//! |---|---|
//! | 0..27 | `trustmesh-ed25519-secret-v1` (the header) |
//! | 27 | `\n` (0x0a) |
//! | 28..92 | the 32-byte ed25519 secret seed (RFC 8032 §5.1.5's private key) as 64 lowercase hex characters `0-9a-f`, first byte first |
//! | 92 | `\n` (0x0a) |
//!
//! Nothing else: no `\r`, no blank lines, no comments; uppercase hex is
//! refused so that every key has one spelling. The public key is derived from
//! the seed and is not stored.
//!
//! [`write_key_file`] creates the file with `O_CREAT|O_EXCL` (never replacing
//! anything at the path) and, on unix, with mode 0600 from the start, so the
//! secret is never readable by others, not even for a moment. [`read_key_file`]
//! refuses, like ssh, a key file whose mode lets the group or others read,
//! write or execute it (`mode & 0o077 != 0`), naming the mode.
//!
//! # Public keys
//!
//! A public key is written as its 32-byte RFC 8032 encoding in 64 lowercase
//! hex characters ([`public_key_hex`], [`parse_public_key`]). Parsing refuses
//! bytes that are not a curve point, a non-canonical encoding, a small-order
//! (weak) point, and a point with a small-order component: none of them comes
//! from an honest key, and each would make strict verification behave oddly.
//!
//! # Secrets in messages
//!
//! Errors about a key file say where it is wrong (a length, a character
//! position, a mode), never the bytes; the buffers that held the file's text
//! and the seed are wiped when dropped ([`zeroize`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::{decode_hex, IdentityError, KeyFormatError, PublicKeyError, Result};

/// First line of a key file.
pub const KEY_FILE_HEADER: &str = "trustmesh-ed25519-secret-v1";

/// Size of a key file in bytes: header, newline, 64 hex characters, newline.
const KEY_FILE_LEN: usize = KEY_FILE_HEADER.len() + 1 + 64 + 1;

/// A new key from the operating system's CSPRNG (`getrandom`). Like
/// `OsRng` itself, panics only if the operating system cannot supply
/// randomness at all.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

/// Writes `key` to a new key file at `path` (format in the module doc).
///
/// The file is created exclusively (an existing file, link or directory at
/// `path` gives [`IdentityError::KeyFileExists`] and is left alone), with
/// mode 0600 on unix before any byte is written, then synced to disk. If
/// writing fails the half-written file is removed.
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The mode applies at creation (minus the umask, which only removes
        // bits), so there is no window in which the file is more open.
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            IdentityError::KeyFileExists
        } else {
            IdentityError::KeyWrite { source: e }
        }
    })?;
    let text = key_file_text(key);
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        // We created the file a moment ago, so removing it removes nothing
        // of anyone else's; a failure to remove is secondary to `e`.
        let _ = std::fs::remove_file(path);
        return Err(IdentityError::KeyWrite { source: e });
    }
    sync_parent_dir(path);
    Ok(())
}

/// The key file's text for `key`, in a buffer wiped on drop.
fn key_file_text(key: &SigningKey) -> Zeroizing<String> {
    let seed = Zeroizing::new(key.to_bytes());
    let mut text = Zeroizing::new(String::with_capacity(KEY_FILE_LEN));
    text.push_str(KEY_FILE_HEADER);
    text.push('\n');
    for b in seed.iter() {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        text.push(HEX[usize::from(b >> 4)] as char);
        text.push(HEX[usize::from(b & 0x0f)] as char);
    }
    text.push('\n');
    text
}

/// Makes a new file's directory entry durable (unix; best effort: the file's
/// own content is already synced, and some file systems refuse to sync a
/// directory).
pub(crate) fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Reads a key file (format in the module doc).
///
/// On unix, a file accessible by group or others is refused with
/// [`IdentityError::KeyFileMode`] before its content is read. The mode is
/// read from the open file, so it is the mode of the file actually read.
pub fn read_key_file(path: &Path) -> Result<SigningKey> {
    let file = File::open(path).map_err(|source| IdentityError::KeyRead { source })?;
    let meta = file
        .metadata()
        .map_err(|source| IdentityError::KeyRead { source })?;
    if !meta.is_file() {
        return Err(IdentityError::KeyRead {
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyFileMode { mode });
        }
    }
    // Read at most one byte more than a key file has, into a fixed buffer
    // that is wiped on drop (a growing Vec would leave unwiped copies
    // behind): a larger file is refused without reading it all.
    let mut buf = Zeroizing::new([0u8; KEY_FILE_LEN + 1]);
    let mut n = 0;
    let mut reader = &file;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(IdentityError::KeyRead { source }),
        }
    }
    parse_key_text(&buf[..n]).map_err(IdentityError::KeyFormat)
}

/// Parses a key file's bytes.
fn parse_key_text(text: &[u8]) -> std::result::Result<SigningKey, KeyFormatError> {
    let header = KEY_FILE_HEADER.as_bytes();
    let rest = match text.strip_prefix(header) {
        Some(r) => r.strip_prefix(b"\n").ok_or(KeyFormatError::Header)?,
        None => return Err(KeyFormatError::Header),
    };
    let (seed_line, after) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if seed_line.is_empty() {
        return Err(KeyFormatError::MissingSeed);
    }
    // Not UTF-8 can only mean a non-hex byte; find its position without
    // ever building a string that could be printed.
    let seed_text = std::str::from_utf8(seed_line).map_err(|e| {
        KeyFormatError::Seed(super::HexError::NotHex {
            index: e.valid_up_to(),
        })
    })?;
    let seed = Zeroizing::new(decode_hex::<32>(seed_text).map_err(KeyFormatError::Seed)?);
    match after {
        None => Err(KeyFormatError::MissingNewline),
        Some(tail) if !tail.is_empty() => Err(KeyFormatError::TrailingData),
        Some(_) => Ok(SigningKey::from_bytes(&seed)),
    }
}

/// A public key as 64 lowercase hex characters.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// Parses a public key from 64 lowercase hex characters, refusing anything
/// that is not a usable key (see [`check_public_key`]).
pub fn parse_public_key(s: &str) -> Result<VerifyingKey> {
    parse_public_key_inner(s).map_err(IdentityError::PublicKey)
}

pub(crate) fn parse_public_key_inner(s: &str) -> std::result::Result<VerifyingKey, PublicKeyError> {
    let bytes = decode_hex::<32>(s).map_err(PublicKeyError::Hex)?;
    let key =
        VerifyingKey::from_bytes(&bytes).map_err(|source| PublicKeyError::NotOnCurve { source })?;
    check_public_key(&key)?;
    Ok(key)
}

/// Checks that a key is one an honest signer could have: a canonical
/// encoding of a point in the prime-order subgroup other than the identity.
///
/// Costs one scalar multiplication (the subgroup check), so callers that see
/// the same key many times check it once.
pub fn check_public_key(key: &VerifyingKey) -> std::result::Result<(), PublicKeyError> {
    let point = key.to_edwards();
    // `from_bytes` accepts y ≥ p (it reduces); re-encoding tells.
    if point.compress().as_bytes() != key.as_bytes() {
        return Err(PublicKeyError::NonCanonical);
    }
    if key.is_weak() {
        return Err(PublicKeyError::Weak);
    }
    if !point.is_torsion_free() {
        return Err(PublicKeyError::Torsion);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::HexError;
    use proptest::prelude::*;

    fn seed_hex(key: &SigningKey) -> String {
        hex::encode(key.to_bytes())
    }

    /// True if any 16-character window of the seed's hex appears in `s`.
    fn leaks(s: &str, seed: &str) -> bool {
        (0..=seed.len() - 16).any(|i| s.contains(&seed[i..i + 16]))
    }

    #[cfg(unix)]
    fn write_raw(path: &Path, bytes: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn round_trip_and_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        let key = generate();
        write_key_file(&path, &key).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let expected = format!("{KEY_FILE_HEADER}\n{}\n", seed_hex(&key));
        assert_eq!(bytes, expected.as_bytes());
        assert_eq!(bytes.len(), KEY_FILE_LEN);
        assert_eq!(KEY_FILE_LEN, 93);
        let back = read_key_file(&path).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        std::fs::write(&path, b"precious").unwrap();
        let err = write_key_file(&path, &generate()).unwrap_err();
        assert!(matches!(err, IdentityError::KeyFileExists), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        // A directory at the path is not replaced either.
        let err = write_key_file(dir.path(), &generate()).unwrap_err();
        assert!(matches!(err, IdentityError::KeyFileExists), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_open_modes_and_names_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate();
        let text = key_file_text(&key);
        for mode in [0o644, 0o640, 0o604, 0o660, 0o601, 0o620] {
            let path = dir.path().join(format!("k{mode:o}"));
            write_raw(&path, text.as_bytes(), mode);
            let err = read_key_file(&path).unwrap_err();
            match err {
                IdentityError::KeyFileMode { mode: m } => assert_eq!(m, mode),
                other => panic!("mode {mode:o}: {other:?}"),
            }
            let shown = read_key_file(&path).unwrap_err().to_string();
            assert!(shown.contains(&format!("{mode:04o}")), "{shown}");
            assert!(shown.contains("chmod 600"), "{shown}");
        }
        for mode in [0o600, 0o400] {
            let path = dir.path().join(format!("ok{mode:o}"));
            write_raw(&path, text.as_bytes(), mode);
            assert_eq!(read_key_file(&path).unwrap().to_bytes(), key.to_bytes());
        }
    }

    #[test]
    fn format_errors() {
        let key = generate();
        let seed = seed_hex(&key);
        let cases: Vec<(String, KeyFormatError)> = vec![
            (format!("{seed}\n"), KeyFormatError::Header),
            (
                format!("trustmesh-ed25519-secret-v2\n{seed}\n"),
                KeyFormatError::Header,
            ),
            (
                format!("{KEY_FILE_HEADER}\r\n{seed}\n"),
                KeyFormatError::Header,
            ),
            (KEY_FILE_HEADER.to_string(), KeyFormatError::Header),
            (format!("{KEY_FILE_HEADER}\n"), KeyFormatError::MissingSeed),
            (
                format!("{KEY_FILE_HEADER}\n\n"),
                KeyFormatError::MissingSeed,
            ),
            (
                format!("{KEY_FILE_HEADER}\n{}\n", &seed[..62]),
                KeyFormatError::Seed(HexError::Length {
                    expected: 64,
                    found: 62,
                }),
            ),
            (
                format!("{KEY_FILE_HEADER}\n{seed}00\n"),
                KeyFormatError::Seed(HexError::Length {
                    expected: 64,
                    found: 66,
                }),
            ),
            (
                format!("{KEY_FILE_HEADER}\n{}\n", seed.to_uppercase()),
                // Uppercase is refused; the first letter's position is named
                // (a seed with no letter at all is astronomically unlikely).
                KeyFormatError::Seed(HexError::NotHex {
                    index: seed.find(|c: char| c.is_ascii_alphabetic()).unwrap(),
                }),
            ),
            (
                format!("{KEY_FILE_HEADER}\n{}zz\n", &seed[..62]),
                KeyFormatError::Seed(HexError::NotHex { index: 62 }),
            ),
            (
                format!("{KEY_FILE_HEADER}\n{seed}\r\n"),
                KeyFormatError::Seed(HexError::Length {
                    expected: 64,
                    found: 65,
                }),
            ),
            (
                format!("{KEY_FILE_HEADER}\n{seed}"),
                KeyFormatError::MissingNewline,
            ),
            (
                format!("{KEY_FILE_HEADER}\n{seed}\n\n"),
                KeyFormatError::TrailingData,
            ),
            (
                format!("{KEY_FILE_HEADER}\n{seed}\nx"),
                KeyFormatError::TrailingData,
            ),
        ];
        for (text, want) in cases {
            let got = parse_key_text(text.as_bytes()).unwrap_err();
            assert_eq!(got, want, "{text:?}");
        }
        // Not UTF-8: the position of the bad byte.
        let mut bad = format!("{KEY_FILE_HEADER}\n{seed}\n").into_bytes();
        bad[KEY_FILE_HEADER.len() + 1 + 5] = 0xff;
        assert_eq!(
            parse_key_text(&bad).unwrap_err(),
            KeyFormatError::Seed(HexError::NotHex { index: 5 })
        );
    }

    #[test]
    fn oversized_file_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.key");
        let key = generate();
        let mut text = key_file_text(&key).as_bytes().to_vec();
        text.resize(text.len() + (1 << 20), b'a');
        std::fs::write(&path, &text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = read_key_file(&path).unwrap_err();
        assert!(
            matches!(err, IdentityError::KeyFormat(KeyFormatError::TrailingData)),
            "{err:?}"
        );
    }

    #[test]
    fn missing_file_keeps_io_source() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_key_file(&dir.path().join("nope")).unwrap_err();
        let IdentityError::KeyRead { source } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        let inner = std::error::Error::source(&err).unwrap();
        assert!(inner.downcast_ref::<std::io::Error>().is_some());
    }

    /// No error about a key file, and no Debug of the key, shows the secret.
    #[test]
    fn secret_never_in_messages_or_debug() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate();
        let seed = seed_hex(&key);
        assert!(!leaks(&format!("{key:?}"), &seed), "{key:?}");
        assert!(!leaks(&format!("{:?}", key.verifying_key()), &seed));
        let up = seed.to_uppercase();
        let texts = [
            format!("{seed}\n{KEY_FILE_HEADER}\n"),
            format!("{seed}{KEY_FILE_HEADER}\n{seed}\n"),
            format!("{KEY_FILE_HEADER}\n{up}\n"),
            format!("{KEY_FILE_HEADER}\n{seed}0\n"),
            format!("{KEY_FILE_HEADER}\n{seed}"),
            format!("{KEY_FILE_HEADER}\n{seed}\n{seed}\n"),
            format!("{KEY_FILE_HEADER}\n{}g\n", &seed[..63]),
        ];
        for (i, text) in texts.iter().enumerate() {
            let path = dir.path().join(format!("k{i}"));
            std::fs::write(&path, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            let err = read_key_file(&path).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
                assert!(!leaks(&shown, &seed), "case {i}: {shown}");
                assert!(!leaks(&shown, &up), "case {i}: {shown}");
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
                let err = read_key_file(&path).unwrap_err();
                assert!(!leaks(&format!("{err} {err:?}"), &seed));
            }
        }
    }

    #[test]
    fn public_key_parsing() {
        let key = generate().verifying_key();
        let text = public_key_hex(&key);
        assert_eq!(text.len(), 64);
        assert_eq!(parse_public_key(&text).unwrap(), key);

        let err = |s: &str| match parse_public_key(s) {
            Err(IdentityError::PublicKey(e)) => e,
            other => panic!("{s}: {other:?}"),
        };
        assert!(matches!(
            err(&text[..10]),
            PublicKeyError::Hex(HexError::Length {
                expected: 64,
                found: 10
            })
        ));
        assert_eq!(
            err(&text.to_uppercase()).to_string(),
            PublicKeyError::Hex(HexError::NotHex {
                index: text.find(|c: char| c.is_ascii_alphabetic()).unwrap()
            })
            .to_string()
        );
        // y = 2 is not the y of any curve point.
        let mut not_point = [0u8; 32];
        not_point[0] = 2;
        assert!(matches!(
            err(&hex::encode(not_point)),
            PublicKeyError::NotOnCurve { .. }
        ));
        // The identity (y = 1) is a small-order point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(err(&hex::encode(identity)), PublicKeyError::Weak));
        // y = p + 1 encodes the identity non-canonically.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert!(matches!(
            err(&hex::encode(non_canonical)),
            PublicKeyError::NonCanonical
        ));
        // A real key plus a point of order 2 has a torsion component.
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let t2 = CompressedEdwardsY(minus_one).decompress().unwrap();
        let mixed = (key.to_edwards() + t2).compress();
        assert!(matches!(
            err(&hex::encode(mixed.as_bytes())),
            PublicKeyError::Torsion
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn key_text_round_trips(seed in any::<[u8; 32]>()) {
            let key = SigningKey::from_bytes(&seed);
            let text = key_file_text(&key);
            let back = parse_key_text(text.as_bytes()).unwrap();
            prop_assert_eq!(back.to_bytes(), seed);
        }

        #[test]
        fn parse_public_key_never_panics(s in "\\PC{0,80}") {
            let _ = parse_public_key(&s);
        }
    }
}
