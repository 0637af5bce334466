//! End-to-end runs of the real binary: the happy path and every bad input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int64Array, StringArray, TimestampSecondArray,
};

use crate::common::*;
use crate::util::Trustmesh;

pub(crate) fn small_log(dir: &Path) -> PathBuf {
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
    p
}

/// Runs `cmd`, which must fail with exit status 1 (a run error, not a usage
/// error or a panic) and one error line holding every needle.
pub(crate) fn fails_with(cmd: Trustmesh, needles: &[&str]) {
    let run = cmd.fails(1);
    let err = &run.stderr;
    assert!(!err.contains("panicked"), "panic\n{run}");
    run.stderr_has(needles);
    // One error line; the only other line allowed is --device auto's notice
    // that it fell back to the CPU.
    let lines: Vec<&str> = err.trim().lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, 1, "one error line expected\n{run}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("error: ") || l.starts_with("trustmesh: ")),
        "{run}"
    );
}

#[test]
fn score_writes_ranked_scores_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let out = dir.path().join("s.parquet");
    let report = dir.path().join("r.json");
    trustmesh![
        "score",
        "--log",
        &log,
        "--out",
        &out,
        "--report",
        &report,
        "--layer-weight",
        "payment=0.7",
        "--layer-weight",
        "review=0.3",
        "--device",
        "cpu",
    ]
    .ok()
    .stdout_has(&["scored 4 agents"]);
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
    // dave's negative rating of alice is a pair, but no trust edge.
    assert_eq!(r["edges_per_layer"]["review"], 2);
    assert_eq!(r["trust_edges_per_layer"]["review"], 1);
    assert_eq!(r["trust_edges_per_layer"]["payment"], 2);
    assert_eq!(r["stop"], "converged");
    assert!(r["residual"].as_f64().unwrap() < 1e-9);
    for stage in ["read", "aggregate", "build", "iterate", "write"] {
        assert!(r["seconds"][stage].as_f64().is_some(), "{stage}");
    }

    // Provenance: in the report and in the scores file's own footer.
    use sha2::Digest;
    let sha = format!("{:x}", sha2::Sha256::digest(std::fs::read(&log).unwrap()));
    assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["precision"], "f64");
    assert_eq!(r["inputs"][0]["role"], "log");
    assert_eq!(r["inputs"][0]["sha256"], sha.as_str());
    assert_eq!(r["parameters"]["layer_weights"][0][0], "payment");
    assert_eq!(r["parameters"]["max_iter"], 200);
    let footer = parquet_metadata(&out, trustmesh::provenance::METADATA_KEY);
    let meta: serde_json::Value = serde_json::from_str(&footer).unwrap();
    assert_eq!(meta["inputs"], r["inputs"]);
    assert_eq!(meta["parameters"], r["parameters"]);
    assert_eq!(meta["iterations"], r["iterations"]);
    assert_eq!(meta["error_bound"], r["error_bound"]);
    assert!(
        meta.get("seconds").is_none(),
        "timings say how long, not how"
    );
}

/// A key-value entry of a Parquet file's footer.
fn parquet_metadata(path: &Path, key: &str) -> String {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let kv = r.metadata().file_metadata().key_value_metadata().cloned();
    kv.into_iter()
        .flatten()
        .find(|e| e.key == key)
        .and_then(|e| e.value)
        .unwrap_or_else(|| panic!("{}: no `{key}` in the footer", path.display()))
}

