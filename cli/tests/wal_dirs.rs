//! The branches' WAL directories as the daemon keeps them on a private home
//! (in a 0700 directory, so its runtime root is under `/run/offshoot/`):
//! PostgreSQL reaches them through a bind mount (one a killed daemon left is
//! reused, not stacked; shutdown takes it down), directories no branch owns
//! are removed at start, and a branch whose WAL directory is missing is
//! refused (the daemon's log says why) instead of running on its parent's
//! WAL.
//!
//! Starts real PostgreSQL on real FUSE mounts (hence `pg_`). Needs root, as
//! the daemon does to run PostgreSQL as another user.

#[path = "daemon_api/http.rs"]
mod http;
#[path = "daemon_api/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::mount::MsFlags;
use offshoot::daemon::Daemon;
use offshoot::home::Home;
use offshoot_storage::BranchId;
use support::{api, exec, options, uri_of, MountGuard};

/// Takes a bind mount a failed test left away.
struct BindGuard(std::path::PathBuf);

impl Drop for BindGuard {
    fn drop(&mut self) {
        while mounts_on(&self.0) > 0 {
            if nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    }
}

/// How many mounts sit exactly on `dir`.
fn mounts_on(dir: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/mounts").unwrap();
    let dir = dir.display().to_string();
    table
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(dir.as_str()))
        .count()
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 24)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_a_private_home_keeps_each_branchs_wal_beside_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let home_dir = tmp.path().join("home");
    let home = Home::at(&home_dir);
    let runtime = home.runtime_root().to_path_buf();
    assert_ne!(runtime, home_dir, "a private home runs elsewhere");
    let _guard = MountGuard(runtime.join("mnt"));
    let bound = home.wal_root_for_postgres();
    let _bind_guard = BindGuard(bound.clone());

    // What a killed daemon leaves: its bind mount, a directory of a branch
    // that is gone, a create's staging directory.
    home.create_layout().unwrap();
    nix::mount::mount(
        Some(&home.wal_root()),
        &bound,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount");
    for stale in ["999", "new-from-1"] {
        std::fs::create_dir(home.wal_root().join(stale)).unwrap();
    }

    let daemon = Daemon::start(options(&home_dir)).await.expect("start");
    assert_eq!(mounts_on(&bound), 1, "the bind mount left behind is reused");
    for stale in ["999", "new-from-1"] {
        assert!(!home.wal_root().join(stale).exists(), "{stale} was kept");
    }
    let api = api(&daemon, &home_dir);

    let r = api.post("/v1/branches", r#"{"name":"b"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = BranchId(r.json()["branch"]["id"].as_u64().unwrap());
    let b = uri_of(&api, "b");
    exec(&b, "CREATE TABLE t AS SELECT 1 AS v; CHECKPOINT").await;
    assert!(segments(&home.wal_dir(id)) > 0, "b has no WAL of its own");

    let r = api.post("/v1/branches", r#"{"name":"broken"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let broken = BranchId(r.json()["branch"]["id"].as_u64().unwrap());
    std::fs::remove_dir_all(home.wal_dir(broken)).unwrap();
    let uri = uri_of(&api, "broken");
    let err = match tokio_postgres::connect(&uri, tokio_postgres::NoTls).await {
        Ok(_) => panic!("a branch without its WAL directory started"),
        Err(e) => format!("{e:?}"),
    };
    assert!(err.contains("could not be started"), "told: {err}");
    let shown = api.get(&offshoot::api::types::branch_path("broken"));
    assert_eq!(shown.json()["state"], "failed", "{}", shown.body);

    daemon.shutdown().await;
    assert_eq!(mounts_on(&bound), 0, "the bind mount outlived the daemon");
    let _ = std::fs::remove_dir_all(&runtime);
}
