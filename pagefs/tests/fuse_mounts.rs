//! Mount lifecycle: unmount ends the mount, and `clean_stale_mounts` finds
//! mounts (at paths /proc/mounts has to escape) that their owner abandoned.
//! Needs root (mounts FUSE).

use std::path::Path;

use offshoot_pagefs::{clean_stale_mounts, mount, MountOptions};
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
