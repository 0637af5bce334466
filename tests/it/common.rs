//! Shared helpers: writing logs, reading results, finding data sets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, TimeUnit};

pub(crate) use crate::util::trustmesh;
use crate::util::Trustmesh;

/// One log row: (ts ms, src, dst, layer, outcome, weight).
pub type Row = (i64, String, String, String, f64, f64);

pub fn row(ts: i64, src: &str, dst: &str, layer: &str, outcome: f64, weight: f64) -> Row {
    (ts, src.into(), dst.into(), layer.into(), outcome, weight)
}

/// Writes rows with the canonical column types.
pub fn write_log(path: &Path, rows: &[Row]) {
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "ts",
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
        ),
        (
            "src",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            )),
        ),
        (
            "dst",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
            )),
        ),
        (
            "layer",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(),
            )),
        ),
        (
            "outcome",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )),
        ),
        (
            "weight",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.5).collect::<Vec<_>>(),
            )),
        ),
    ];
    write_columns(path, cols);
}

/// Writes arbitrary columns (for bad-input tests), every field nullable so a
/// test can put nulls where the log schema forbids them.
pub fn write_columns(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    trustmesh::parquet_out::write_columns(path, cols, true).unwrap();
}

#[allow(dead_code)]
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// Reads an output score file as (agent, score, rank) rows.
pub fn read_scores(path: &Path) -> Vec<(String, f64, u32)> {
    use arrow::array::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in r {
        let b = b.unwrap();
        let a = b
            .column_by_name("agent")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let s = b
            .column_by_name("score")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>()
            .clone();
        let k = b
            .column_by_name("rank")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .clone();
        for i in 0..b.num_rows() {
            out.push((a.value(i).to_string(), s.value(i), k.value(i)));
        }
    }
    out
}

/// `trustmesh score` of `log` into `out` on the CPU, the exact back end that
/// bit-for-bit comparisons need; more arguments can be added.
pub fn score_cpu(log: &Path, out: &Path) -> Trustmesh {
    trustmesh!["score", "--device", "cpu", "--log", log, "--out", out]
}

/// A path as a [`trustmesh::score::ScoreConfig::logs`] entry, which is a
/// string because it may be a glob; temporary paths are UTF-8.
pub fn log_arg(p: &Path) -> String {
    p.to_str().expect("a UTF-8 path").to_owned()
}

/// A file of the small real data sets committed in `tests/data/`.
pub fn test_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A file of the full data sets, which are too large to commit: under
/// `$TRUSTMESH_DATA` when set, else `../shared/data` beside the checkout
/// (where CI has them). When it is absent this says so on stderr and returns
/// None, and the test returns: written to the stderr handle, not with
/// `eprintln!`, which the test harness captures for passing tests.
pub fn full_data(rel: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("TRUSTMESH_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    };
    let path = root.join(rel);
    if path.is_file() {
        return Some(path);
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (data not found: {}; put it at $TRUSTMESH_DATA/{rel} or ../shared/data/{rel} beside the checkout)",
        path.display()
    );
    None
}

/// Long-format output (`agent`, `<key>`, `score`, `rank`) keyed by (agent, group).
pub fn read_long(
    path: &Path,
    key: &str,
) -> std::collections::HashMap<(String, String), (f64, u32)> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, UInt32Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = std::collections::HashMap::new();
    for b in r {
        let b = b.unwrap();
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (a, g, s, k) = (col("agent"), col(key), col("score"), col("rank"));
        let (a, g) = (a.as_string::<i32>(), g.as_string::<i32>());
        let (s, k) = (
            s.as_primitive::<Float64Type>(),
            k.as_primitive::<UInt32Type>(),
        );
        for i in 0..b.num_rows() {
            out.insert(
                (a.value(i).to_string(), g.value(i).to_string()),
                (s.value(i), k.value(i)),
            );
        }
    }
    out
}

/// The Bitcoin Alpha network converted by `trustmesh convert` to a log in
/// `dir`, every row in `layer`.
pub fn bitcoin_log(dir: &Path, layer: &str) -> PathBuf {
    let log = dir.join("ba.parquet");
    let src = test_data("bitcoin-alpha/soc-sign-bitcoinalpha.csv.gz");
    trustmesh![
        "convert",
        "--from",
        "snap-signed",
        src,
        "--out",
        &log,
        "--layer",
        layer,
        "--rating-scale",
        "10",
    ]
    .ok()
    .stdout_has(&["wrote 24186 rows"]);
    log
}
