//! `simulate`: small configurations that run in seconds, through the library
//! and the binary.

use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use trustmesh::simulate::{self, dgpan, metric, summarise, Model, ScenarioKind, SimConfig};
use trustmesh::trust::CpuBackend;

use crate::common::*;

fn small(scenario: ScenarioKind, work: &Path) -> SimConfig {
    SimConfig {
        peers: 40,
        epochs: 3,
        seeds: 2,
        ..SimConfig::new(scenario, vec![0.2], work.to_path_buf())
    }
}

/// Mean inauthentic share of `model` (one share in the rows).
fn mean(rows: &[simulate::ResultRow], model: &str) -> f64 {
    mean_of(rows, model, metric::INAUTHENTIC)
}

#[test]
fn trust_cuts_inauthentic_downloads_of_individual_malicious_peers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(ScenarioKind::A, dir.path());
    let rows = simulate::run(&cfg, &CpuBackend).unwrap();
    // 2 seeds × 2 models × 3 metrics.
    assert_eq!(rows.len(), 12);
    let (random, public) = (mean(&rows, "random"), mean(&rows, "public"));
    // Uniform choice among the 39 others meets 8/39 ≈ 0.21 malicious.
    assert!((0.12..0.3).contains(&random), "random {random}");
    assert!(public < 0.75 * random, "public {public} vs random {random}");
    // Runs clean up their logs unless asked to keep them.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // The same seed gives the same results, bit for bit; with a progress
    // callback too, which hears of every run once, in order.
    let mut seen = Vec::new();
    let again = simulate::run_with_progress(&cfg, &CpuBackend, &mut |d| {
        seen.push((d.model, d.seed, d.done, d.total))
    })
    .unwrap();
    assert_eq!(again, rows);
    assert_eq!(
        seen,
        [
            (Model::Random, 0, 1, 4),
            (Model::Public, 0, 2, 4),
            (Model::Random, 1, 3, 4),
            (Model::Public, 1, 4, 4),
        ]
    );
}

#[test]
fn a_collective_is_held_off_and_logs_are_kept_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        models: vec![Model::Random, Model::Public],
        keep_logs: true,
        ..small(ScenarioKind::B, dir.path())
    };
    let rows = simulate::run(&cfg, &CpuBackend).unwrap();
    let (random, public) = (mean(&rows, "random"), mean(&rows, "public"));
    assert!(public < 0.75 * random, "public {public} vs random {random}");
    let kept = dir.path().join("B-public-m0.2-s1/log");
    let epochs = std::fs::read_dir(&kept).unwrap().count();
    assert_eq!(epochs, 3, "{}", kept.display());
    // A kept log is a real interaction log: `score` reads it.
    let out = dir.path().join("scores.parquet");
    score_cpu(&kept, &out).ok();
    assert_eq!(read_scores(&out).len(), 40);
}

/// (scenario, model, malicious, seed, metric, value) rows of a results file.
type Results = Vec<(String, String, f64, u64, String, f64)>;

fn read_results(path: &Path) -> Results {
    let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in r {
        let b = b.unwrap();
        let s = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
        let f = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>()
                .clone()
        };
        let (sc, model, metric) = (s("scenario"), s("model"), s("metric"));
        let (m, value) = (f("malicious"), f("value"));
        let seed = b
            .column_by_name("seed")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .clone();
        for i in 0..b.num_rows() {
            out.push((
                sc.value(i).to_string(),
                model.value(i).to_string(),
                m.value(i),
                seed.value(i),
                metric.value(i).to_string(),
                value.value(i),
            ));
        }
    }
    out
}

