//! The report: raw per-seed results as Parquet, and a Markdown table of
//! means and spreads per scenario.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};

use super::{dgpan, metric, plot, ResultRow};
use crate::error::Result;
use crate::parquet_out;

/// Writes the rows as Parquet: `scenario`, `model`, `malicious`, `seed`,
/// `metric`, `value`.
pub fn write_results(path: &Path, rows: &[ResultRow]) -> Result<()> {
    let strings = |f: fn(&ResultRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("scenario", strings(|r| r.scenario.as_str())),
        ("model", strings(|r| r.model.as_str())),
        (
            "malicious",
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.malicious),
            )),
        ),
        (
            "seed",
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.seed))),
        ),
        ("metric", strings(|r| r.metric.as_str())),
        (
            "value",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
        ),
    ];
    parquet_out::write_columns(path, cols, false)
}

/// Mean and spread of one metric over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub model: String,
    pub malicious: f64,
    pub seeds: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1), 0 for one seed.
    pub sd: f64,
}

/// One [`Summary`] per (scenario, malicious, model) of `metric`, in the
/// order the rows first show them.
pub fn summarise(rows: &[ResultRow], metric: &str) -> Vec<Summary> {
    let mut keys: Vec<(&str, f64, &str)> = Vec::new();
    for r in rows.iter().filter(|r| r.metric == metric) {
        let k = (r.scenario.as_str(), r.malicious, r.model.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(s, m, model)| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| {
                    r.metric == metric && r.scenario == s && r.malicious == m && r.model == model
                })
                .map(|r| r.value)
                .collect();
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let sd = if v.len() > 1 {
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            Summary {
                scenario: s.to_string(),
                model: model.to_string(),
                malicious: m,
                seeds: v.len(),
                mean,
                sd,
            }
        })
        .collect()
}

