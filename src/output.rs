//! Writing score tables as Parquet.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt32DictionaryArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::parquet_out::{
    columns_batch, write_batch_with_metadata, write_row_groups, ColumnHint, ROW_GROUP_ROWS,
};
use crate::provenance::METADATA_KEY;
use crate::score::per_topic::{TopicScores, GLOBAL};
use crate::trust::Scores;

/// The last line of defence before a table is published: every score finite
/// and non-negative, each vector summing to 1 (within the f32 back end's
/// noise). Earlier checks reject the inputs that could break this, so a
/// failure here is a bug, reported as one rather than written.
fn check_vector(name: &str, scores: &[f64]) -> Result<()> {
    if let Some(x) = scores.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
        return Err(Error::internal(format!(
            "vector `{name}` holds the score {x}; nothing was written"
        )));
    }
    let sum: f64 = scores.iter().sum();
    if !scores.is_empty() && (sum - 1.0).abs() > 1e-4 {
        return Err(Error::internal(format!(
            "vector `{name}` sums to {sum}, not 1; nothing was written"
        )));
    }
    Ok(())
}

/// Named columns to `path`, with the run's provenance JSON in the footer.
fn write_table(
    path: &Path,
    cols: Vec<(&str, arrow::array::ArrayRef)>,
    provenance: &str,
) -> Result<()> {
    let batch = columns_batch(cols, false)?;
    write_batch_with_metadata(path, &batch, &[(METADATA_KEY, provenance)])
}

/// Writes `agent` (utf8), `score` (float64), `rank` (uint32, 1 = best), sorted
/// by rank; `provenance` (see [`crate::provenance`]) goes to the footer.
pub fn write_scores(path: &Path, scores: &Scores, provenance: &str) -> Result<()> {
    check_vector("scores", &scores.scores)?;
    let order = scores.order();
    let agents: Vec<&str> = order.iter().map(|&i| scores.agents[i].as_str()).collect();
    let vals: Vec<f64> = order.iter().map(|&i| scores.scores[i]).collect();
    let ranks: Vec<u32> = (1..=order.len() as u32).collect();
    write_table(
        path,
        vec![
            ("agent", Arc::new(StringArray::from(agents))),
            ("score", Arc::new(Float64Array::from(vals))),
            ("rank", Arc::new(UInt32Array::from(ranks))),
        ],
        provenance,
    )
}

/// Long format for batched results: `agent`, `<key>` (topic, layer or set),
/// `score`, `rank` (within the group, ties by agent id), every agent in every
/// group, groups in the order given.
///
/// The table is sets × agents rows (20.8M for 64 sets on cnr-2000), so it is
/// written without materialising it: the id columns are dictionary arrays over
/// the one list of names, groups are ordered in parallel, and row groups are
/// built and encoded in parallel ([`write_row_groups`]); readers still see
/// `utf8` columns.
pub fn write_long(
    path: &Path,
    key: &str,
    agents_names: &[String],
    groups: &[(&str, &[f64])],
    provenance: &str,
) -> Result<()> {
    for (name, scores) in groups {
        check_vector(name, scores)?;
    }
    let n = agents_names.len();
    if u32::try_from(n).is_err() || u32::try_from(groups.len()).is_err() {
        return Err(Error::internal(format!(
            "{n} agents in {} groups do not fit the u32 dictionary keys",
            groups.len()
        )));
    }
    let orders: Vec<Vec<u32>> = groups.par_iter().map(|(_, s)| order_u32(s)).collect();
    let agent_names: ArrayRef = Arc::new(StringArray::from_iter_values(agents_names));
    let key_names: ArrayRef = Arc::new(StringArray::from_iter_values(groups.iter().map(|g| g.0)));
    let dict = DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8));
    let schema = Arc::new(Schema::new(vec![
        Field::new("agent", dict.clone(), false),
        Field::new(key, dict, false),
        Field::new("score", DataType::Float64, false),
        Field::new("rank", DataType::UInt32, false),
    ]));
    let total = n * groups.len();
    let batch = |rg: usize| -> Result<RecordBatch> {
        let rows = rg * ROW_GROUP_ROWS..total.min((rg + 1) * ROW_GROUP_ROWS);
        let len = rows.len();
        let (mut agent, mut group, mut score, mut rank) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        for r in rows {
            let (g, pos) = (r / n, r % n);
            let i = orders[g][pos];
            agent.push(i);
            group.push(g as u32);
            score.push(groups[g].1[i as usize]);
            rank.push(pos as u32 + 1);
        }
        let agent = UInt32DictionaryArray::try_new(agent.into(), Arc::clone(&agent_names))?;
        let group = UInt32DictionaryArray::try_new(group.into(), Arc::clone(&key_names))?;
        Ok(RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(agent),
                Arc::new(group),
                Arc::new(Float64Array::from(score)),
                Arc::new(UInt32Array::from(rank)),
            ],
        )?)
    };
    write_row_groups(
        path,
        Arc::clone(&schema),
        &[
            ("agent", ColumnHint::Ids),
            (key, ColumnHint::Dictionary),
            ("score", ColumnHint::Floats),
            ("rank", ColumnHint::Delta),
        ],
        &[(METADATA_KEY, provenance)],
        total.div_ceil(ROW_GROUP_ROWS),
        batch,
    )
}

