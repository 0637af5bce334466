//! One error type for the library, [`Error`], and its [`Result`] alias.
//!
//! An error says *what* went wrong; *where* (the file, the row and column, the
//! line) is added around it as context ([`Error::WithPath`],
//! [`Error::WithRow`], [`Error::WithLine`], built with [`Error::with_path`] or
//! [`ResultExt::with_path`] and their siblings), so the stage that knows the
//! location adds it once instead of every message formatting it. The text is
//! the one users have always seen: ``logs/a.parquet: row 2, column `outcome`:
//! outcome 1.5 is outside [-1, 1]``.
//!
//! - An error's `Display` is complete: it includes the messages of its
//!   sources, so print it once; [`std::error::Error::source`] keeps those
//!   sources (an `io::Error`, a Parquet or wgpu error) for programs that
//!   inspect them, and [`Error::root_cause`] finds the deepest.
//! - [`Error::find_root`] strips the context wrappers and leaves the error
//!   that says what went wrong, to match on; [`Error::path`], [`Error::row`]
//!   and [`Error::line`] read the location back.
//! - Parameter errors ([`Error::Param`]) name the parameter as the library
//!   calls it (`alpha`, `max_iter`, `flat_tail.top`), never a command-line
//!   flag: their text is a [`Message`] whose parameter mentions a front end can
//!   rename ([`Error::display_with`]; the CLI shows `--alpha`).
//! - A broken invariant is [`Error::Internal`], which says it is a bug.
//! - A stage whose callers must branch on the cause has a typed sub-error
//!   (today [`crate::gpu::DeviceError`]); docs/errors.md says how a new stage
//!   adds one.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::gpu::DeviceError;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error, boxed: the source of a [`Error::Read`] or [`Error::Write`]
/// (an `io::Error`, a `ParquetError`, or a plain description).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in trustmesh.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Context: the file (or directory) `source` concerns.
    #[error("{}", self.display_with(&library_names))]
    WithPath { path: PathBuf, source: Inner },

    /// Context: the 1-based row of a table (Parquet or CSV, counting every
    /// row of every row group) and the column `source` concerns.
    #[error("{}", self.display_with(&library_names))]
    WithRow {
        row: u64,
        column: String,
        source: Inner,
    },

    /// Context: the 1-based line of a text input `source` concerns.
    #[error("{}", self.display_with(&library_names))]
    WithLine { line: u64, source: Inner },

    /// A log argument (file, directory or glob) matched no Parquet file.
    #[error("{pattern}: no Parquet files found ({why})")]
    NoInput {
        pattern: String,
        why: String,
        source: Option<glob::PatternError>,
    },

    /// A file could not be opened or decoded (wrapped in [`Error::WithPath`]).
    #[error("cannot read: {source}")]
    Read { source: BoxError },

    /// An output file could not be written (wrapped in [`Error::WithPath`]).
    #[error("cannot write: {source}")]
    Write { source: BoxError },

    /// A required column is absent.
    #[error("missing column `{column}` (expected {expected})")]
    MissingColumn { column: String, expected: String },

    /// A column has a type we cannot interpret.
    #[error("column `{column}` has type {found}, expected {expected}")]
    ColumnType {
        column: String,
        found: String,
        expected: String,
    },

    /// A value of the input is malformed or out of its domain (null id, NaN,
    /// outcome outside [-1, 1], unknown agent, a size beyond a format's
    /// limit). The context around it says where.
    #[error("{}", self.display_with(&library_names))]
    Invalid(Message),

    /// A parameter of a library call is invalid or inconsistent with the data.
    #[error(transparent)]
    Param(#[from] ParamError),

    /// Nothing left to score after validation and filtering.
    #[error("empty result: {0}")]
    Empty(String),

    /// The compute device is not usable or failed.
    #[error("device: {0}")]
    Device(#[from] DeviceError),

    /// A benchmark could not produce a figure (the timed solve stopped early,
    /// or the time could not be told apart from the set-up).
    #[error("benchmark: {0}")]
    Measure(String),

    /// The linear-programming solver failed on a problem built from valid
    /// input (numerical trouble, e.g. payoffs spanning many orders of
    /// magnitude); `what` says which program.
    #[error("linear program ({what}): {source}")]
    Lp {
        what: String,
        source: microlp::Error,
    },

    /// A broken invariant: trustmesh itself is wrong, not the input or the
    /// parameters.
    #[error("internal error (a bug in trustmesh, please report it): {what}")]
    Internal { what: String },

    /// A synchronous entry point was called inside an async runtime, where it
    /// must not block (see `runtime::block_on`).
    #[error("a synchronous trustmesh call was made inside an async runtime, where it cannot block; await its `_async` variant instead")]
    BlockingInAsync,

    /// Keys, the identity ledger or row signatures (see
    /// [`crate::identity::IdentityError`] for the kinds to branch on).
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),

    /// A snapshot, header or proof was refused (see
    /// [`crate::snapshot::SnapshotError`] for the kinds to branch on).
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),

    /// Plain I/O without a more precise location.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// DataFusion failed while planning or running an ingest query.
    #[error("query: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// Arrow failed on an in-memory operation.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// Parquet failure outside reading or writing a named file.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// The error inside a context wrapper or another error, boxed (an enum cannot
