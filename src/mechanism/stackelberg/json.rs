//! The JSON form of a game (docs/mechanism.md):
//!
//! ```json
//! {"leader_actions": ["a", "b"], "follower_actions": ["x", "y"],
//!  "types": [{"name": "t", "prob": 1,
//!             "leader_payoff": [[2, 4], [1, 3]],
//!             "follower_payoff": [[1, 0], [0, 2]]}]}
//! ```
//!
//! Parsed into a `serde_json::Value` and walked by hand rather than derived,
//! so an error names the field (`types[0].leader_payoff[1][0]: expected a
//! number, found a string`) instead of a line and column.
//!
//! JSON has no NaN or infinity, so `NaN`, `Infinity` or `1e999` in a file
//! would stop serde_json with a syntax error that names no field. Before
//! parsing, bare words other than `true`/`false`/`null` and numbers that
//! overflow f64 are turned into marked strings; the walk then rejects them
//! with the field's name. Valid JSON is never changed by that step: it only
//! touches text that is not valid JSON.

use std::borrow::Cow;
use std::path::Path;

use serde_json::{Map, Value};

use super::game::{field, Game, TypeSpec};
use crate::error::{Error, Result, ResultExt};

/// Marks a string made from a bare word or an overflowing number. A real
/// JSON string could only hold it through a `\u0000` escape.
const BARE: &str = "\u{0}bare:";

const TOP_FIELDS: &[&str] = &["leader_actions", "follower_actions", "types", "description"];
const TYPE_FIELDS: &[&str] = &["name", "prob", "leader_payoff", "follower_payoff"];

/// Reads and validates a game file; errors carry the path.
pub fn read_game(path: &Path) -> Result<Game> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::read(e).with_path(path))?;
    parse_game(&text).with_path(path)
}

/// Parses and validates the JSON text of a game.
pub fn parse_game(text: &str) -> Result<Game> {
    let marked = mark_bare_words(text);
    let v: Value = serde_json::from_str(&marked)
        .map_err(|e| Error::invalid(format!("not valid JSON: {e}")))?;
    let top = object(&v, "the game", TOP_FIELDS)?;
    let leader = names(top, "leader_actions")?;
    let follower = names(top, "follower_actions")?;
    if let Some(d) = top.get("description") {
        if !d.is_string() {
            return Err(field(
                "description",
                format!("expected a string, found {}", kind(d)),
            ));
        }
    }
    let types = match top.get("types") {
        None => return Err(field("types", "missing")),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(field(
                "types",
                format!("expected an array of follower types, found {}", kind(other)),
            ))
        }
    };
    let mut specs = Vec::with_capacity(types.len());
    for (k, t) in types.iter().enumerate() {
        let at = format!("types[{k}]");
        let o = object(t, &at, TYPE_FIELDS)?;
        let name = match o.get("name") {
            None => return Err(field(&format!("{at}.name"), "missing")),
            Some(v) => string(v, &format!("{at}.name"))?,
        };
        let prob = match o.get("prob") {
            None => return Err(field(&format!("{at}.prob"), "missing")),
            Some(v) => number(v, &format!("{at}.prob"))?,
        };
        specs.push(TypeSpec {
            name,
            prob,
            leader_payoff: matrix(o, &at, "leader_payoff")?,
            follower_payoff: matrix(o, &at, "follower_payoff")?,
        });
    }
    Game::new(leader, follower, specs)
}

/// The JSON type of a value, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.starts_with(BARE) => "a bare word (not valid JSON)",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'v>(v: &'v Value, what: &str, known: &[&str]) -> Result<&'v Map<String, Value>> {
    let o = v.as_object().ok_or_else(|| {
        Error::invalid(format!(
            "{what}: expected an object with fields {}, found {}",
            known.join(", "),
            kind(v)
        ))
    })?;
    if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "{what}: unknown field `{k}` (expected {})",
            known.join(", ")
        )));
    }
    Ok(o)
}

