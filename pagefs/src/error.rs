//! The error type at the crate boundary.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// What mounting, unmounting or cleaning up can fail with.
#[derive(Debug, Error)]
pub enum PagefsError {
    /// The mount point is missing, not a directory, or a dead mount.
    #[error("mount point {}: {source}", path.display())]
    MountPoint { path: PathBuf, source: io::Error },
    /// The kernel refused the mount or the FUSE handshake failed.
    #[error("mounting FUSE at {}: {source}", path.display())]
    Mount { path: PathBuf, source: io::Error },
    /// The mount could not be taken down, or its threads did not finish.
    #[error("unmounting {}: {reason}", path.display())]
    Unmount { path: PathBuf, reason: String },
    /// The serving threads ended with an error.
    #[error("FUSE session at {} ended with an error: {source}", path.display())]
    Session { path: PathBuf, source: io::Error },
    /// The mount table could not be read.
    #[error("reading the mount table {}: {source}", path.display())]
    MountTable { path: PathBuf, source: io::Error },
}