#[test]
fn the_command_writes_results_and_a_table_and_repeats_itself_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path, threads: &str| {
        trustmesh![
            "simulate",
            "--scenario",
            "A",
            "--peers",
            "40",
            "--malicious",
            "0.2",
            "--epochs",
            "3",
            "--seeds",
            "2",
            "--device",
            "cpu",
            "--out",
            out
        ]
        .env("RAYON_NUM_THREADS", threads)
        .ok()
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let done = run(&a, "2");
    done.stdout_has(&["| malicious | random | public | public vs random |"]);
    // stderr is a pipe here, not a terminal: no progress bar.
    assert!(!done.stderr.contains("runs"), "{done}");
    run(&b, "1");
    let results = read_results(&a.join("results.parquet"));
    assert_eq!(results.len(), 12);
    assert!(results.iter().all(|r| r.0 == "A" && r.2 == 0.2));
    assert_eq!(results, read_results(&b.join("results.parquet")));
    let md = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(md.contains("| 0.2 |"), "{md}");
    // A plot per metric next to the results, each linked from the report.
    for metric in [
        metric::INAUTHENTIC,
        metric::INAUTHENTIC_LAST,
        metric::DOWNLOADS,
    ] {
        let name = format!("A-{metric}.svg");
        let svg = std::fs::read_to_string(a.join(&name)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("public"), "{name}");
        assert!(
            md.contains(&format!("]({name})")),
            "{name} not linked:\n{md}"
        );
    }
    assert!(
        !a.join("logs").exists(),
        "logs are removed unless --keep-logs"
    );

    trustmesh![
        "simulate",
        "--scenario",
        "B",
        "--peers",
        "10",
        "--malicious",
        "1.5",
        "--device",
        "cpu",
        "--out",
        &a
    ]
    .fails(1)
    .stderr_has(&["--malicious must be in [0, 1), got 1.5"]);
}

/// Mean of `metric` for `model` (one share in the rows).
fn mean_of(rows: &[simulate::ResultRow], model: &str, metric: &str) -> f64 {
    summarise(rows, metric)
        .into_iter()
        .find(|s| s.model == model)
        .unwrap_or_else(|| panic!("no {model} {metric} in the results"))
        .mean
}

#[test]
fn dgpan_topic_switching_beats_public_trust_and_slashing_is_what_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig {
        peers: 40,
        epochs: 6,
        seeds: 2,
        models: vec![
            Model::Random,
            Model::Public,
            Model::PerTopic,
            Model::Mg,
            Model::MgNoSlashing,
        ],
        ..SimConfig::new(ScenarioKind::Dgpan, vec![0.3], dir.path().to_path_buf())
    };
    cfg.dgpan.queries = 20;
    let rows = simulate::run(&cfg, &CpuBackend).unwrap();
    let success = |m| mean_of(&rows, m, dgpan::metric::ATTACK_SUCCESS);
    let roi = |m| mean_of(&rows, m, dgpan::metric::ROI);
    let whitewashes = |m| mean_of(&rows, m, dgpan::metric::WHITEWASHES);
    // Reputation built in one topic and spent in another: the topic-blind
    // model sends honest queries to the defectors more than chance does.
    assert!(
        success("public") > 1.3 * success("random"),
        "public {} vs random {}",
        success("public"),
        success("random")
    );
    // MG-EigenTrust holds them off; without slashing it does not.
    assert!(success("mg") < 0.7 * success("per-topic"), "{rows:?}");
    assert!(success("mg") < 0.7 * success("mg-no-slashing"), "{rows:?}");
    // Slashing burns more stake than the defections earn, and the
    // attackers come back under fresh identities; nothing else slashes.
    assert!(roi("mg") < 0.0 && roi("random") > 0.0, "{rows:?}");
    assert!(whitewashes("mg") >= 1.0, "{rows:?}");
    for m in ["random", "public", "per-topic", "mg-no-slashing"] {
        assert_eq!(whitewashes(m), 0.0, "{m}");
    }
    // Honest newcomers get a cold-start figure under every trust model.
    assert!(rows
        .iter()
        .any(|r| r.model == "mg" && r.metric == dgpan::metric::COLD_START));
    // The same seed gives the same results, bit for bit.
    assert_eq!(simulate::run(&cfg, &CpuBackend).unwrap(), rows);
}

