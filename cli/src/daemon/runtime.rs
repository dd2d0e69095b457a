//! What runs for each branch: its FUSE mount and its PostgreSQL.
//!
//! PostgreSQL processes belong to the compute crate's [`Supervisor`], keyed
//! by [`BranchId`] (which survives rename and reset): it starts a compute
//! once however many connections ask, restarts it with backoff after a
//! crash, clears a stale `postmaster.pid`, and records activity. This module
//! adds what the supervisor does not know about, the mount: a branch is
//! mounted only while its compute runs, so an idle branch costs nothing but
//! metadata. The spec given to [`Supervisor::ensure_running`] mounts the
//! branch when it is not mounted (a crash restart reuses the mount), and
//! every stop ([`Runtime::while_stopped`], [`Runtime::reap_idle`],
//! [`Runtime::shutdown`]) stops PostgreSQL before it unmounts.
//!
//! Each branch has a [`Slot`]: an async lock and the count of leases out.
//! Every start request, stop and unmount of a branch happens under its lock,
//! which gives three guarantees: a mount never goes away under a compute
//! that is being started; the idle reaper never stops a compute that a
//! connection is being routed to (a lease is taken under the same lock);
//! and reset/delete see no compute start behind their back. The mount point
//! (`mnt/<id>`) and socket directory (`run/<id>`) are by id too, so a rename
//! leaves a running compute alone.
//!
//! The daemon itself never reads or writes inside a mount: changes it makes
//! to a branch's files go through the store.

mod lease;
mod mounts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offshoot_compute::{ComputeError, ComputeSpec, Supervisor};
use offshoot_pagefs::MountMetrics;
use offshoot_storage::{BranchId, Store};
use parking_lot::Mutex;
use tracing::Instrument as _;

pub use lease::Lease;
pub use mounts::{mount_branch, unmount};

use super::wal;
use crate::api::types::ComputeState;
use crate::home::Home;
use mounts::Mounts;

/// WAL written since a running branch's last checkpoint above which it is
/// checkpointed before being copied: replaying this much takes a fraction
/// of a second; the checkpoint of a parent that has just loaded a
/// gigabyte, 95–159 ms here.
pub const CHECKPOINT_BEFORE_COPY_WAL: u64 = 16 << 20;

/// Bound on that checkpoint (connecting, asking, checkpointing).
const CHECKPOINT_BEFORE_COPY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a branch could not be woken.
#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    #[error("start PostgreSQL on branch {name:?}: {reason}")]
    Start { name: String, reason: String },
    #[error("PostgreSQL on branch {name:?} did not become ready within {timeout:?}")]
    Timeout { name: String, timeout: Duration },
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// One branch's lock and lease count.
pub struct Slot {
    id: BranchId,
    lock: tokio::sync::Mutex<()>,
    /// Connections holding a lease on this branch.
    active: AtomicUsize,
}

impl Slot {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// Everything needed to mount branches and run PostgreSQL on them.
pub struct Runtime {
    home: Arc<Home>,
    store: Store,
    supervisor: Supervisor<BranchId>,
    mounts: Arc<Mounts>,
    wake_timeout: Duration,
    slots: Mutex<HashMap<BranchId, Arc<Slot>>>,
    shutting_down: AtomicBool,
}

impl Runtime {
    pub fn new(
        home: Home,
        store: Store,
        supervisor: Supervisor<BranchId>,
        wake_timeout: Duration,
    ) -> Runtime {
        Runtime {
            home: Arc::new(home),
            store,
            supervisor,
            mounts: Arc::new(Mounts::new()),
            wake_timeout,
            slots: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
        }
    }

