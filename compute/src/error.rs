//! The crate's error type: what can go wrong finding, initialising, starting,
//! stopping and supervising PostgreSQL. Every variant says what was being done
//! and, where PostgreSQL itself failed, carries the tail of its log.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::binaries::DiscoveryReport;

/// Errors of the compute crate.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// No usable PostgreSQL installation was found.
    #[error("{0}")]
    BinariesNotFound(DiscoveryReport),

    /// We run as root and there is no `postgres` OS user to run PostgreSQL as.
    #[error(
        "PostgreSQL refuses to run as root and there is no `postgres` OS user to run it as; \
         install PostgreSQL (`apt-get install postgresql`) or create the user \
         (`useradd --system --home-dir /var/lib/postgresql postgres`)"
    )]
    NoPostgresUser,

    /// A file system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    /// A PostgreSQL tool (`initdb`, `postgres --single`, …) ran and failed.
    #[error("{tool} failed ({status}):\n{output}")]
    ToolFailed {
        tool: String,
        status: String,
        output: String,
    },

    /// A path given to the crate is not usable (relative, not a directory, …).
    #[error("invalid path {path}: {reason}")]
    InvalidPath { path: PathBuf, reason: String },

    /// A secrets file exists but cannot be used.
    #[error("secrets file {path}: {reason}")]
    BadSecret { path: PathBuf, reason: String },

    /// The postmaster exited before it accepted connections.
    #[error(
        "postgres for {name} exited during startup ({status}); last lines of {log}:\n{log_tail}"
    )]
    ExitedEarly {
        name: String,
        status: String,
        log: PathBuf,
        log_tail: String,
    },

    /// The postmaster did not accept connections within the ready timeout.
    #[error(
        "postgres for {name} was not ready after {timeout:?}; last lines of {log}:\n{log_tail}"
    )]
    StartTimeout {
        name: String,
        timeout: Duration,
        log: PathBuf,
        log_tail: String,
    },

    /// PostgreSQL answered the readiness probe with an error other than
    /// "starting up" (for example: the internal role's password is wrong).
    #[error("postgres for {name} rejected offshoot's internal connection: {reason}")]
    ProbeRejected { name: String, reason: String },

    /// A supervised compute could not be started (the message of the
    /// underlying error; shared by every caller that waited for the start).
    #[error("compute for {name} failed to start: {reason}")]
    StartFailed { name: String, reason: String },

    /// A checkpoint asked of a running compute (before its branch is
    /// copied) did not happen.
    #[error("checkpoint of {name}: {reason}")]
    Checkpoint { name: String, reason: String },

    /// A branch's WAL directory is not in a state offshoot can use.
    #[error("WAL directory {path}: {reason}")]
    BadWalDir { path: PathBuf, reason: String },

    /// The supervisor has been shut down and starts nothing more.
    #[error("the compute supervisor is shut down")]
    ShutDown,
}

impl ComputeError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        ComputeError::Io {
            what: what.into(),
            source,
        }
    }
}