/// [`crate::trust::scores::order`] as u32 indices (the dictionary keys), sorting (score, index)
/// pairs held side by side instead of chasing indices into the scores.
fn order_u32(scores: &[f64]) -> Vec<u32> {
    // Descending total order of the score, then ascending index: the same
    // order as `order`, as one integer key per agent.
    let mut keyed: Vec<(u64, u32)> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| (!total_order_bits(*s), i as u32))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// The bits of `x` as an unsigned integer ordered as `f64::total_cmp`.
fn total_order_bits(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

/// Long format for `--per-topic`: topic groups, then `global`.
pub fn write_topic_scores(path: &Path, t: &TopicScores, provenance: &str) -> Result<()> {
    let groups: Vec<(&str, &[f64])> = t
        .topics
        .iter()
        .map(String::as_str)
        .zip(t.scores.iter().map(Vec::as_slice))
        .chain(std::iter::once((GLOBAL, t.global.as_slice())))
        .collect();
    write_long(path, "topic", &t.agents, &groups, provenance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::synthetic::SplitMix64;
    use crate::trust::scores::order;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn order_u32_is_order() {
        let mut rng = SplitMix64::new(3);
        // Few distinct values, so ties (broken by index) are everywhere; zeros
        // of both signs.
        let v: Vec<f64> = (0..5000)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => -0.0,
                _ => (rng.next_f64() * 8.0).floor() / 8.0,
            })
            .collect();
        let want: Vec<u32> = order(&v).into_iter().map(|i| i as u32).collect();
        assert_eq!(order_u32(&v), want);
    }

    /// The long table as the old writer built it: materialised rows.
    fn long_rows(agents: &[String], groups: &[(&str, &[f64])]) -> Vec<(String, String, u64, u32)> {
        let mut rows = Vec::new();
        for (name, s) in groups {
            for (pos, i) in order(s).into_iter().enumerate() {
                rows.push((
                    agents[i].clone(),
                    name.to_string(),
                    s[i].to_bits(),
                    pos as u32 + 1,
                ));
            }
        }
        rows
    }

    fn read_long(p: &Path, key: &str) -> (Vec<(String, String, u64, u32)>, usize) {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float64Type, UInt32Type};
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(p).unwrap()).unwrap();
        let row_groups = r.metadata().num_row_groups();
        let schema = r.schema().clone();
        for (name, t) in [("agent", DataType::Utf8), (key, DataType::Utf8)] {
            assert_eq!(
                schema.field_with_name(name).unwrap().data_type(),
                &t,
                "{name}"
            );
        }
        let mut rows = Vec::new();
        for b in r.build().unwrap() {
            let b = b.unwrap();
            let (a, k) = (
                b.column(0).as_string::<i32>(),
                b.column(1).as_string::<i32>(),
            );
            let s = b.column(2).as_primitive::<Float64Type>();
            let rk = b.column(3).as_primitive::<UInt32Type>();
            for j in 0..b.num_rows() {
                rows.push((
                    a.value(j).to_string(),
                    k.value(j).to_string(),
                    s.value(j).to_bits(),
                    rk.value(j),
                ));
            }
        }
        (rows, row_groups)
    }

    /// More rows than one row group, groups crossing row-group boundaries,
    /// ties: the rows are those of the materialised table, the columns read
    /// back as utf8, and the file's bytes do not depend on the thread count.
    #[test]
    fn long_write_is_the_table_and_thread_independent() {
        let n = 300_007usize;
        let agents: Vec<String> = (0..n)
            .map(|i| format!("agent-{}", (i * 7919) % n))
            .collect();
        let mut rng = SplitMix64::new(11);
        let vecs: Vec<Vec<f64>> = (0..4)
            .map(|k| {
                let v: Vec<f64> = (0..n)
                    .map(|i| {
                        if i % (k + 2) == 0 {
                            1.0
                        } else {
                            rng.next_f64()
                        }
                    })
                    .collect();
                let s: f64 = v.iter().sum();
                v.iter().map(|x| x / s).collect()
            })
            .collect();
        let names = ["s0", "s1", "s2", "s3"];
        let groups: Vec<(&str, &[f64])> = names
            .iter()
            .copied()
            .zip(vecs.iter().map(Vec::as_slice))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for threads in [1, 3] {
            let p = dir.path().join(format!("long{threads}.parquet"));
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| write_long(&p, "set", &agents, &groups, "{\"x\":1}"))
                .unwrap();
            files.push(std::fs::read(&p).unwrap());
            let (rows, row_groups) = read_long(&p, "set");
            assert_eq!(row_groups, (4 * n).div_ceil(ROW_GROUP_ROWS));
            assert!(
                rows == long_rows(&agents, &groups),
                "rows differ from the table"
            );
        }
        assert!(files[0] == files[1], "bytes depend on the thread count");

        // No agents: a readable file with the columns and no rows.
        let p = dir.path().join("empty.parquet");
        let empty: Vec<(&str, &[f64])> = vec![("s0", &[])];
        write_long(&p, "set", &[], &empty, "{}").unwrap();
        assert_eq!(read_long(&p, "set").0.len(), 0);
    }

    /// 64 personalised vectors over 325,557 agents (cnr-2000's size, 20.8M
    /// rows): the long write the `--pretrusted-sets` job ends with. Timing
    /// only; run with `cargo test --release -- --ignored long_write`.
    #[test]
    #[ignore]
    fn time_long_write() {
        let (n, k) = (325_557usize, 64usize);
        let agents: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let mut rng = SplitMix64::new(7);
        let vecs: Vec<Vec<f64>> = (0..k)
            .map(|_| {
                let v: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
                let s: f64 = v.iter().sum();
                v.iter().map(|x| x / s).collect()
            })
            .collect();
        let names: Vec<String> = (0..k).map(|i| format!("set{i}")).collect();
        let groups: Vec<(&str, &[f64])> = names
            .iter()
            .map(String::as_str)
            .zip(vecs.iter().map(Vec::as_slice))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long.parquet");
        let q = dir.path().join("materialised.parquet");
        for _ in 0..2 {
            let t = std::time::Instant::now();
            write_long(&p, "set", &agents, &groups, "{}").unwrap();
            let new = t.elapsed().as_secs_f64();
            // The writer before issue 11: every row materialised as strings,
            // one ArrowWriter with default properties.
            let t = std::time::Instant::now();
            let (mut a, mut g, mut v, mut r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (name, scores) in &groups {
                for (pos, i) in order(scores).into_iter().enumerate() {
                    a.push(agents[i].as_str());
                    g.push(*name);
                    v.push(scores[i]);
                    r.push(pos as u32 + 1);
                }
            }
            write_table(
                &q,
                vec![
                    ("agent", Arc::new(StringArray::from(a))),
                    ("set", Arc::new(StringArray::from(g))),
                    ("score", Arc::new(Float64Array::from(v))),
                    ("rank", Arc::new(UInt32Array::from(r))),
                ],
                "{}",
            )
            .unwrap();
            let old = t.elapsed().as_secs_f64();
            let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
            eprintln!(
                "long write, {} rows, {} threads: {new:.3} s ({:.1} MB); materialised {old:.3} s ({:.1} MB); {:.2}x",
                n * k,
                rayon::current_num_threads(),
                size(&p),
                size(&q),
                old / new
            );
        }
    }
}