/// hold itself). It dereferences to the [`Error`] and is its holder's
/// `source()` as that `Error`, so `source().downcast_ref::<Error>()` finds it
/// (a plain `Box<Error>` would show up as a `Box`, not an `Error`).
#[derive(Debug)]
pub struct Inner(Box<Error>);

impl Inner {
    pub fn new(error: Error) -> Self {
        Inner(Box::new(error))
    }

    pub fn into_inner(self) -> Error {
        *self.0
    }
}

impl std::ops::Deref for Inner {
    type Target = Error;
    fn deref(&self) -> &Error {
        &self.0
    }
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// A parameter of a library call is invalid: `name` says which, `message`
/// says why (and may mention other parameters).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// The parameter at fault as the library names it: a field of the call's
    /// configuration (`alpha`, `max_iter`, `flat_tail.top`, `layer_weights`),
    /// an argument (`columns`), or an environment variable.
    pub name: &'static str,
    pub message: Message,
}

/// Text that may mention parameters. The library shows a mention as the
/// parameter's name (`alpha`); a front end shows its own name for it (the
/// CLI's `--alpha`) through [`Error::display_with`]. Built with
/// [`Message::new`] then [`Message::param`] and [`Message::text`], or from
/// plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message(Vec<Piece>);

/// A part of a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// A parameter, by its library name.
    Param(&'static str),
}

/// How a front end names parameters: `Some(name)` to show instead of the
/// library's, `None` to keep it.
pub type ParamNames<'a> = dyn Fn(&str) -> Option<&'static str> + 'a;

/// The library's own names: every parameter as the library calls it.
fn library_names(_: &str) -> Option<&'static str> {
    None
}

impl Message {
    pub fn new() -> Self {
        Message(Vec::new())
    }

    /// Appends plain text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Piece::Text(text.into()));
        self
    }

    /// Appends a mention of parameter `name`.
    pub fn param(mut self, name: &'static str) -> Self {
        self.0.push(Piece::Param(name));
        self
    }

    /// The parameters mentioned, in order.
    pub fn params(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().filter_map(|p| match p {
            Piece::Param(n) => Some(*n),
            Piece::Text(_) => None,
        })
    }

    /// The text with each parameter named by `names`.
    pub fn display_with<'a>(&'a self, names: &'a ParamNames<'a>) -> impl fmt::Display + 'a {
        DisplayFn(move |f: &mut fmt::Formatter<'_>| {
            for piece in &self.0 {
                match piece {
                    Piece::Text(t) => f.write_str(t)?,
                    Piece::Param(n) => f.write_str(names(n).unwrap_or(n))?,
                }
            }
            Ok(())
        })
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.display_with(&library_names))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::new().text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::new().text(text)
    }
}

/// A `Display` from a closure.
struct DisplayFn<F>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for DisplayFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

impl Error {
    /// Parameter `name` is invalid; `message` says why.
    pub fn param(name: &'static str, message: impl Into<Message>) -> Self {
        Error::Param(ParamError {
            name,
            message: message.into(),
        })
    }

