//! Signatures over interaction log rows, and fast verification of many.
//!
//! A log row (DESIGN.md §2, `src/ingest/read.rs`) is signed by its rater,
//! `src`, in the optional `sig` column (binary, 64 bytes). The signature is
//! over the row's canonical bytes, computed from the row as ingest
//! normalises it: `ts` in epoch **milliseconds** (the canonical schema's
//! int64; a Parquet timestamp of any unit is converted to milliseconds
//! first), `outcome` and `weight` as f64 (float32 widened; an absent weight
//! is 1.0).
//!
//! # Canonical bytes of a row (`trustmesh-row-v1`)
//!
//! All integers big-endian; strings UTF-8, each preceded by its length in
//! bytes as a u32:
//!
//! | size | content |
//! |---|---|
//! | 16 | `trustmesh-row-v1` (ASCII domain tag) |
//! | 4 + a | `src`: length a (u32), then its bytes |
//! | 4 + b | `dst`: length b (u32), then its bytes |
//! | 4 + c | `layer`: length c (u32), then its bytes |
//! | 8 | `outcome`: IEEE 754 binary64 bits (u64) |
//! | 8 | `weight`: IEEE 754 binary64 bits (u64) |
//! | 8 | `ts`: epoch milliseconds, i64 (two's complement) |
//!
//! 52 + a + b + c bytes in all. `-0.0` is encoded as `+0.0` (bits 0) so that
//! two equal values never sign differently; NaN never gets here (ingest
//! refuses it). `outcome` is signed because it is the rating itself: a
//! signature that did not cover it would let anyone who handles the log turn
//! a +1 into a -1.
//!
//! The signature is pure Ed25519 (RFC 8032, no context, no prehash) over
//! those bytes, by `src`'s key.
//!
//! # Batch and strict verification
//!
//! A row is valid when ed25519-dalek's `verify_strict` accepts its signature:
//! `s` canonical (< ℓ), `R` the canonical encoding of a point that is not of
//! small order, the key not of small order, and `R = [s]B − [k]A` exactly
//! (k = SHA-512(R ‖ A ‖ M)). [`verify_rows_strict`] checks each row that way.
//!
//! [`verify_rows`] gets the same answers (but for the one case below),
//! about 2.5x faster, with ed25519-dalek's
//! `verify_batch` on chunks of [`BATCH_CHUNK`] rows: one multi-scalar
//! multiplication checks `Σ zᵢ(Rᵢ − [sᵢ]B + [kᵢ]Aᵢ) = 0` for 128-bit zᵢ derived
//! from a transcript of the whole chunk. Where a chunk fails, each of its rows
//! is checked with `verify_strict`, so a bad row never condemns a good one
//! (and a log with a bad row in every chunk is checked at the strict rate).
//! The two checks accept different sets:
//!
//! - Every row `verify_strict` accepts makes its term exactly zero, so a chunk
//!   of such rows always passes the batch: a valid row is never refused.
//! - The batch accepts some rows `verify_strict` refuses: it decompresses `R`
//!   without asking whether its encoding is canonical, does not refuse a
//!   small-order `R` or a small-order (weak) key, and a small-order
//!   component in `R` or in the key adds zᵢ·T, which vanishes whenever the
//!   order of T (2, 4 or 8) divides zᵢ.
//!
//! So before batching, every row gets the checks of `verify_strict` that are
//! cheap: signature length 64, `s` canonical, `R`'s encoding canonical
//! (y < p) and not one of the 10 encodings of small-order points (8
//! canonical, 2 with the sign bit set on x = 0). Keys are classified once per
//! distinct key: a weak key refuses all its rows (as `verify_strict` does);
//! a key with a small-order component or a non-canonical encoding sends its
//! rows to `verify_strict` one by one. What remains is a small-order
//! component in an `R` that decodes to a point of mixed order: testing for
//! it costs a scalar multiplication per row, as much as the verification
//! itself, so it is not done. Only the holder of the key can make such a
//! signature (its other part must still satisfy the equation), so no one can
//! get a row accepted under someone else's key; but the key holder can make
//! a row that the batch accepts with probability 1/2, 1/4 or 1/8 while
//! `verify_strict` refuses it. The zᵢ are a deterministic function of the
//! chunk, so the same rows in the same order always give the same answer;
//! where answers must also agree with other implementations whatever the
//! chunking, use [`verify_rows_strict`], or move both
//! sides to the cofactored ZIP-215 rule, for which batch and single checks
//! agree exactly. The batch's soundness against forgery is 2⁻¹²⁸ per chunk.
//!
//! Non-canonical `s` is refused by ed25519-dalek only while its
//! `legacy_compatibility` feature is off (it is; a test checks).

