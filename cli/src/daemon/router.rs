//! The proxy's [`Router`]: turns a branch name from a connection's startup
//! packet into the socket of that branch's running PostgreSQL, waking it if
//! needed, plus a lease that counts the connection (scale to zero).
//!
//! Never a silent default: a bad name, an unknown branch or a branch being
//! created or deleted is an error the proxy sends to the client.

use std::sync::Arc;

use offshoot_proxy::{BoxFuture, Route, RouteError, Router};

use super::control::Control;
use super::disk_space;
use super::names::{self, BRANCH_NAME_RULE};
use super::runtime::WakeError;

/// How many branch names an "unknown branch" error lists at most.
const MAX_KNOWN: usize = 20;

/// Routes proxy connections through the daemon's control plane.
pub struct DaemonRouter {
    control: Arc<Control>,
}

impl DaemonRouter {
    pub fn new(control: Arc<Control>) -> DaemonRouter {
        DaemonRouter { control }
    }

    /// Whether the disk under the page store has no room left to speak of
    /// (less than [`disk_space::FULL_BYTES`]).
    fn disk_full(&self) -> bool {
        disk_space::free_bytes(&self.control.home().store_dir())
            .is_ok_and(|free| free < disk_space::FULL_BYTES)
    }

    async fn route_branch(&self, name: &str) -> Result<Route, RouteError> {
        names::validate(name).map_err(|_| RouteError::InvalidName {
            name: name.to_string(),
            rule: BRANCH_NAME_RULE.to_string(),
        })?;
        let store = self.control.store();
        let unknown = || RouteError::UnknownBranch {
            name: name.to_string(),
            known: store
                .branches()
                .into_iter()
                .map(|b| b.name)
                .take(MAX_KNOWN)
                .collect(),
        };
        let info = store.branch_info(name).map_err(|_| unknown())?;
        let check = || store.branch_info(name).is_ok_and(|b| b.id == info.id);
        let lease = self
            .control
            .runtime()
            .wake(info.id, name, check)
            .await
            .map_err(|e| match e {
                WakeError::Timeout { name, .. } => RouteError::WakeTimeout { name },
                other if self.disk_full() => RouteError::DiskFull {
                    name: name.to_string(),
                    reason: other.to_string(),
                },
                other => RouteError::WakeFailed {
                    name: name.to_string(),
                    reason: other.to_string(),
                },
            })?;
        // None: deleted or renamed while we waited.
        let (socket, lease) = lease.ok_or_else(|| match store.branch_info(name) {
            Ok(_) => RouteError::Deleting(name.to_string()),
            Err(_) => unknown(),
        })?;
        Ok(Route {
            socket,
            lease: Box::new(lease),
        })
    }
}

impl Router for DaemonRouter {
    fn route(&self, branch: &str) -> BoxFuture<'_, Result<Route, RouteError>> {
        let branch = branch.to_string();
        Box::pin(async move { self.route_branch(&branch).await })
    }
}