/// The Markdown report: `header` (a paragraph describing the run), then per
/// scenario a table of the inauthentic share by malicious share and model
/// (mean ± sd over seeds) and each model's reduction against `random`.
///
/// `plots` are the files of [`super::plot::write_plots`], in the report's
/// directory: each is linked as an image by its file name under the table of
/// its (scenario, metric), and those of metrics without a table at the end.
pub fn markdown(header: &str, rows: &[ResultRow], plots: &[PathBuf]) -> String {
    let mut out = String::new();
    let mut linked = vec![false; plots.len()];
    let mut image = |out: &mut String, scenario: &str, metric: &str| {
        let name = plot::file_name(scenario, metric);
        if let Some(i) = plots
            .iter()
            .position(|p| p.file_name().is_some_and(|f| *f == *name))
        {
            linked[i] = true;
            let _ = writeln!(out, "![Scenario {scenario}: {metric}]({name})\n");
        }
    };
    for (title, m) in [
        (
            "inauthentic share of honest downloads, all epochs",
            metric::INAUTHENTIC,
        ),
        (
            "inauthentic share of honest downloads, last epoch",
            metric::INAUTHENTIC_LAST,
        ),
        (
            "attack success, the share of the attacked topic's queries served by a defector",
            dgpan::metric::ATTACK_SUCCESS,
        ),
        (
            "attackers' burn-only ROI, (gain − stake burned) / stake posted",
            dgpan::metric::ROI,
        ),
        (
            "honest newcomers' trust after their first epoch over established honest peers'",
            dgpan::metric::COLD_START,
        ),
    ] {
        let sums = summarise(rows, m);
        let mut scenarios: Vec<&str> = Vec::new();
        for s in &sums {
            if !scenarios.contains(&s.scenario.as_str()) {
                scenarios.push(&s.scenario);
            }
        }
        for scenario in scenarios {
            let here: Vec<&Summary> = sums.iter().filter(|s| s.scenario == scenario).collect();
            let mut models: Vec<&str> = Vec::new();
            let mut shares: Vec<f64> = Vec::new();
            for s in &here {
                if !models.contains(&s.model.as_str()) {
                    models.push(&s.model);
                }
                if !shares.contains(&s.malicious) {
                    shares.push(s.malicious);
                }
            }
            let others: Vec<&str> = models.iter().copied().filter(|&m| m != "random").collect();
            let has_random = models.contains(&"random");
            let _ = writeln!(out, "## Scenario {scenario}: {title}\n");
            if !header.is_empty() {
                let _ = writeln!(out, "{header}\n");
            }
            let mut head = format!("| malicious | {} |", models.join(" | "));
            let mut rule = format!("|---|{}", "---|".repeat(models.len()));
            if has_random {
                for m in &others {
                    let _ = write!(head, " {m} vs random |");
                    rule.push_str("---|");
                }
            }
            let _ = writeln!(out, "{head}\n{rule}");
            for &share in &shares {
                let get = |model: &str| {
                    here.iter()
                        .find(|s| s.model == model && s.malicious == share)
                        .copied()
                };
                let _ = write!(out, "| {share} |");
                for &m in &models {
                    match get(m) {
                        Some(s) => {
                            let _ = write!(out, " {:.4} ± {:.4} |", s.mean, s.sd);
                        }
                        None => out.push_str(" |"),
                    }
                }
                if has_random {
                    for &m in &others {
                        match (get("random"), get(m)) {
                            (Some(r), Some(s)) if r.mean > 0.0 => {
                                let _ = write!(out, " {:+.1}% |", -100.0 * (1.0 - s.mean / r.mean));
                            }
                            _ => out.push_str(" n/a |"),
                        }
                    }
                }
                out.push('\n');
            }
            out.push('\n');
            image(&mut out, scenario, m);
        }
    }
    let rest: Vec<&PathBuf> = plots
        .iter()
        .zip(&linked)
        .filter(|(_, &l)| !l)
        .map(|(p, _)| p)
        .collect();
    if !rest.is_empty() {
        out.push_str("## Plots of the other metrics\n\n");
        for p in rest {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let _ = writeln!(out, "![{}]({name})\n", name.trim_end_matches(".svg"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, seed: u64, value: f64) -> ResultRow {
        ResultRow {
            scenario: "A".into(),
            model: model.into(),
            malicious: 0.2,
            seed,
            metric: metric::INAUTHENTIC.into(),
            value,
        }
    }

    #[test]
    fn means_spreads_and_reduction() {
        let rows = [
            row("random", 0, 0.2),
            row("random", 1, 0.3),
            row("public", 0, 0.05),
            row("public", 1, 0.05),
        ];
        let s = summarise(&rows, metric::INAUTHENTIC);
        assert_eq!(s.len(), 2);
        assert!((s[0].mean - 0.25).abs() < 1e-12 && (s[0].sd - 0.0707).abs() < 1e-4);
        assert_eq!((s[1].mean, s[1].sd, s[1].seeds), (0.05, 0.0, 2));
        let md = markdown("", &rows, &[]);
        assert!(
            md.contains("| malicious | random | public | public vs random |"),
            "{md}"
        );
        assert!(
            md.contains("| 0.2 | 0.2500 ± 0.0707 | 0.0500 ± 0.0000 | -80.0% |"),
            "{md}"
        );
    }

    #[test]
    fn plots_are_linked_under_their_tables_and_the_rest_at_the_end() {
        let rows = [row("random", 0, 0.2), row("public", 0, 0.05)];
        let dir = Path::new("out");
        let plots = [
            dir.join("A-inauthentic.svg"),
            dir.join("A-honest_downloads.svg"),
        ];
        let md = markdown("", &rows, &plots);
        let table = md.find("| 0.2 |").unwrap();
        let img = md
            .find("![Scenario A: inauthentic](A-inauthentic.svg)")
            .unwrap_or_else(|| panic!("{md}"));
        assert!(table < img, "{md}");
        let rest = md.find("## Plots of the other metrics").unwrap();
        assert!(img < rest, "{md}");
        assert!(md.contains("![A-honest_downloads](A-honest_downloads.svg)"));
        assert!(!markdown("", &rows, &[]).contains("!["));
    }
}
