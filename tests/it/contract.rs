//! `trustmesh mechanism` end to end: the bundled example (Bitcoin Alpha's
//! scores and the committed agents table), long score files, and every bad
//! input as one error line naming file, column and row.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use serde_json::Value;

use crate::cli::{fails_with, small_log};
use crate::common::*;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Bitcoin Alpha scored as the README's example does.
fn bitcoin_scores(dir: &Path) -> PathBuf {
    let scores = dir.join("scores.parquet");
    score_cpu(&data("bitcoin-alpha.parquet"), &scores).ok();
    scores
}

/// The README's example: the committed agents table against the scores of
/// the committed log, without and with a budget.
#[test]
fn bundled_example_runs_and_the_budget_binds() {
    let dir = tempfile::tempdir().unwrap();
    let scores = bitcoin_scores(dir.path());
    let agents = data("agents-bitcoin-alpha.parquet");
    let free = dir.path().join("free.json");
    trustmesh![
        "mechanism",
        "--scores",
        &scores,
        "--agents",
        &agents,
        "--out",
        &free
    ]
    .ok()
    .stdout_has(&["3783 agents in 4 tiers", "uniform reward", "wrote"]);
    let j = read_json(&free);
    assert_eq!(j["agents"], 3783);
    assert_eq!(j["parameters"]["tiers"], 4);
    assert_eq!(j["parameters"]["budget"], Value::Null);
    assert_eq!(j["search"]["schedules_in_grid_log10"], 4.0 * 32f64.log10());
    let tiers = j["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 4);
    let members: u64 = tiers.iter().map(|t| t["members"].as_u64().unwrap()).sum();
    assert_eq!(members, 3783);
    // Tiers are quantiles: about a quarter each (ties keep a tier whole),
    // their score ranges ordered and disjoint.
    for w in tiers.windows(2) {
        assert!(f(&w[0]["score_max"]) < f(&w[1]["score_min"]), "{w:?}");
    }
    for t in tiers {
        let m = t["members"].as_u64().unwrap();
        assert!((700..1200).contains(&m), "{t}");
        // Per-tier figures add up to the totals' parts.
        let (s, r) = (f(&t["expected_successes"]), f(&t["reward"]));
        assert!((f(&t["expected_payment"]) - r * s).abs() <= 1e-9 * (1.0 + r * s));
    }
    let sum = |k: &str| tiers.iter().map(|t| f(&t[k])).sum::<f64>();
    for k in ["expected_utility", "expected_payment", "expected_successes"] {
        assert!((sum(k) - f(&j[k])).abs() <= 1e-9 * f(&j[k]), "{k}");
    }
    let (u, uu) = (
        f(&j["expected_utility"]),
        f(&j["uniform"]["expected_utility"]),
    );
    assert!(u >= uu && uu > 0.0);
    assert_eq!(f(&j["gain_over_uniform"]), u - uu);

    // The README's budget, far below the unbudgeted payment, binds: the
    // payment nearly fills it, the utility drops, and the schedule is no
    // longer one reward for all (it is on this data; the gain is positive).
    let budget = 2000.0;
    assert!(f(&j["expected_payment"]) > 10.0 * budget);
    let tight = dir.path().join("tight.json");
    trustmesh![
        "mechanism",
        "--scores",
        &scores,
        "--agents",
        &agents,
        "--out",
        &tight,
        "--budget",
        "2000",
    ]
    .ok()
    .stdout_has(&["(budget 2000)"]);
    let b = read_json(&tight);
    assert_eq!(f(&b["parameters"]["budget"]), budget);
    assert!(f(&b["expected_payment"]) <= budget);
    assert!(f(&b["expected_payment"]) > 0.9 * budget, "{b}");
    assert!(f(&b["uniform"]["expected_payment"]) <= budget);
    assert!(f(&b["expected_utility"]) < u);
    assert!(f(&b["gain_over_uniform"]) > 0.0, "{b}");
    let rewards: Vec<f64> = b["schedule"].as_array().unwrap().iter().map(f).collect();
    assert!(rewards.iter().any(|&r| r != rewards[0]), "{rewards:?}");

    // The same inputs, the same bits (timings aside).
    let again = dir.path().join("again.json");
    trustmesh![
        "mechanism",
        "--scores",
        &scores,
        "--agents",
        &agents,
        "--out",
        &again,
        "--budget",
        "2000",
    ]
    .ok();
    let (mut x, mut y) = (b, read_json(&again));
    x.as_object_mut().unwrap().remove("seconds");
    y.as_object_mut().unwrap().remove("seconds");
    assert_eq!(x, y);
}

/// A long scores file (one vector per layer) needs `--vector`.
#[test]
fn long_score_files_need_a_vector() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let long = dir.path().join("long.parquet");
    score_cpu(&log, &long).arg("--per-layer").ok();
    let agents = dir.path().join("agents.parquet");
    write_agents(
        &agents,
        &["alice", "bob", "carol"],
        &[1.0, 2.0, 3.0],
        &[0.5, 0.6, 0.7],
    );
    let out = dir.path().join("m.json");
    let run = |extra: &[&str]| {
        trustmesh![
            "mechanism",
            "--scores",
            &long,
            "--agents",
            &agents,
            "--out",
            &out
        ]
        .args(extra)
    };
    fails_with(
        run(&[]),
        &[
            "long.parquet",
            "2 vectors in its `layer` column (`payment`, `review`)",
            "choose one with --vector",
        ],
    );
    fails_with(
        run(&["--vector", "trade"]),
        &[
            "long.parquet",
            "--vector `trade` is not in the `layer` column",
        ],
    );
    run(&["--vector", "payment", "--tiers", "2"]).ok();
    let j = read_json(&out);
    assert_eq!(j["vector"], "payment");
    assert_eq!(j["tiers"].as_array().unwrap().len(), 2);

    // A plain file refuses --vector.
    let plain = dir.path().join("plain.parquet");
    score_cpu(&log, &plain).ok();
    fails_with(
        trustmesh![
            "mechanism",
            "--scores",
            &plain,
            "--agents",
            &agents,
            "--out",
            &out,
            "--vector",
            "payment"
        ],
        &["plain.parquet", "holds one vector", "leave it out"],
    );
}

