//! Mount lifecycle: unmount ends the mount, and `clean_stale_mounts` finds
//! mounts (at paths /proc/mounts has to escape) that their owner abandoned;
//! the io_uring queue threads' scheduling class. Needs root (mounts FUSE).

use std::path::Path;

use offshoot_pagefs::{
    clean_stale_mounts, kernel_offers_uring, mount, Mount, MountOptions, QueuePriority, Transport,
};
use offshoot_storage::{Store, StoreOptions};

fn mounted(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    let escaped = path.to_string_lossy().replace(' ', "\\040");
    table
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(escaped.as_str()))
}

#[test]
fn fuse_unmount_and_clean_stale_mounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open store");
    store.create_branch("main", None).expect("main");
    let mnt_dir = dir.path().join("mounts with space");
    let (a, b) = (mnt_dir.join("a"), mnt_dir.join("b c"));
    std::fs::create_dir_all(&a).expect("mkdir a");
    std::fs::create_dir_all(&b).expect("mkdir b");
    let opts = || MountOptions {
        allow_other: false,
        fs_name: "offshoot:stale test".into(),
        classic: false,
        ..Default::default()
    };

    // A plain unmount takes the mount away and returns.
    let m = mount(store.branch("main").expect("branch"), &a, opts()).expect("mount a");
    std::fs::write(a.join("f"), b"x").expect("write");
    assert!(mounted(&a));
    m.unmount().expect("unmount");
    assert!(!mounted(&a));

    // Two mounts abandoned without unmounting, as a crashed daemon leaves them.
    for at in [&a, &b] {
        let m = mount(store.branch("main").expect("branch"), at, opts()).expect("mount");
        std::mem::forget(m);
        assert!(mounted(at), "{} not mounted", at.display());
    }
    // A mount outside the directory is left alone.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir outside");
    let keep = mount(store.branch("main").expect("branch"), &outside, opts()).expect("mount");

    let mut cleaned = clean_stale_mounts(&mnt_dir).expect("clean");
    cleaned.sort();
    let canonical = mnt_dir.canonicalize().expect("canonical");
    assert_eq!(cleaned, vec![canonical.join("a"), canonical.join("b c")]);
    assert!(!mounted(&a) && !mounted(&b), "stale mounts still present");
    assert!(
        mounted(&outside),
        "a mount outside the directory was touched"
    );
    assert_eq!(std::fs::read(outside.join("f")).expect("read"), b"x");
    keep.unmount().expect("unmount outside");
    assert!(clean_stale_mounts(&mnt_dir)
        .expect("clean again")
        .is_empty());
}

/// This process's io_uring queue threads (named `pagefs-q<N>`) whose
/// scheduling policy is `policy` (with or without `SCHED_RESET_ON_FORK`).
fn queue_threads_with_policy(policy: libc::c_int) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|task| {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let tid: libc::pid_t = task.file_name().to_str()?.parse().ok()?;
            // SAFETY: plain system call on a thread id; a thread that has
            // gone since the listing answers -1, which matches no policy.
            let current = unsafe { libc::sched_getscheduler(tid) };
            let class = current & !libc::SCHED_RESET_ON_FORK;
            (comm.starts_with("pagefs-q") && current >= 0 && class == policy).then_some(())
        })
        .count()
}

/// A mount's io_uring queue threads, and whether all run at real-time priority.
fn uring_threads(mount: &Mount) -> (usize, bool) {
    match mount.transport() {
        Transport::IoUring {
            threads, realtime, ..
        } => (threads, realtime),
        other => panic!("mounted on {other:?} though the kernel offers io_uring"),
    }
}

#[test]
fn fuse_uring_queue_threads_run_at_real_time_priority_unless_asked_not_to() {
    if !kernel_offers_uring() {
        eprintln!("skipped: the kernel does not offer FUSE over io_uring");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open store");
    store.create_branch("main", None).expect("main");
    let mount_with = |name: &str, queue_priority| {
        let at = dir.path().join(name);
        std::fs::create_dir(&at).expect("mkdir");
        let opts = MountOptions {
            fs_name: format!("offshoot:{name}"),
            queue_priority,
            ..Default::default()
        };
        mount(store.branch("main").expect("branch"), &at, opts).expect("mount")
    };

    // Other tests of this binary may hold mounts of their own (all at the
    // default, real-time), so each check counts at least this mount's threads.
    let realtime = mount_with("rt", QueuePriority::RealTime);
    let (threads, all_realtime) = uring_threads(&realtime);
    assert!(
        all_realtime,
        "queue threads not at real-time priority (tests run as root)"
    );
    let fifo = queue_threads_with_policy(libc::SCHED_FIFO);
    assert!(
        fifo >= threads,
        "{fifo} SCHED_FIFO queue threads, the mount has {threads}"
    );

    // Made from a real-time thread, whose class new threads inherit: the
    // queue threads must still end up at normal priority.
    let normal = std::thread::scope(|scope| {
        let mounting = scope.spawn(|| {
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: `sched_setscheduler` reads `param`, which lives for the
            // call; pid 0 is the calling thread.
            let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            assert_eq!(rc, 0, "cannot make the mounting thread real-time");
            mount_with("normal", QueuePriority::Normal)
        });
        mounting.join().expect("mounting thread")
    });
    let (threads, all_realtime) = uring_threads(&normal);
    assert!(
        !all_realtime,
        "a mount asked for normal priority reports real-time"
    );
    let other = queue_threads_with_policy(libc::SCHED_OTHER);
    assert!(
        other >= threads,
        "{other} SCHED_OTHER queue threads, the mount has {threads}"
    );

    normal.unmount().expect("unmount normal");
    realtime.unmount().expect("unmount rt");
}
