//! The FUSE mounts of the branches whose PostgreSQL runs (or is starting),
//! by branch id, and the running totals of their counters for `/metrics`.
//!
//! Mounting and unmounting block (FUSE session setup, joining the serving
//! threads) and run on the blocking pool. Callers serialise the mount and
//! unmount of one branch (see `runtime.rs`); this module only keeps the map.
//! A mount's counters start at zero, so when one goes away its final counts
//! are added to `retired`: the totals never go backwards.

use std::collections::HashMap;
use std::path::PathBuf;

use offshoot_pagefs::{Mount, MountMetrics, MountOptions, QueuePriority};
use offshoot_storage::{Branch, BranchId};
use parking_lot::Mutex;

/// Live mounts by branch.
pub struct Mounts {
    allow_other: bool,
    live: Mutex<HashMap<BranchId, Mount>>,
    /// Counters of mounts that are gone.
    retired: Mutex<MountMetrics>,
}

impl Mounts {
    pub fn new() -> Mounts {
        Mounts {
            allow_other: nix::unistd::geteuid().is_root(),
            live: Mutex::new(HashMap::new()),
            retired: Mutex::new(MountMetrics::default()),
        }
    }

    pub fn is_mounted(&self, id: BranchId) -> bool {
        self.live.lock().contains_key(&id)
    }

    /// Branches with a live mount.
    pub fn ids(&self) -> Vec<BranchId> {
        self.live.lock().keys().copied().collect()
    }

    /// Mounts `branch` (named `name`) at `mountpoint` unless it is mounted.
    pub async fn ensure(
        &self,
        id: BranchId,
        name: &str,
        branch: impl FnOnce() -> Result<Branch, String>,
        mountpoint: PathBuf,
    ) -> Result<(), String> {
        if self.is_mounted(id) {
            return Ok(());
        }
        let mount = mount_branch(branch()?, name, mountpoint, self.allow_other).await?;
        let replaced = self.live.lock().insert(id, mount);
        if let Some(old) = replaced {
            // Callers serialise per branch, so this is a bug, not a race to hide.
            tracing::error!(
                id = id.0,
                "a branch was mounted twice; unmounting the older mount"
            );
            self.retire(old).await;
        }
        Ok(())
    }

    /// Unmounts the branch if it is mounted.
    pub async fn remove(&self, id: BranchId) {
        let mount = self.live.lock().remove(&id);
        if let Some(mount) = mount {
            self.retire(mount).await;
        }
    }

    /// Unmounts every branch.
    pub async fn remove_all(&self) {
        let all: Vec<Mount> = self.live.lock().drain().map(|(_, m)| m).collect();
        for mount in all {
            self.retire(mount).await;
        }
    }

    async fn retire(&self, mount: Mount) {
        let last = mount.metrics();
        add(&mut self.retired.lock(), &last);
        unmount(mount).await;
    }

    /// Counters of every mount since the daemon started, live or gone.
    pub fn totals(&self) -> MountMetrics {
        let mut sum = *self.retired.lock();
        for mount in self.live.lock().values() {
            add(&mut sum, &mount.metrics());
        }
        sum
    }
}

fn add(sum: &mut MountMetrics, m: &MountMetrics) {
    sum.reads += m.reads;
    sum.read_bytes += m.read_bytes;
    sum.writes += m.writes;
    sum.write_bytes += m.write_bytes;
    sum.setattrs += m.setattrs;
    sum.fsyncs += m.fsyncs;
    sum.fsync_time += m.fsync_time;
    sum.sync_writes += m.sync_writes;
    sum.sync_write_time += m.sync_write_time;
    sum.errors += m.errors;
}

/// `OFFSHOOT_FUSE_TRANSPORT=dev-fuse` in the daemon's environment keeps its
/// mounts on `/dev/fuse` even when the kernel offers FUSE over io_uring
/// (docs/pagefs.md, "Transport").
pub const TRANSPORT_VAR: &str = "OFFSHOOT_FUSE_TRANSPORT";

/// `OFFSHOOT_FUSE_QUEUE_PRIORITY=normal` in the daemon's environment keeps
/// its mounts' io_uring queue threads at normal priority instead of
/// real-time (docs/pagefs.md, "Transport").
pub const QUEUE_PRIORITY_VAR: &str = "OFFSHOOT_FUSE_QUEUE_PRIORITY";

/// Mounts `branch` at `mountpoint` (creating the directory) on the blocking
/// pool; `/proc/mounts` shows it as `offshoot:<name>`.
pub async fn mount_branch(
    branch: Branch,
    name: &str,
    mountpoint: PathBuf,
    allow_other: bool,
) -> Result<Mount, String> {
    std::fs::create_dir_all(&mountpoint)
        .map_err(|e| format!("create {}: {e}", mountpoint.display()))?;
    let opts = MountOptions {
        allow_other,
        fs_name: format!("offshoot:{name}"),
        classic: std::env::var_os(TRANSPORT_VAR).is_some_and(|v| v == "dev-fuse"),
        queue_priority: QueuePriority::from_env(QUEUE_PRIORITY_VAR),
    };
    tokio::task::spawn_blocking(move || offshoot_pagefs::mount(branch, &mountpoint, opts))
        .await
        .map_err(|e| format!("mount task: {e}"))?
        .map_err(|e| e.to_string())
}

/// Unmounts on the blocking pool, logging (not failing on) errors.
pub async fn unmount(mount: Mount) {
    let path: PathBuf = mount.mountpoint().to_path_buf();
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || mount.unmount()).await {
        Ok(Ok(())) => {
            tracing::debug!(mountpoint = %path.display(), took = ?started.elapsed(), "unmounted")
        }
        Ok(Err(e)) => tracing::warn!(mountpoint = %path.display(), error = %e, "unmount"),
        Err(e) => tracing::warn!(mountpoint = %path.display(), error = %e, "unmount task"),
    }
}
