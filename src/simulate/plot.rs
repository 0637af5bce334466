//! SVG plots of the results: per (scenario, metric), the mean over seeds
//! against the malicious share, one line per model, with a band of ± one
//! sample standard deviation.
//!
//! plotters is built with its SVG backend only and without `ttf`: text is
//! written as `<text>` elements that the viewer lays out, so no font file is
//! read here (plotters' layout estimates text size from the character
//! count, which is enough to place axis labels and the legend).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::report::{summarise, Summary};
use super::{metric, ResultRow};
use crate::error::{Error, Result};

const SIZE: (u32, u32) = (800, 500);
/// Opacity of the ± sd bands: those of several models overlap.
const BAND_ALPHA: f64 = 0.18;

/// Writes one SVG per (scenario, metric) of `rows`, `<scenario>-<metric>.svg`
/// in `dir` (created if needed), in the order the rows first show them, and
/// returns their paths. Non-finite values and shares are left out; a
/// (scenario, metric) with no finite value gets no file. No rows, no files.
pub fn write_plots(rows: &[ResultRow], dir: &Path) -> Result<Vec<PathBuf>> {
    // A NaN in one seed would make its whole mean NaN: drop the value, keep
    // the other seeds'.
    let finite: Vec<ResultRow> = rows
        .iter()
        .filter(|r| r.value.is_finite() && r.malicious.is_finite())
        .cloned()
        .collect();
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in &finite {
        let k = (r.scenario.as_str(), r.metric.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut written = Vec::new();
    for (scenario, metric) in keys {
        let sums: Vec<Summary> = summarise(&finite, metric)
            .into_iter()
            .filter(|s| s.scenario == scenario && s.mean.is_finite() && s.sd.is_finite())
            .collect();
        let Some(svg) = render(scenario, metric, &sums)? else {
            continue;
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::write(e).with_path(dir))?;
        let path = dir.join(file_name(scenario, metric));
        std::fs::write(&path, svg).map_err(|e| Error::write(e).with_path(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// `<scenario>-<metric>.svg`, with any character that is not ASCII
/// alphanumeric, `-` or `_` replaced by `_` (names are free strings in
/// [`ResultRow`]; one with a `/` must not leave the directory).
pub fn file_name(scenario: &str, metric: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}-{}.svg", clean(scenario), clean(metric))
}

/// The colour of a model, the same in every plot: the known models have
/// their own, any other name one of the rest of the palette by a hash of the
/// name (not by position, which would change with `--models`).
fn colour(model: &str) -> RGBColor {
    // The Tableau 10 palette, distinguishable by most colour-blind readers.
    const REST: [RGBColor; 6] = [
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    match model {
        "random" => RGBColor(127, 127, 127),
        "public" => RGBColor(31, 119, 180),
        "per-topic" => RGBColor(255, 127, 14),
        "mg" => RGBColor(44, 160, 44),
        other => {
            // FNV-1a: stable across runs and Rust versions, unlike std's hasher.
            let h = other.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            REST[(h % REST.len() as u64) as usize]
        }
    }
}

/// What a metric measures, for the y axis (short: the axis is 500 px tall).
fn describe(m: &str) -> &str {
    match m {
        metric::INAUTHENTIC => "inauthentic share, all epochs",
        metric::INAUTHENTIC_LAST => "inauthentic share, last epoch",
        metric::DOWNLOADS => "honest downloads",
        other => other,
    }
}

fn draw_error(e: impl std::fmt::Display) -> Error {
    // Drawing into a String cannot fail on I/O; a failure is plotters'.
    Error::internal(format!("drawing a plot: {e}"))
}

/// The SVG of one (scenario, metric), or None when `sums` is empty. Every
/// value in `sums` is finite.
fn render(scenario: &str, m: &str, sums: &[Summary]) -> Result<Option<String>> {
    if sums.is_empty() {
        return Ok(None);
    }
    let mut models: Vec<&str> = Vec::new();
    let mut shares: Vec<f64> = Vec::new();
    for s in sums {
        if !models.contains(&s.model.as_str()) {
            models.push(&s.model);
        }
        if !shares.contains(&s.malicious) {
            shares.push(s.malicious);
        }
    }
    let (x_min, x_max) = bounds(shares.iter().copied());
    let single = shares.len() == 1;
    // One share: a range of ±0.05 around it; else 5% of the range each side.
    let x_pad = if single {
        SINGLE_PAD
    } else {
        0.05 * (x_max - x_min)
    };
    let (lo, hi) = bounds(sums.iter().flat_map(|s| [s.mean - s.sd, s.mean + s.sd]));
    // The y axis starts at 0 unless a band goes below it, and leaves room
    // above the highest band for the legend.
    let y_min = lo.min(0.0);
    let y_span = if hi - y_min > 0.0 { hi - y_min } else { 1.0 };
    let y_max = y_min + 1.15 * y_span;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Scenario {scenario}: {m}"), ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((x_min - x_pad)..(x_max + x_pad), y_min..y_max)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("malicious share")
            .y_desc(format!("{} (mean ± sd over seeds)", describe(m)))
            .x_label_formatter(&|x| format!("{x:.2}"))
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(draw_error)?;

        let series = |model: &str| {
            let mut pts: Vec<&Summary> = sums.iter().filter(|s| s.model == model).collect();
            pts.sort_by(|a, b| a.malicious.total_cmp(&b.malicious));
            pts
        };
        // Bands first, so that none veils another model's line.
        for &model in &models {
            let pts = series(model);
            if pts.len() > 1 {
                let band: Vec<(f64, f64)> = pts
                    .iter()
                    .map(|s| (s.malicious, s.mean + s.sd))
                    .chain(pts.iter().rev().map(|s| (s.malicious, s.mean - s.sd)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        colour(model).mix(BAND_ALPHA).filled(),
                    )))
                    .map_err(draw_error)?;
            }
        }
        for (i, &model) in models.iter().enumerate() {
            let c = colour(model);
            let pts = series(model);
            let dodge = dodge(i, models.len(), single);
            let xy = |s: &Summary| (s.malicious + dodge, s.mean);
            if let [s] = pts[..] {
                chart
                    .draw_series(std::iter::once(ErrorBar::new_vertical(
                        s.malicious + dodge,
                        s.mean - s.sd,
                        s.mean,
                        s.mean + s.sd,
                        c.stroke_width(2),
                        12,
                    )))
                    .map_err(draw_error)?;
            } else {
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|s| xy(s)),
                        c.stroke_width(2),
                    ))
                    .map_err(draw_error)?;
            }
            chart
                .draw_series(pts.iter().map(|s| Circle::new(xy(s), 4, c.filled())))
                .map_err(draw_error)?
                .label(model)
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], c.stroke_width(2))
                        + Circle::new((10, 0), 4, c.filled())
                });
        }
        let corner = legend_corner(
            &models,
            sums,
            single,
            (x_min - x_pad, x_max + x_pad),
            (y_min, y_max),
        );
        chart
            .configure_series_labels()
            .position(corner)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(Some(svg))
}

