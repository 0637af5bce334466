//! Cross-check against an independent implementation (Python: numpy, scipy,
//! pyarrow; tests/reference/eigentrust_ref.py) on held-out real logs that no
//! other test uses: Advogato (one weighted layer) and Slashdot (signed, split
//! into a cheap and a costly layer, with decay and distrust discount): a
//! sample committed in tests/data, and the whole network when it is found
//! beside the checkout. Per-agent scores must agree within 1e-9 absolute at
//! epsilon 1e-12.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::util::args;

/// Set (to anything but 0) where the cross-check must run: a missing Python
/// dependency is then a failure, not a skip (.ci/run sets it, as it sets
/// TRUSTMESH_REQUIRE_GPU for the GPU tests).
const REQUIRE: &str = "TRUSTMESH_REQUIRE_REFERENCE";

/// Runs the reference with `args` (it takes the CLI's flags); returns None
/// (after saying so on stderr) only when its Python dependencies are missing
/// and [`REQUIRE`] is not set.
fn reference(args: &[OsString]) -> Option<HashMap<String, f64>> {
    let probe = Command::new("python3")
        .args(["-c", "import numpy, scipy, pyarrow"])
        .output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        let why = "python3 with numpy, scipy and pyarrow not found (bash .ci/run installs them)";
        if std::env::var(REQUIRE).is_ok_and(|v| v != "0") {
            panic!("{REQUIRE} is set but {why}");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED reference cross-check: {why}");
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
        .position(|a| a == "--out")
        .map(|i| &args[i + 1])
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
    let src = test_data("advogato/out.advogato.gz");
    trustmesh!["convert", "--from", "konect", src, "--out", &log, "--layer", "cert"].ok();
    let pre = dir.path().join("pre.txt");
    std::fs::write(&pre, "1\n2\n15\n").unwrap();
    let ours = dir.path().join("ours.parquet");
    let common = args![
        "--log",
        &log,
        "--epsilon",
        "1e-12",
        "--max-iter",
        "1000",
        "--pretrusted",
        &pre,
    ];
    trustmesh!["score", "--out", &ours].args(&common).ok();
    let refp = dir.path().join("ref.csv");
    if let Some(theirs) = reference(&[args!["--out", &refp], common].concat()) {
        compare(&ours, &theirs);
    }
}

/// Slashdot's friend/foe links from `src` (SNAP's format) as a two-layer log:
/// every third row is a costly `payment`, the rest cheap `review`s; one row
/// per minute; weights vary so volume and trust differ. Scored with decay,
/// corroboration and distrust discount by both implementations.
fn multi_layer_slashdot_matches_reference(src: &Path) {
    use std::io::Read;
    let mut text = String::new();
    let f = std::fs::File::open(src).unwrap();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .unwrap();
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
    let common = args![
        "--log",
        &log,
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
    trustmesh!["score", "--out", &ours, "--half-life", "30d"]
        .args(&common)
        .ok();
    let refp = dir.path().join("ref.csv");
    let rargs = [args!["--out", &refp, "--half-life", "2592000"], common].concat();
    if let Some(theirs) = reference(&rargs) {
        compare(&ours, &theirs);
    }
}

#[test]
fn multi_layer_slashdot_sample_matches_reference() {
    multi_layer_slashdot_matches_reference(&test_data(
        "slashdot/soc-sign-Slashdot090221-ids-below-5000.txt.gz",
    ));
}

/// The whole network (549,202 links), where it is beside the checkout.
#[test]
fn multi_layer_slashdot_full_matches_reference() {
    if let Some(src) = full_data("slashdot-signed/soc-sign-Slashdot090221.txt.gz") {
        multi_layer_slashdot_matches_reference(&src);
    }
}
