//! Cross-check against an independent implementation (Python: numpy, scipy,
//! pyarrow; tests/reference/eigentrust_ref.py) on held-out real logs that no
//! other test uses: Advogato (one weighted layer) and Slashdot (signed, split
//! into a cheap and a costly layer, with decay and distrust discount). Per-agent
//! scores must agree within 1e-9 absolute at epsilon 1e-12.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Runs the reference; returns None (after saying so on stderr) only when its
/// Python dependencies are missing, which .ci/run installs.
fn reference(args: &[&str]) -> Option<HashMap<String, f64>> {
    let probe = Command::new("python3")
        .args(["-c", "import numpy, scipy, pyarrow"])
        .output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPED reference cross-check: python3 with numpy, scipy and pyarrow not found (bash .ci/run installs them)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/eigentrust_ref.py");
    let o = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = args
        .iter()
        .position(|a| *a == "--out")
        .map(|i| args[i + 1])
        .unwrap();
    let text = std::fs::read_to_string(out).unwrap();
    Some(
        text.lines()
            .skip(1)
            .map(|l| {
                let (a, s) = l.rsplit_once(',').unwrap();
                (a.to_string(), s.parse().unwrap())
            })
            .collect(),
    )
}

fn compare(ours: &Path, theirs: &HashMap<String, f64>) {
    let ours = read_scores(ours);
    assert_eq!(ours.len(), theirs.len(), "agent count");
    let mut worst = 0.0f64;
    for (agent, s, _) in &ours {
        let r = theirs
            .get(agent)
            .unwrap_or_else(|| panic!("reference lacks agent {agent}"));
        worst = worst.max((s - r).abs());
    }
    eprintln!(
        "reference cross-check: {} agents, max |diff| = {worst:.3e}",
        ours.len()
    );
    assert!(worst < 1e-9, "max abs diff {worst}");
}

#[test]
fn single_layer_advogato_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("adv.parquet");
    let src = shared_data("advogato/out.advogato");
    let o = run(&[
        "convert",
        "--from",
        "konect",
        src.to_str().unwrap(),
        "--out",
        log.to_str().unwrap(),
        "--layer",
        "cert",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pre = dir.path().join("pre.txt");
    std::fs::write(&pre, "1\n2\n15\n").unwrap();
    let ours = dir.path().join("ours.parquet");
    let (log, pre) = (log.to_str().unwrap(), pre.to_str().unwrap());
    let o = run(&[
        "score",
        "--log",
        log,
        "--out",
        ours.to_str().unwrap(),
        "--epsilon",
        "1e-12",
        "--max-iter",
        "1000",
        "--pretrusted",
        pre,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let refp = dir.path().join("ref.csv");
    if let Some(theirs) = reference(&[
        "--log",
        log,
        "--out",
        refp.to_str().unwrap(),
        "--epsilon",
        "1e-12",
        "--max-iter",
        "1000",
        "--pretrusted",
        pre,
    ]) {
        compare(&ours, &theirs);
    }
}

#[test]
fn multi_layer_slashdot_matches_reference() {
    use std::io::Read;
    let mut text = String::new();
    let f = std::fs::File::open(shared_data(
        "slashdot-signed/soc-sign-Slashdot090221.txt.gz",
    ))
    .unwrap();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .unwrap();
    // Every third row is a costly `payment`, the rest cheap `review`s; one row
    // per minute; weights vary so volume and trust differ.
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .enumerate()
        .map(|(k, l)| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let layer = if k % 3 == 0 { "payment" } else { "review" };
            row(
                k as i64 * 60_000,
                f[0],
                f[1],
                layer,
                f[2].parse().unwrap(),
                0.5 + (k % 5) as f64 * 0.25,
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sd.parquet");
    write_log(&log, &rows);
    let ours = dir.path().join("ours.parquet");
    let log = log.to_str().unwrap();
    let common = [
        "--log",
        log,
        "--epsilon",
        "1e-12",
        "--max-iter",
        "1000",
        "--cheap",
        "review",
        "--costly",
        "payment",
        "--beta",
        "0.3",
        "--tau",
        "1.5",
        "--layer-weight",
        "review=1",
        "--layer-weight",
        "payment=3",
        "--distrust",
        "discount",
    ];
    let mut args = vec![
        "score",
        "--out",
        ours.to_str().unwrap(),
        "--half-life",
        "30d",
    ];
    args.extend(common);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let refp = dir.path().join("ref.csv");
    let mut rargs = vec!["--out", refp.to_str().unwrap(), "--half-life", "2592000"];
    rargs.extend(common);
    if let Some(theirs) = reference(&rargs) {
        compare(&ours, &theirs);
    }
}
