//! One error type for the library, so the CLI can print a single clear line and
//! callers can match on what went wrong. Every variant that concerns user input
//! names the file, column and row where it applies, because "bad input" with no
//! location is useless on a multi-gigabyte log.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in trustmesh.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--log` argument matched no Parquet file.
    #[error("{path}: no Parquet files found ({why})")]
    NoInput { path: String, why: String },

    /// A file could not be opened or decoded.
    #[error("{}: cannot read: {message}", path.display())]
    Read { path: PathBuf, message: String },

    /// A required column is absent.
    #[error("{}: missing column `{column}` (expected {expected})", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        expected: String,
    },

    /// A column has a type we cannot interpret.
    #[error("{}: column `{column}` has type {found}, expected {expected}", path.display())]
    ColumnType {
        path: PathBuf,
        column: String,
        found: String,
        expected: String,
    },

    /// A value is out of its domain (null id, NaN, outcome outside [-1, 1], ...).
    /// `row` is 1-based within the file, counting every row of every row group.
    #[error("{}: row {row}, column `{column}`: {message}", path.display())]
    BadValue {
        path: PathBuf,
        column: String,
        row: u64,
        message: String,
    },

    /// A line of a text input (pre-trusted agents, a data set to convert) is malformed.
    #[error("{}: line {line}: {message}", path.display())]
    BadLine {
        path: PathBuf,
        line: u64,
        message: String,
    },

    /// A command-line parameter is invalid or inconsistent with the data.
    #[error("{0}")]
    Param(String),

    /// Nothing left to score after validation and filtering.
    #[error("empty result: {0}")]
    Empty(String),

    /// The compute device is not usable or failed.
    #[error("device: {0}")]
    Device(#[from] crate::gpu::DeviceError),

    /// A broken invariant: trustmesh itself is wrong, not the input or the
    /// parameters.
    #[error("internal error (a bug in trustmesh, please report it): {what}")]
    Internal { what: String },

    /// An output file could not be written.
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },

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

    /// Parquet writer failure.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl Error {
    /// Shorthand for parameter errors, which are the most common kind built by hand.
    pub fn param(msg: impl Into<String>) -> Self {
        Error::Param(msg.into())
    }

    /// A broken invariant (a bug in trustmesh).
    pub fn internal(what: impl Into<String>) -> Self {
        Error::Internal { what: what.into() }
    }
}

/// Any error, boxed, kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