fn write_agents(p: &Path, names: &[&str], cost: &[f64], cap: &[f64]) {
    write_columns(
        p,
        vec![
            ("agent", Arc::new(StringArray::from(names.to_vec()))),
            ("cost", Arc::new(Float64Array::from(cost.to_vec()))),
            ("capability", Arc::new(Float64Array::from(cap.to_vec()))),
        ],
    );
}

/// Runs `mechanism` on the given agents columns against the small log's
/// scores; it must fail with one error line holding every needle, and write
/// nothing.
fn bad_agents(cols: Vec<(&str, ArrayRef)>, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("s.parquet");
    score_cpu(&small_log(dir.path()), &scores).ok();
    let agents = dir.path().join("agents.parquet");
    write_columns(&agents, cols);
    let out = dir.path().join("m.json");
    fails_with(
        trustmesh![
            "mechanism",
            "--scores",
            &scores,
            "--agents",
            &agents,
            "--out",
            &out
        ],
        needles,
    );
    assert!(!out.exists(), "no output on error");
}

fn names(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn nums(v: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

#[test]
fn bad_agents_tables_name_file_column_and_row() {
    let abc = || names(&[Some("alice"), Some("bob"), Some("carol")]);
    let ones = || nums(&[Some(1.0); 3]);
    let halves = || nums(&[Some(0.5); 3]);
    bad_agents(
        vec![("agent", abc()), ("capability", halves())],
        &[
            "agents.parquet",
            "missing column `cost`",
            "agent, cost, capability",
        ],
    );
    bad_agents(
        vec![
            ("agent", abc()),
            ("cost", ones()),
            (
                "capability",
                Arc::new(StringArray::from(vec!["high", "low", "mid"])),
            ),
        ],
        &[
            "agents.parquet",
            "column `capability` has type Utf8",
            "expected a number",
        ],
    );
    bad_agents(
        vec![
            ("agent", Arc::new(Int64Array::from(vec![1, 2, 3]))),
            ("cost", ones()),
            ("capability", halves()),
        ],
        &[
            "agents.parquet",
            "column `agent` has type Int64",
            "expected utf8",
        ],
    );
    let cost_case = |cost: [Option<f64>; 3], needles: &[&str]| {
        bad_agents(
            vec![
                ("agent", abc()),
                ("cost", nums(&cost)),
                ("capability", halves()),
            ],
            needles,
        )
    };
    cost_case(
        [Some(1.0), None, Some(1.0)],
        &["agents.parquet: row 2, column `cost`: null `cost`"],
    );
    cost_case(
        [Some(1.0), Some(1.0), Some(f64::NAN)],
        &["row 3, column `cost`: cost NaN must be a finite number > 0"],
    );
    cost_case(
        [Some(-1.0), Some(1.0), Some(1.0)],
        &["row 1, column `cost`: cost -1 must be"],
    );
    cost_case(
        [Some(0.0), Some(1.0), Some(1.0)],
        &["row 1, column `cost`: cost 0 must be"],
    );
    cost_case(
        [Some(1.0), Some(f64::INFINITY), Some(1.0)],
        &["row 2, column `cost`: cost inf"],
    );
    bad_agents(
        vec![
            ("agent", abc()),
            ("cost", ones()),
            ("capability", nums(&[Some(0.5), Some(1.5), Some(0.5)])),
        ],
        &["agents.parquet: row 2, column `capability`: capability 1.5 is outside [0, 1]"],
    );
    bad_agents(
        vec![
            ("agent", abc()),
            ("cost", ones()),
            ("capability", nums(&[Some(-0.1), Some(0.5), Some(0.5)])),
        ],
        &["row 1, column `capability`: capability -0.1 is outside [0, 1]"],
    );
    bad_agents(
        vec![
            ("agent", abc()),
            ("cost", ones()),
            ("capability", nums(&[Some(0.5), None, Some(0.5)])),
        ],
        &["row 2, column `capability`: null `capability`"],
    );
    bad_agents(
        vec![
            ("agent", names(&[Some("alice"), Some("bob"), Some("alice")])),
            ("cost", ones()),
            ("capability", halves()),
        ],
        &["agents.parquet: row 3, column `agent`: agent `alice` is listed twice (rows 1 and 3)"],
    );
    bad_agents(
        vec![
            ("agent", names(&[Some("alice"), None, Some("carol")])),
            ("cost", ones()),
            ("capability", halves()),
        ],
        &["row 2, column `agent`: null `agent`"],
    );
    bad_agents(
        vec![
            ("agent", names(&[])),
            ("cost", nums(&[])),
            ("capability", nums(&[])),
        ],
        &["agents.parquet", "no agents"],
    );
}

#[test]
fn agents_without_scores_stop_the_run_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("s.parquet");
    score_cpu(&small_log(dir.path()), &scores).ok();
    let agents = dir.path().join("agents.parquet");
    write_agents(
        &agents,
        &["alice", "zed", "bob", "yan"],
        &[1.0; 4],
        &[0.5; 4],
    );
    let out = dir.path().join("m.json");
    let run = || {
        trustmesh![
            "mechanism",
            "--scores",
            &scores,
            "--agents",
            &agents,
            "--out",
            &out
        ]
    };
    fails_with(
        run(),
        &[
            "agents.parquet: row 2, column `agent`: agent `zed` has no score in the scores file (2 of 4 agents have none)",
            "give them the score 0 with --unscored zero",
        ],
    );
    assert!(!out.exists());
    run()
        .args(["--unscored", "zero", "--tiers", "2"])
        .ok()
        .stdout_has(&["2 unscored"]);
    let j = read_json(&out);
    assert_eq!(j["unscored_agents"], 2);
    // zed and yan tie at 0 below alice and bob: the lower tier, whole.
    assert_eq!(j["tiers"][0]["members"], 2);
    assert_eq!(j["tiers"][0]["score_max"], 0.0);
}

#[test]
fn bad_parameters_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("s.parquet");
    score_cpu(&small_log(dir.path()), &scores).ok();
    let agents = dir.path().join("agents.parquet");
    write_agents(
        &agents,
        &["alice", "bob", "carol", "dave"],
        &[1.0; 4],
        &[0.5; 4],
    );
    let out = dir.path().join("m.json");
    let with = |extra: &[&str]| {
        trustmesh![
            "mechanism",
            "--scores",
            &scores,
            "--agents",
            &agents,
            "--out",
            &out
        ]
        .args(extra)
    };
    fails_with(
        with(&["--tiers", "0"]),
        &["--tiers must be in 1..=1024, got 0"],
    );
    fails_with(
        with(&["--reward-steps", "1"]),
        &["--reward-steps must be in 2..=65536", "got 1"],
    );
    fails_with(
        with(&["--budget", "-5"]),
        &["--budget must be a finite number >= 0, got -5"],
    );
    fails_with(
        with(&["--budget", "inf"]),
        &[
            "--budget must be a finite number >= 0, got inf",
            "leave it out",
        ],
    );
    fails_with(
        with(&["--task-value", "NaN"]),
        &["--task-value must be a finite number > 0, got NaN"],
    );
    fails_with(
        with(&["--reward-max", "0"]),
        &["--reward-max must be a finite number > 0, got 0"],
    );
    // Usage errors (clap): not a number.
    with(&["--tiers", "-1"]).fails(2);
    with(&["--budget", "lots"]).fails(2);
    assert!(!out.exists(), "no output on error");

    // Files: absent, not Parquet, a scores file without scores.
    let missing = dir.path().join("none.parquet");
    fails_with(
        trustmesh![
            "mechanism",
            "--scores",
            &missing,
            "--agents",
            &agents,
            "--out",
            &out
        ],
        &["none.parquet", "cannot read"],
    );
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"not parquet").unwrap();
    fails_with(
        trustmesh![
            "mechanism",
            "--scores",
            &scores,
            "--agents",
            &junk,
            "--out",
            &out
        ],
        &["junk.parquet", "cannot read"],
    );
    let noscore = dir.path().join("noscore.parquet");
    write_columns(
        &noscore,
        vec![
            ("agent", names(&[Some("alice")])),
            ("rank", Arc::new(Int64Array::from(vec![1]))),
        ],
    );
    fails_with(
        trustmesh![
            "mechanism",
            "--scores",
            &noscore,
            "--agents",
            &agents,
            "--out",
            &out
        ],
        &["noscore.parquet", "missing column `score`"],
    );
    let nan = dir.path().join("nan.parquet");
    write_columns(
        &nan,
        vec![
            ("agent", names(&[Some("alice"), Some("bob")])),
            ("score", nums(&[Some(0.5), Some(f64::NAN)])),
        ],
    );
    fails_with(
        trustmesh![
            "mechanism",
            "--scores",
            &nan,
            "--agents",
            &agents,
            "--out",
            &out
        ],
        &["nan.parquet: row 2, column `score`: score NaN is not a finite number"],
    );
    // An output that cannot be written.
    fails_with(
        trustmesh![
            "mechanism",
            "--scores",
            &scores,
            "--agents",
            &agents,
            "--out",
            dir.path().join("no/such/m.json")
        ],
        &["m.json", "cannot write"],
    );
}