fn string(v: &Value, at: &str) -> Result<String> {
    match v {
        Value::String(s) if !s.starts_with(BARE) => Ok(s.clone()),
        Value::String(s) => Err(field(
            at,
            format!(
                "`{}` is not valid JSON; a name is a quoted string",
                &s[BARE.len()..]
            ),
        )),
        other => Err(field(
            at,
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

fn number(v: &Value, at: &str) -> Result<f64> {
    match v {
        Value::Number(x) => x
            .as_f64()
            .ok_or_else(|| field(at, format!("{x} is not a finite number"))),
        Value::String(s) if s.starts_with(BARE) => Err(field(
            at,
            format!(
                "{} is not a finite number (JSON has no NaN or infinity)",
                &s[BARE.len()..]
            ),
        )),
        other => Err(field(
            at,
            format!("expected a number, found {}", kind(other)),
        )),
    }
}

fn names(top: &Map<String, Value>, list: &str) -> Result<Vec<String>> {
    match top.get(list) {
        None => Err(field(list, "missing")),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(k, v)| string(v, &format!("{list}[{k}]")))
            .collect(),
        Some(other) => Err(field(
            list,
            format!("expected an array of names, found {}", kind(other)),
        )),
    }
}

/// An array of arrays of numbers (the shape is checked by `Game::new`).
fn matrix(o: &Map<String, Value>, at: &str, name: &str) -> Result<Vec<Vec<f64>>> {
    let path = format!("{at}.{name}");
    let rows = match o.get(name) {
        None => return Err(field(&path, "missing")),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(field(
                &path,
                format!("expected an array of rows, found {}", kind(other)),
            ))
        }
    };
    rows.iter()
        .enumerate()
        .map(|(i, r)| match r {
            Value::Array(vals) => vals
                .iter()
                .enumerate()
                .map(|(j, v)| number(v, &format!("{path}[{i}][{j}]")))
                .collect(),
            other => Err(field(
                &format!("{path}[{i}]"),
                format!("expected an array of values, found {}", kind(other)),
            )),
        })
        .collect()
}

/// Outside strings, wraps bare words other than `true`, `false` and `null`
/// (`NaN`, `Infinity`, `-inf`) and numbers beyond f64's range in a string
/// marked with [`BARE`]. Text that is valid JSON comes back unchanged.
fn mark_bare_words(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1
                }
                _ => i += 1,
            }
            continue;
        }
        if c == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let starts_token = c.is_ascii_alphanumeric() || c == b'-' || c == b'+' || c == b'.';
        if !starts_token {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len()
            && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'+' | b'.' | b'_'))
        {
            i += 1;
        }
        let token = &text[start..i];
        let wrap = match token {
            "true" | "false" | "null" => false,
            t if t.bytes().next().is_some_and(|c| c.is_ascii_digit())
                || (t.starts_with('-')
                    && t[1..].bytes().next().is_some_and(|c| c.is_ascii_digit())) =>
            {
                // A number: only one that overflows f64 (serde_json's "number
                // out of range") is marked; anything else is left to the parser.
                t.parse::<f64>().is_ok_and(|v| v.is_infinite())
            }
            _ => true,
        };
        if wrap {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            o.push_str(&text[copied..start]);
            o.push('"');
            o.push_str("\\u0000bare:");
            o.push_str(token);
            o.push('"');
            copied = i;
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "description": "DOBSS's introductory game",
        "leader_actions": ["a", "b"],
        "follower_actions": ["x", "y"],
        "types": [{"name": "t", "prob": 1.0,
                   "leader_payoff": [[2, 4], [1, 3]],
                   "follower_payoff": [[1, 0], [0, 2]]}]
    }"#;

    fn err(text: &str) -> String {
        parse_game(text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_game_parses() {
        let g = parse_game(GOOD).unwrap();
        assert_eq!(g.leader_actions(), ["a", "b"]);
        assert_eq!(g.types()[0].follower_payoff(), &[1.0, 0.0, 0.0, 2.0]);
        assert!(matches!(mark_bare_words(GOOD), Cow::Borrowed(_)));
    }

    #[test]
    fn errors_name_the_field() {
        let with = |from: &str, to: &str| err(&GOOD.replacen(from, to, 1));
        assert_eq!(
            with("[[1, 0], [0, 2]]", "[[1, 0], [0, NaN]]"),
            "types[0].follower_payoff[1][1]: NaN is not a finite number (JSON has no NaN or infinity)"
        );
        assert_eq!(
            with("[[2, 4], [1, 3]]", "[[2, -Infinity], [1, 3]]"),
            "types[0].leader_payoff[0][1]: -Infinity is not a finite number (JSON has no NaN or infinity)"
        );
        assert_eq!(
            with("[[2, 4], [1, 3]]", "[[2, 4], [1e999, 3]]"),
            "types[0].leader_payoff[1][0]: 1e999 is not a finite number (JSON has no NaN or infinity)"
        );
        assert_eq!(
            with("[[2, 4], [1, 3]]", "[[2, 4], [1, \"3\"]]"),
            "types[0].leader_payoff[1][1]: expected a number, found a string"
        );
        assert_eq!(
            with("[[1, 0], [0, 2]]", "[[1, 0], [0]]"),
            "types[0].follower_payoff[1]: expected 2 values, found 1 (one per follower action)"
        );
        assert_eq!(
            with("\"prob\": 1.0", "\"prob\": 0.5"),
            "types[*].prob: the probabilities sum to 0.5; they must sum to 1 (within 1e-9)"
        );
        assert_eq!(
            with("\"prob\": 1.0", "\"prob\": -1"),
            "types[0].prob: -1 is negative; a probability is in [0, 1]"
        );
        assert_eq!(with("\"prob\": 1.0,", ""), "types[0].prob: missing");
        assert_eq!(
            with("[\"x\", \"y\"]", "[]"),
            "follower_actions: expected at least one action"
        );
        assert_eq!(
            with("[\"a\", \"b\"]", "[\"a\", \"a\"]"),
            "leader_actions[1]: duplicate name \"a\" (same as leader_actions[0])"
        );
        assert_eq!(
            with("[\"a\", \"b\"]", "[\"a\", b]"),
            "leader_actions[1]: `b` is not valid JSON; a name is a quoted string"
        );
        assert_eq!(
            with("\"leader_actions\"", "\"leader_action\""),
            "the game: unknown field `leader_action` (expected leader_actions, follower_actions, types, description)"
        );
        assert_eq!(
            with("\"name\": \"t\"", "\"name\": \"t\", \"weight\": 2"),
            "types[0]: unknown field `weight` (expected name, prob, leader_payoff, follower_payoff)"
        );
        assert!(err("[1, 2]").starts_with("the game: expected an object"));
        assert!(err("{\"types\": ").starts_with("not valid JSON: EOF"));
    }

    #[test]
    fn marking_leaves_strings_and_literals_alone() {
        let t = r#"{"a": "NaN \" inf", "b": [true, null, -1.5e3, 2E+2]}"#;
        assert!(matches!(mark_bare_words(t), Cow::Borrowed(_)));
        let t = r#"[nan, -inf, 1e400]"#;
        let v: Value = serde_json::from_str(&mark_bare_words(t)).unwrap();
        let words: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s.as_str().unwrap()[BARE.len()..])
            .collect();
        assert_eq!(words, ["nan", "-inf", "1e400"]);
    }

    #[test]
    fn a_file_error_carries_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.json");
        std::fs::write(&p, GOOD.replace("\"prob\": 1.0", "\"prob\": 2")).unwrap();
        let e = read_game(&p).unwrap_err();
        assert_eq!(e.path(), Some(p.as_path()));
        assert!(
            e.to_string().ends_with("must sum to 1 (within 1e-9)"),
            "{e}"
        );
        assert!(read_game(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }
}
