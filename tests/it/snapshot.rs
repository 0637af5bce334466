//! `trustmesh snapshot` end to end: create from a real score run, verify,
//! prove, and every way a verifier must refuse.

use std::path::{Path, PathBuf};

use crate::util::Trustmesh;

fn tm() -> Trustmesh {
    Trustmesh::new()
}

fn repo_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// A publisher key, scores of Bitcoin Alpha and snapshots of epochs 1 and 2.
struct Setup {
    _dir: tempfile::TempDir,
    d: PathBuf,
    publisher: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let publisher = tm()
        .args(["id", "new", "--out"])
        .arg(d.join("pub.key"))
        .ok()
        .stdout
        .trim()
        .to_string();
    tm().args(["score", "--log"])
        .arg(repo_data("bitcoin-alpha.parquet"))
        .arg("--out")
        .arg(d.join("scores.parquet"))
        .args(["--top", "0"])
        .ok();
    for (epoch, prev) in [("1", None), ("2", Some("snap1"))] {
        let mut c = tm()
            .args(["snapshot", "create", "--scores"])
            .arg(d.join("scores.parquet"))
            .arg("--key")
            .arg(d.join("pub.key"))
            .args(["--epoch", epoch, "--network", "testnet", "--out"])
            .arg(d.join(format!("snap{epoch}")));
        if let Some(p) = prev {
            c = c.arg("--prev").arg(d.join(p));
        }
        c.ok().stdout_has(&["3783 agents"]);
    }
    Setup {
        _dir: dir,
        d,
        publisher,
    }
}

fn verify(s: &Setup, dir: &str) -> Trustmesh {
    tm().args(["snapshot", "verify"]).arg(s.d.join(dir))
}

#[test]
fn create_verify_prove_and_refuse() {
    let s = setup();
    let d = &s.d;
    verify(&s, "snap1")
        .args(["--publisher", &s.publisher])
        .ok()
        .stdout_has(&["valid", "epoch 1", "3783 agents"]);
    verify(&s, "snap2")
        .arg("--prev")
        .arg(d.join("snap1"))
        .ok()
        .stdout_has(&["chained to epoch 1"]);

    // Another publisher, a rollback, an expired snapshot, a broken chain.
    let other = "11".repeat(32);
    verify(&s, "snap1")
        .args(["--publisher", &other])
        .fails(1)
        .stderr_has(&["header.bin", &other]);
    verify(&s, "snap1")
        .args(["--after-epoch", "1"])
        .fails(1)
        .stderr_has(&["epoch 1"]);
    verify(&s, "snap1")
        .arg("--prev")
        .arg(d.join("snap2"))
        .fails(1)
        .stderr_has(&["epoch"]);
    verify(&s, "snap1")
        .args(["--at", "2200-01-01"])
        .fails(1)
        .stderr_has(&["expire"]);

    // Proofs: a present agent, an absent one, checked against the header
    // alone; a proof against another epoch's header is refused.
    let proof = tm()
        .args(["snapshot", "prove"])
        .arg(d.join("snap1"))
        .args(["--agent", "1"])
        .ok()
        .stdout;
    std::fs::write(d.join("p1.json"), &proof).unwrap();
    let absent = tm()
        .args(["snapshot", "prove"])
        .arg(d.join("snap1"))
        .args(["--agent", "no-such-agent"])
        .ok()
        .stdout;
    std::fs::write(d.join("p0.json"), &absent).unwrap();
    let check = |header: &str, proof: &str| {
        tm().args(["snapshot", "verify-proof", "--header"])
            .arg(d.join(header).join("header.bin"))
            .arg("--proof")
            .arg(d.join(proof))
    };
    check("snap1", "p1.json")
        .ok()
        .stdout_has(&["valid: `1` has score"]);
    check("snap1", "p0.json")
        .ok()
        .stdout_has(&["`no-such-agent` is not in this snapshot"]);
    check("snap2", "p1.json").fails(1).stderr_has(&["epoch"]);
    // A changed score in the proof.
    let v: serde_json::Value = serde_json::from_str(&proof).unwrap();
    let bits = v["score_bits"].as_str().unwrap().to_string();
    let mut forged = bits.clone().into_bytes();
    forged[15] = if forged[15] == b'0' { b'1' } else { b'0' };
    let forged = proof.replace(&bits, std::str::from_utf8(&forged).unwrap());
    std::fs::write(d.join("forged.json"), forged).unwrap();
    check("snap1", "forged.json").fails(1);
    std::fs::write(d.join("garbage.json"), b"\x00\xffnot json").unwrap();
    check("snap1", "garbage.json").fails(1);
}

