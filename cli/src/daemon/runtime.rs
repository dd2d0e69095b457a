//! What runs for each branch: its FUSE mount and its PostgreSQL.
//!
//! A branch is mounted only while its compute runs: [`Runtime::wake`] mounts
//! it (if needed) and starts PostgreSQL, [`Runtime::stop`] stops PostgreSQL
//! and then unmounts. So an idle branch costs nothing but metadata.
//!
//! Every such transition of one branch happens under that branch's
//! [`Slot`] lock (an async mutex), which gives three guarantees: concurrent
//! first connections start one compute; the idle reaper never stops a
//! compute that a connection is being routed to (the active count changes
//! under the same lock); and reset/delete see no compute start behind their
//! back. Slots are keyed by [`BranchId`], which survives rename and reset;
//! the mount point (`mnt/<id>`) and socket directory (`run/<id>`) are by id
//! too, so a rename leaves a running compute alone.
//!
//! Mounting and unmounting block (FUSE session setup, joining the serving
//! threads) and run on the blocking pool. The daemon itself never reads or
//! writes inside a mount: changes it makes to a branch's files (removing
//! `postmaster.pid`) go through the store.

mod lease;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offshoot_compute::ComputeSpec;
use offshoot_pagefs::{Mount, MountOptions};
use offshoot_storage::{BranchId, Store};
use parking_lot::Mutex;

pub use lease::Lease;

use super::computes::Computes;
use crate::api::types::ComputeState;
use crate::home::Home;

/// Why a branch could not be woken.
#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    #[error("mount branch {name:?}: {reason}")]
    Mount { name: String, reason: String },
    #[error("start PostgreSQL on branch {name:?}: {reason}")]
    Start { name: String, reason: String },
    #[error("PostgreSQL on branch {name:?} did not become ready within {timeout:?}")]
    Timeout { name: String, timeout: Duration },
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// One branch's runtime state.
pub struct Slot {
    id: BranchId,
    op: tokio::sync::Mutex<SlotInner>,
    /// Connections holding a lease on this branch.
    active: AtomicUsize,
    /// When the last lease was dropped (or the compute started).
    last_activity: Mutex<Instant>,
    /// A copy of the state readable without the async lock.
    state: Mutex<ComputeState>,
}

struct SlotInner {
    mount: Option<Mount>,
    socket: Option<PathBuf>,
}

impl Slot {
    fn new(id: BranchId) -> Slot {
        Slot {
            id,
            op: tokio::sync::Mutex::new(SlotInner {
                mount: None,
                socket: None,
            }),
            active: AtomicUsize::new(0),
            last_activity: Mutex::new(Instant::now()),
            state: Mutex::new(ComputeState::Stopped),
        }
    }