    /// Parameter `name` is invalid, in a message that starts with the
    /// parameter: `param_value("alpha", "must be in (0, 1], got 0")` reads
    /// "alpha must be in (0, 1], got 0".
    pub fn param_value(name: &'static str, rest: impl fmt::Display) -> Self {
        Error::param(name, Message::new().param(name).text(format!(" {rest}")))
    }

    /// A value of the input is invalid; add where with the `with_*` methods.
    pub fn invalid(message: impl Into<Message>) -> Self {
        Error::Invalid(message.into())
    }

    /// A file could not be read; add which with [`Error::with_path`].
    pub fn read(source: impl Into<BoxError>) -> Self {
        Error::Read {
            source: source.into(),
        }
    }

    /// A file could not be written; add which with [`Error::with_path`].
    pub fn write(source: impl Into<BoxError>) -> Self {
        Error::Write {
            source: source.into(),
        }
    }

    /// A broken invariant (a bug in trustmesh).
    pub fn internal(what: impl Into<String>) -> Self {
        Error::Internal { what: what.into() }
    }

    /// This error, said to concern file `path`.
    pub fn with_path(self, path: impl AsRef<Path>) -> Self {
        Error::WithPath {
            path: path.as_ref().to_path_buf(),
            source: Inner::new(self),
        }
    }

    /// This error, said to concern 1-based `row` and `column` of a table.
    pub fn with_row(self, row: u64, column: impl Into<String>) -> Self {
        Error::WithRow {
            row,
            column: column.into(),
            source: Inner::new(self),
        }
    }

    /// This error, said to concern 1-based `line` of a text input.
    pub fn with_line(self, line: u64) -> Self {
        Error::WithLine {
            line,
            source: Inner::new(self),
        }
    }

    /// The message with each parameter named by `names` (the CLI passes its
    /// flag names); `Display` is this with the library's names.
    pub fn display_with<'a>(&'a self, names: &'a ParamNames<'a>) -> impl fmt::Display + 'a {
        DisplayFn(move |f: &mut fmt::Formatter<'_>| match self {
            Error::WithPath { path, source } => {
                write!(f, "{}: {}", path.display(), source.display_with(names))
            }
            Error::WithRow {
                row,
                column,
                source,
            } => write!(
                f,
                "row {row}, column `{column}`: {}",
                source.display_with(names)
            ),
            Error::WithLine { line, source } => {
                write!(f, "line {line}: {}", source.display_with(names))
            }
            Error::Invalid(m) | Error::Param(ParamError { message: m, .. }) => {
                write!(f, "{}", m.display_with(names))
            }
            other => fmt::Display::fmt(other, f),
        })
    }

    /// The errors of this one's source chain that are trustmesh errors,
    /// starting with this one (through boxed sources too, e.g. the line of a
    /// [`Error::Read`]).
    pub fn chain(&self) -> impl Iterator<Item = &Error> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self);
        std::iter::from_fn(move || loop {
            let e = next?;
            next = e.source();
            if let Some(ours) = e.downcast_ref::<Error>() {
                return Some(ours);
            }
        })
    }

    /// What went wrong, without where: this error with its context wrappers
    /// ([`Error::WithPath`], [`Error::WithRow`], [`Error::WithLine`])
    /// removed. Match on this.
    pub fn find_root(&self) -> &Error {
        match self {
            Error::WithPath { source, .. }
            | Error::WithRow { source, .. }
            | Error::WithLine { source, .. } => source.find_root(),
            other => other,
        }
    }

    /// The deepest source of the chain, of any type (an `io::Error`, a wgpu
    /// error, …), or this error when it has none.
    pub fn root_cause(&self) -> &(dyn std::error::Error + 'static) {
        let mut e: &(dyn std::error::Error + 'static) = self;
        while let Some(s) = e.source() {
            e = s;
        }
        e
    }

    /// The file the error concerns, when one was given.
    pub fn path(&self) -> Option<&Path> {
        self.chain().find_map(|e| match e {
            Error::WithPath { path, .. } => Some(path.as_path()),
            _ => None,
        })
    }

    /// The 1-based row and the column the error concerns, when given.
    pub fn row(&self) -> Option<(u64, &str)> {
        self.chain().find_map(|e| match e {
            Error::WithRow { row, column, .. } => Some((*row, column.as_str())),
            _ => None,
        })
    }

    /// The 1-based line the error concerns, when given.
    pub fn line(&self) -> Option<u64> {
        self.chain().find_map(|e| match e {
            Error::WithLine { line, .. } => Some(*line),
            _ => None,
        })
    }

    /// True for a broken invariant: a bug to report, not a mistake to fix.
    pub fn is_internal(&self) -> bool {
        matches!(self.find_root(), Error::Internal { .. })
    }

    /// The parameter error, when a parameter is at fault.
    pub fn as_param(&self) -> Option<&ParamError> {
        match self.find_root() {
            Error::Param(p) => Some(p),
            _ => None,
        }
    }

    /// The device error, when the compute device is at fault.
    pub fn as_device(&self) -> Option<&DeviceError> {
        match self.find_root() {
            Error::Device(d) => Some(d),
            _ => None,
        }
    }

    /// The snapshot error, when a snapshot, header or proof was refused.
    pub fn as_snapshot(&self) -> Option<&crate::snapshot::SnapshotError> {
        match self.find_root() {
            Error::Snapshot(e) => Some(e),
            _ => None,
        }
    }

    /// The identity error, when a key, the ledger or a signature is at fault.
    pub fn as_identity(&self) -> Option<&crate::identity::IdentityError> {
        match self.find_root() {
            Error::Identity(e) => Some(e),
            _ => None,
        }
    }
}

