//! End-to-end runs of the real binary: the happy path and every bad input.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, StringArray};

use crate::common::*;

fn small_log(dir: &Path) -> String {
    let p = dir.join("log.parquet");
    write_log(
        &p,
        &[
            row(1000, "alice", "bob", "payment", 1.0, 2.0),
            row(2000, "bob", "carol", "payment", 0.5, 1.0),
            row(3000, "carol", "alice", "review", 1.0, 1.0),
            row(4000, "carol", "carol", "review", 1.0, 1.0),
            row(5000, "dave", "alice", "review", -1.0, 1.0),
        ],
    );
    p.to_str().unwrap().to_string()
}

fn fails_with<S: AsRef<str> + std::fmt::Debug>(args: &[S], needles: &[&str]) {
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let o = run(&args);
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "expected failure for {args:?}, got success: {}",
        stdout(&o)
    );
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr for {args:?} lacks `{n}`: {err}");
    }
    // One error line; the only other line allowed is --device auto's notice
    // that it fell back to the CPU.
    let lines: Vec<&str> = err.trim().lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, 1, "one error line expected: {err}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("error: ") || l.starts_with("trustmesh: ")),
        "{err}"
    );
}

#[test]
fn score_writes_ranked_scores_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let out = dir.path().join("s.parquet");
    let report = dir.path().join("r.json");
    let o = run(&[
        "score",
        "--log",
        &log,
        "--out",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--layer-weight",
        "payment=0.7",
        "--layer-weight",
        "review=0.3",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("scored 4 agents"), "{}", stdout(&o));
    let s = read_scores(&out);
    assert_eq!(s.len(), 4);
    let total: f64 = s.iter().map(|r| r.1).sum();
    assert!((total - 1.0).abs() < 1e-12);
    assert_eq!(s.iter().map(|r| r.2).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(s.windows(2).all(|w| w[0].1 >= w[1].1));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["rows_read"], 5);
    assert_eq!(r["rows_used"], 4);
    assert_eq!(r["rows_dropped"]["self_rating"], 1);
    assert_eq!(r["agents"], 4);
    assert_eq!(r["edges_per_layer"]["payment"], 2);
    assert_eq!(r["stop"], "converged");
    assert!(r["residual"].as_f64().unwrap() < 1e-9);
    for stage in ["read", "aggregate", "build", "iterate", "write"] {
        assert!(r["seconds"][stage].as_f64().is_some(), "{stage}");
    }
}

#[test]
fn convert_then_score_bitcoin_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let log = bitcoin_log(dir.path(), "trade");
    let out = dir.path().join("s.parquet");
    let o = run(&[
        "score",
        "--log",
        log.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--half-life",
        "365d",
        "--distrust",
        "discount",
        "--flat-tail",
        "5",
        "--flat-tail-top",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_scores(&out).len(), 3783);
}

#[test]
fn missing_and_mistyped_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nooutcome.parquet");
    let ids: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    write_columns(
        &p,
        vec![
            ("ts", Arc::new(Int64Array::from(vec![1]))),
            ("src", ids.clone()),
            ("dst", ids.clone()),
            ("layer", ids.clone()),
        ],
    );
    let out = dir.path().join("o.parquet");
    let (p, o) = (p.to_str().unwrap(), out.to_str().unwrap());
    fails_with(
        &["score", "--log", p, "--out", o],
        &["nooutcome.parquet", "missing column `outcome`"],
    );

    let q = dir.path().join("strout.parquet");
    write_columns(
        &q,
        vec![
            ("ts", Arc::new(Int64Array::from(vec![1]))),
            ("src", ids.clone()),
            ("dst", ids.clone()),
            ("layer", ids.clone()),
            ("outcome", Arc::new(StringArray::from(vec!["good"]))),
        ],
    );
    fails_with(
        &["score", "--log", q.to_str().unwrap(), "--out", o],
        &["strout.parquet", "`outcome`", "float"],
    );
}

