//! The branches' WAL directories beside the page store (docs/compute.md,
//! "The WAL beside the page store"): the bind mount that lets PostgreSQL
//! reach them when the home is private, and what a branch's create, reset,
//! delete and compute start do with its directory. What a WAL directory
//! holds and how a child's is made from its parent's is
//! `offshoot_compute::wal_dir`.
//!
//! A branch has a WAL directory (`<home>/wal/<id>`) when its cluster was
//! made with one; a home initialised before there were any keeps its WAL in
//! the page store, and so do its branches.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context as _;
use nix::mount::{MntFlags, MsFlags};
use offshoot_compute::wal_dir::{self, LINK_NAME};
use offshoot_compute::{RunAs, WalSnapshot};
use offshoot_storage::{Branch, BranchId, FileId, FileKind, StoreError};

use crate::home::Home;

/// Makes the home's `wal/` reachable where PostgreSQL looks for it: when the
/// runtime root is not the home, a bind mount of it there (made once; a
/// daemon that died leaves it in place, and it is reused).
pub fn expose(home: &Home) -> anyhow::Result<()> {
    let (source, target) = (home.wal_root(), home.wal_root_for_postgres());
    if same_dir(&source, &target)? {
        return Ok(());
    }
    nix::mount::mount(
        Some(&source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind {} onto {}", source.display(), target.display()))?;
    tracing::info!(source = %source.display(), target = %target.display(), "WAL directories bound for PostgreSQL");
    Ok(())
}

/// Takes the bind mount of [`expose`] away (at shutdown, after every
/// compute stopped).
pub fn unexpose(home: &Home) {
    let target = home.wal_root_for_postgres();
    if home.wal_root() == target {
        return;
    }
    if let Err(e) = nix::mount::umount2(&target, MntFlags::MNT_DETACH) {
        tracing::warn!(path = %target.display(), error = %e, "unmounting the WAL directories");
    }
}

fn same_dir(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let stat = |p: &Path| std::fs::metadata(p).with_context(|| format!("stat {}", p.display()));
    let (a, b) = (stat(a)?, stat(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// True when the branch keeps its WAL beside the page store.
pub fn has_wal_dir(home: &Home, id: BranchId) -> bool {
    home.wal_dir(id).is_dir()
}

/// Starts a child's WAL directory from `parent`'s, before the page store's
/// create or reset (whose child id is not known yet); `None` when the parent
/// keeps its WAL in the store. Branch operations run one at a time, so one
/// staging directory per parent is enough.
pub fn begin_copy(
    home: &Home,
    parent: BranchId,
    run_as: &RunAs,
) -> anyhow::Result<Option<WalSnapshot>> {
    if !has_wal_dir(home, parent) {
        return Ok(None);
    }
    let staging = home.wal_root().join(format!("new-from-{}", parent.0));
    WalSnapshot::begin(&home.wal_dir(parent), &staging, run_as)
        .map(Some)
        .context("share the parent's WAL")
}

/// Completes what [`begin_copy`] started, after the page store's create.
pub fn finish_copy(home: &Home, snapshot: WalSnapshot, child: BranchId) -> anyhow::Result<()> {
    let cut = snapshot
        .finish(&home.wal_dir(child))
        .context("cut the parent's WAL")?;
    tracing::debug!(child = child.0, ?cut, "WAL directory made");
    Ok(())
}

/// Removes a branch's WAL directory.
pub fn remove(home: &Home, id: BranchId) {
    let path = home.wal_dir(id);
    match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "removing a WAL directory");
        }
        _ => {}
    }
}

/// Removes WAL directories of branches that no longer exist, and staging
/// directories of creates a crash cut short (at daemon start).
pub fn remove_orphans(home: &Home, live: &[BranchId]) {
    let Ok(entries) = std::fs::read_dir(home.wal_root()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let id = name.to_str().and_then(|n| n.parse::<u64>().ok());
        if id.is_some_and(|id| live.iter().any(|b| b.0 == id)) {
            continue;
        }
        tracing::info!(path = %entry.path().display(), "removing a WAL directory no branch uses");
        if let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "removing a WAL directory");
        }
    }
}

/// Before a branch's mount and compute start: completes a WAL directory
/// made at create, and points the branch's `pg_wal` at it. Returns the
/// settings the compute runs with (none for a branch without one).
pub fn prepare_start(
    home: &Home,
    branch: &Branch,
    id: BranchId,
    run_as: &RunAs,
    mounted: bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let name = OsStr::new(LINK_NAME);
    if !has_wal_dir(home, id) {
        let link = branch.lookup(FileId::ROOT, name);
        anyhow::ensure!(
            !matches!(link, Ok(attr) if attr.kind == FileKind::Symlink),
            "the branch's WAL directory {} is missing (its create or reset was cut short); \
             delete the branch and create it again",
            home.wal_dir(id).display()
        );
        return Ok(Vec::new());
    }
    if wal_dir::complete_pending(&home.wal_dir(id), run_as).context("complete the WAL directory")? {
        tracing::info!(branch = id.0, "WAL directory completed for its first start");
    }
    let target = home.wal_link_target(id);
    let current = match branch.lookup(FileId::ROOT, name) {
        Ok(attr) if attr.kind == FileKind::Symlink => Some(branch.readlink(attr.id)?),
        Ok(_) => anyhow::bail!(
            "the branch has a WAL directory {} but its {LINK_NAME} is not a link",
            home.wal_dir(id).display()
        ),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    if current.as_deref() != Some(target.as_path()) {
        // Only before the first mount: the kernel caches the link.
        anyhow::ensure!(
            !mounted,
            "{LINK_NAME} of a mounted branch points at {current:?}, not {}",
            target.display()
        );
        if current.is_some() {
            let old = branch.unlink(FileId::ROOT, name)?;
            branch.release_orphan(old)?;
        }
        branch.symlink(FileId::ROOT, name, &target, run_as.uid, run_as.gid)?;
        branch.sync()?;
    }
    Ok(wal_dir::settings())
}
