//! The error type at the crate boundary.

use thiserror::Error;

/// Everything the page store can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    AlreadyExists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("branch {0:?} not found")]
    BranchNotFound(String),
    #[error("branch {0:?} already exists")]
    BranchExists(String),
    #[error("branch {0:?} has no parent to reset from")]
    NoParent(String),
    /// The handle belongs to a branch that was dropped or reset since.
    #[error("stale branch handle (the branch was dropped or reset)")]
    Stale,
    /// Data on disk failed a check (CRC, magic, framing). Never wrong data.
    #[error("corrupted data: {what}")]
    Corrupted { what: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// The errno a filesystem should answer with.
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NotFound | StoreError::BranchNotFound(_) => libc::ENOENT,
            StoreError::AlreadyExists | StoreError::BranchExists(_) => libc::EEXIST,
            StoreError::NotEmpty => libc::ENOTEMPTY,
            StoreError::NotADirectory => libc::ENOTDIR,
            StoreError::IsADirectory => libc::EISDIR,
            StoreError::InvalidArgument(_) | StoreError::NoParent(_) => libc::EINVAL,
            StoreError::Stale => libc::ESTALE,
            StoreError::Corrupted { .. } => libc::EIO,
            StoreError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    pub(crate) fn corrupted(what: impl Into<String>) -> StoreError {
        let what = what.into();
        tracing::error!(%what, "page store corruption detected");
        StoreError::Corrupted { what }
    }
}