/// Half the x range around a single share.
const SINGLE_PAD: f64 = 0.05;

/// The x offset of model `i` of `n` at a single share: models at one share
/// would hide each other's error bars, so they stand side by side around it
/// (a dodge), in model order. None with several shares.
fn dodge(i: usize, n: usize, single: bool) -> f64 {
    if single {
        (i as f64 - (n - 1) as f64 / 2.0) * 0.2 * SINGLE_PAD
    } else {
        0.0
    }
}

/// The first corner (upper left, upper right, lower right, lower left) where
/// the legend box covers no band, line or error bar; the upper left when
/// each does. The box size is estimated from the names the way plotters
/// lays them out (30 px of key, 10 px margins, ~7.3 px a character at 16 px,
/// 16 px a line) against a plotting area of about 700 × 390 px.
fn legend_corner(
    models: &[&str],
    sums: &[Summary],
    single: bool,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let longest = models.iter().map(|m| m.chars().count()).max().unwrap_or(0);
    // A little more than the box: it sits 5 px in, and a marker has a radius.
    let w = (50.0 + 7.3 * longest as f64 + 15.0) / 700.0 * (x1 - x0);
    let h = (20.0 + 16.0 * models.len() as f64 + 15.0) / 390.0 * (y1 - y0);
    let covers = |(bx0, bx1): (f64, f64), (by0, by1): (f64, f64)| {
        models.iter().enumerate().any(|(i, &model)| {
            let mut pts: Vec<(f64, f64, f64)> = sums
                .iter()
                .filter(|s| s.model == model)
                .map(|s| {
                    let x = s.malicious + dodge(i, models.len(), single);
                    (x, s.mean - s.sd, s.mean + s.sd)
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let hits = |lo: f64, hi: f64| lo <= by1 && hi >= by0;
            if let [(x, lo, hi)] = pts[..] {
                return (bx0..=bx1).contains(&x) && hits(lo, hi);
            }
            // The band is linear between points: clip each segment to the
            // box's x span and compare its extent there.
            pts.windows(2).any(|p| {
                let ((xa, la, ha), (xb, lb, hb)) = (p[0], p[1]);
                let (ca, cb) = (xa.max(bx0), xb.min(bx1));
                if ca > cb {
                    return false;
                }
                let at = |x: f64, a: f64, b: f64| {
                    if xb > xa {
                        a + (b - a) * (x - xa) / (xb - xa)
                    } else {
                        a
                    }
                };
                let lo = at(ca, la, lb).min(at(cb, la, lb));
                let hi = at(ca, ha, hb).max(at(cb, ha, hb));
                hits(lo, hi)
            })
        })
    };
    let (left, right) = ((x0, x0 + w), (x1 - w, x1));
    let (top, bottom) = ((y1 - h, y1), (y0, y0 + h));
    [
        (SeriesLabelPosition::UpperLeft, left, top),
        (SeriesLabelPosition::UpperRight, right, top),
        (SeriesLabelPosition::LowerRight, right, bottom),
        (SeriesLabelPosition::LowerLeft, left, bottom),
    ]
    .into_iter()
    .find(|&(_, x, y)| !covers(x, y))
    .map_or(SeriesLabelPosition::UpperLeft, |(c, _, _)| c)
}

/// (min, max) of finite values; the caller guarantees at least one.
fn bounds(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, model: &str, m: f64, seed: u64, metric: &str, value: f64) -> ResultRow {
        ResultRow {
            scenario: scenario.into(),
            model: model.into(),
            malicious: m,
            seed,
            metric: metric.into(),
            value,
        }
    }

    /// Two models, shares 0.1 and 0.3, two seeds, two metrics.
    fn rows(scenario: &str) -> Vec<ResultRow> {
        let mut v = Vec::new();
        for m in [0.1, 0.3] {
            for seed in 0..2 {
                for (model, base) in [("random", 0.2), ("public", 0.05)] {
                    let x = base * m * 10.0 + 0.01 * seed as f64;
                    v.push(row(scenario, model, m, seed, metric::INAUTHENTIC, x));
                    v.push(row(scenario, model, m, seed, metric::DOWNLOADS, 400.0));
                }
            }
        }
        v
    }

    /// The contents of the `<text>` elements (plotters puts them on a line
    /// of their own).
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim())
            })
            .collect()
    }

    /// Reads an SVG and checks its shape, legend entries and axis labels.
    fn assert_svg(path: &Path, models: &[&str]) -> String {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        let t = texts(&svg);
        for m in models {
            assert!(t.contains(m), "legend lacks {m}: {t:?}");
        }
        assert!(t.contains(&"malicious share"), "x label: {t:?}");
        assert!(
            t.iter().any(|s| s.ends_with("(mean ± sd over seeds)")),
            "y label: {t:?}"
        );
        svg
    }

    #[test]
    fn one_file_per_scenario_and_metric_with_legend_labels_and_title() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = rows("A");
        all.extend(rows("B"));
        let out = dir.path().join("plots");
        let files = write_plots(&all, &out).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "A-inauthentic.svg",
                "A-honest_downloads.svg",
                "B-inauthentic.svg",
                "B-honest_downloads.svg"
            ]
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);
        let svg = assert_svg(&files[0], &["random", "public"]);
        assert!(texts(&svg).contains(&"Scenario A: inauthentic"));
        assert!(svg.contains("<polygon"), "error bands");
        assert!(svg.contains("<polyline"), "lines");
        // Fixed colours: random grey, public blue.
        assert!(svg.contains("#7F7F7F") && svg.contains("#1F77B4"));
    }

    #[test]
    fn one_share_draws_error_bars_without_lines() {
        let dir = tempfile::tempdir().unwrap();
        let one: Vec<ResultRow> = rows("C")
            .into_iter()
            .filter(|r| r.malicious == 0.1)
            .collect();
        let files = write_plots(&one, dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let svg = assert_svg(&files[0], &["random", "public"]);
        assert!(!svg.contains("<polygon"), "no band for one share");
        assert!(svg.contains("<circle"), "markers");
    }

    #[test]
    fn no_rows_no_files_and_non_finite_values_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_plots(&[], dir.path()).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut v = rows("D");
        v.push(row("D", "public", 0.1, 7, metric::INAUTHENTIC, f64::NAN));
        v.push(row(
            "D",
            "public",
            f64::INFINITY,
            0,
            metric::INAUTHENTIC,
            0.1,
        ));
        // A metric with nothing finite gets no file.
        v.push(row("D", "random", 0.1, 0, "broken", f64::INFINITY));
        let files = write_plots(&v, dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "no non-finite coordinate"
        );
    }

    #[test]
    fn names_stay_in_the_directory_and_colours_are_per_name() {
        assert_eq!(file_name("../x", "a b"), "___x-a_b.svg");
        assert_eq!(colour("some-model"), colour("some-model"));
        assert_ne!(colour("random"), colour("public"));
    }

    #[test]
    fn the_legend_takes_a_corner_free_of_data() {
        let s = |model: &str, malicious, mean| Summary {
            scenario: "A".into(),
            model: model.into(),
            malicious,
            seeds: 2,
            mean,
            sd: 0.01,
        };
        let corner = |sums: &[Summary]| {
            let models = ["random", "public"];
            match legend_corner(&models, sums, false, (0.085, 0.415), (0.0, 1.15)) {
                SeriesLabelPosition::UpperLeft => "upper left",
                SeriesLabelPosition::UpperRight => "upper right",
                SeriesLabelPosition::LowerRight => "lower right",
                SeriesLabelPosition::LowerLeft => "lower left",
                _ => "elsewhere",
            }
        };
        let rising = [s("random", 0.1, 0.1), s("random", 0.4, 1.0)];
        assert_eq!(corner(&rising), "upper left");
        let falling = [s("random", 0.1, 1.0), s("random", 0.4, 0.1)];
        assert_eq!(corner(&falling), "upper right");
        // Both upper corners taken: a line at the top.
        let flat_high = [s("random", 0.1, 1.0), s("random", 0.4, 1.0)];
        assert_eq!(corner(&flat_high), "lower right");
    }
}
