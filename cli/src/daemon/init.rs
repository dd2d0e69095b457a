//! First use of a home: the root branch `main` with a fresh PostgreSQL
//! cluster in it.
//!
//! Steps: create `main` in the store; make its root directory owned by the
//! PostgreSQL user with mode 0700 (PostgreSQL checks both); mount it; run
//! initdb into the mount (as the PostgreSQL user, with SCRAM and the
//! passwords from `secrets/`, its WAL in `wal/<id>` beside the store);
//! unmount; sync; protect `main`; and only then write the `initialised`
//! marker. A first use that died half-way leaves no
//! marker, so the next start drops the half-made `main` and starts over.

use anyhow::Context as _;
use offshoot_compute::{PgBinaries, RunAs, Secrets};
use offshoot_storage::{FileId, SetAttr, Store};

use super::control::view;
use super::runtime::{mount_branch, unmount};
use crate::home::Home;

/// The root branch every other branch descends from.
pub const ROOT_BRANCH: &str = "main";

/// Creates and fills `main` unless the home is already initialised.
pub async fn initialise(
    home: &Home,
    store: &Store,
    bins: &PgBinaries,
    run_as: &RunAs,
    secrets: &Secrets,
) -> anyhow::Result<()> {
    if home.is_initialised() {
        return Ok(());
    }
    tracing::info!(home = %home.root().display(), "first use: creating branch main with initdb");
    let started = std::time::Instant::now();
    if store.branch_info(ROOT_BRANCH).is_ok() {
        tracing::warn!("dropping a half-initialised main left by an earlier first use");
        store
            .drop_branch(ROOT_BRANCH)
            .context("drop half-initialised main")?;
    }
    let info = store
        .create_branch(ROOT_BRANCH, None)
        .context("create branch main")?;
    let branch = store.branch(ROOT_BRANCH).context("open branch main")?;
    branch
        .setattr(
            FileId::ROOT,
            SetAttr {
                uid: Some(run_as.uid),
                gid: Some(run_as.gid),
                mode: Some(0o700),
                ..SetAttr::default()
            },
        )
        .context("set the owner of main's root directory")?;
    branch.sync().context("sync main")?;

    // The WAL goes beside the page store (docs/compute.md).
    super::wal::remove(home, info.id);
    let waldir = home.wal_link_target(info.id);
    let mountpoint = home.mountpoint(info.id);
    let allow_other = nix::unistd::geteuid().is_root();
    let mount = mount_branch(branch, ROOT_BRANCH, mountpoint.clone(), allow_other)
        .await
        .map_err(|e| anyhow::anyhow!("mount main: {e}"))?;
    let result = offshoot_compute::initdb(
        bins,
        run_as,
        &mountpoint,
        Some(&waldir),
        secrets,
        &home.work_dir(),
    )
    .await;
    unmount(mount).await;
    result.context("initdb into main")?;

    store
        .branch(ROOT_BRANCH)
        .and_then(|b| b.sync())
        .context("sync main")?;
    store
        .set_annotation(ROOT_BRANCH, view::PROTECTED, Some("true"))
        .context("protect main")?;
    home.mark_initialised()?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "branch main initialised"
    );
    Ok(())
}
