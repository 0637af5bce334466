//! Bit-identical scores whatever the thread count, file split or row order,
//! and the basic invariants of the output, on real and random logs.

use std::path::Path;

use proptest::prelude::*;
use trustmesh::score::{self, ScoreConfig};
use trustmesh::trust::CpuBackend;

use crate::common::*;

fn score_files(paths: &[&Path], threads: usize, tweak: impl Fn(&mut ScoreConfig)) -> Vec<u64> {
    let mut cfg = ScoreConfig::new(paths.iter().map(|p| log_arg(p)).collect());
    tweak(&mut cfg);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let out = pool.install(|| score::run(&cfg, &CpuBackend)).unwrap();
    out.scores.scores.iter().map(|s| s.to_bits()).collect()
}

/// A multi-layer log from real data: Bitcoin Alpha ratings split into a cheap
/// `review` layer and a costly `payment` layer by row parity, with decaying
/// timestamps and varied weights.
fn bitcoin_rows() -> Vec<Row> {
    let text = {
        use std::io::Read;
        let f =
            std::fs::File::open(test_data("bitcoin-alpha/soc-sign-bitcoinalpha.csv.gz")).unwrap();
        let mut s = String::new();
        flate2::read::GzDecoder::new(f)
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    text.lines()
        .enumerate()
        .map(|(k, l)| {
            let f: Vec<&str> = l.split(',').collect();
            let layer = if k % 2 == 0 { "review" } else { "payment" };
            let rating: f64 = f[2].parse().unwrap();
            let ts: i64 = f[3].parse::<i64>().unwrap() * 1000;
            row(
                ts,
                f[0],
                f[1],
                layer,
                rating / 10.0,
                1.0 + (k % 7) as f64 * 0.37,
            )
        })
        .collect()
}

fn multilayer(cfg: &mut ScoreConfig) {
    cfg.cheap = vec!["review".into()];
    cfg.costly = vec!["payment".into()];
    cfg.ingest.half_life_s = Some(180.0 * 86400.0);
    cfg.layer_weights = vec![("review".into(), 0.4), ("payment".into(), 0.6)];
}

#[test]
fn threads_file_split_and_row_order_give_identical_bits() {
    let dir = tempfile::tempdir().unwrap();
    let rows = bitcoin_rows();
    let whole = dir.path().join("whole.parquet");
    write_log(&whole, &rows);

    // Three files, rows shuffled deterministically (a stride permutation).
    let n = rows.len();
    let perm: Vec<usize> = (0..n).map(|i| (i * 7919) % n).collect();
    assert_eq!(
        {
            let mut p = perm.clone();
            p.sort();
            p.dedup();
            p.len()
        },
        n
    );
    let shuffled: Vec<Row> = perm.iter().map(|&i| rows[i].clone()).collect();
    let parts: Vec<_> = (0..3)
        .map(|k| dir.path().join(format!("part{k}.parquet")))
        .collect();
    for (k, chunk) in shuffled.chunks(n / 3 + 1).enumerate() {
        write_log(&parts[k], chunk);
    }
    let part_refs: Vec<&Path> = parts.iter().map(|p| p.as_path()).collect();

    let one = score_files(&[&whole], 1, multilayer);
    assert_eq!(one, score_files(&[&whole], 2, multilayer), "1 vs 2 threads");
    assert_eq!(one, score_files(&[&whole], 3, multilayer), "1 vs 3 threads");
    assert_eq!(
        one,
        score_files(&part_refs, 2, multilayer),
        "split + shuffled"
    );
    // Sanity: the configuration matters, so the comparison is not vacuous.
    assert_ne!(one, score_files(&[&whole], 1, |_| {}));
}

fn arb_log() -> impl Strategy<Value = Vec<Row>> {
    let agent = prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]);
    let layer = prop::sample::select(vec!["x", "y"]);
    prop::collection::vec(
        (
            0i64..1_000_000,
            agent.clone(),
            agent,
            layer,
            -1.0f64..=1.0,
            0.0f64..5.0,
        ),
        1..40,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(t, s, d, l, o, w)| row(t, s, d, l, o, w))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn scores_sum_to_one_and_ignore_order_and_split(rows in arb_log(), split in 0usize..40) {
        prop_assume!(rows.iter().any(|r| r.1 != r.2));
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("w.parquet");
        write_log(&whole, &rows);
        let mut rev = rows.clone();
        rev.reverse();
        let cut = split.min(rev.len());
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write_log(&a, &rev[..cut]);
        write_log(&b, &rev[cut..]);
        let tweak = |c: &mut ScoreConfig| c.ingest.half_life_s = Some(3600.0);
        let s1 = score_files(&[&whole], 2, tweak);
        let s2 = score_files(&[&a, &b], 1, tweak);
        prop_assert_eq!(&s1, &s2);
        let total: f64 = s1.iter().map(|b| f64::from_bits(*b)).sum();
        prop_assert!((total - 1.0).abs() < 1e-12, "sum {}", total);
        prop_assert!(s1.iter().all(|b| f64::from_bits(*b) >= 0.0));
    }
}