/// Any single changed byte of either file is refused (a sample of positions
/// through the binary; the library's tests flip every byte).
#[test]
fn flipped_and_truncated_files_are_refused() {
    let s = setup();
    for name in ["header.bin", "body.parquet"] {
        let path = s.d.join("snap1").join(name);
        let orig = std::fs::read(&path).unwrap();
        let n = orig.len();
        for pos in [0, 1, 7, 8, 40, n / 3, n / 2, n - 65, n - 64, n - 1] {
            let mut b = orig.clone();
            b[pos] ^= 0x01;
            std::fs::write(&path, &b).unwrap();
            verify(&s, "snap1").fails(1).stderr_has(&[name]);
        }
        std::fs::write(&path, &orig[..n - 1]).unwrap();
        verify(&s, "snap1").fails(1).stderr_has(&[name]);
        let mut longer = orig.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        verify(&s, "snap1").fails(1).stderr_has(&[name]);
        std::fs::write(&path, &orig).unwrap();
        verify(&s, "snap1").ok();
    }
}

/// `audit` reproduces a CPU snapshot from its inputs and certifies its
/// bound; other inputs, or a changed score, are named.
#[test]
fn audit_reproduces_and_names_differences() {
    let s = setup();
    let d = &s.d;
    let audit = |log: &Path| {
        tm().args(["snapshot", "audit"])
            .arg(d.join("snap1"))
            .arg("--log")
            .arg(log)
    };
    audit(&repo_data("bitcoin-alpha.parquet"))
        .ok()
        .stdout_has(&[
            "audit passed",
            "3783 scores reproduced bit for bit",
            "within",
        ]);

    // Another log: not the input the header names.
    let other = d.join("other.parquet");
    let mut bytes = std::fs::read(repo_data("bitcoin-alpha.parquet")).unwrap();
    bytes.push(0);
    std::fs::write(&other, bytes).unwrap();
    audit(&other)
        .fails(1)
        .stderr_has(&["log:bitcoin-alpha.parquet", "none of the files given"]);

    // A snapshot of altered scores (re-signed by the same publisher): the
    // first differing agent is named.
    let scores = d.join("scores.parquet");
    let t = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&scores).unwrap(),
    )
    .unwrap();
    let meta = t.metadata().file_metadata().key_value_metadata().cloned();
    let b = t.build().unwrap().next().unwrap().unwrap();
    use arrow::array::{AsArray, Float64Array};
    let sc = b.column(1).as_primitive::<arrow::datatypes::Float64Type>();
    let mut vals: Vec<f64> = sc.values().to_vec();
    vals.swap(0, 1);
    let mut cols = b.columns().to_vec();
    cols[1] = std::sync::Arc::new(Float64Array::from(vals));
    let altered = d.join("altered.parquet");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(meta)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&altered).unwrap(),
        b.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&arrow::array::RecordBatch::try_new(b.schema(), cols).unwrap())
        .unwrap();
    w.close().unwrap();
    tm().args(["snapshot", "create", "--scores"])
        .arg(&altered)
        .arg("--key")
        .arg(d.join("pub.key"))
        .args(["--epoch", "3", "--out"])
        .arg(d.join("snap3"))
        .ok();
    tm().args(["snapshot", "audit"])
        .arg(d.join("snap3"))
        .arg("--log")
        .arg(repo_data("bitcoin-alpha.parquet"))
        .fails(1)
        .stderr_has(&["agent `", "the snapshot says", "re-derivation gives"]);
}