use std::collections::HashMap;
use std::sync::OnceLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::key::check_public_key;
use super::{IdentityError, PublicKeyError, Result};

/// Domain tag at the start of a row's canonical bytes.
pub const ROW_DOMAIN: &[u8] = b"trustmesh-row-v1";

/// Rows per `verify_batch` call in [`verify_rows`]. Larger chunks amortise
/// the multi-scalar multiplication better, but a chunk with one bad row is
/// re-checked row by row; 256 is near the measured knee (see the
/// `verify_rate` test).
pub const BATCH_CHUNK: usize = 256;

/// One row, as ingest normalises it (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    pub src: &'a str,
    pub dst: &'a str,
    pub layer: &'a str,
    /// In [-1, 1].
    pub outcome: f64,
    /// ≥ 0; 1.0 when the log has no weight.
    pub weight: f64,
    /// Epoch milliseconds.
    pub ts_ms: i64,
}

/// Writes `row`'s canonical bytes into `out` (cleared first), so one buffer
/// can serve a whole log.
pub fn write_row_message(row: &Row<'_>, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.reserve(52 + row.src.len() + row.dst.len() + row.layer.len());
    out.extend_from_slice(ROW_DOMAIN);
    for (field, s) in [("src", row.src), ("dst", row.dst), ("layer", row.layer)] {
        let len = u32::try_from(s.len()).map_err(|_| IdentityError::RowFieldTooLong {
            field,
            len: s.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&f64_bits(row.outcome).to_be_bytes());
    out.extend_from_slice(&f64_bits(row.weight).to_be_bytes());
    out.extend_from_slice(&row.ts_ms.to_be_bytes());
    Ok(())
}

/// `row`'s canonical bytes.
pub fn row_message(row: &Row<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_row_message(row, &mut out)?;
    Ok(out)
}

/// The bits that encode `x`; both zeros encode as +0.0.
fn f64_bits(x: f64) -> u64 {
    if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// `src`'s signature over `row` (the `sig` column's 64 bytes).
pub fn sign_row(key: &SigningKey, row: &Row<'_>) -> Result<[u8; 64]> {
    Ok(key.sign(&row_message(row)?).to_bytes())
}

/// Strict check of one row's signature (see the module doc). A signature of
/// the wrong length, or a row too long to encode, is just invalid.
pub fn verify_row(key: &VerifyingKey, row: &Row<'_>, sig: &[u8]) -> bool {
    match row_message(row) {
        Ok(msg) => strict(key, &msg, sig),
        Err(_) => false,
    }
}

/// One signature check: the row's canonical bytes, the signature as found in
/// the log (any length), and the key that must have made it.
pub type RowCheck<'a> = (&'a [u8], &'a [u8], &'a VerifyingKey);

/// Checks each item with `verify_strict`; `out[i]` says whether item `i` is
/// valid. The reference for [`verify_rows`].
pub fn verify_rows_strict(items: &[RowCheck<'_>]) -> Vec<bool> {
    items
        .iter()
        .map(|&(msg, sig, key)| strict(key, msg, sig))
        .collect()
}

/// Checks each item, batching (module doc); `out[i]` says whether item `i`
/// is valid. Malformed signatures are invalid items, never a panic.
pub fn verify_rows(items: &[RowCheck<'_>]) -> Vec<bool> {
    verify_rows_chunked(items, BATCH_CHUNK)
}

/// [`verify_rows`] with a chosen chunk size (≥ 1), for measurements.
pub fn verify_rows_chunked(items: &[RowCheck<'_>], chunk: usize) -> Vec<bool> {
    let chunk = chunk.max(1);
    let mut ok = vec![false; items.len()];
    let mut keys: HashMap<[u8; 32], KeyClass> = HashMap::new();
    let mut batch = Batch::with_capacity(chunk);
    for (c, part) in items.chunks(chunk).enumerate() {
        batch.clear();
        for (j, &(msg, sig, key)) in part.iter().enumerate() {
            let i = c * chunk + j;
            match *keys
                .entry(*key.as_bytes())
                .or_insert_with(|| KeyClass::of(key))
            {
                KeyClass::Weak => {}
                KeyClass::Single => ok[i] = strict(key, msg, sig),
                KeyClass::Batch => {
                    if let Some(sig) = screen(sig) {
                        batch.push(i, msg, sig, *key);
                    }
                }
            }
        }
        if batch.index.is_empty() {
            continue;
        }
        if ed25519_dalek::verify_batch(&batch.msgs, &batch.sigs, &batch.keys).is_ok() {
            for &i in &batch.index {
                ok[i] = true;
            }
        } else {
            // Some row of the chunk is bad: find which, one by one.
            for (k, &i) in batch.index.iter().enumerate() {
                ok[i] = batch.keys[k]
                    .verify_strict(batch.msgs[k], &batch.sigs[k])
                    .is_ok();
            }
        }
    }
    ok
}

/// The rows of one chunk that go to `verify_batch`.
struct Batch<'a> {
    index: Vec<usize>,
    msgs: Vec<&'a [u8]>,
    sigs: Vec<Signature>,
    keys: Vec<VerifyingKey>,
}

impl<'a> Batch<'a> {
    fn with_capacity(n: usize) -> Self {
        Batch {
            index: Vec::with_capacity(n),
            msgs: Vec::with_capacity(n),
            sigs: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.msgs.clear();
        self.sigs.clear();
        self.keys.clear();
    }

    fn push(&mut self, i: usize, msg: &'a [u8], sig: Signature, key: VerifyingKey) {
        self.index.push(i);
        self.msgs.push(msg);
        self.sigs.push(sig);
        self.keys.push(key);
    }
}

/// How rows under a key are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    /// A usable key: batch.
    Batch,
    /// Small order: `verify_strict` refuses every signature.
    Weak,
    /// A small-order component or a non-canonical encoding: `verify_strict`
    /// accepts or refuses depending on the message, which the batch cannot
    /// mirror, so one by one.
    Single,
}

impl KeyClass {
    fn of(key: &VerifyingKey) -> KeyClass {
        match check_public_key(key) {
            Ok(()) => KeyClass::Batch,
            Err(PublicKeyError::Weak) => KeyClass::Weak,
            Err(_) => KeyClass::Single,
        }
    }
}

/// `verify_strict` on raw signature bytes; any length other than 64 is
/// invalid.
fn strict(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    match <[u8; 64]>::try_from(sig) {
        Ok(bytes) => key
            .verify_strict(msg, &Signature::from_bytes(&bytes))
            .is_ok(),
        Err(_) => false,
    }
}

/// The cheap checks of `verify_strict` that `verify_batch` skips; `None` if
/// the signature is certainly invalid.
fn screen(sig: &[u8]) -> Option<Signature> {
    let bytes: [u8; 64] = sig.try_into().ok()?;
    let (r, s) = bytes.split_at(32);
    let s: [u8; 32] = s.try_into().ok()?;
    if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
        return None;
    }
    let r: [u8; 32] = r.try_into().ok()?;
    if !y_is_canonical(&r) || small_order_encodings().contains(&r) {
        return None;
    }
    Some(Signature::from_bytes(&bytes))
}

/// True if the encoding's y (its low 255 bits) is below p = 2²⁵⁵ − 19.
fn y_is_canonical(enc: &[u8; 32]) -> bool {
    // y ≥ p exactly when y's top byte (sign bit cleared) is 0x7f, the bytes
    // between are 0xff and the lowest byte is ≥ 0xed.
    !(enc[31] & 0x7f == 0x7f && enc[1..31].iter().all(|&b| b == 0xff) && enc[0] >= 0xed)
}

/// Encodings with a canonical y of the small-order points: the canonical
/// encodings of the 8 torsion points, and the two with the sign bit set on
/// x = 0 (y = 1 and y = −1), which decode to small-order points too.
fn small_order_encodings() -> &'static [[u8; 32]; 10] {
    static SET: OnceLock<[[u8; 32]; 10]> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set = [[0u8; 32]; 10];
        for (slot, p) in set.iter_mut().zip(EIGHT_TORSION.iter()) {
            *slot = p.compress().to_bytes();
        }
        // y = 1 and y = p − 1 with the sign bit.
        set[8][0] = 1;
        set[8][31] = 0x80;
        set[9] = [0xff; 32];
        set[9][0] = 0xec;
        set[9][31] = 0xff;
        set
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::generate;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use proptest::prelude::*;

    fn row(i: usize) -> (String, String) {
        (
            format!("agent-{}", i % 37),
            format!("agent-{}", (i * 7 + 1) % 41),
        )
    }

    /// Builds `n` signed rows over `keys` keys: (message, signature, key index).
    fn signed(n: usize, keys: &[SigningKey]) -> Vec<(Vec<u8>, Vec<u8>, usize)> {
        (0..n)
            .map(|i| {
                let (src, dst) = row(i);
                let r = Row {
                    src: &src,
                    dst: &dst,
                    layer: "payment",
                    outcome: if i % 3 == 0 { -1.0 } else { 0.5 },
                    weight: i as f64,
                    ts_ms: 1_767_225_600_000 + i as i64,
                };
                let k = i % keys.len();
                let sig = sign_row(&keys[k], &r).unwrap();
                (row_message(&r).unwrap(), sig.to_vec(), k)
            })
            .collect()
    }

    fn checks<'a>(
        rows: &'a [(Vec<u8>, Vec<u8>, usize)],
        vks: &'a [VerifyingKey],
    ) -> Vec<RowCheck<'a>> {
        rows.iter()
            .map(|(m, s, k)| (m.as_slice(), s.as_slice(), &vks[*k]))
            .collect()
    }

    #[test]
    fn canonical_bytes_layout() {
        let r = Row {
            src: "a",
            dst: "bc",
            layer: "",
            outcome: -0.0,
            weight: 1.5,
            ts_ms: -2,
        };
        let m = row_message(&r).unwrap();
        let mut want = b"trustmesh-row-v1".to_vec();
        want.extend_from_slice(&[0, 0, 0, 1, b'a']);
        want.extend_from_slice(&[0, 0, 0, 2, b'b', b'c']);
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&[0; 8]); // -0.0 as +0.0
        want.extend_from_slice(&[0x3f, 0xf8, 0, 0, 0, 0, 0, 0]); // 1.5
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]); // -2
        assert_eq!(m, want);
        assert_eq!(m.len(), 52 + 1 + 2);
        // The buffer form gives the same bytes and clears what was there.
        let mut buf = vec![9u8; 100];
        write_row_message(&r, &mut buf).unwrap();
        assert_eq!(buf, want);
    }

    #[test]
    fn every_field_is_signed() {
        let key = generate();
        let vk = key.verifying_key();
        let base = Row {
            src: "alice",
            dst: "bob",
            layer: "payment",
            outcome: 1.0,
            weight: 2.0,
            ts_ms: 1000,
        };
        let sig = sign_row(&key, &base).unwrap();
        assert!(verify_row(&vk, &base, &sig));
        let changed = [
            Row {
                src: "alicf",
                ..base
            },
            Row {
                dst: "bob2",
                ..base
            },
            Row {
                layer: "review",
                ..base
            },
            Row {
                outcome: -1.0,
                ..base
            },
            Row {
                weight: 2.5,
                ..base
            },
            Row {
                ts_ms: 1001,
                ..base
            },
            // Moving a byte between fields changes the length prefixes.
            Row {
                src: "alic",
                dst: "ebob",
                ..base
            },
        ];
        for r in changed {
            assert!(!verify_row(&vk, &r, &sig), "{r:?}");
        }
        assert!(!verify_row(&generate().verifying_key(), &base, &sig));
        // Both zeros are one value.
        let z = Row {
            outcome: 0.0,
            ..base
        };
        let sig0 = sign_row(&key, &z).unwrap();
        assert!(verify_row(
            &vk,
            &Row {
                outcome: -0.0,
                ..base
            },
            &sig0
        ));
    }

    #[test]
    fn batch_matches_strict_with_bad_rows_anywhere() {
        let keys: Vec<SigningKey> = (0..5).map(|_| generate()).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let mut rows = signed(700, &keys);
        // Tamper: a message byte, a signature byte, a wrong key, a short and
        // a long signature, an empty one, s = s + ℓ (non-canonical).
        rows[3].0[20] ^= 1;
        rows[300].1[5] ^= 0x40;
        rows[301].2 = (rows[301].2 + 1) % keys.len();
        rows[512].1.truncate(63);
        rows[513].1.push(0);
        rows[699].1.clear();
        let mut s = [0u8; 32];
        s.copy_from_slice(&rows[600].1[32..]);
        rows[600].1[32..].copy_from_slice(&add_l(s));
        let items = checks(&rows, &vks);
        let got = verify_rows(&items);
        let want = verify_rows_strict(&items);
        assert_eq!(got, want);
        let bad: Vec<usize> = (0..got.len()).filter(|&i| !got[i]).collect();
        assert_eq!(bad, vec![3, 300, 301, 512, 513, 600, 699]);
        for chunk in [1, 2, 7, 64, 1000] {
            assert_eq!(verify_rows_chunked(&items, chunk), want, "chunk {chunk}");
        }
        assert!(verify_rows(&[]).is_empty());
    }

    /// s + ℓ as 32 little-endian bytes (still < 2²⁵⁶ for any s < ℓ).
    fn add_l(s: [u8; 32]) -> [u8; 32] {
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s[i]) + u16::from(L[i]) + carry;
            out[i] = v as u8;
            carry = v >> 8;
        }
        out
    }

    #[test]
    fn non_canonical_s_is_refused_by_strict_too() {
        // Guards the docs' claim: with `legacy_compatibility` on, dalek would
        // accept s + ℓ and the pre-screen would differ from verify_strict.
        let key = generate();
        let msg = b"m";
        let mut sig = key.sign(msg).to_bytes();
        let mut s = [0u8; 32];
        s.copy_from_slice(&sig[32..]);
        sig[32..].copy_from_slice(&add_l(s));
        assert!(!strict(&key.verifying_key(), msg, &sig));
        assert!(screen(&sig).is_none());
    }

    #[test]
    fn small_order_encodings_are_exactly_the_refused_ones() {
        let set = small_order_encodings();
        for enc in set.iter() {
            assert!(y_is_canonical(enc));
            let p = CompressedEdwardsY(*enc).decompress().expect("decodes");
            assert!(p.is_small_order());
        }
        // Distinct, and the 8 torsion points all appear.
        for i in 0..10 {
            for j in 0..i {
                assert_ne!(set[i], set[j]);
            }
        }
        // A signature whose R is any of them is refused by both checks.
        let key = generate();
        let vk = key.verifying_key();
        let msg = b"x";
        let good = key.sign(msg).to_bytes();
        for enc in set.iter() {
            let mut sig = good;
            sig[..32].copy_from_slice(enc);
            assert!(screen(&sig).is_none());
            assert!(!strict(&vk, msg, &sig));
        }
    }

    #[test]
    fn weak_and_torsion_keys_follow_strict() {
        let key = generate();
        let vk = key.verifying_key();
        // The identity as a key: weak.
        let mut id = [0u8; 32];
        id[0] = 1;
        let weak = VerifyingKey::from_bytes(&id).unwrap();
        assert_eq!(KeyClass::of(&weak), KeyClass::Weak);
        // vk + a point of order 2: mixed order, checked one by one.
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let t2 = CompressedEdwardsY(minus_one).decompress().unwrap();
        let mixed =
            VerifyingKey::from_bytes(&(vk.to_edwards() + t2).compress().to_bytes()).unwrap();
        assert_eq!(KeyClass::of(&mixed), KeyClass::Single);
        assert_eq!(KeyClass::of(&vk), KeyClass::Batch);
        let msgs: Vec<Vec<u8>> = (0..40).map(|i| format!("m{i}").into_bytes()).collect();
        let sigs: Vec<[u8; 64]> = msgs.iter().map(|m| key.sign(m).to_bytes()).collect();
        let mut items: Vec<RowCheck<'_>> = Vec::new();
        for (m, s) in msgs.iter().zip(&sigs) {
            items.push((m, s, &vk));
            items.push((m, s, &weak));
            items.push((m, s, &mixed));
        }
        let got = verify_rows(&items);
        assert_eq!(got, verify_rows_strict(&items));
        assert_eq!(got.iter().filter(|&&b| b).count(), 40);
    }

    /// The documented gap: a key holder who adds a point of order 2 to `R`
    /// gets a signature `verify_strict` refuses and the batch accepts when
    /// its zᵢ is even. Deterministic inputs, so a fixed outcome.
    #[test]
    fn mixed_order_r_is_the_known_gap() {
        use curve25519_dalek::edwards::EdwardsPoint;
        use sha2::{Digest, Sha512};
        let seed = [42u8; 32];
        let key = SigningKey::from_bytes(&seed);
        let vk = key.verifying_key();
        let h = Sha512::digest(seed);
        let mut a = [0u8; 32];
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a);
        assert_eq!(
            EdwardsPoint::mul_base(&a).compress().as_bytes(),
            vk.as_bytes()
        );
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let t2 = CompressedEdwardsY(minus_one).decompress().unwrap();
        let mut accepted = 0;
        for i in 0..64u8 {
            let msg = [i; 8];
            let r = Scalar::from_bytes_mod_order([i.wrapping_add(1); 32]);
            let big_r = (EdwardsPoint::mul_base(&r) + t2).compress();
            let mut hk = Sha512::new();
            hk.update(big_r.as_bytes());
            hk.update(vk.as_bytes());
            hk.update(msg);
            let k = Scalar::from_bytes_mod_order_wide(&hk.finalize().into());
            let s = r + k * a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(big_r.as_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            assert!(!strict(&vk, &msg, &sig));
            assert!(screen(&sig).is_some(), "passes the cheap checks");
            if verify_rows(&[(&msg, &sig, &vk)]) == [true] {
                accepted += 1;
            }
        }
        assert!(accepted > 0 && accepted < 64, "{accepted} of 64 accepted");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random corruption of random rows: batch == strict, never a panic.
        #[test]
        fn batch_equals_strict(
            n in 1usize..80,
            edits in proptest::collection::vec((any::<usize>(), 0u8..6, any::<u8>()), 0..8),
            chunk in 1usize..40,
        ) {
            let keys: Vec<SigningKey> = (0..3).map(|_| generate()).collect();
            let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
            let mut rows = signed(n, &keys);
            for (at, what, byte) in edits {
                let r = &mut rows[at % n];
                match what {
                    0 => { let l = r.0.len(); r.0[usize::from(byte) % l] ^= 1 }
                    1 => if !r.1.is_empty() { let l = r.1.len(); r.1[usize::from(byte) % l] ^= 0x10 },
                    2 => r.1.truncate(usize::from(byte) % 64),
                    3 => r.2 = (r.2 + 1) % keys.len(),
                    // R replaced by arbitrary bytes (often not a point).
                    4 => if r.1.len() == 64 { r.1[..32].fill(byte) },
                    _ => r.1.push(byte),
                }
            }
            let items = checks(&rows, &vks);
            prop_assert_eq!(verify_rows_chunked(&items, chunk), verify_rows_strict(&items));
        }

        /// The R screen refuses exactly what strict's encoding checks refuse,
        /// for every 32 bytes that decode to a point.
        #[test]
        fn r_screen_is_exact(mut enc in any::<[u8; 32]>(), near_p in any::<bool>()) {
            if near_p {
                // Push y to just below or above p.
                enc[1..31].fill(0xff);
                enc[31] |= 0x7f;
            }
            if let Some(p) = CompressedEdwardsY(enc).decompress() {
                let strict_ok = p.compress().to_bytes() == enc && !p.is_small_order();
                let screen_ok = y_is_canonical(&enc) && !small_order_encodings().contains(&enc);
                prop_assert_eq!(strict_ok, screen_ok);
            }
        }
    }

    /// Signature checks per second on one thread, for the report:
    /// `cargo test --release -- --ignored verify_rate --nocapture`.
    #[test]
    #[ignore]
    fn verify_rate() {
        use std::time::Instant;
        let n: usize = std::env::var("ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let keys: Vec<SigningKey> = (0..1000).map(|_| generate()).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let rows = signed(n, &keys);
        let items = checks(&rows, &vks);
        let rate = |f: &dyn Fn() -> Vec<bool>| {
            let t = Instant::now();
            let ok = f();
            let s = t.elapsed().as_secs_f64();
            assert!(ok.iter().all(|&b| b));
            n as f64 / s
        };
        println!("rows: {n}, keys: {}", keys.len());
        for chunk in [16, 64, 128, 256, 512, 1024] {
            let r = rate(&|| verify_rows_chunked(&items, chunk));
            println!("batch chunk {chunk:5}: {r:10.0} signatures/s");
        }
        let r = rate(&|| verify_rows(&items));
        println!("verify_rows (chunk {BATCH_CHUNK}): {r:10.0} signatures/s");
        let strict_n = n.min(20_000);
        let t = Instant::now();
        let ok = verify_rows_strict(&items[..strict_n]);
        let s = t.elapsed().as_secs_f64();
        assert!(ok.iter().all(|&b| b));
        println!(
            "verify_rows_strict: {:10.0} signatures/s",
            strict_n as f64 / s
        );
        // One bad row per chunk: every chunk falls back to single checks.
        let mut bad = rows.clone();
        for i in (0..n).step_by(BATCH_CHUNK) {
            bad[i].1[0] ^= 1;
        }
        let bad_items = checks(&bad, &vks);
        let t = Instant::now();
        let ok = verify_rows(&bad_items);
        let s = t.elapsed().as_secs_f64();
        assert_eq!(ok.iter().filter(|&&b| !b).count(), n.div_ceil(BATCH_CHUNK));
        println!(
            "verify_rows, one bad row per chunk: {:10.0} signatures/s",
            n as f64 / s
        );
        // Building the messages too (what ingest does per row).
        let t = Instant::now();
        let mut buf = Vec::new();
        let mut total = 0usize;
        for i in 0..n {
            let (src, dst) = row(i);
            let r = Row {
                src: &src,
                dst: &dst,
                layer: "payment",
                outcome: 0.5,
                weight: 1.0,
                ts_ms: i as i64,
            };
            write_row_message(&r, &mut buf).unwrap();
            total += buf.len();
        }
        let s = t.elapsed().as_secs_f64();
        println!("row_message: {:10.0} rows/s ({total} bytes)", n as f64 / s);
    }
}