#[test]
fn binary_gives_identical_bits_on_one_thread_and_many() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.parquet");
    write_log(&log, &bitcoin_rows());
    let mut results = Vec::new();
    for threads in ["1", "4"] {
        let out = dir.path().join(format!("s{threads}.parquet"));
        score_cpu(&log, &out)
            .args(["--cheap", "review", "--costly", "payment"])
            .args(["--half-life", "90d", "--distrust", "discount"])
            .env("RAYON_NUM_THREADS", threads)
            .ok()
            .stdout_has(&[&format!("{threads} threads")]);
        results.push(
            read_scores(&out)
                .into_iter()
                .map(|(a, s, r)| (a, s.to_bits(), r))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn decay_halves_weight_per_half_life_and_window_filters() {
    // a rates b now and c one half-life (1 h) earlier, both fully positive;
    // a row two hours old is cut by --since; now = the latest ts read.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.parquet");
    let now = 10_000_000i64;
    write_log(
        &log,
        &[
            row(now, "a", "b", "x", 1.0, 1.0),
            row(now - 3_600_000, "a", "c", "x", 1.0, 1.0),
            row(now - 7_200_000, "a", "d", "x", 1.0, 4.0),
        ],
    );
    let mut cfg = ScoreConfig::new(vec![log_arg(&log)]);
    cfg.ingest.half_life_s = Some(3600.0);
    cfg.ingest.since_ms = Some(now - 5_000_000);
    let (g, _, stats) = score::prepare(&cfg).unwrap();
    assert_eq!(stats.rows_dropped.outside_window, 1);
    assert_eq!(
        g.n(),
        4,
        "d stays an agent although its only row is filtered"
    );
    let l = &g.layers[0];
    let a = g.agents.id("a").unwrap() as usize;
    let row: Vec<(String, f64, f64)> = l
        .row(a)
        .map(|(j, s, v)| (g.agents.name(j).to_string(), s, v))
        .collect();
    assert_eq!(row, vec![("b".into(), 1.0, 1.0), ("c".into(), 0.5, 0.5)]);
}

/// A layer as bits: name, row pointers, columns, trust and volume bits.
type LayerBits = (String, Vec<u32>, Vec<u32>, Vec<u64>, Vec<u64>);

/// The graph `select` builds from `files` with `engine`, as bits: agents,
/// layers, and the row counts.
fn graph_bits(
    files: &[std::path::PathBuf],
    engine: trustmesh::ingest::IngestEngine,
    opts: &trustmesh::ingest::IngestOptions,
    evidence: &[String],
) -> (Vec<String>, Vec<LayerBits>, String) {
    use trustmesh::ingest::LogTable;
    let read_opts = trustmesh::ingest::IngestOptions {
        engine,
        ..opts.clone()
    };
    let table = LogTable::read_with(files.to_vec(), None, &read_opts).unwrap();
    let (g, stats) = table.select(opts, evidence).unwrap();
    let layers = g
        .layers
        .iter()
        .map(|l| {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (
                l.name.clone(),
                l.row_ptr.clone(),
                l.col.clone(),
                bits(&l.trust),
                bits(&l.volume),
            )
        })
        .collect();
    let counts = format!("{} used, {:?}", stats.rows_used, stats.rows_dropped);
    (g.agents.names().map(String::from).collect(), layers, counts)
}

/// Writes `rows` in row groups of 2,048 with a 2 KiB dictionary page limit,
/// the name columns as plain strings or as dictionaries.
fn write_small_dictionaries(path: &Path, rows: &[Row], as_dictionary: bool) {
    use arrow::array::{Array, DictionaryArray, RecordBatch};
    use arrow::datatypes::Int32Type;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let names = |f: fn(&Row) -> &str| -> arrow::array::ArrayRef {
        let v: Vec<&str> = rows.iter().map(f).collect();
        if as_dictionary {
            std::sync::Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>())
        } else {
            std::sync::Arc::new(arrow::array::StringArray::from(v))
        }
    };
    let cols: Vec<(&str, arrow::array::ArrayRef)> = vec![
        (
            "ts",
            std::sync::Arc::new(arrow::array::TimestampMillisecondArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
        ),
        ("src", names(|r| &r.1)),
        ("dst", names(|r| &r.2)),
        ("layer", names(|r| &r.3)),
        (
            "outcome",
            std::sync::Arc::new(arrow::array::Float64Array::from(
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )),
        ),
        (
            "weight",
            std::sync::Arc::new(arrow::array::Float64Array::from(
                rows.iter().map(|r| r.5).collect::<Vec<_>>(),
            )),
        ),
    ];
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    assert_eq!(batch.column(1).null_count(), 0);
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(2048))
        .set_dictionary_page_size_limit(2048)
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Whether each name column chunk of `path` has only dictionary-encoded
/// data pages, per row group.
fn all_dictionary_chunks(path: &Path) -> Vec<bool> {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for g in r.metadata().row_groups() {
        for c in g.columns() {
            if ["src", "dst"].contains(&c.column_path().string().as_str()) {
                let mask = c.page_encoding_stats_mask().expect("encoding statistics");
                out.push(mask.is_only(Encoding::RLE_DICTIONARY));
            }
        }
    }
    out
}

/// However a file stores its names (plain strings; dictionaries that hold
/// every value of a row group; dictionaries that overflowed into plain
/// pages; declared as strings or as dictionaries), the streaming ingest
/// reads the same graph as the SQL plan. The reader picks the decoding per
/// column chunk, so the file mixes both kinds of chunk.
#[test]
fn every_storage_of_names_reads_the_same_graph() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = bitcoin_rows();
    // Sorted by rater: a row group's raters are few (their dictionary holds
    // them all), its rated agents many (their dictionary overflows).
    rows.sort_by(|a, b| (a.1.len(), &a.1).cmp(&(b.1.len(), &b.1)));
    let plain = dir.path().join("plain.parquet");
    write_log(&plain, &rows);
    let want = graph_bits(
        std::slice::from_ref(&plain),
        trustmesh::ingest::IngestEngine::Sql,
        &Default::default(),
        &[],
    );
    for as_dictionary in [false, true] {
        let p = dir.path().join(format!("dict-{as_dictionary}.parquet"));
        write_small_dictionaries(&p, &rows, as_dictionary);
        let kinds = all_dictionary_chunks(&p);
        assert!(
            kinds.contains(&true) && kinds.contains(&false),
            "both kinds of chunk: {kinds:?}"
        );
        for file in [&p, &plain] {
            let got = graph_bits(
                std::slice::from_ref(file),
                trustmesh::ingest::IngestEngine::Stream,
                &Default::default(),
                &[],
            );
            assert_eq!(got, want, "{}", file.display());
        }
    }
}

/// The streaming integer ingest and the DataFusion SQL plan select the same
/// rows and build the same graph, bit for bit, under every option: windows,
/// decay, layer subsets with evidence layers, slashed raters; on three
/// shuffled files of a real multi-layer log.
#[test]
fn stream_and_sql_ingest_build_the_same_graph() {
    use trustmesh::ingest::{IngestEngine, IngestOptions};
    let dir = tempfile::tempdir().unwrap();
    let rows = bitcoin_rows();
    let n = rows.len();
    let shuffled: Vec<Row> = (0..n).map(|i| rows[(i * 7919) % n].clone()).collect();
    let files: Vec<_> = shuffled
        .chunks(n / 3 + 1)
        .enumerate()
        .map(|(k, c)| {
            let p = dir.path().join(format!("p{k}.parquet"));
            write_log(&p, c);
            p
        })
        .collect();
    let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let (lo, hi) = (*ts.iter().min().unwrap(), *ts.iter().max().unwrap());
    let cases = [
        (IngestOptions::default(), vec![]),
        (
            IngestOptions {
                half_life_s: Some(90.0 * 86400.0),
                since_ms: Some(lo + (hi - lo) / 5),
                until_ms: Some(hi - (hi - lo) / 7),
                ..Default::default()
            },
            vec![],
        ),
        (
            IngestOptions {
                layers: Some(vec!["review".into()]),
                half_life_s: Some(3600.0),
                exclude_raters: vec![
                    ("1".into(), "review".into()),
                    ("7".into(), "payment".into()),
                    ("no such agent".into(), "review".into()),
                ],
                ..Default::default()
            },
            vec!["payment".to_string()],
        ),
    ];
    for (k, (opts, evidence)) in cases.iter().enumerate() {
        let stream = graph_bits(&files, IngestEngine::Stream, opts, evidence);
        let sql = graph_bits(&files, IngestEngine::Sql, opts, evidence);
        assert!(
            stream.1.iter().all(|l| !l.2.is_empty()),
            "case {k}: an empty layer"
        );
        assert_eq!(stream.0, sql.0, "case {k}: agents");
        assert_eq!(stream.2, sql.2, "case {k}: row counts");
        assert_eq!(stream.1, sql.1, "case {k}: layers");
    }
    // Logs read for options without a window or decay hold no timestamps:
    // they give the same graph as logs read with them, and refuse a decay.
    use trustmesh::ingest::LogTable;
    let plain = LogTable::read_with(files.clone(), None, &IngestOptions::default()).unwrap();
    let full = LogTable::read(files.clone()).unwrap();
    let (a, _) = plain.select(&IngestOptions::default(), &[]).unwrap();
    let (b, _) = full.select(&IngestOptions::default(), &[]).unwrap();
    assert_eq!(a.layers, b.layers);
    let plain = LogTable::read_with(files.clone(), None, &IngestOptions::default()).unwrap();
    let decay = IngestOptions {
        half_life_s: Some(3600.0),
        ..Default::default()
    };
    let e = plain.select(&decay, &[]).unwrap_err().to_string();
    assert!(e.contains("read without timestamps"), "{e}");
    // The options change the graph, so the comparisons are not vacuous.
    let plain = graph_bits(&files, IngestEngine::Stream, &cases[0].0, &[]);
    let windowed = graph_bits(&files, IngestEngine::Stream, &cases[1].0, &[]);
    assert_ne!(plain.1, windowed.1);
    assert!(windowed.2.contains("outside_window: ") && !windowed.2.contains("outside_window: 0,"));
    let slashed = graph_bits(&files, IngestEngine::Stream, &cases[2].0, &cases[2].1);
    assert!(!slashed.2.contains("slashed_rater: 0,"), "{}", slashed.2);
}
