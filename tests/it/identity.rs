//! `trustmesh id`: keys and the BAID ledger end to end through the binary.
//! The formats' edge cases are unit-tested in `src/identity/`; these check
//! what a user sees: files, modes, exit codes and messages naming the line.

use std::path::Path;

use crate::util::Trustmesh;

fn tm() -> Trustmesh {
    Trustmesh::new()
}

fn new_key(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    let r = tm().args(["id", "new", "--out"]).arg(&p).ok();
    let public = r.stdout.trim().to_string();
    assert_eq!(public.len(), 64, "{r}");
    public
}

#[test]
fn keys_are_private_files_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let public = new_key(dir.path(), "a.key");
    let key = dir.path().join("a.key");
    let text = std::fs::read_to_string(&key).unwrap();
    let seed = text.lines().nth(1).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let shown = tm().args(["id", "show"]).arg(&key).ok();
    assert_eq!(shown.stdout.trim(), public);
    assert!(!shown.stdout.contains(seed) && !shown.stderr.contains(seed));

    // Never overwritten.
    tm().args(["id", "new", "--out"])
        .arg(&key)
        .fails(1)
        .stderr_has(&["a.key"]);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);

    // A key readable by others is refused, naming the mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = tm().args(["id", "show"]).arg(&key).fails(1);
        r.stderr_has(&["a.key", "644"]);
        assert!(!r.stderr.contains(seed));
    }
}

#[test]
fn register_verify_reveal_rotate_and_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    new_key(d, "alice.key");
    new_key(d, "bob.key");
    let alice2 = new_key(d, "alice2.key");
    let ledger = d.join("ledger.log");
    let config = d.join("alice.json");
    std::fs::write(&config, br#"{"model":"m1","prompt":"p"}"#).unwrap();

    let reg = tm()
        .args(["id", "register", "--ledger"])
        .arg(&ledger)
        .arg("--key")
        .arg(d.join("alice.key"))
        .args(["--agent", "alice", "--config"])
        .arg(&config)
        .ok();
    let salt = reg
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("salt: "))
        .unwrap_or_else(|| panic!("no salt printed\n{reg}"))
        .to_string();
    tm().args(["id", "register", "--ledger"])
        .arg(&ledger)
        .arg("--key")
        .arg(d.join("bob.key"))
        .args(["--agent", "bob"])
        .ok();
    // An agent id is registered once.
    tm().args(["id", "register", "--ledger"])
        .arg(&ledger)
        .arg("--key")
        .arg(d.join("bob.key"))
        .args(["--agent", "alice"])
        .fails(1)
        .stderr_has(&["alice", "already registered"]);
    tm().args(["id", "verify-ledger"])
        .arg(&ledger)
        .ok()
        .stdout_has(&["2 entries", "2 agents"]);

    let reveal = |config: &Path, salt: &str| {
        tm().args(["id", "reveal", "--ledger"])
            .arg(&ledger)
            .args(["--agent", "alice", "--config"])
            .arg(config)
            .args(["--salt", salt])
    };
    reveal(&config, &salt).ok();
    let other = d.join("other.json");
    std::fs::write(&other, br#"{"model":"m2","prompt":"p"}"#).unwrap();
    reveal(&other, &salt).fails(1).stderr_has(&["alice"]);
    reveal(&config, "00").fails(1).stderr_has(&["--salt"]);

    // Rotation must be signed by the current key.
    let rotate = |key: &str| {
        tm().args(["id", "rotate", "--ledger"])
            .arg(&ledger)
            .arg("--key")
            .arg(d.join(key))
            .arg("--new-key")
            .arg(d.join("alice2.key"))
            .args(["--agent", "alice"])
    };
    rotate("bob.key").fails(1).stderr_has(&["alice"]);
    rotate("alice.key").ok().stdout_has(&[&alice2]);
    tm().args(["id", "verify-ledger"])
        .arg(&ledger)
        .ok()
        .stdout_has(&["3 entries", "2 agents"]);

    // Edit one character of the second entry: verification names line 2.
    let text = std::fs::read_to_string(&ledger).unwrap();
    let edited = text.replacen("\"bob\"", "\"bot\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&ledger, &edited).unwrap();
    tm().args(["id", "verify-ledger"])
        .arg(&ledger)
        .fails(1)
        .stderr_has(&["ledger.log", "line 2"]);
    // Remove the second entry.
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&ledger, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    tm().args(["id", "verify-ledger"])
        .arg(&ledger)
        .fails(1)
        .stderr_has(&["line 2"]);
    // A broken ledger is never extended.
    tm().args(["id", "register", "--ledger"])
        .arg(&ledger)
        .arg("--key")
        .arg(d.join("bob.key"))
        .args(["--agent", "carol"])
        .fails(1);
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        format!("{}\n{}\n", lines[0], lines[2])
    );
}