#[test]
fn convert_then_score_bitcoin_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let log = bitcoin_log(dir.path(), "trade");
    let out = dir.path().join("s.parquet");
    trustmesh![
        "score",
        "--log",
        &log,
        "--out",
        &out,
        "--half-life",
        "365d",
        "--distrust",
        "discount",
        "--flat-tail",
        "5",
        "--flat-tail-top",
        "20",
    ]
    .ok();
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
    fails_with(
        trustmesh!["score", "--log", &p, "--out", &out],
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
        trustmesh!["score", "--log", &q, "--out", &out],
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
    fails_with(trustmesh!["score", "--log", &p, "--out", &out], needles);
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

/// Inputs that once ran to exit 0 with NaN or silently wrong scores.
#[test]
fn overflowing_sums_and_out_of_range_times_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.parquet");
    // Two finite weights of 1e308 for one pair overflow their sum.
    let pair = dir.path().join("pair.parquet");
    write_log(
        &pair,
        &[
            row(0, "a", "b", "pay", 1.0, 1e308),
            row(1, "a", "b", "pay", 1.0, 1e308),
            row(2, "b", "a", "pay", 1.0, 1.0),
        ],
    );
    fails_with(
        trustmesh!["score", "--log", &pair, "--out", &out],
        &["layer `pay`", "from `a` to `b`", "inf"],
    );
    // Finite pairs whose row total overflows would zero the rater's trust.
    let spread = dir.path().join("spread.parquet");
    write_log(
        &spread,
        &[
            row(0, "a", "b", "pay", 1.0, 1e308),
            row(1, "a", "c", "pay", 1.0, 1e308),
            row(2, "b", "a", "pay", 1.0, 1.0),
        ],
    );
    fails_with(
        trustmesh!["score", "--log", &spread, "--out", &out],
        &["layer `pay`", "the trust `a` gives", "inf"],
    );
    assert!(!out.exists(), "no output on error");
    // A half-life whose milliseconds overflow.
    fails_with(
        trustmesh![
            "score",
            "--log",
            &spread,
            "--out",
            &out,
            "--half-life",
            "1e306d"
        ],
        &["`1e306d` is too long"],
    );
    // Seconds that overflow when converted to milliseconds.
    let far = dir.path().join("far.parquet");
    write_columns(
        &far,
        vec![
            (
                "ts",
                Arc::new(TimestampSecondArray::from(vec![0, i64::MAX / 10])),
            ),
            ("src", Arc::new(StringArray::from(vec!["a", "b"]))),
            ("dst", Arc::new(StringArray::from(vec!["b", "a"]))),
            ("layer", Arc::new(StringArray::from(vec!["l", "l"]))),
            ("outcome", Arc::new(Float64Array::from(vec![1.0, 1.0]))),
        ],
    );
    fails_with(
        trustmesh!["score", "--log", &far, "--out", &out],
        &["far.parquet", "row 2", "`ts`", "outside the range"],
    );
}

#[test]
fn unreadable_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"this is not parquet at all").unwrap();
    let out = dir.path().join("o.parquet");
    fails_with(
        trustmesh!["score", "--log", &junk, "--out", &out],
        &["junk.parquet", "cannot read"],
    );

    let good = small_log(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        trustmesh!["score", "--log", &cut, "--out", &out],
        &["cut.parquet", "cannot read"],
    );
    fails_with(
        trustmesh!["score", "--log", "/nonexistent/x.parquet", "--out", &out],
        &["/nonexistent/x.parquet", "no such file"],
    );
}

#[test]
fn bad_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let out = dir.path().join("o.parquet");
    let with = |extra: &[&str]| trustmesh!["score", "--log", &log, "--out", &out].args(extra);
    fails_with(
        with(&["--layers", "payment,gossip"]),
        &["unknown layer `gossip`", "`payment`, `review`"],
    );
    fails_with(
        with(&["--layer-weight", "gossip=1"]),
        &["unknown layer `gossip`"],
    );
    // A clap usage error.
    with(&["--layer-weight", "payment=abc"])
        .fails(2)
        .stderr_has(&["weight `abc` is not a number"]);
    fails_with(
        with(&["--layers", "payment,review", "--layer-weight", "payment=1"]),
        &["`review` is scored but has no --layer-weight"],
    );
    fails_with(with(&["--cheap", "review"]), &["--costly"]);
    fails_with(with(&["--alpha", "0"]), &["--alpha"]);
    fails_with(with(&["--half-life", "soon"]), &["duration `soon`"]);
    fails_with(with(&["--since", "yesterday"]), &["time `yesterday`"]);
    fails_with(
        with(&["--device", "gpu", "--adapter", "no-such-adapter-xyz"]),
        &["no-such-adapter-xyz"],
    );

    let pre = dir.path().join("pre.txt");
    std::fs::write(&pre, "alice\nmallory\n").unwrap();
    fails_with(
        with(&["--pretrusted"]).arg(&pre),
        &["pre.txt", "`mallory`", "does not appear"],
    );
}

