//! Running the real `trustmesh` binary: a command builder whose runs, when the
//! exit status is not the expected one, fail with the full command line, the
//! status, stdout and stderr, so a red test says what was run and what came
//! back. Arguments are anything `AsRef<OsStr>`: `&str`, `&Path`, `PathBuf`.
//!
//! ```ignore
//! let done = trustmesh!["score", "--log", &log, "--out", &out].ok();
//! trustmesh!["score", "--log", &bad, "--out", &out]
//!     .fails(1)
//!     .stderr_has(&["missing column"]);
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::process::{Command, ExitStatus};

/// `trustmesh![a, b, …]`: the binary with these arguments, not yet run.
macro_rules! trustmesh {
    ($($arg:expr),* $(,)?) => {
        $crate::util::Trustmesh::new()$(.arg($arg))*
    };
}
pub(crate) use trustmesh;

/// `args![a, b, …]`: command-line words from `&str`s and paths alike, for
/// argument lists that two programs share.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        vec![$(::std::ffi::OsString::from(
            ::std::convert::AsRef::<::std::ffi::OsStr>::as_ref(&$arg)
        )),*]
    };
}
pub(crate) use args;

/// The binary with its arguments and environment, not yet run.
pub struct Trustmesh {
    cmd: Command,
    /// Kept for messages: `Command` shows its arguments only through `Debug`.
    line: Vec<OsString>,
}

impl Trustmesh {
    pub fn new() -> Self {
        let bin = env!("CARGO_BIN_EXE_trustmesh");
        Trustmesh {
            cmd: Command::new(bin),
            line: vec![bin.into()],
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(a.as_ref());
        self.line.push(a.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, |cmd, a| cmd.arg(a))
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value.as_ref());
        let mut shown = OsString::from(format!("{key}="));
        shown.push(value);
        self.line.insert(0, shown);
        self
    }

    /// Runs to completion, whatever the exit status.
    pub fn run(mut self) -> Run {
        let line = self
            .line
            .iter()
            .map(|a| shell_word(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let o = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
        Run {
            line,
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs and requires exit status 0.
    pub fn ok(self) -> Run {
        self.run().expect_code(0)
    }

    /// Runs and requires exit status `code` (1: a run error, 2: a usage error).
    pub fn fails(self, code: i32) -> Run {
        self.run().expect_code(code)
    }
}

/// A finished run. Its `Display` is the whole story (command line, status,
/// stdout, stderr), for assertion messages.
pub struct Run {
    pub line: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit status {code}\n{self}"
        );
        self
    }

    /// Requires every needle in stderr.
    pub fn stderr_has(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks `{n}`\n{self}");
        }
        self
    }

    /// Requires every needle in stdout.
    pub fn stdout_has(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(self.stdout.contains(n), "stdout lacks `{n}`\n{self}");
        }
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.line)?;
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

/// Quotes a word for a POSIX shell when it needs it, so the printed command
/// line can be pasted to rerun a failure.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[test]
fn failure_message_has_the_command_line_and_both_streams() {
    let r = trustmesh![
        "score",
        "--device",
        "cpu",
        "--log",
        "/no such/x.parquet",
        "--out",
        "o"
    ]
    .run();
    let shown = r.to_string();
    assert!(
        shown.contains("score --device cpu --log '/no such/x.parquet' --out o"),
        "{shown}"
    );
    assert!(shown.contains("status: exit status: 1"), "{shown}");
    assert!(shown.contains("--- stderr\nerror: "), "{shown}");
    let unexpected = std::panic::catch_unwind(|| trustmesh!["--no-such-flag"].ok());
    let Err(msg) = unexpected else {
        panic!("a usage error passed `ok()`")
    };
    let msg = msg.downcast_ref::<String>().expect("assert message");
    assert!(
        msg.contains("expected exit status 0") && msg.contains("--no-such-flag"),
        "{msg}"
    );
}
