//! `score --per-topic` end to end: hand-computed case, attacker bounds,
//! slashing, equivalence with plain scoring, gate, and bad side tables.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;
use crate::util::Trustmesh;

type TopicRows = HashMap<(String, String), (f64, u32)>;

fn per_topic(dir: &Path, log: &Path, extra: &[&str]) -> (TopicRows, serde_json::Value) {
    per_topic_with(dir, log, |c| c.args(extra))
}

/// `score --per-topic` on `log` with the arguments `extra` adds; the long
/// output keyed by (agent, topic), and the report.
fn per_topic_with(
    dir: &Path,
    log: &Path,
    extra: impl FnOnce(Trustmesh) -> Trustmesh,
) -> (TopicRows, serde_json::Value) {
    let out = dir.join("t.parquet");
    let rep = dir.join("t.json");
    extra(trustmesh![
        "score",
        "--per-topic",
        "--log",
        log,
        "--out",
        &out,
        "--report",
        &rep,
        "--epsilon",
        "1e-14",
        "--max-iter",
        "2000",
    ])
    .ok();
    let r = serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    (read_long(&out, "topic"), r)
}

fn get(s: &TopicRows, agent: &str, topic: &str) -> f64 {
    s[&(agent.to_string(), topic.to_string())].0
}

#[test]
fn hand_computed_two_topics() {
    // Topic A: a -> b; topic B: b -> a; alpha 0.5, rho 0.5, uniform p.
    // Pass 1: A gives (a, b) = (0.4, 0.6), B gives (0.6, 0.4).
    // Prior of A: (0.5·0.5 + 0.5·0.6, 0.5·0.5 + 0.5·0.4) = (0.55, 0.45);
    // then t_a = 0.275·t_b + 0.275 with t_a + t_b = 1 → t_a = 0.55 / 1.275.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    write_log(
        &log,
        &[
            row(1, "a", "b", "A", 1.0, 1.0),
            row(2, "b", "a", "B", 1.0, 1.0),
        ],
    );
    let (s, r) = per_topic(dir.path(), &log, &["--alpha", "0.5", "--rho", "0.5"]);
    let ta = 0.55 / 1.275;
    assert!((get(&s, "a", "A") - ta).abs() < 1e-12);
    assert!((get(&s, "b", "A") - (1.0 - ta)).abs() < 1e-12);
    assert!((get(&s, "b", "B") - ta).abs() < 1e-12);
    assert!((get(&s, "a", "global") - 0.5).abs() < 1e-12);
    assert_eq!(s.len(), 6, "every agent in every topic plus global");
    assert_eq!(r["topics"][0]["first"]["stop"], "converged");
    assert!(r["topics"][0]["second"].is_object());

    // Without the prior (rho 0) the first pass is final: (0.4, 0.6) in A.
    let (s, r) = per_topic(dir.path(), &log, &["--alpha", "0.5", "--rho", "0"]);
    assert!((get(&s, "a", "A") - 0.4).abs() < 1e-12);
    assert!(r["topics"][0]["second"].is_null());
}

/// Topic `code`: many honest raters trust m. Topic `data`: m has no evidence.
fn attacker_log(path: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for k in 0..8 {
        let h = format!("h{k}");
        rows.push(row(k, &h, "m", "code", 1.0, 1.0));
        rows.push(row(k, &h, &format!("h{}", (k + 1) % 8), "data", 1.0, 1.0));
        rows.push(row(k, &h, &format!("h{}", (k + 3) % 8), "code", 0.5, 1.0));
    }
    rows.push(row(9, "m", "h0", "data", 1.0, 1.0));
    write_log(path, &rows);
    rows
}

#[test]
fn topic_switching_attacker_gets_no_more_than_the_prior_allows() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    attacker_log(&log);
    let rho = 0.1;
    let (s, _) = per_topic(dir.path(), &log, &["--rho", "0.1"]);
    let n = 9.0;
    let (in_code, in_data) = (get(&s, "m", "code"), get(&s, "m", "data"));
    // m receives no edge in `data`, so its score there is at most its prior pre-trust.
    let prior_bound = (1.0 - rho) / n + rho * in_code;
    assert!(in_data <= prior_bound + 1e-12, "{in_data} > {prior_bound}");
    assert!(
        in_code > 5.0 * in_data,
        "trust earned in code must not carry over: {in_code} vs {in_data}"
    );
}

#[test]
fn slashing_removes_pretrust_stake_and_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    attacker_log(&log);
    let stake = dir.path().join("stake.csv");
    std::fs::write(&stake, "agent,stake\nm,1000\nh0,1\nh1,1\n").unwrap();
    let proofs = dir.path().join("proofs.csv");
    std::fs::write(&proofs, "agent,topic,evidence\nm,data,double-spend-tx-42\n").unwrap();
    let staked = |c: Trustmesh| c.arg("--stake").arg(&stake).args(["--rho", "0"]);
    let (before, _) = per_topic_with(dir.path(), &log, staked);
    let (after, r) = per_topic_with(dir.path(), &log, |c| {
        staked(c).arg("--fraud-proofs").arg(&proofs)
    });
    assert_eq!(r["slashed_agents"], 1);
    assert_eq!(r["staked_agents"], 3);
    assert_eq!(
        r["rows_dropped"]["slashed_rater"], 1,
        "m's one `data` rating is dropped"
    );
    // Staked heavily, m held over half the pre-trust (p_m ≈ 0.555, so its
    // `data` score, all from teleport, ≈ 0.15·0.555); slashed, it has none, and
    // with no incoming `data` edges its `data` score is exactly zero.
    assert!(get(&before, "m", "data") > 0.08);
    assert_eq!(get(&after, "m", "data"), 0.0);
    // Its dropped feedback no longer lifts h0 in `data`.
    assert!(get(&after, "h0", "data") < get(&before, "h0", "data"));
}

