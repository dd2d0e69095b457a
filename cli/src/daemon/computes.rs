//! The daemon's handle on PostgreSQL processes: the compute crate's
//! [`Supervisor`], keyed by branch id (`branch-<id>`, which survives rename
//! and reset), which starts each compute once and restarts it after a crash.

use std::path::PathBuf;

use offshoot_compute::{
    ComputeError, ComputeSpec, ComputeState, PgBinaries, RunAs, Secrets, Supervisor,
    SupervisorOptions,
};
use offshoot_storage::BranchId;

/// Running computes by branch.
pub struct Computes {
    supervisor: Supervisor<String>,
}

fn key(id: BranchId) -> String {
    format!("branch-{}", id.0)
}

impl Computes {
    pub fn new(bins: PgBinaries, run_as: RunAs, secrets: Secrets) -> Computes {
        Computes {
            supervisor: Supervisor::new(bins, run_as, secrets, SupervisorOptions::default()),
        }
    }

    /// Starts the branch's PostgreSQL unless it runs (or restarts one that
    /// failed); returns its socket path. The caller serialises calls per branch.
    pub async fn ensure_running(
        &self,
        id: BranchId,
        spec: ComputeSpec,
    ) -> Result<PathBuf, ComputeError> {
        let running = self
            .supervisor
            .ensure_running(&key(id), move || async move { Ok(spec) })
            .await?;
        Ok(running.socket_path)
    }

    /// What the branch's PostgreSQL is doing.
    pub fn state(&self, id: BranchId) -> ComputeState {
        self.supervisor.state(&key(id))
    }

    /// Stops the branch's PostgreSQL (fast shutdown, then harder).
    pub async fn stop(&self, id: BranchId) -> Result<(), ComputeError> {
        self.supervisor.stop(&key(id)).await
    }

    /// Refuses new starts and stops every PostgreSQL.
    pub async fn shutdown(&self) {
        if let Err(e) = self.supervisor.shutdown().await {
            tracing::warn!(error = %e, "stopping computes");
        }
    }
}