#[test]
fn corroboration_beats_plain_eigentrust_against_a_ring_in_a_free_layer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        models: vec![Model::Random, Model::Public, Model::Mg],
        keep_logs: true,
        ..small(ScenarioKind::Ring, dir.path())
    };
    let rows = simulate::run(&cfg, &CpuBackend).unwrap();
    let (public, mg) = (mean(&rows, "public"), mean(&rows, "mg"));
    assert!(mg < 0.85 * public, "mg {mg} vs public {public}");
    // The log has both layers: paid downloads and free reviews.
    let log = dir.path().join("ring-mg-m0.2-s0/log");
    let out = dir.path().join("scores.parquet");
    let report = dir.path().join("report.json");
    trustmesh!["score", "--log", &log, "--device", "cpu", "--out", &out, "--report", &report].ok();
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(
        report.contains("\"payment\"") && report.contains("\"review\""),
        "{report}"
    );
}

#[test]
fn models_a_scenario_cannot_give_and_bad_dgpan_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    trustmesh![
        "simulate",
        "--scenario",
        "A",
        "--models",
        "random,per-topic",
        "--device",
        "cpu",
        "--out",
        dir.path()
    ]
    .fails(1)
    .stderr_has(&[
        "--models",
        "`per-topic` needs a scenario whose layers are topics",
    ]);
    trustmesh![
        "simulate",
        "--scenario",
        "dgpan",
        "--detection",
        "1.5",
        "--device",
        "cpu",
        "--out",
        dir.path()
    ]
    .fails(1)
    .stderr_has(&["--detection must be in [0, 1], got 1.5"]);
}

#[test]
fn sybils_capture_open_trust_and_the_identity_registry_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        models: vec![Model::Random, Model::Public, Model::Mg],
        pretrusted: 0,
        keep_logs: true,
        ..small(ScenarioKind::Sybil, dir.path())
    };
    let rows = simulate::run(&cfg, &CpuBackend).unwrap();
    let (random, public, mg) = (
        mean(&rows, "random"),
        mean(&rows, "public"),
        mean(&rows, "mg"),
    );
    // Uniform pre-trust hands every fake identity trust to pass on.
    assert!(public > 1.5 * random, "public {public} vs random {random}");
    // Raters outside the registry are dropped: the fakes count for nothing.
    assert!(mg < 0.5 * public, "mg {mg} vs public {public}");
    // The registry is a real BAID ledger with the serving peers only.
    let ledger = dir.path().join("sybil-mg-m0.2-s0/registry.jsonl");
    let registered = std::fs::read_to_string(&ledger).unwrap().lines().count();
    assert_eq!(registered, 40, "{}", ledger.display());
}

#[test]
fn camouflage_values_make_a_series_each() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    trustmesh![
        "simulate",
        "--scenario",
        "C",
        "--camouflage",
        "0.2,0.8",
        "--peers",
        "30",
        "--malicious",
        "0.2",
        "--epochs",
        "2",
        "--seeds",
        "1",
        "--device",
        "cpu",
        "--out",
        &out
    ]
    .ok()
    .stdout_has(&["## Scenario C f=0.2:", "## Scenario C f=0.8:"]);
    let results = read_results(&out.join("results.parquet"));
    let mut series: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
    series.dedup();
    assert_eq!(series, ["C f=0.2", "C f=0.8"]);
    // Each series is its own world: a more honest collective is met more
    // often but serves fewer inauthentic files under random choice.
    let random = |s: &str| {
        results
            .iter()
            .find(|r| r.0 == s && r.1 == "random" && r.4 == metric::INAUTHENTIC)
            .unwrap()
            .5
    };
    assert!(random("C f=0.2") > random("C f=0.8"), "{results:?}");
}
