//! Unmodified PostgreSQL 15 on pagefs mounts of a real page store: initdb,
//! pgbench, a clean restart from a reopened store, and a branch taken while
//! the parent is under load. Needs root and PostgreSQL 15.

#[path = "support/postgres.rs"]
mod postgres;

use std::path::{Path, PathBuf};
use std::time::Duration;

use offshoot_pagefs::{mount, Mount, MountOptions};
use offshoot_storage::{FileId, SetAttr, Store, StoreOptions};
use postgres::{
    check_pgbench_invariant, error_lines, initdb, make_traversable, pg_owned_dir, Postgres, PG_GID,
    PG_UID,
};

struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let root = tempfile::tempdir().expect("tempdir");
        make_traversable(root.path());
        Dirs { root }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
    fn mountpoint(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).expect("mkdir mountpoint");
        p
    }
    fn socket_dir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        pg_owned_dir(&p, 0o700);
        p
    }
}

fn open_store(dir: &Path) -> Store {
    std::fs::create_dir_all(dir).expect("mkdir store");
    Store::open(dir, StoreOptions::default()).expect("open store")
}

fn mount_branch(store: &Store, name: &str, at: &Path) -> Mount {
    let branch = store.branch(name).expect("branch");
    mount(
        branch,
        at,
        MountOptions {
            allow_other: true,
            fs_name: format!("offshoot:{name}"),
            classic: false,
            ..Default::default()
        },
    )
    .expect("mount")
}

/// A root branch whose root directory belongs to postgres, mode 0700, as
/// the daemon prepares it for initdb.
fn store_with_main(dir: &Path) -> Store {
    let store = open_store(dir);
    store.create_branch("main", None).expect("create main");
    let main = store.branch("main").expect("main");
    main.setattr(
        FileId::ROOT,
        SetAttr {
            uid: Some(PG_UID),
            gid: Some(PG_GID),
            mode: Some(0o700),
            ..SetAttr::default()
        },
    )
    .expect("chown root");
    store
}

fn assert_clean_log(pg: &Postgres) {
    let log = pg.log_text();
    let errors = error_lines(&log);
    assert!(
        errors.is_empty(),
        "errors in the PostgreSQL log:\n{}",
        errors.join("\n")
    );
}

#[test]
fn fuse_postgres_initdb_pgbench_and_restart() {
    let dirs = Dirs::new();
    let store_dir = dirs.path("store");
    let mnt = dirs.mountpoint("mnt");
    let sock = dirs.socket_dir("sock");
    let log = dirs.path("pg.log");

    let (accounts, sums) = {
        let store = store_with_main(&store_dir);
        let m = mount_branch(&store, "main", &mnt);
        initdb(&mnt);
        let pg = Postgres::start(&mnt, &sock, &log);
        pg.pgbench(&["-i", "-s", "2", "-q"]);
        let out = pg.pgbench(&["-c", "4", "-j", "2", "-T", "10"]);
        assert!(out.contains("tps = "), "pgbench output: {out}");
        let accounts = check_pgbench_invariant(&pg);
        assert_eq!(accounts, 200_000);
        let sums = pg.psql("select sum(delta), count(*), (select sum(abalance) from pgbench_accounts) from pgbench_history");
        assert_clean_log(&pg);
        pg.stop();
        m.unmount().expect("unmount");
        (accounts, sums)
    };

    // Reopen the store from disk, mount again, start again.
    let store = open_store(&store_dir);
    let m = mount_branch(&store, "main", &mnt);
    let pg = Postgres::start(&mnt, &sock, &log);
    assert_eq!(check_pgbench_invariant(&pg), accounts);
    assert_eq!(
        pg.psql("select sum(delta), count(*), (select sum(abalance) from pgbench_accounts) from pgbench_history"),
        sums,
        "contents changed across a clean restart"
    );
    assert_clean_log(&pg);
    pg.stop();
    m.unmount().expect("unmount");
}

#[test]
fn fuse_postgres_branch_under_load_recovers_and_stays_apart() {
    let dirs = Dirs::new();
    let store = store_with_main(&dirs.path("store"));
    let parent_mnt = dirs.mountpoint("main");
    let child_mnt = dirs.mountpoint("child");
    let parent_sock = dirs.socket_dir("sock-main");
    let child_sock = dirs.socket_dir("sock-child");

    let parent_mount = mount_branch(&store, "main", &parent_mnt);
    initdb(&parent_mnt);
    let parent = Postgres::start(&parent_mnt, &parent_sock, &dirs.path("main.log"));
    parent.pgbench(&["-i", "-s", "2", "-q"]);

    // Branch in the middle of a pgbench run.
    let child_mount = std::thread::scope(|s| {
        let load = s.spawn(|| parent.pgbench(&["-c", "4", "-j", "2", "-T", "8"]));
        std::thread::sleep(Duration::from_secs(4));
        store
            .create_branch("child", Some("main"))
            .expect("fork under load");
        let out = load.join().expect("pgbench thread");
        assert!(out.contains("tps = "), "pgbench output: {out}");
        // The child's view drops the parent's runtime files before start.
        let child = store.branch("child").expect("child");
        for name in ["postmaster.pid", "postmaster.opts"] {
            child
                .unlink(FileId::ROOT, name.as_ref())
                .unwrap_or_else(|e| panic!("unlink {name} in child: {e}"));
        }
        mount_branch(&store, "child", &child_mnt)
    });

    let child = Postgres::start(&child_mnt, &child_sock, &dirs.path("child.log"));
    assert!(
        child.log_text().contains("database system was interrupted")
            || child.log_text().contains("not properly shut down"),
        "child should start with crash recovery:\n{}",
        child.log_text()
    );
    assert_eq!(check_pgbench_invariant(&child), 200_000);
    assert_eq!(check_pgbench_invariant(&parent), 200_000);

    // Writes on one are invisible on the other.
    child.psql("create table only_in_child(x int); insert into only_in_child values (1)");
    parent.psql("create table only_in_parent(x int); update pgbench_branches set bbalance = bbalance + 1000 where bid = 1");
    let exists = |pg: &Postgres, table: &str| {
        pg.psql(&format!(
            "select count(*) from pg_class where relname = '{table}'"
        ))
    };
    assert_eq!(exists(&child, "only_in_child"), "1");
    assert_eq!(exists(&parent, "only_in_child"), "0");
    assert_eq!(exists(&parent, "only_in_parent"), "1");
    assert_eq!(exists(&child, "only_in_parent"), "0");
    let bbalance = |pg: &Postgres| pg.psql("select bbalance from pgbench_branches where bid = 1");
    assert_ne!(bbalance(&parent), bbalance(&child));
    parent.psql("checkpoint");
    child.psql("checkpoint");
    assert_eq!(exists(&child, "only_in_parent"), "0");

    assert_clean_log(&parent);
    assert_clean_log(&child);
    child.stop();
    parent.stop();
    child_mount.unmount().expect("unmount child");
    parent_mount.unmount().expect("unmount parent");
}