    fn slot(&self, id: BranchId) -> Arc<Slot> {
        self.slots
            .lock()
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Slot {
                    id,
                    lock: tokio::sync::Mutex::new(()),
                    active: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// The OS user the computes run as.
    pub fn run_as(&self) -> &offshoot_compute::RunAs {
        self.supervisor.run_as()
    }

    /// The compute state of a branch as the API shows it.
    pub fn state(&self, id: BranchId) -> ComputeState {
        self.supervisor.state(&id)
    }

    /// Branches whose PostgreSQL is running.
    pub fn running_count(&self) -> usize {
        self.supervisor.running().len()
    }

    /// Counters of every mount since the daemon started.
    pub fn mount_metrics(&self) -> MountMetrics {
        self.mounts.totals()
    }

    /// Has the branch running (mounting it and starting PostgreSQL if
    /// needed) and takes a lease on it; answers the compute's socket. `check` runs under the branch's
    /// lock, before anything is started: it re-checks that the name still
    /// means this branch (a delete or rename may have run meanwhile); when it
    /// says no, the answer is `Ok(None)`.
    pub async fn wake(
        &self,
        id: BranchId,
        name: &str,
        check: impl FnOnce() -> bool,
    ) -> Result<Option<(std::path::PathBuf, Lease)>, WakeError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(WakeError::ShuttingDown);
        }
        let slot = self.slot(id);
        let _locked = slot.lock.lock().await;
        if !check() {
            return Ok(None);
        }
        let socket =
            match tokio::time::timeout(self.wake_timeout, self.ensure_running(id, name)).await {
                // The start goes on in the supervisor: a later connection gets it.
                Err(_) => {
                    return Err(WakeError::Timeout {
                        name: name.to_string(),
                        timeout: self.wake_timeout,
                    })
                }
                Ok(Err(ComputeError::ShutDown)) => return Err(WakeError::ShuttingDown),
                Ok(Err(e)) => {
                    self.unmount_failed(id).await;
                    return Err(WakeError::Start {
                        name: name.to_string(),
                        reason: e.to_string(),
                    });
                }
                Ok(Ok(socket)) => socket,
            };
        let lease = Lease::new(slot.clone(), self.supervisor.clone());
        Ok(Some((socket, lease)))
    }