/// A warm start (`score --warm-start-from`) begins at a snapshot's vector:
/// far fewer iterations, the same scores within the two error bounds, and
/// the start snapshot's header hash in the parameters. Its snapshot is
/// audited only with that very start snapshot given, and then reproduced
/// bit for bit; a cold snapshot refuses a start.
#[test]
fn warm_start_is_recorded_and_audited_from_its_start() {
    let s = setup();
    let d = &s.d;
    let log = repo_data("bitcoin-alpha.parquet");
    let score = |name: &str, start: Option<&str>| {
        let mut c = tm()
            .args(["score", "--top", "0", "--log"])
            .arg(&log)
            .arg("--out")
            .arg(d.join(format!("{name}.parquet")))
            .arg("--report")
            .arg(d.join(format!("{name}.json")));
        if let Some(dir) = start {
            c = c.arg("--warm-start-from").arg(d.join(dir));
        }
        c.ok();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(format!("{name}.json"))).unwrap())
                .unwrap();
        (
            report,
            crate::common::read_scores(&d.join(format!("{name}.parquet"))),
        )
    };
    let (cold, cold_scores) = score("cold", None);
    let (warm, warm_scores) = score("warm", Some("snap1"));
    let iterations = |r: &serde_json::Value| r["iterations"].as_u64().unwrap();
    assert!(
        iterations(&warm) * 4 <= iterations(&cold),
        "warm {} vs cold {} iterations",
        iterations(&warm),
        iterations(&cold)
    );
    let start =
        trustmesh::snapshot::header_hash(&std::fs::read(d.join("snap1/header.bin")).unwrap());
    assert_eq!(
        warm["parameters"]["start_snapshot"].as_str(),
        Some(hex::encode(start).as_str())
    );
    assert!(cold["parameters"].get("start_snapshot").is_none());
    let by_agent = |v: &[(String, f64, u32)]| -> std::collections::HashMap<String, f64> {
        v.iter().map(|r| (r.0.clone(), r.1)).collect()
    };
    let (c, w) = (by_agent(&cold_scores), by_agent(&warm_scores));
    assert_eq!(c.len(), w.len());
    // Another iterate: the audit below can only pass from the right start.
    assert!(
        c.iter().any(|(a, x)| x.to_bits() != w[a].to_bits()),
        "warm and cold runs gave the same bits"
    );
    let l1: f64 = c.iter().map(|(a, x)| (x - w[a]).abs()).sum();
    let bound = cold["error_bound"].as_f64().unwrap() + warm["error_bound"].as_f64().unwrap();
    assert!(l1 <= bound, "L1 {l1} against the bounds' sum {bound}");

    tm().args(["snapshot", "create", "--scores"])
        .arg(d.join("warm.parquet"))
        .arg("--key")
        .arg(d.join("pub.key"))
        .args(["--epoch", "3", "--network", "testnet", "--out"])
        .arg(d.join("snapw"))
        .ok();
    let audit = |dir: &str, start: Option<&str>| {
        let mut c = tm()
            .args(["snapshot", "audit"])
            .arg(d.join(dir))
            .arg("--log")
            .arg(&log);
        if let Some(s) = start {
            c = c.arg("--start-from").arg(d.join(s));
        }
        c
    };
    audit("snapw", None).fails(1).stderr_has(&[
        "warm-started from snapshot",
        "give that snapshot's directory",
    ]);
    // snap2 holds the same scores under another header: not the start.
    audit("snapw", Some("snap2"))
        .fails(1)
        .stderr_has(&["but the snapshot was warm-started from"]);
    audit("snapw", Some("snap1")).ok().stdout_has(&[
        "audit passed",
        "3783 scores reproduced bit for bit",
        "warm-started from epoch 1 of publisher",
        "NOT the snapshot this one chains on",
    ]);
    audit("snap1", Some("snap1"))
        .fails(1)
        .stderr_has(&["made without a warm start"]);
    // One start vector cannot serve a batch.
    tm().args(["score", "--per-layer", "--log"])
        .arg(&log)
        .arg("--warm-start-from")
        .arg(d.join("snap1"))
        .arg("--out")
        .arg(d.join("x.parquet"))
        .fails(2)
        .stderr_has(&["--warm-start-from"]);
}