/// Each proof once became one SQL term, and tens of thousands risked the
/// planner's stack; 100,000 proofs must cost no more than a set lookup.
#[test]
fn a_hundred_thousand_fraud_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    attacker_log(&log);
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "agent,topic,evidence\nm,data,tx-0\n").unwrap();
    let many = dir.path().join("many.csv");
    let mut text = String::from("agent,topic,evidence\n");
    for i in 0..100_000 {
        text.push_str(&format!("m,data,tx-{i}\n"));
    }
    std::fs::write(&many, text).unwrap();
    let (a, ra) = per_topic_with(dir.path(), &log, |c| c.arg("--fraud-proofs").arg(&one));
    let (b, rb) = per_topic_with(dir.path(), &log, |c| c.arg("--fraud-proofs").arg(&many));
    assert_eq!(a, b, "repeated proofs of one fraud slash once");
    assert_eq!(rb["rows_dropped"]["slashed_rater"], 1);
    assert_eq!(ra["slashed_agents"], rb["slashed_agents"]);
}

#[test]
fn one_topic_equals_plain_score_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let log = bitcoin_log(dir.path(), "trust");
    let plain = dir.path().join("p.parquet");
    trustmesh![
        "score",
        "--log",
        &log,
        "--out",
        &plain,
        "--epsilon",
        "1e-14",
        "--max-iter",
        "2000",
    ]
    .ok();
    let (topics, _) = per_topic(dir.path(), &log, &[]);
    for (agent, score, rank) in read_scores(&plain) {
        assert_eq!(
            topics[&(agent.clone(), "trust".to_string())],
            (score, rank),
            "{agent}"
        );
        assert_eq!(
            topics[&(agent, "global".to_string())].0.to_bits(),
            score.to_bits()
        );
    }
}

#[test]
fn consistency_gate_discounts_the_contrarian() {
    // h0..h3 rate x and y +1; c rates x and y -1 and praises z alone.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    let mut rows = Vec::new();
    for k in 0..4 {
        for t in ["x", "y"] {
            rows.push(row(1, &format!("h{k}"), t, "t", 1.0, 1.0));
        }
    }
    for (t, o) in [("x", -1.0), ("y", -1.0), ("z", 1.0)] {
        rows.push(row(1, "c", t, "t", o, 1.0));
    }
    write_log(&log, &rows);
    let (plain, _) = per_topic(dir.path(), &log, &[]);
    let (gated, r) = per_topic(dir.path(), &log, &["--consistency-gate"]);
    assert_eq!(r["consistency_gate"], true);
    assert!(
        get(&gated, "z", "t") < get(&plain, "z", "t"),
        "z is praised only by the contrarian"
    );
}

#[test]
fn bad_side_tables() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    attacker_log(&log);
    let out = dir.path().join("o.parquet");
    let check = |flag: &str, file: &str, content: &str, needles: &[&str]| {
        let p = dir.path().join(file);
        std::fs::write(&p, content).unwrap();
        let run = trustmesh![
            "score",
            "--per-topic",
            "--log",
            &log,
            "--out",
            &out,
            flag,
            &p
        ]
        .fails(1);
        assert!(!run.stderr.contains("panicked"), "{run}");
        run.stderr_has(needles);
    };
    check(
        "--stake",
        "s.csv",
        "agent,stake\nm,5\nh1,-2\n",
        &["s.csv", "row 2", "`stake`", ">= 0"],
    );
    check(
        "--stake",
        "s.csv",
        "agent,stake\nm,NaN\n",
        &["row 1", "NaN"],
    );
    check(
        "--stake",
        "s.csv",
        "agent,stake\nzed,1\n",
        &["unknown agent `zed`"],
    );
    check(
        "--fraud-proofs",
        "f.csv",
        "agent,topic,evidence\nzed,code,x\n",
        &["f.csv", "unknown agent `zed`"],
    );
    check(
        "--fraud-proofs",
        "f.csv",
        "agent,topic,evidence\nm,cooking,x\n",
        &["unknown topic `cooking`"],
    );
    check(
        "--topic-similarity",
        "w.csv",
        "topic,code\ncode,1\n",
        &["w.csv", "square"],
    );
    check(
        "--topic-similarity",
        "w.csv",
        "topic,code,data\ncode,1,-0.5\ndata,1,1\n",
        &["w.csv", ">= 0"],
    );
    // --stake needs --per-topic: a usage error.
    trustmesh!["score", "--log", &log, "--out", &out, "--stake", "x.csv"].fails(2);
}