/// Context for the errors of a `Result`: the `with_*` methods of [`Error`].
pub trait ResultExt<T> {
    /// The error, if any, said to concern file `path`.
    fn with_path(self, path: impl AsRef<Path>) -> Result<T>;
    /// The error, if any, said to concern 1-based `row` and `column`.
    fn with_row(self, row: u64, column: impl Into<String>) -> Result<T>;
    /// The error, if any, said to concern 1-based `line`.
    fn with_line(self, line: u64) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn with_path(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| e.into().with_path(path))
    }

    fn with_row(self, row: u64, column: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().with_row(row, column))
    }

    fn with_line(self, line: u64) -> Result<T> {
        self.map_err(|e| e.into().with_line(line))
    }
}

impl ParamError {
    /// The message with each parameter named by `names`.
    pub fn display_with<'a>(&'a self, names: &'a ParamNames<'a>) -> impl fmt::Display + 'a {
        self.message.display_with(names)
    }
}

/// The library's parameter names, one constant each, for errors to name and
/// messages to mention; a front end renames them through one table (the CLI's
/// `cli::flags`) whose test checks it against [`params::ALL`].
pub mod params {
    /// `IterParams::alpha`: teleport weight.
    pub const ALPHA: &str = "alpha";
    /// `IterParams::epsilon`: stopping threshold.
    pub const EPSILON: &str = "epsilon";
    /// `IterParams::max_iter`: iteration cap.
    pub const MAX_ITER: &str = "max_iter";
    /// `FlatTail::iterations`.
    pub const FLAT_TAIL: &str = "flat_tail.iterations";
    /// `FlatTail::top`.
    pub const FLAT_TAIL_TOP: &str = "flat_tail.top";
    /// `ScoreConfig::logs`: the log arguments.
    pub const LOGS: &str = "logs";
    /// The layers to score (`IngestOptions::layers`) or scored
    /// (`LocalTrustConfig::layers`).
    pub const LAYERS: &str = "layers";
    /// `ScoreConfig::layer_weights`.
    pub const LAYER_WEIGHTS: &str = "layer_weights";
    /// `ScoreConfig::cheap`: layers that need corroboration.
    pub const CHEAP: &str = "cheap";
    /// `ScoreConfig::costly`: layers that corroborate.
    pub const COSTLY: &str = "costly";
    /// `ScoreConfig::beta`, `LocalTrustConfig::beta`.
    pub const BETA: &str = "beta";
    /// `ScoreConfig::tau`, `LocalTrustConfig::tau`.
    pub const TAU: &str = "tau";
    /// `LocalTrustConfig::gates`: consistency-gate factors.
    pub const GATES: &str = "gates";
    /// `ScoreConfig::distrust`.
    pub const DISTRUST: &str = "distrust";
    /// The per-topic model, `score::per_topic::run`.
    pub const PER_TOPIC: &str = "per_topic";
    /// `ScoreConfig::start`: a warm start from a snapshot.
    pub const START: &str = "start";
    /// `TopicOptions::sigma`.
    pub const SIGMA: &str = "sigma";
    /// `TopicOptions::rho`.
    pub const RHO: &str = "rho";
    /// The BAID ledger whose registered raters are scored.
    pub const REGISTRY: &str = "registry";
    /// Rows must carry a valid signature by their rater.
    pub const REQUIRE_SIGNATURES: &str = "require_signatures";
    /// The `format` of `ingest::convert::convert`.
    pub const FORMAT: &str = "format";
    /// The `layer` of `ingest::convert::convert`.
    pub const LAYER: &str = "layer";
    /// The `rating_scale` of `ingest::convert::convert`.
    pub const RATING_SCALE: &str = "rating_scale";
    /// `bench::BenchGraph::Synthetic`.
    pub const SYNTHETIC: &str = "synthetic";
    /// The columns given to a back end's solve.
    pub const COLUMNS: &str = "columns";
    /// The batches given to `LoadedMatrices::solve_many`.
    pub const BATCHES: &str = "batches";
    /// `ContractParams::tiers`: trust tiers of the contract generator.
    pub const TIERS: &str = "tiers";
    /// `ContractParams::task_value`: the leader's value of one success.
    pub const TASK_VALUE: &str = "task_value";
    /// `ContractParams::reward_max`: the largest reward on the grid.
    pub const REWARD_MAX: &str = "reward_max";
    /// `ContractParams::reward_steps`: rewards on the grid.
    pub const REWARD_STEPS: &str = "reward_steps";
    /// `ContractParams::budget`: the bound on expected payments.
    pub const BUDGET: &str = "budget";
    /// `ContractParams::unscored`: what an agent without a score gets.
    pub const UNSCORED: &str = "unscored";
    /// The vector of a long scores file (per topic, layer or set) to read.
    pub const VECTOR: &str = "vector";
    /// The Stackelberg method (`exact`, `search`).
    pub const METHOD: &str = "method";
    /// `SearchConfig::grid`: divisions of the search's first grid.
    pub const GRID: &str = "grid";
    /// The compute device of a search.
    pub const DEVICE: &str = "device";
    /// `SearchConfig::epsilon`: the relative tie tolerance.
    pub const SEARCH_EPSILON: &str = "search.epsilon";
    /// `SearchConfig::centers`, `SearchConfig::polish`: how many candidates
    /// the search refines around and polishes.
    pub const SEARCH_WIDTH: &str = "search.centers";