#[test]
fn empty_results_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let out = dir.path().join("o.parquet");
    fails_with(
        trustmesh![
            "score",
            "--log",
            &log,
            "--out",
            &out,
            "--since",
            "2030-01-01"
        ],
        &["empty result", "outside the time window 4"],
    );
    let selfonly = dir.path().join("self.parquet");
    write_log(&selfonly, &[row(1, "a", "a", "x", 1.0, 1.0)]);
    fails_with(
        trustmesh!["score", "--log", &selfonly, "--out", &out],
        &["empty result", "self-ratings 1"],
    );
}

/// Writes rows with dictionary-encoded names in row groups of 10 rows, so the
/// streaming ingest decodes several groups in parallel.
fn write_grouped(path: &Path, src: Vec<Option<&str>>, outcome: Vec<f64>, weight: Vec<f64>) {
    use arrow::array::{DictionaryArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Int32Type, Schema};
    let n = src.len();
    let dict = |v: Vec<Option<&str>>| -> ArrayRef {
        Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>())
    };
    let dst: Vec<Option<&str>> = (0..n).map(|i| Some(["x", "y", "z"][i % 3])).collect();
    let layer: Vec<Option<&str>> = vec![Some("l"); n];
    let d = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("src", d.clone(), true),
        Field::new("dst", d.clone(), true),
        Field::new("layer", d, true),
        Field::new("outcome", DataType::Float64, false),
        Field::new("weight", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            dict(src),
            dict(dst),
            dict(layer),
            Arc::new(Float64Array::from(outcome)),
            Arc::new(Float64Array::from(weight)),
        ],
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(10))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema,
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Errors in later row groups of dictionary-encoded files name the file's
/// row (not the group's), the first bad row of the file wins whichever group
/// is decoded first, and a valid such file scores as the SQL plan does.
#[test]
fn row_groups_and_dictionaries_keep_row_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c", "d"];
    let src = |bad: Option<(usize, Option<&'static str>)>| -> Vec<Option<&'static str>> {
        (0..50)
            .map(|i| match bad {
                Some((r, v)) if r == i => v,
                _ => Some(names[i % 4]),
            })
            .collect()
    };
    let out = dir.path().join("o.parquet");
    let case = |name: &str, s, o: Vec<f64>, w: Vec<f64>, needles: &[&str]| {
        let p = dir.path().join(name);
        write_grouped(&p, s, o, w);
        fails_with(trustmesh!["score", "--log", &p, "--out", &out], needles);
    };
    case(
        "empty.parquet",
        src(Some((26, Some("")))),
        vec![0.5; 50],
        vec![1.0; 50],
        &["empty.parquet", "row 27", "`src`", "empty agent id"],
    );
    case(
        "null.parquet",
        src(Some((44, None))),
        vec![0.5; 50],
        vec![1.0; 50],
        &["null.parquet", "row 45", "`src`", "null agent id"],
    );
    let mut o = vec![0.5; 50];
    o[14] = 2.0;
    let mut w = vec![1.0; 50];
    w[34] = -1.0;
    case(
        "two.parquet",
        src(None),
        o,
        w,
        &["two.parquet", "row 15", "`outcome`", "outside [-1, 1]"],
    );
    let good = dir.path().join("good.parquet");
    write_grouped(
        &good,
        src(None),
        vec![0.5; 50],
        (0..50).map(|i| i as f64).collect(),
    );
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    trustmesh!["score", "--log", &good, "--out", &a].ok();
    trustmesh!["score", "--log", &good, "--out", &b, "--ingest", "sql"].ok();
    assert_eq!(read_scores(&a), read_scores(&b));
    assert_eq!(read_scores(&a).len(), 7);
}