    fn set_state(&self, state: ComputeState) {
        *self.state.lock() = state;
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// Everything needed to mount branches and run PostgreSQL on them.
pub struct Runtime {
    home: Home,
    store: Store,
    supervisor: Computes,
    allow_other: bool,
    wake_timeout: Duration,
    slots: Mutex<HashMap<BranchId, Arc<Slot>>>,
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Runtime {
    pub fn new(home: Home, store: Store, supervisor: Computes, wake_timeout: Duration) -> Runtime {
        let allow_other = nix::unistd::geteuid().is_root();
        Runtime {
            home,
            store,
            supervisor,
            allow_other,
            wake_timeout,
            slots: Mutex::new(HashMap::new()),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn slot(&self, id: BranchId) -> Arc<Slot> {
        self.slots
            .lock()
            .entry(id)
            .or_insert_with(|| Arc::new(Slot::new(id)))
            .clone()
    }

    /// The compute state of a branch as the API shows it.
    pub fn state(&self, id: BranchId) -> ComputeState {
        let ours = self
            .slots
            .lock()
            .get(&id)
            .map_or(ComputeState::Stopped, |s| *s.state.lock());
        if ours != ComputeState::Running {
            return ours;
        }
        // Running as far as we know: the supervisor knows about crashes.
        match self.supervisor.state(id) {
            offshoot_compute::ComputeState::Running => ComputeState::Running,
            offshoot_compute::ComputeState::Starting => ComputeState::Starting,
            offshoot_compute::ComputeState::Failed => ComputeState::Failed,
            offshoot_compute::ComputeState::Stopped => ComputeState::Stopped,
        }
    }

    /// Branches whose PostgreSQL is running.
    pub fn running_count(&self) -> usize {
        self.slots
            .lock()
            .values()
            .filter(|s| *s.state.lock() == ComputeState::Running)
            .count()
    }

    /// Mounts the branch and starts its PostgreSQL unless already running,
    /// then takes a lease on it. `check` runs under the branch's lock, before
    /// anything is started: it re-checks that the branch still exists (a
    /// delete may have run while this call waited for the lock).
    pub async fn wake(
        &self,
        id: BranchId,
        name: &str,
        check: impl FnOnce() -> bool,
    ) -> Result<Option<Lease>, WakeError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(WakeError::ShuttingDown);
        }
        let slot = self.slot(id);
        let mut inner = slot.op.lock().await;
        if !check() {
            return Ok(None);
        }
        // Always asked: answers at once when running, restarts a compute
        // that crashed too often (failed).
        if inner.socket.is_none() {
            slot.set_state(ComputeState::Starting);
        }
        if let Err(e) = self.start(&slot, &mut inner, name).await {
            self.stop_locked(&slot, &mut inner).await;
            slot.set_state(ComputeState::Failed);
            return Err(e);
        }
        slot.set_state(ComputeState::Running);
        let socket = inner.socket.clone().ok_or(WakeError::ShuttingDown)?;
        Ok(Some(Lease::new(slot.clone(), socket)))
    }

    async fn start(&self, slot: &Slot, inner: &mut SlotInner, name: &str) -> Result<(), WakeError> {
        if inner.mount.is_none() {
            inner.mount = Some(self.mount(slot.id, name).await?);
        }
        let spec = ComputeSpec {
            name: name.to_string(),
            datadir: self.home.mountpoint(slot.id),
            socket_dir: self.home.socket_dir(slot.id),
            hba_file: self.home.hba_file(),
            log_file: self.home.log_file(slot.id),
            settings: Vec::new(),
        };
        let started = Instant::now();
        let was_running = inner.socket.is_some();
        let socket = tokio::time::timeout(
            self.wake_timeout,
            self.supervisor.ensure_running(slot.id, spec),
        )
        .await
        .map_err(|_| WakeError::Timeout {
            name: name.to_string(),
            timeout: self.wake_timeout,
        })?
        .map_err(|e| WakeError::Start {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        if !was_running {
            tracing::info!(
                branch = name,
                id = slot.id.0,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "compute started"
            );
            *slot.last_activity.lock() = Instant::now();
        }
        inner.socket = Some(socket);
        Ok(())
    }

    /// Mounts the branch at `mnt/<id>` (creating the directory).
    pub async fn mount(&self, id: BranchId, name: &str) -> Result<Mount, WakeError> {
        let err = |reason: String| WakeError::Mount {
            name: name.to_string(),
            reason,
        };
        let branch = self.store.branch(name).map_err(|e| err(e.to_string()))?;
        let mountpoint = self.home.mountpoint(id);
        std::fs::create_dir_all(&mountpoint)
            .map_err(|e| err(format!("create {}: {e}", mountpoint.display())))?;
        let opts = MountOptions {
            allow_other: self.allow_other,
            fs_name: format!("offshoot:{name}"),
        };
        tokio::task::spawn_blocking(move || offshoot_pagefs::mount(branch, &mountpoint, opts))
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(e.to_string()))
    }

    /// Stops the branch's PostgreSQL (if running) and unmounts it. Returns
    /// whether a compute was running.
    pub async fn stop(&self, id: BranchId) -> bool {
        let slot = self.slot(id);
        let mut inner = slot.op.lock().await;
        self.stop_locked(&slot, &mut inner).await
    }

    async fn stop_locked(&self, slot: &Slot, inner: &mut SlotInner) -> bool {
        let was_running = inner.socket.take().is_some();
        if was_running || *slot.state.lock() != ComputeState::Stopped {
            if let Err(e) = self.supervisor.stop(slot.id).await {
                tracing::warn!(id = slot.id.0, error = %e, "stopping compute");
            }
        }
        if let Some(mount) = inner.mount.take() {
            unmount(mount).await;
        }
        slot.set_state(ComputeState::Stopped);
        was_running
    }

    /// Runs `f` with the branch stopped and unmounted, under its lock.
    /// Returns whether a compute was running before.
    pub async fn while_stopped<T>(&self, id: BranchId, f: impl FnOnce() -> T) -> (bool, T) {
        let slot = self.slot(id);
        let mut inner = slot.op.lock().await;
        let was_running = self.stop_locked(&slot, &mut inner).await;
        (was_running, f())
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
            let mut inner = slot.op.lock().await;
            if inner.socket.is_some() {
                return;
            }
            slot.set_state(ComputeState::Starting);
            match runtime.start(&slot, &mut inner, &name).await {
                Ok(()) => slot.set_state(ComputeState::Running),
                Err(e) => {
                    tracing::warn!(branch = %name, error = %e, "restarting compute");
                    runtime.stop_locked(&slot, &mut inner).await;
                    slot.set_state(ComputeState::Failed);
                }
            }
        });
    }

    /// Forgets a branch's slot (after delete).
    pub fn forget(&self, id: BranchId) {
        self.slots.lock().remove(&id);
    }

    /// Stops computes that have had no connection for `idle_timeout`, then
    /// unmounts them. Returns how many it stopped.
    pub async fn reap_idle(&self, idle_timeout: Duration) -> usize {
        let candidates: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .values()
            .filter(|s| {
                *s.state.lock() != ComputeState::Stopped
                    && s.active() == 0
                    && s.last_activity.lock().elapsed() >= idle_timeout
            })
            .cloned()
            .collect();
        let mut stopped = 0;
        for slot in candidates {
            // A busy slot is being woken, reset or deleted: leave it for now.
            let Ok(mut inner) = slot.op.try_lock() else {
                continue;
            };
            if slot.active() != 0 || slot.last_activity.lock().elapsed() < idle_timeout {
                continue;
            }
            if self.stop_locked(&slot, &mut inner).await {
                tracing::info!(id = slot.id.0, idle = ?idle_timeout, "stopped idle compute");
                stopped += 1;
            }
        }
        stopped
    }

    /// Refuses new wakes, stops every compute and unmounts every branch.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let slots: Vec<Arc<Slot>> = self.slots.lock().values().cloned().collect();
        for slot in slots {
            let mut inner = slot.op.lock().await;
            self.stop_locked(&slot, &mut inner).await;
        }
        self.supervisor.shutdown().await;
    }
}

/// Unmounts on the blocking pool, logging (not failing on) errors.
pub async fn unmount(mount: Mount) {
    let path = mount.mountpoint().to_path_buf();
    match tokio::task::spawn_blocking(move || mount.unmount()).await {
        Ok(Ok(())) => tracing::debug!(mountpoint = %path.display(), "unmounted"),
        Ok(Err(e)) => tracing::warn!(mountpoint = %path.display(), error = %e, "unmount"),
        Err(e) => tracing::warn!(mountpoint = %path.display(), error = %e, "unmount task"),
    }
}
