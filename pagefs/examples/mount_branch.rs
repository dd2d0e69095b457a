//! Mounts one branch of a page store and serves it until stdin closes:
//! for poking at a mount by hand (`pg_test_fsync -f MNT/x`, `fio`, …).
//!
//! ```text
//! cargo run --release -p offshoot-pagefs --example mount_branch -- STORE_DIR MOUNTPOINT [BRANCH]
//! ```
//! A missing branch is created as a root branch.

use std::io::Read;
use std::path::PathBuf;

use offshoot_pagefs::{mount, MountOptions};
use offshoot_storage::{Store, StoreError, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let usage = "usage: mount_branch STORE_DIR MOUNTPOINT [BRANCH]";
    let store_dir = PathBuf::from(args.next().ok_or(usage)?);
    let mountpoint = PathBuf::from(args.next().ok_or(usage)?);
    let name = args.next().unwrap_or_else(|| "main".into());
    std::fs::create_dir_all(&store_dir)?;
    let store = Store::open(&store_dir, StoreOptions::default())?;
    match store.create_branch(&name, None) {
        Ok(_) | Err(StoreError::BranchExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let m = mount(
        store.branch(&name)?,
        &mountpoint,
        MountOptions {
            allow_other: nix::unistd::geteuid().is_root(),
            fs_name: format!("offshoot:{name}"),
            classic: false,
            ..Default::default()
        },
    )?;
    eprintln!(
        "mounted {name} at {}; close stdin to unmount",
        m.mountpoint().display()
    );
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    m.unmount()?;
    Ok(())
}
