//! The round trip of a synchronous 8 KiB write (PostgreSQL's WAL write as
//! offshoot runs it) through pagefs over each transport, side by side with
//! the same write to a plain file of the same disk, in one run; and of an
//! 8 KiB read on the same handles, which on pagefs is a FUSE request served
//! from memory (synchronous opens are direct I/O): the transport alone.
//!
//! Run as root (mounts FUSE):
//!
//! ```text
//! cargo run --release -p offshoot-pagefs --example sync_write_latency -- [WRITERS] [SECONDS] [DIR] [ROUNDS]
//! ```
//!
//! Defaults: 4 writers, 5 s per run, a temporary directory under /var/tmp,
//! 3 rounds. Each writer has its own file opened with `O_DSYNC` and writes
//! 8 KiB blocks in turn over its first 8 MiB, as PostgreSQL's WAL writer
//! does over a segment. The three targets (native, pagefs over io_uring,
//! pagefs over `/dev/fuse`) run one after the other in each round, in an
//! order that rotates from round to round. The io_uring run needs the
//! kernel's `fuse.enable_uring` on (`scripts/install-deps.sh` turns it on).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offshoot_pagefs::{mount, Mount, MountOptions};
use offshoot_storage::{Store, StoreOptions};

const BLOCK: usize = 8192;
const SPAN: u64 = 8 << 20;

/// Writes (or reads, with `read`) 8 KiB blocks from one thread per file
/// for `seconds`; returns operations per second and the mean wait per
/// operation in microseconds.
fn run(files: &[File], seconds: u64, read: bool) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let results: Vec<(u64, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|file| {
                let stop = stop.clone();
                scope.spawn(move || {
                    let mut block = vec![0x5a_u8; BLOCK];
                    let (mut count, mut waited) = (0u64, Duration::ZERO);
                    while !stop.load(Ordering::Relaxed) {
                        let offset = (count * BLOCK as u64) % SPAN;
                        let start = Instant::now();
                        if read {
                            file.read_exact_at(&mut block, offset).expect("read");
                        } else {
                            file.write_all_at(&block, offset)
                                .expect("synchronous write");
                        }
                        waited += start.elapsed();
                        count += 1;
                    }
                    (count, waited)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let count: u64 = results.iter().map(|r| r.0).sum();
    let waited: Duration = results.iter().map(|r| r.1).sum();
    (
        count as f64 / seconds as f64,
        waited.as_secs_f64() * 1e6 / count.max(1) as f64,
    )
}

fn open_files(dir: &Path, writers: usize) -> Vec<File> {
    (0..writers)
        .map(|i| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_DSYNC)
                .open(dir.join(format!("wal-{i}")))
                .expect("open with O_DSYNC");
            // Written once in full, as PostgreSQL's recycled segments are.
            file.write_all_at(&vec![0u8; SPAN as usize], 0)
                .expect("fill");
            file
        })
        .collect()
}

fn pagefs_mount(store: &Store, name: &str, dir: &Path, classic: bool) -> Mount {
    store.create_branch(name, None).expect("create branch");
    let mnt = dir.join(name);
    std::fs::create_dir_all(&mnt).expect("mkdir");
    mount(
        store.branch(name).expect("branch"),
        &mnt,
        MountOptions {
            allow_other: false,
            fs_name: format!("offshoot:{name}"),
            classic,
            ..Default::default()
        },
    )
    .expect("mount")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let writers: usize = args.first().map_or(4, |v| v.parse().expect("WRITERS"));
    let seconds: u64 = args.get(1).map_or(5, |v| v.parse().expect("SECONDS"));
    let base = args.get(2).map_or(PathBuf::from("/var/tmp"), PathBuf::from);
    let rounds: usize = args.get(3).map_or(3, |v| v.parse().expect("ROUNDS"));
    let tmp = tempfile::tempdir_in(&base).expect("tempdir");
    let dir = tmp.path();
    let native_dir = dir.join("native");
    std::fs::create_dir(&native_dir).expect("mkdir native");
    std::fs::create_dir(dir.join("store")).expect("mkdir store");
    let store = Store::open(&dir.join("store"), StoreOptions::default()).expect("store");
    let uring = pagefs_mount(&store, "uring", dir, false);
    let classic = pagefs_mount(&store, "classic", dir, true);
    println!("io_uring mount: {:?}", uring.transport());
    println!("/dev/fuse mount: {:?}", classic.transport());
    let targets = [
        ("native", open_files(&native_dir, writers)),
        ("pagefs io_uring", open_files(uring.mountpoint(), writers)),
        (
            "pagefs /dev/fuse",
            open_files(classic.mountpoint(), writers),
        ),
    ];
    println!("| round | target | O_DSYNC writes/s | µs per write | reads/s | µs per read |");
    println!("|---|---|---:|---:|---:|---:|");
    for round in 0..rounds {
        for i in 0..targets.len() {
            let (name, files) = &targets[(i + round) % targets.len()];
            let (writes, write_wait) = run(files, seconds, false);
            let (reads, read_wait) = run(files, seconds, true);
            println!(
                "| {} | {name} | {writes:.0} | {write_wait:.0} | {reads:.0} | {read_wait:.1} |",
                round + 1
            );
        }
    }
    drop(targets);
    classic.unmount().expect("unmount");
    uring.unmount().expect("unmount");
}
