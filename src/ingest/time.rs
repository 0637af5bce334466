//! Parsing of durations (`--half-life 7d`) and instants (`--since 2026-01-01T00:00:00Z`).

use crate::error::{Error, Result};

/// Seconds in a duration such as `7d`, `12h`, `30m`, `45s`, `1.5d` or a bare
/// number of seconds.
pub fn parse_duration_s(s: &str) -> Result<f64> {
    let s = s.trim();
    // The unit is the trailing run of letters, so the number may be written
    // in scientific notation (`1e3s`).
    let split = s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len();
    let (num, unit) = match &s[split..] {
        "" => (s, "s"),
        unit => (&s[..split], unit),
    };
    let mult = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        _ => return Err(bad_duration(s)),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad_duration(s))?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(bad_duration(s));
    }
    let secs = v * mult;
    if !(secs * 1e3).is_finite() {
        return Err(Error::invalid(format!(
            "duration `{s}` is too long: at most {MAX_DURATION_S:e} seconds"
        )));
    }
    Ok(secs)
}

/// Longest duration accepted: its milliseconds must still be a finite f64.
pub const MAX_DURATION_S: f64 = f64::MAX / 1e3;

fn bad_duration(s: &str) -> Error {
    Error::invalid(format!(
        "cannot parse duration `{s}`: expected a positive number with unit s, m, h, d or w (e.g. 7d)"
    ))
}

/// Epoch milliseconds of an RFC 3339 instant or a date (`2026-01-01`, UTC).
pub fn parse_instant_ms(s: &str) -> Result<i64> {
    let ns = arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(s.trim()).map_err(|_| {
        Error::invalid(format!(
            "cannot parse time `{s}`: expected RFC 3339 such as 2026-01-01T00:00:00Z, or a date 2026-01-01"
        ))
    })?;
    Ok(ns.div_euclid(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_s("7d").unwrap(), 604800.0);
        assert_eq!(parse_duration_s("1.5h").unwrap(), 5400.0);
        assert_eq!(parse_duration_s("90").unwrap(), 90.0);
        for bad in ["", "7x", "-1d", "d", "nan"] {
            assert!(parse_duration_s(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration_s("1e3s").unwrap(), 1000.0);
        assert_eq!(parse_duration_s("2e1").unwrap(), 20.0);
        for long in ["1e306d", "1e306"] {
            let e = parse_duration_s(long).unwrap_err().to_string();
            assert!(e.contains(&format!("`{long}` is too long")), "{e}");
        }
    }

    #[test]
    fn instants() {
        assert_eq!(parse_instant_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(parse_instant_ms("2026-01-01").unwrap(), 1767225600000);
        assert!(parse_instant_ms("yesterday").is_err());
    }
}