fn bad_value_case(
    name: &str,
    outcome: Vec<f64>,
    weight: Vec<f32>,
    src: Vec<Option<&str>>,
    needles: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    let n = outcome.len();
    write_columns(
        &p,
        vec![
            (
                "ts",
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            ),
            ("src", Arc::new(StringArray::from(src))),
            ("dst", Arc::new(StringArray::from(vec!["z"; n]))),
            ("layer", Arc::new(StringArray::from(vec!["l"; n]))),
            ("outcome", Arc::new(Float64Array::from(outcome))),
            ("weight", Arc::new(Float32Array::from(weight))),
        ],
    );
    let out = dir.path().join("o.parquet");
    fails_with(
        &[
            "score",
            "--log",
            p.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        needles,
    );
    assert!(!out.exists(), "no output on error");
}

#[test]
fn bad_values_name_file_column_and_row() {
    let ok = || vec![Some("a"), Some("b"), Some("c")];
    bad_value_case(
        "range.parquet",
        vec![0.5, 1.5, 0.0],
        vec![1.0; 3],
        ok(),
        &["range.parquet", "row 2", "`outcome`", "outside [-1, 1]"],
    );
    bad_value_case(
        "nan.parquet",
        vec![0.5, 0.1, f64::NAN],
        vec![1.0; 3],
        ok(),
        &["row 3", "`outcome`", "NaN"],
    );
    bad_value_case(
        "inf.parquet",
        vec![0.5, 0.1, 0.2],
        vec![1.0, f32::INFINITY, 1.0],
        ok(),
        &["row 2", "`weight`", "inf"],
    );
    bad_value_case(
        "neg.parquet",
        vec![0.5, 0.1, 0.2],
        vec![1.0, 1.0, -3.0],
        ok(),
        &["row 3", "`weight`", ">= 0"],
    );
    bad_value_case(
        "null.parquet",
        vec![0.5, 0.1, 0.2],
        vec![1.0; 3],
        vec![Some("a"), None, Some("c")],
        &["row 2", "`src`", "null agent id"],
    );
}

#[test]
fn unreadable_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"this is not parquet at all").unwrap();
    let out = dir.path().join("o.parquet");
    let o = out.to_str().unwrap();
    fails_with(
        &["score", "--log", junk.to_str().unwrap(), "--out", o],
        &["junk.parquet", "cannot read"],
    );

    let good = small_log(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        &["score", "--log", cut.to_str().unwrap(), "--out", o],
        &["cut.parquet", "cannot read"],
    );
    fails_with(
        &["score", "--log", "/nonexistent/x.parquet", "--out", o],
        &["/nonexistent/x.parquet", "no such file"],
    );
}

#[test]
fn bad_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let out = dir.path().join("o.parquet");
    let o = out.to_str().unwrap();
    let base = ["score", "--log", log.as_str(), "--out", o];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    fails_with(
        &with(&["--layers", "payment,gossip"]),
        &["unknown layer `gossip`", "`payment`, `review`"],
    );
    fails_with(
        &with(&["--layer-weight", "gossip=1"]),
        &["unknown layer `gossip`"],
    );
    let bad_weight = with(&["--layer-weight", "payment=abc"]);
    let o2 = run(&bad_weight.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o2.status.code(), Some(2), "clap usage error");
    assert!(
        stderr(&o2).contains("weight `abc` is not a number"),
        "{}",
        stderr(&o2)
    );
    fails_with(
        &with(&["--layers", "payment,review", "--layer-weight", "payment=1"]),
        &["`review` is scored but has no --layer-weight"],
    );
    fails_with(&with(&["--cheap", "review"]), &["--costly"]);
    fails_with(&with(&["--alpha", "0"]), &["--alpha"]);
    fails_with(&with(&["--half-life", "soon"]), &["duration `soon`"]);
    fails_with(&with(&["--since", "yesterday"]), &["time `yesterday`"]);
    fails_with(
        &with(&["--device", "gpu", "--adapter", "no-such-adapter-xyz"]),
        &["no-such-adapter-xyz"],
    );

    let pre = dir.path().join("pre.txt");
    std::fs::write(&pre, "alice\nmallory\n").unwrap();
    let mut args = with(&["--pretrusted"]);
    args.push(pre.to_str().unwrap().to_string());
    fails_with(&args, &["pre.txt", "`mallory`", "does not appear"]);
}

#[test]
fn empty_results_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let out = dir.path().join("o.parquet");
    fails_with(
        &[
            "score",
            "--log",
            &log,
            "--out",
            out.to_str().unwrap(),
            "--since",
            "2030-01-01",
        ],
        &["empty result", "outside the time window 4"],
    );
    let selfonly = dir.path().join("self.parquet");
    write_log(&selfonly, &[row(1, "a", "a", "x", 1.0, 1.0)]);
    fails_with(
        &[
            "score",
            "--log",
            selfonly.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["empty result", "self-ratings 1"],
    );
}
