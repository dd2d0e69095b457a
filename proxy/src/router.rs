//! The seam between the proxy and the control plane.
//!
//! The proxy knows nothing about branches beyond their names: the daemon
//! implements [`Router`], waking the branch's compute when needed and handing
//! back its Unix socket plus a lease. The proxy holds the lease for as long as
//! the client connection lives, so that the daemon can count a branch as in use
//! (scale to zero stops only computes with no leases).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// A boxed, sendable future (what [`Router::route`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the proxy asks of the control plane. Implemented by the daemon.
pub trait Router: Send + Sync + 'static {
    /// Wakes the branch's compute if needed (bounded wait) and says where to
    /// connect. The lease keeps the branch counted as "in use" until dropped.
    fn route(&self, branch: &str) -> BoxFuture<'_, Result<Route, RouteError>>;
}

/// Where a connection goes, and the lease that keeps the compute up.
pub struct Route {
    /// The compute's Unix socket, e.g. `<run dir>/.s.PGSQL.5432`.
    pub socket: PathBuf,
    /// Dropped when the client connection ends.
    pub lease: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// Why the control plane could not route a branch. The proxy turns each kind
/// into a fixed client message; `reason` strings are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No branch has this name.
    #[error("branch {name:?} does not exist")]
    UnknownBranch { name: String, known: Vec<String> },
    /// The name breaks the branch-name rule.
    #[error("invalid branch name {name:?}: {rule}")]
    InvalidName { name: String, rule: String },
    /// The branch is being deleted.
    #[error("branch {0:?} is being deleted")]
    Deleting(String),
    /// The compute could not be started.
    #[error("compute of branch {name:?} failed to start: {reason}")]
    WakeFailed { name: String, reason: String },
    /// The compute did not become ready in time.
    #[error("compute of branch {name:?} did not become ready in time")]
    WakeTimeout { name: String },
    /// The compute could not be started, and the disk under the page
    /// store is full: the likely cause, and one the client can act on.
    #[error("compute of branch {name:?} failed to start with the disk full: {reason}")]
    DiskFull { name: String, reason: String },
    /// Anything else; the text is logged only.
    #[error("internal routing error: {0}")]
    Internal(String),
}