    /// Asks the supervisor for the branch's compute; the first start mounts
    /// the branch. Called with the branch's lock held. On a running compute
    /// (every connection but the first) this is one supervisor lookup: the
    /// spec is built only when a start needs it.
    async fn ensure_running(
        &self,
        id: BranchId,
        name: &str,
    ) -> Result<std::path::PathBuf, ComputeError> {
        let fresh = self.supervisor.state(&id) != offshoot_compute::ComputeState::Running;
        let started = Instant::now();
        let start = {
            let (home, mounts, store) =
                (self.home.clone(), self.mounts.clone(), self.store.clone());
            let run_as = self.supervisor.run_as().clone();
            let name = name.to_string();
            move || async move {
                let datadir = home.mountpoint(id);
                let mounting = Instant::now();
                let was_mounted = mounts.is_mounted(id);
                let settings = {
                    let (home, store, branch_name) = (home.clone(), store.clone(), name.clone());
                    tokio::task::spawn_blocking(move || {
                        let branch = store.branch(&branch_name)?;
                        wal::prepare_start(&home, &branch, id, &run_as, was_mounted)
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("WAL task: {e}"))
                    .and_then(|r| r)
                    .map_err(|e| ComputeError::Io {
                        what: format!("prepare the WAL of branch {name:?}"),
                        source: std::io::Error::other(format!("{e:#}")),
                    })?
                };
                mounts
                    .ensure(
                        id,
                        &name,
                        || store.branch(&name).map_err(|e| e.to_string()),
                        datadir.clone(),
                    )
                    .await
                    .map_err(|reason| ComputeError::Io {
                        what: format!("mount branch {name:?}"),
                        source: std::io::Error::other(reason),
                    })?;
                if !was_mounted {
                    tracing::info!(
                        branch = %name,
                        mount_ms = ms(mounting.elapsed()),
                        "branch mounted"
                    );
                }
                Ok(ComputeSpec {
                    datadir,
                    socket_dir: home.socket_dir(id),
                    hba_file: home.hba_file(),
                    log_file: home.log_file(id),
                    settings,
                    name,
                })
            }
        };
        let span = tracing::info_span!("wake", branch = name, id = id.0);
        let running = self
            .supervisor
            .ensure_running(&id, start)
            .instrument(span)
            .await?;
        if fresh {
            tracing::info!(
                branch = name,
                id = id.0,
                pid = running.pid,
                elapsed_ms = ms(started.elapsed()),
                startup_ms = ms(running.startup_time),
                "compute started"
            );
        }
        Ok(running.socket_path)
    }

    /// After a failed start: the branch needs no mount. Under the branch's lock.
    async fn unmount_failed(&self, id: BranchId) {
        if self.supervisor.state(&id) == offshoot_compute::ComputeState::Failed {
            self.mounts.remove(id).await;
        }
    }

    async fn stop_locked(&self, id: BranchId) -> bool {
        let was_running = matches!(
            self.supervisor.state(&id),
            offshoot_compute::ComputeState::Running | offshoot_compute::ComputeState::Starting
        );
        if let Err(e) = self.supervisor.stop(&id).await {
            tracing::warn!(id = id.0, error = %e, "stopping compute");
        }
        self.mounts.remove(id).await;
        was_running
    }

    /// Before a running branch is copied (a new branch of it, when the
    /// create asks for it): asks its PostgreSQL for a checkpoint when it has written
    /// more than [`CHECKPOINT_BEFORE_COPY_WAL`] since its last one, so the
    /// copy's first start replays little WAL (see
    /// `offshoot_compute::checkpoint`). A stopped branch needs none (its
    /// shutdown checkpointed). Failing, the copy goes ahead as a crash
    /// image, which is correct, only slower to start.
    pub async fn checkpoint_before_copy(&self, id: BranchId, name: &str) {
        let outcome = self
            .supervisor
            .checkpoint_if_behind(
                &id,
                CHECKPOINT_BEFORE_COPY_WAL,
                CHECKPOINT_BEFORE_COPY_TIMEOUT,
            )
            .await;
        match outcome {
            Ok(Some(
                done @ offshoot_compute::CheckpointOutcome {
                    took: Some(took), ..
                },
            )) => {
                tracing::info!(
                    branch = name,
                    wal_since_checkpoint = done.wal_since_checkpoint,
                    took_ms = took.as_millis() as u64,
                    "checkpointed before copying the branch"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(branch = name, error = %e, "no checkpoint before copying the branch; the copy recovers from the last one");
            }
        }
    }

    /// Runs `f` with the branch stopped and unmounted, under its lock.
    /// Returns whether a compute was running before.
    pub async fn while_stopped<T, Fut>(&self, id: BranchId, f: impl FnOnce() -> Fut) -> (bool, T)
    where
        Fut: std::future::Future<Output = T>,
    {
        let slot = self.slot(id);
        let _locked = slot.lock.lock().await;
        let was_running = self.stop_locked(id).await;
        (was_running, f().await)
    }

    /// Starts the branch's compute in the background (after a reset stopped
    /// it), on a fresh mount. The caller does not wait for it.
    pub fn start_detached(self: &Arc<Self>, id: BranchId, name: String) {
        let runtime = self.clone();
        tokio::spawn(async move {
            if runtime.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            let slot = runtime.slot(id);
            let _locked = slot.lock.lock().await;
            if let Err(e) = runtime.ensure_running(id, &name).await {
                tracing::warn!(branch = %name, error = %e, "restarting compute");
                runtime.unmount_failed(id).await;
            }
        });
    }

    /// Forgets a deleted branch (after [`Runtime::while_stopped`] stopped it).
    pub fn forget(&self, id: BranchId) {
        self.slots.lock().remove(&id);
        self.supervisor.forget(&id);
    }

    /// Stops computes that have had no connection for `idle_timeout` (by
    /// the supervisor's activity record and the lease count), then unmounts
    /// them; also unmounts branches whose compute failed for good. Returns
    /// how many computes it stopped.
    pub async fn reap_idle(&self, idle_timeout: Duration) -> usize {
        let mut stopped = 0;
        for id in self.supervisor.idle(idle_timeout) {
            let Some(slot) = self.slots.lock().get(&id).cloned() else {
                continue;
            };
            // A busy slot is being woken, reset or deleted: leave it for now.
            let Ok(_locked) = slot.lock.try_lock() else {
                continue;
            };
            let used_lately = self
                .supervisor
                .last_activity(&id)
                .is_some_and(|t| t.elapsed() < idle_timeout);
            if slot.active() != 0 || used_lately {
                continue;
            }
            if self.stop_locked(id).await {
                tracing::info!(id = id.0, idle = ?idle_timeout, "stopped idle compute");
                stopped += 1;
            }
        }
        for id in self.mounts.ids() {
            let Some(slot) = self.slots.lock().get(&id).cloned() else {
                continue;
            };
            let Ok(_locked) = slot.lock.try_lock() else {
                continue;
            };
            self.unmount_failed(id).await;
        }
        stopped
    }

    /// Refuses new wakes, stops every compute (in parallel), then unmounts
    /// every branch.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        if let Err(e) = self.supervisor.shutdown().await {
            tracing::warn!(error = %e, "stopping computes");
        }
        self.mounts.remove_all().await;
    }
}

/// Milliseconds with a fraction, for log fields.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