    /// `SimConfig::peers`: peers of a simulated market.
    pub const PEERS: &str = "peers";
    /// `SimConfig::malicious`: shares of adversaries.
    pub const MALICIOUS: &str = "malicious";
    /// `SimConfig::epochs`.
    pub const EPOCHS: &str = "epochs";
    /// `SimConfig::seeds`: how many seeds.
    pub const SEEDS: &str = "seeds";
    /// `SimConfig::models`.
    pub const MODELS: &str = "models";
    /// `SimConfig::queries`: queries per peer per epoch.
    pub const QUERIES: &str = "queries";
    /// `SimConfig::candidates`: peers answering a query.
    pub const CANDIDATES: &str = "candidates";
    /// `SimConfig::exploration`: share of choices among zero-trust peers.
    pub const EXPLORATION: &str = "exploration";
    /// `SimConfig::pretrusted`: how many pre-trusted peers.
    pub const PRETRUSTED_PEERS: &str = "pretrusted_peers";
    /// `SimConfig::camouflage`: scenario C's authentic share.
    pub const CAMOUFLAGE: &str = "camouflage";
    /// `DgpanParams::queries`: queries per topic per epoch.
    pub const QUERIES_PER_TOPIC: &str = "dgpan.queries";
    /// `DgpanParams::detection`: probability a defection is proven.
    pub const DETECTION: &str = "dgpan.detection";
    /// `DgpanParams::stake`: stake per identity.
    pub const SIM_STAKE: &str = "dgpan.stake";
    /// `DgpanParams::gain`: an attacker's gain per defection.
    pub const GAIN: &str = "dgpan.gain";
    /// `DgpanParams::spy_share`: spies among the adversaries.
    pub const SPY_SHARE: &str = "dgpan.spy_share";
    /// `DgpanParams::newcomers`: honest newcomers' share of the peers.
    pub const NEWCOMERS: &str = "dgpan.newcomers";

