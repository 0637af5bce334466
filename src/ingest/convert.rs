//! `trustmesh convert`: public trust data sets → interaction logs.
//!
//! Three text formats cover the data sets we use: SNAP signed networks
//! (`src,dst,rating[,time]`), KONECT `out.*` files (`src dst [weight [time]]`,
//! `%` comments) and plain edge lists (`src dst [rating]`). Fields may be
//! separated by commas, tabs or spaces; input may be gzip-compressed. The rating
//! becomes the outcome after division by `--rating-scale`, so it must land in
//! [-1, 1]; a row without a rating is a fully positive interaction. Times are
//! epoch seconds; without one, ts is the epoch (0), which is harmless unless
//! `--half-life` or a time window is used.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{params, Error, Message, Result};
use crate::parquet_out::write_batch;

/// Layer of every converted row unless one is named.
pub const DEFAULT_LAYER: &str = "trust";
/// Ratings are divided by this to give outcomes; 1 suits ±1 and 0..1 ratings.
pub const DEFAULT_RATING_SCALE: f64 = 1.0;

/// Input formats understood by `convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    SnapSigned,
    Konect,
    Tsv,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "snap-signed" => Ok(Format::SnapSigned),
            "konect" => Ok(Format::Konect),
            "tsv" => Ok(Format::Tsv),
            _ => Err(Error::param(
                params::FORMAT,
                format!("unknown format `{s}`: expected snap-signed, konect or tsv"),
            )),
        }
    }
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertStats {
    pub rows: u64,
    pub skipped_lines: u64,
}

/// The schema `convert` writes (a valid log per DESIGN.md §2).
pub fn log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("src", DataType::Utf8, false),
        Field::new("dst", DataType::Utf8, false),
        Field::new("layer", DataType::Utf8, false),
        Field::new("outcome", DataType::Float64, false),
        Field::new("weight", DataType::Float64, false),
    ]))
}

/// Converts `input` to a Parquet log at `out`.
pub fn convert(
    format: Format,
    input: &Path,
    out: &Path,
    layer: &str,
    rating_scale: f64,
) -> Result<ConvertStats> {
    if !(rating_scale > 0.0 && rating_scale.is_finite()) {
        return Err(Error::param_value(
            params::RATING_SCALE,
            format!("must be positive, got {rating_scale}"),
        ));
    }
    if layer.is_empty() {
        return Err(Error::param_value(params::LAYER, "must not be empty"));
    }
    let reader = open_text(input)?;
    let mut rows = Rows::default();
    let mut skipped = 0u64;
    let mut seen_data = false;
    for (n, line) in reader.lines().enumerate() {
        let lineno = n as u64 + 1;
        let line =
            line.map_err(|e| Error::read(Error::Io(e).with_line(lineno)).with_path(input))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') || line.starts_with('#') {
            skipped += 1;
            continue;
        }
        let fields: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        match parse_fields(format, &fields, rating_scale) {
            Ok((src, dst, outcome, ts_ms)) => {
                rows.push(src, dst, outcome, ts_ms);
                seen_data = true;
            }
            // A first line whose numbers do not parse is a header (KONECT
            // copies and CSV exports often carry one).
            Err(_) if !seen_data && rows.src.is_empty() && skipped_header(&fields) => {
                skipped += 1;
            }
            Err(message) => return Err(Error::invalid(message).with_line(lineno).with_path(input)),
        }
    }
    if rows.src.is_empty() {
        return Err(Error::Empty(format!("{}: no data lines", input.display())));
    }
    let n = rows.src.len();
    let batch = RecordBatch::try_new(
        log_schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from(rows.ts).with_timezone("UTC")),
            Arc::new(StringArray::from(rows.src)),
            Arc::new(StringArray::from(rows.dst)),
            Arc::new(StringArray::from(vec![layer; n])),
            Arc::new(Float64Array::from(rows.outcome)),
            Arc::new(Float64Array::from(vec![1.0; n])),
        ],
    )?;
    write_batch(out, &batch)?;
    Ok(ConvertStats {
        rows: n as u64,
        skipped_lines: skipped,
    })
}

