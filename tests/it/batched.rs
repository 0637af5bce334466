//! `--pretrusted-sets` and `--per-layer`: batched results equal the single
//! runs they replace, bit for bit on the CPU.

use crate::common::*;

#[test]
fn pretrust_sets_equal_single_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = bitcoin_log(dir.path(), "trust");
    // 33 sets: more than one block of 16 columns, and a remainder of 1.
    let mut csv = String::from("set,agent\n");
    for s in 0..33 {
        for a in [s + 1, s + 7, 2 * s + 11] {
            csv.push_str(&format!("s{s:02},{a}\n"));
        }
    }
    let sets = dir.path().join("sets.csv");
    std::fs::write(&sets, &csv).unwrap();
    let out = dir.path().join("sets.parquet");
    let sets_run = || score_cpu(&log, &out).arg("--pretrusted-sets").arg(&sets);
    sets_run().ok();
    let batch = read_long(&out, "set");
    assert_eq!(batch.len(), 33 * 3783);
    for s in [0, 16, 32] {
        let pre = dir.path().join("pre.txt");
        std::fs::write(&pre, format!("{}\n{}\n{}\n", s + 1, s + 7, 2 * s + 11)).unwrap();
        let single = dir.path().join("single.parquet");
        score_cpu(&log, &single).arg("--pretrusted").arg(&pre).ok();
        for (agent, score, _) in read_scores(&single) {
            assert_eq!(
                batch[&(agent, format!("s{s:02}"))].0.to_bits(),
                score.to_bits()
            );
        }
    }

    std::fs::write(&sets, "set,agent\nx,999999\n").unwrap();
    sets_run().fails(1).stderr_has(&["row 1", "`999999`"]);
}

#[test]
fn per_layer_equals_single_layer_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    let mut rows = Vec::new();
    for k in 0..200i64 {
        let (a, b) = (format!("a{}", k % 17), format!("a{}", (k * 7 + 3) % 19));
        rows.push(row(
            k,
            &a,
            &b,
            if k % 3 == 0 { "pay" } else { "review" },
            ((k % 5) as f64 - 1.0) / 4.0,
            1.0,
        ));
    }
    write_log(&log, &rows);
    let out = dir.path().join("pl.parquet");
    score_cpu(&log, &out).arg("--per-layer").ok();
    let batch = read_long(&out, "layer");
    for layer in ["pay", "review"] {
        let single = dir.path().join("single.parquet");
        score_cpu(&log, &single).args(["--layers", layer]).ok();
        let s = read_scores(&single);
        assert_eq!(s.len(), 19);
        for (agent, score, _) in s {
            assert_eq!(
                batch[&(agent, layer.to_string())].0.to_bits(),
                score.to_bits()
            );
        }
    }
}