    /// Every name above.
    pub const ALL: &[&str] = &[
        START,
        ALPHA,
        EPSILON,
        MAX_ITER,
        FLAT_TAIL,
        FLAT_TAIL_TOP,
        LOGS,
        LAYERS,
        LAYER_WEIGHTS,
        CHEAP,
        COSTLY,
        BETA,
        TAU,
        GATES,
        DISTRUST,
        PER_TOPIC,
        SIGMA,
        RHO,
        REGISTRY,
        REQUIRE_SIGNATURES,
        FORMAT,
        LAYER,
        RATING_SCALE,
        SYNTHETIC,
        COLUMNS,
        BATCHES,
        TIERS,
        TASK_VALUE,
        REWARD_MAX,
        REWARD_STEPS,
        BUDGET,
        UNSCORED,
        VECTOR,
        METHOD,
        GRID,
        DEVICE,
        SEARCH_EPSILON,
        SEARCH_WIDTH,
        PEERS,
        MALICIOUS,
        EPOCHS,
        SEEDS,
        MODELS,
        QUERIES,
        CANDIDATES,
        EXPLORATION,
        PRETRUSTED_PEERS,
        CAMOUFLAGE,
        QUERIES_PER_TOPIC,
        DETECTION,
        SIM_STAKE,
        GAIN,
        SPY_SHARE,
        NEWCOMERS,
    ];
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn not_found() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "gone")
    }

    fn bad_outcome() -> Error {
        Error::invalid("outcome 1.5 is outside [-1, 1]")
            .with_row(2, "outcome")
            .with_path("logs/day1.parquet")
    }

    #[test]
    fn context_reads_as_the_one_line_users_know() {
        assert_eq!(
            bad_outcome().to_string(),
            "logs/day1.parquet: row 2, column `outcome`: outcome 1.5 is outside [-1, 1]"
        );
        let line = Error::invalid("`x` is not a number")
            .with_line(3)
            .with_path("sim.csv");
        assert_eq!(line.to_string(), "sim.csv: line 3: `x` is not a number");
        let read = Error::read(not_found()).with_path("a.parquet");
        assert_eq!(read.to_string(), "a.parquet: cannot read: gone");
        let write = Error::write("disk full").with_path("o.parquet");
        assert_eq!(write.to_string(), "o.parquet: cannot write: disk full");
        let column = Error::MissingColumn {
            column: "outcome".into(),
            expected: "float32 or float64".into(),
        }
        .with_path("a.parquet");
        assert_eq!(
            column.to_string(),
            "a.parquet: missing column `outcome` (expected float32 or float64)"
        );
    }

    #[test]
    fn sources_are_kept_not_flattened() {
        let e = Error::read(not_found()).with_path("a.parquet");
        // WithPath → Read → io::Error, each reachable as a source.
        let read = e.source().expect("the wrapped error");
        assert_eq!(read.to_string(), "cannot read: gone");
        assert!(
            matches!(read.downcast_ref::<Error>(), Some(Error::Read { .. })),
            "a wrapped error is its wrapper's source as an Error, not a Box"
        );
        let io = read.source().expect("the io error");
        let io = io.downcast_ref::<std::io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(e.root_cause().to_string(), "gone");
        assert!(e.root_cause().is::<std::io::Error>());
        // Without a source, the root cause is the error itself.
        let plain = Error::internal("x");
        assert_eq!(plain.root_cause().to_string(), plain.to_string());
    }

    #[test]
    fn find_root_strips_the_context_only() {
        let e = bad_outcome();
        assert!(
            matches!(e.find_root(), Error::Invalid(m) if m.to_string().starts_with("outcome 1.5"))
        );
        let read = Error::read(not_found()).with_path("a.parquet");
        assert!(matches!(read.find_root(), Error::Read { .. }));
        let bare = Error::Empty("nothing".into());
        assert!(std::ptr::eq(bare.find_root(), &bare));
    }

    #[test]
    fn location_reads_back_through_boxed_sources() {
        let e = bad_outcome();
        assert_eq!(e.path(), Some(Path::new("logs/day1.parquet")));
        assert_eq!(e.row(), Some((2, "outcome")));
        assert_eq!(e.line(), None);
        // convert's failed read of line 7 sits inside the Read's boxed source.
        let e = Error::read(Error::from(not_found()).with_line(7)).with_path("in.tsv");
        assert_eq!(e.to_string(), "in.tsv: cannot read: line 7: gone");
        assert_eq!((e.path(), e.line()), (Some(Path::new("in.tsv")), Some(7)));
        assert_eq!(e.chain().count(), 4, "WithPath, Read, WithLine, Io");
    }

    #[test]
    fn result_ext_adds_context_to_any_convertible_error() {
        let r: std::result::Result<(), std::io::Error> = Err(not_found());
        let e = r.with_line(4).with_path("p.txt").unwrap_err();
        assert_eq!(e.to_string(), "p.txt: line 4: gone");
        let ok: Result<u8> = Ok(1);
        assert_eq!(ok.with_row(1, "c").unwrap(), 1);
    }

    #[test]
    fn internal_errors_say_they_are_bugs() {
        let e = Error::internal("a column was never solved").with_path("x");
        assert!(e.is_internal());
        assert!(e.to_string().contains("a bug in trustmesh"), "{e}");
        assert!(!bad_outcome().is_internal());
    }

    #[test]
    fn parameters_are_named_and_renamed() {
        let e = Error::param_value(params::ALPHA, "must be in (0, 1], got 0");
        assert_eq!(e.to_string(), "alpha must be in (0, 1], got 0");
        let p = e.as_param().expect("a parameter error");
        assert_eq!(p.name, params::ALPHA);
        assert_eq!(p.message.params().collect::<Vec<_>>(), [params::ALPHA]);
        assert!(e.source().is_none(), "a parameter error has no source");

        let m = Message::new()
            .param(params::CHEAP)
            .text(" needs at least one ")
            .param(params::COSTLY)
            .text(" layer");
        let e = Error::param(params::COSTLY, m).with_path("cfg");
        let flags = |p: &str| match p {
            "cheap" => Some("--cheap"),
            "costly" => Some("--costly"),
            _ => None,
        };
        assert_eq!(
            e.display_with(&flags).to_string(),
            "cfg: --cheap needs at least one --costly layer"
        );
        assert_eq!(e.to_string(), "cfg: cheap needs at least one costly layer");
        assert_eq!(e.as_param().map(|p| p.name), Some(params::COSTLY));
        assert!(bad_outcome().as_param().is_none());
    }

    #[test]
    fn display_is_display_with_the_library_names() {
        let errors = [
            bad_outcome(),
            Error::param_value(params::TAU, "must be positive").with_line(1),
            Error::read(not_found()).with_path("a"),
            Error::from(DeviceError::NoAdapter),
            Error::internal("x").with_row(1, "c"),
        ];
        for e in errors {
            assert_eq!(e.to_string(), e.display_with(&|_| None).to_string());
        }
    }

    #[test]
    fn device_errors_are_typed() {
        let e = Error::from(DeviceError::AdapterNotFound {
            filter: "x".into(),
            available: vec!["a (vulkan)".into(), "b (vulkan)".into()],
        });
        assert_eq!(
            e.to_string(),
            "device: no adapter name contains \"x\"; available: a (vulkan), b (vulkan)"
        );
        assert!(e.as_device().is_some_and(DeviceError::is_unavailable));
        let big = DeviceError::TooBig {
            adapter: "gpu".into(),
            what: "one trust vector",
            bytes: 10,
            limit: 4,
        };
        assert!(!big.is_unavailable() && !big.is_out_of_memory());
        assert!(Error::from(big).source().is_some(), "the DeviceError");
    }
}