#[derive(Default)]
struct Rows {
    src: Vec<String>,
    dst: Vec<String>,
    outcome: Vec<f64>,
    ts: Vec<i64>,
}

impl Rows {
    fn push(&mut self, src: &str, dst: &str, outcome: f64, ts: i64) {
        self.src.push(src.to_string());
        self.dst.push(dst.to_string());
        self.outcome.push(outcome);
        self.ts.push(ts);
    }
}

fn skipped_header(fields: &[&str]) -> bool {
    fields.iter().any(|f| f.parse::<f64>().is_err())
}

fn parse_fields<'a>(
    format: Format,
    f: &[&'a str],
    scale: f64,
) -> std::result::Result<(&'a str, &'a str, f64, i64), Message> {
    let (min, max, rating_required) = match format {
        Format::SnapSigned => (3, 4, true),
        Format::Konect => (2, 4, false),
        Format::Tsv => (2, 3, false),
    };
    if f.len() < min || f.len() > max {
        return Err(format!("expected {min} to {max} fields, found {}", f.len()).into());
    }
    let rating = match f.get(2) {
        Some(r) => r
            .parse::<f64>()
            .map_err(|_| Message::from(format!("rating `{r}` is not a number")))?,
        None if rating_required => unreachable!("length checked"),
        None => scale,
    };
    if !rating.is_finite() {
        return Err(format!("rating `{rating}` is not finite").into());
    }
    let outcome = rating / scale;
    if !(-1.0..=1.0).contains(&outcome) {
        return Err(Message::new()
            .text(format!("rating {rating} divided by "))
            .param(params::RATING_SCALE)
            .text(format!(" {scale} is {outcome}, outside [-1, 1]; set "))
            .param(params::RATING_SCALE)
            .text(" to the largest |rating|"));
    }
    let ts_ms = match f.get(3) {
        Some(t) => {
            let secs = t
                .parse::<f64>()
                .map_err(|_| Message::from(format!("time `{t}` is not a number of seconds")))?;
            if !secs.is_finite() || secs.abs() > 1e13 {
                return Err(format!("time `{t}` is out of range").into());
            }
            (secs * 1000.0).round() as i64
        }
        None => 0,
    };
    Ok((f[0], f[1], outcome, ts_ms))
}

fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let err = |e: std::io::Error| Error::read(e).with_path(path);
    let mut f = File::open(path).map_err(err)?;
    let mut magic = [0u8; 2];
    let got = f.read(&mut magic).map_err(err)?;
    let f = File::open(path).map_err(err)?;
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            f,
        ))))
    } else {
        Ok(Box::new(BufReader::new(f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_konect_tsv_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, "7188,1,10,1407470400\n430,1,-5,1376539200\n").unwrap();
        let out = dir.path().join("o.parquet");
        let s = convert(Format::SnapSigned, &p, &out, "trade", 10.0).unwrap();
        assert_eq!(s.rows, 2);
        let b = crate::ingest::read::read_file(&out).unwrap();
        let o = b[0]
            .column(4)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(o.values().to_vec(), vec![1.0, -0.5]);

        std::fs::write(&p, "source_id target_id trust_value\n1 2 .8\n% c\n2 3 1\n").unwrap();
        assert_eq!(
            convert(Format::Konect, &p, &out, "x", 1.0).unwrap(),
            ConvertStats {
                rows: 2,
                skipped_lines: 2
            }
        );

        std::fs::write(&p, "1\t2\n2\t3\n").unwrap();
        assert_eq!(convert(Format::Tsv, &p, &out, "x", 1.0).unwrap().rows, 2);

        std::fs::write(&p, "1,2,10,5\n").unwrap();
        let e = convert(Format::SnapSigned, &p, &out, "x", 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("rating_scale"), "{e}");
        std::fs::write(&p, "1 2\n3 4 x\n").unwrap();
        let e = convert(Format::Tsv, &p, &out, "x", 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