/// Rows signed by their raters with `sign-log` are scored with
/// `--registry --require-signatures`; an unregistered rater's rows, a
/// changed row and an unsigned row are dropped and counted by reason.
#[test]
fn signed_logs_registry_and_bad_signatures() {
    use arrow::array::{AsArray, Float64Array, RecordBatch};
    use arrow::datatypes::Float64Type;
    use std::sync::Arc;

    use crate::common::{row, write_log};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ledger = d.join("ledger.log");
    for agent in ["alice", "bob", "carol"] {
        new_key(d, &format!("{agent}.key"));
        tm().args(["id", "register", "--ledger"])
            .arg(&ledger)
            .arg("--key")
            .arg(d.join(format!("{agent}.key")))
            .args(["--agent", agent])
            .ok();
    }
    let log = d.join("log.parquet");
    write_log(
        &log,
        &[
            row(1000, "alice", "bob", "pay", 1.0, 2.0),
            row(2000, "bob", "carol", "pay", 0.5, 1.0),
            row(3000, "carol", "alice", "pay", 1.0, 1.0),
            row(4000, "dave", "alice", "pay", 1.0, 1.0),
            row(5000, "alice", "carol", "pay", -0.5, 1.0),
        ],
    );
    let mut input = log.clone();
    for (i, agent) in ["alice", "bob", "carol"].iter().enumerate() {
        let out = d.join(format!("signed{i}.parquet"));
        let expect = if *agent == "alice" {
            "signed 2 of 5"
        } else {
            "signed 1 of 5"
        };
        tm().args(["sign-log", "--key"])
            .arg(d.join(format!("{agent}.key")))
            .args(["--agent", agent])
            .arg(&input)
            .arg(&out)
            .ok()
            .stdout_has(&[expect]);
        input = out;
    }
    let signed = input;

    let score = |log: &Path, report: &str| {
        let r = d.join(report);
        tm().args(["score", "--log"])
            .arg(log)
            .arg("--registry")
            .arg(&ledger)
            .arg("--require-signatures")
            .arg("--out")
            .arg(d.join(format!("{report}.parquet")))
            .arg("--report")
            .arg(&r)
            .ok();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&r).unwrap()).unwrap();
        (
            v["rows_dropped"]["unregistered_rater"].as_u64().unwrap(),
            v["rows_dropped"]["bad_signature"].as_u64().unwrap(),
            v["rows_used"].as_u64().unwrap(),
        )
    };
    assert_eq!(score(&signed, "ok.json"), (1, 0, 4));

    // Change one signed row's outcome, keep its signature.
    let file = std::fs::File::open(&signed).unwrap();
    let batches: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
    let b = &batches[0];
    let oi = b.schema().index_of("outcome").unwrap();
    let old = b.column(oi).as_primitive::<Float64Type>();
    let mut vals: Vec<f64> = (0..old.len()).map(|i| old.value(i)).collect();
    vals[1] = 1.0; // bob -> carol, 0.5 signed
    let mut cols = b.columns().to_vec();
    cols[oi] = Arc::new(Float64Array::from(vals));
    let tampered = d.join("tampered.parquet");
    let tb = RecordBatch::try_new(b.schema(), cols).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&tampered).unwrap(),
        tb.schema(),
        None,
    )
    .unwrap();
    w.write(&tb).unwrap();
    w.close().unwrap();
    assert_eq!(score(&tampered, "tampered.json"), (1, 1, 3));

    // Only alice signed: bob's and carol's rows have no signature.
    assert_eq!(score(&d.join("signed0.parquet"), "partial.json"), (1, 2, 2));

    // No sig column at all.
    tm().args(["score", "--log"])
        .arg(&log)
        .arg("--registry")
        .arg(&ledger)
        .arg("--require-signatures")
        .arg("--out")
        .arg(d.join("x.parquet"))
        .fails(1)
        .stderr_has(&["log.parquet", "sig", "sign-log"]);
    // Signatures need the registry.
    tm().args(["score", "--log"])
        .arg(&signed)
        .arg("--require-signatures")
        .arg("--out")
        .arg(d.join("y.parquet"))
        .fails(2);
}
