//! One error type for the library, [`Error`], and its [`Result`] alias.
//!
//! An error says *what* went wrong; *where* (the file, the row and column, the
//! line) is added around it as context ([`Error::WithPath`],
//! [`Error::WithRow`], [`Error::WithLine`], built with [`Error::with_path`] or
//! [`ResultExt::with_path`] and their siblings), so the stage that knows the
//! location adds it once instead of every message formatting it. The text is
//! the one users have always seen: `logs/a.parquet: row 2, column `outcome`:
//! outcome 1.5 is outside [-1, 1]`.
//!
//! - An error's `Display` is complete: it includes the messages of its
//!   sources, so print it once; [`std::error::Error::source`] keeps those
//!   sources (an `io::Error`, a Parquet or wgpu error) for programs that
//!   inspect them, and [`Error::root_cause`] finds the deepest.
//! - [`Error::find_root`] strips the context wrappers and leaves the error
//!   that says what went wrong, to match on; [`Error::path`], [`Error::row`]
//!   and [`Error::line`] read the location back.
//! - A broken invariant is [`Error::Internal`], which says it is a bug.
//! - A stage whose callers must branch on the cause has a typed sub-error
//!   (today [`crate::gpu::DeviceError`]); docs/errors.md says how a new stage
//!   adds one.

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
    #[error("{}: {source}", path.display())]
    WithPath { path: PathBuf, source: Box<Error> },

    /// Context: the 1-based row of a table (Parquet or CSV, counting every
    /// row of every row group) and the column `source` concerns.
    #[error("row {row}, column `{column}`: {source}")]
    WithRow {
        row: u64,
        column: String,
        source: Box<Error>,
    },

    /// Context: the 1-based line of a text input `source` concerns.
    #[error("line {line}: {source}")]
    WithLine { line: u64, source: Box<Error> },

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
    #[error("{0}")]
    Invalid(String),

    /// A command-line parameter is invalid or inconsistent with the data.
    #[error("{0}")]
    Param(String),

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

    /// A broken invariant: trustmesh itself is wrong, not the input or the
    /// parameters.
    #[error("internal error (a bug in trustmesh, please report it): {what}")]
    Internal { what: String },

    /// A synchronous entry point was called inside an async runtime, where it
    /// must not block (see `runtime::block_on`).
    #[error("a synchronous trustmesh call was made inside an async runtime, where it cannot block; await its `_async` variant instead")]
    BlockingInAsync,

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

impl Error {
    /// Shorthand for parameter errors, which are the most common kind built by hand.
    pub fn param(msg: impl Into<String>) -> Self {
        Error::Param(msg.into())
    }

    /// A value of the input is invalid; add where with the `with_*` methods.
    pub fn invalid(message: impl Into<String>) -> Self {
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
            source: Box::new(self),
        }
    }

    /// This error, said to concern 1-based `row` and `column` of a table.
    pub fn with_row(self, row: u64, column: impl Into<String>) -> Self {
        Error::WithRow {
            row,
            column: column.into(),
            source: Box::new(self),
        }
    }

    /// This error, said to concern 1-based `line` of a text input.
    pub fn with_line(self, line: u64) -> Self {
        Error::WithLine {
            line,
            source: Box::new(self),
        }
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

    /// The device error, when the compute device is at fault.
    pub fn as_device(&self) -> Option<&DeviceError> {
        match self.find_root() {
            Error::Device(d) => Some(d),
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
