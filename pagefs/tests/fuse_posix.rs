//! POSIX behaviour through a real FUSE mount of a real page store: what
//! PostgreSQL relies on, checked with std::fs and libc, and checked again
//! in the store itself after fsync. Needs root (mounts FUSE).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use offshoot_pagefs::{kernel_offers_uring, mount, Mount, MountOptions, Transport};
use offshoot_storage::{Branch, FileId, Store, StoreOptions};

struct Fixture {
    branch: Branch,
    mount: Mount,
    // Dropped last: the store and mount point outlive the mount.
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_on(false)
}

/// A fresh store and mount; `classic` keeps the mount on `/dev/fuse`.
fn fixture_on(classic: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&store_dir).expect("mkdir store");
    std::fs::create_dir(&mnt).expect("mkdir mnt");
    let store = Store::open(&store_dir, StoreOptions::default()).expect("open store");
    store.create_branch("main", None).expect("create main");
    let branch = store.branch("main").expect("branch");
    let mount = mount(
        branch.clone(),
        &mnt,
        MountOptions {
            allow_other: false,
            fs_name: "offshoot:test".into(),
            classic,
            ..Default::default()
        },
    )
    .expect("mount");
    Fixture {
        branch,
        mount,
        _dir: dir,
    }
}

/// The whole contents of a file, read from the store (not through FUSE).
fn store_bytes(branch: &Branch, path: &Path, mnt: &Path) -> Vec<u8> {
    let mut dir = FileId::ROOT;
    let rel = path.strip_prefix(mnt).expect("under mount");
    let mut attr = branch.getattr(dir).expect("root");
    for part in rel.iter() {
        attr = branch.lookup(dir, part).expect("lookup in store");
        dir = attr.id;
    }
    let mut buf = vec![0u8; attr.size as usize];
    let n = branch.read(attr.id, 0, &mut buf).expect("store read");
    buf.truncate(n);
    buf
}

fn pwrite(model: &mut Vec<u8>, file: &File, offset: usize, data: &[u8]) {
    file.write_all_at(data, offset as u64).expect("pwrite");
    if model.len() < offset + data.len() {
        model.resize(offset + data.len(), 0);
    }
    model[offset..offset + data.len()].copy_from_slice(data);
}

fn read_all(path: &Path) -> Vec<u8> {
    let mut buf = Vec::new();
    File::open(path)
        .expect("open")
        .read_to_end(&mut buf)
        .expect("read");
    buf
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn fuse_reads_and_writes_at_any_offset_with_holes_and_truncation() {
    let fx = fixture();
    let mnt = fx.mount.mountpoint().to_path_buf();
    assert!(
        fx.mount.negotiated().writeback_cache,
        "writeback cache not negotiated"
    );
    let path = mnt.join("data");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create");
    let mut model = Vec::new();

    // Odd offsets and lengths, across page boundaries.
    pwrite(&mut model, &file, 12_345, &pattern(10_000, 1));
    pwrite(&mut model, &file, 8_190, &pattern(5, 2));
    // Read-modify-write inside one page.
    pwrite(&mut model, &file, 16_400, b"xyz");
    assert_eq!(read_all(&path), model, "contents after odd writes");

    // A write far past EOF leaves a hole of zeros.
    pwrite(&mut model, &file, 200_001, &pattern(3_000, 3));
    let mut hole = vec![1u8; 50_000];
    file.read_exact_at(&mut hole, 100_000).expect("read hole");
    assert!(
        hole.iter().all(|&b| b == 0),
        "hole past old EOF is not zeros"
    );
    assert_eq!(read_all(&path), model);

    // Shrink, then extend: the gap reads as zeros, not the old bytes.
    file.set_len(5_000).expect("ftruncate shrink");
    model.truncate(5_000);
    file.set_len(60_000).expect("ftruncate extend");
    model.resize(60_000, 0);
    assert_eq!(file.metadata().expect("stat").len(), 60_000);
    assert_eq!(read_all(&path), model, "contents after shrink+extend");

    // Durable and identical in the store itself after fsync.
    file.sync_all().expect("fsync");
    file.sync_data().expect("fdatasync");
    assert_eq!(
        store_bytes(&fx.branch, &path, &mnt),
        model,
        "store disagrees after fsync"
    );

    // fallocate mode 0 extends; other modes are refused, not faked.
    // SAFETY: fallocate on a valid open descriptor.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, 1 << 20) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
    assert_eq!(file.metadata().expect("stat").len(), 1 << 20);
    model.resize(1 << 20, 0);
    // SAFETY: as above.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            8192,
        )
    };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
    file.sync_all().expect("fsync");
    assert_eq!(store_bytes(&fx.branch, &path, &mnt), model);
    drop(file);
    let metrics = fx.mount.metrics();
    assert!(metrics.fsyncs >= 3, "fsyncs counted: {metrics:?}");
    assert!(
        metrics.writes > 0 && metrics.write_bytes >= 13_000,
        "writes counted: {metrics:?}"
    );
    assert_eq!(metrics.errors, 0);
    fx.mount.unmount().expect("unmount");
}

#[test]
fn fuse_names_rename_unlink_and_directories() {
    let fx = fixture();
    let mnt = fx.mount.mountpoint().to_path_buf();

    // O_CREAT|O_EXCL holds.
    let a = mnt.join("a");
    std::fs::write(&a, b"AAAA").expect("write a");
    let err = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&a)
        .expect_err("O_EXCL on existing file");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);

    // Rename over an existing file: the name switches atomically, and a
    // descriptor open on the replaced file still reads the old contents.
    let b = mnt.join("b");
    std::fs::write(&b, b"BB").expect("write b");
    let old_b = File::open(&b).expect("open b");
    std::fs::rename(&a, &b).expect("rename over");
    assert!(!a.exists());
    assert_eq!(read_all(&b), b"AAAA");
    let mut buf = [0u8; 2];
    old_b
        .read_exact_at(&mut buf, 0)
        .expect("read replaced file");
    assert_eq!(&buf, b"BB");
    drop(old_b);

    // Unlink of an open file: still readable and writable through the fd.
    let c = mnt.join("c");
    let fc = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&c)
        .expect("create c");
    fc.write_all_at(&pattern(20_000, 9), 0).expect("write c");
    fc.sync_all().expect("fsync c");
    std::fs::remove_file(&c).expect("unlink c");
    assert!(!c.exists());
    fc.write_all_at(b"tail", 20_000).expect("write unlinked");
    let mut back = vec![0u8; 20_004];
    fc.read_exact_at(&mut back, 0).expect("read unlinked");
    assert_eq!(&back[..20_000], &pattern(20_000, 9)[..]);
    assert_eq!(&back[20_000..], b"tail");
    let orphan = FileId(fc.metadata().expect("fstat").ino());
    assert!(fx.branch.getattr(orphan).is_ok(), "orphan kept while open");
    drop(fc);
    // Once the kernel lets go (release, then forget), its data is released.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fx.branch.getattr(orphan).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "orphan never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // mkdir, readdir, rmdir.
    let d = mnt.join("d");
    std::fs::create_dir(&d).expect("mkdir");
    for name in ["x", "y", "z"] {
        std::fs::write(d.join(name), name).expect("write in dir");
    }
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["x", "y", "z"]);
    let err = std::fs::remove_dir(&d).expect_err("rmdir non-empty");
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    for name in ["x", "y", "z"] {
        std::fs::remove_file(d.join(name)).expect("unlink in dir");
    }
    File::open(&d)
        .expect("open dir")
        .sync_all()
        .expect("fsyncdir");
    std::fs::remove_dir(&d).expect("rmdir");
    assert!(!d.exists());

    // Symlinks.
    std::os::unix::fs::symlink("b", mnt.join("link")).expect("symlink");
    assert_eq!(
        std::fs::read_link(mnt.join("link")).expect("readlink"),
        Path::new("b")
    );
    assert_eq!(read_all(&mnt.join("link")), b"AAAA");

    // Directory fsync of the root.
    File::open(&mnt)
        .expect("open root")
        .sync_all()
        .expect("fsync root");
    drop(fx.mount);
}

#[test]
fn fuse_inode_numbers_modes_and_root_chmod() {
    let fx = fixture();
    let mnt = fx.mount.mountpoint().to_path_buf();
    let root = std::fs::metadata(&mnt).expect("stat root");
    assert_eq!(root.ino(), 1, "root inode");
    assert!(root.is_dir());

    let mut inos = vec![root.ino()];
    for (name, mode) in [("f1", 0o600), ("f2", 0o640), ("f3", 0o644)] {
        let path = mnt.join(name);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .expect("create");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.mode() & 0o777, mode, "mode of {name}");
        assert_eq!(meta.mode() & libc::S_IFMT, libc::S_IFREG);
        assert_eq!(meta.uid(), 0, "new files belong to the caller");
        inos.push(meta.ino());
    }
    std::fs::create_dir(mnt.join("sub")).expect("mkdir");
    let sub = std::fs::metadata(mnt.join("sub")).expect("stat sub");
    assert!(sub.is_dir());
    inos.push(sub.ino());
    let mut unique = inos.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        inos.len(),
        "inode numbers not distinct: {inos:?}"
    );
    // Stable: the same number on a later stat.
    assert_eq!(
        std::fs::metadata(mnt.join("f2")).expect("stat").ino(),
        inos[2]
    );

    // chmod and chown of the mount root, as initdb and the daemon do.
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o750)).expect("chmod root");
    assert_eq!(std::fs::metadata(&mnt).expect("stat").mode() & 0o777, 0o750);
    std::os::unix::fs::chown(&mnt, Some(101), Some(104)).expect("chown root");
    let root = std::fs::metadata(&mnt).expect("stat");
    assert_eq!((root.uid(), root.gid()), (101, 104));
    let stored = fx.branch.getattr(FileId::ROOT).expect("store root");
    assert_eq!(
        (stored.mode & 0o777, stored.uid, stored.gid),
        (0o750, 101, 104)
    );
    assert_eq!(
        fx.branch
            .lookup(FileId::ROOT, OsStr::new("f2"))
            .expect("lookup")
            .id
            .0,
        inos[2],
        "FUSE inode is the store's FileId"
    );
    fx.mount.unmount().expect("unmount");
}

/// A commit is a write then an fdatasync, as PostgreSQL does with its WAL:
/// each must reach the store as a write and an fsync, without a setattr of
/// the times the write changed (one more round trip per commit) unless a
/// second has passed.
#[test]
fn fuse_commits_carry_no_setattr_of_times() {
    let fx = fixture();
    let path = fx.mount.mountpoint().join("wal");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create");
    file.write_all_at(&pattern(8192, 1), 0)
        .expect("first write");
    file.sync_all().expect("first fsync");

    const COMMITS: usize = 20;
    let before = fx.mount.metrics();
    let started = std::time::Instant::now();
    for i in 0..COMMITS {
        // Overwrite the same WAL page with more records, then make it durable.
        file.write_all_at(&pattern(512, i as u8), (i * 512) as u64)
            .expect("write");
        file.sync_data().expect("fdatasync");
    }
    let took = started.elapsed();
    let after = fx.mount.metrics();
    assert_eq!(
        after.fsyncs - before.fsyncs,
        COMMITS as u64,
        "one FSYNC per fdatasync"
    );
    assert!(after.writes > before.writes, "the writes reached the store");
    // The times change at most once a second: one setattr per second
    // started (plus one for the boundary), not one per commit.
    let allowed = took.as_secs() + 2;
    let setattrs = after.setattrs - before.setattrs;
    assert!(
        setattrs <= allowed,
        "{setattrs} setattrs for {COMMITS} commits in {took:?} (at most {allowed})"
    );
    assert_eq!(
        store_bytes(&fx.branch, &path, fx.mount.mountpoint())[..512],
        pattern(512, 0)[..]
    );
}

/// PostgreSQL's WAL as offshoot runs it (`wal_sync_method = open_datasync`):
/// a file opened with `O_DSYNC` bypasses the page cache, so each write is
/// one request that the store makes durable before answering (no FSYNC
/// round trip), and a cached reader opened earlier sees it, not its cached
/// old page.
#[test]
fn fuse_wal_o_dsync_writes_are_durable_when_answered() {
    let fx = fixture();
    let mnt = fx.mount.mountpoint();
    std::fs::create_dir(mnt.join("pg_wal")).expect("mkdir pg_wal");
    let path = mnt.join("pg_wal/000000010000000000000001");
    const PAGES: usize = 8;
    // Created and zero-filled as PostgreSQL makes a segment.
    let init = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create segment");
    init.write_all_at(&vec![0; PAGES * 8192], 0)
        .expect("zero-fill");
    init.sync_all().expect("fsync segment");
    drop(init);

    // A cached reader that has read the zeros, as recovery or a WAL sender
    // would.
    let reader = File::open(&path).expect("open reader");
    let mut old = vec![1u8; PAGES * 8192];
    reader.read_exact_at(&mut old, 0).expect("read zeros");
    assert!(old.iter().all(|&b| b == 0));

    let writer = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .expect("open with O_DSYNC");
    let before = fx.mount.metrics();
    let mut expected = Vec::new();
    for i in 0..PAGES {
        let page = pattern(8192, i as u8 + 1);
        writer
            .write_all_at(&page, (i * 8192) as u64)
            .expect("write");
        expected.extend_from_slice(&page);
    }
    let after = fx.mount.metrics();
    assert_eq!(
        after.writes - before.writes,
        PAGES as u64,
        "one request per write"
    );
    assert_eq!(
        after.fsyncs - before.fsyncs,
        PAGES as u64,
        "each O_DSYNC write made the store durable before it was answered"
    );
    assert_eq!(
        after.sync_writes - before.sync_writes,
        PAGES as u64,
        "each O_DSYNC write is counted as a synchronous write"
    );
    assert!(
        after.sync_write_time - before.sync_write_time >= after.fsync_time - before.fsync_time,
        "a synchronous write's time includes its flush"
    );
    assert!(
        store_bytes(&fx.branch, &path, mnt) == expected,
        "the store holds every write without an fsync"
    );
    // On Linux 6.18 the kernel itself drops the range before a direct
    // write, so this holds even without pagefs's invalidation (checked by
    // removing it); it pins the end result PostgreSQL relies on.
    let mut seen = vec![0u8; PAGES * 8192];
    reader.read_exact_at(&mut seen, 0).expect("read again");
    assert!(
        seen == expected,
        "the earlier reader sees the new WAL, not cached zeros"
    );

    // Elsewhere writes stay in the page cache until PostgreSQL's fsync.
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(mnt.join("16384"))
        .expect("create data file");
    let before = fx.mount.metrics();
    data.write_all_at(&pattern(8192, 9), 0).expect("write data");
    assert_eq!(
        fx.mount.metrics().fsyncs,
        before.fsyncs,
        "no sync without O_DSYNC or fsync"
    );
    assert_eq!(
        fx.mount.metrics().sync_writes,
        before.sync_writes,
        "a plain write is not a synchronous one"
    );
    drop((reader, writer, data));
    fx.mount.unmount().expect("unmount");
}

/// Both transports carry the same requests to the same operations: the
/// io_uring queues whenever the kernel offers them (make test turns the
/// kernel's `fuse.enable_uring` on), `/dev/fuse` when asked for. Each
/// serves a synchronous write (a queue thread's own path), buffered writes
/// and reads at offsets, fsync, and the name operations a queue passes to
/// its socket session (create, rename, readdir, unlink of an open file).
/// Every log line written while the test runs (ERROR and worse only).
static ERRORS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct ErrorLog;

impl std::io::Write for ErrorLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        ERRORS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn fuse_both_transports_serve_reads_writes_syncs_and_names() {
    // fuser's own `log` records reach this subscriber too.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .with_writer(|| ErrorLog)
        .init();
    for classic in [false, true] {
        let fx = fixture_on(classic);
        let mnt = fx.mount.mountpoint().to_path_buf();
        match (classic, kernel_offers_uring(), fx.mount.transport()) {
            (
                false,
                true,
                Transport::IoUring {
                    queues, threads, ..
                },
            ) => {
                assert!(
                    queues >= 1 && threads >= queues,
                    "{queues} queues, {threads} threads"
                );
            }
            (true, _, Transport::DevFuse { .. }) | (false, false, Transport::DevFuse { .. }) => {}
            (classic, offered, transport) => {
                panic!(
                    "classic={classic}, kernel offers io_uring={offered}: mounted on {transport:?}"
                )
            }
        }
        let label = if classic { "dev-fuse" } else { "default" };

        // Buffered writes at offsets, a hole between them, read back whole.
        let path = mnt.join("data");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        let mut model = Vec::new();
        pwrite(&mut model, &file, 0, &pattern(10_000, 1));
        pwrite(&mut model, &file, 300_000, &pattern(70_000, 2));
        file.sync_all().expect("fsync");
        assert_eq!(
            read_all(&path),
            model,
            "{label}: read back through the mount"
        );
        assert_eq!(
            store_bytes(&fx.branch, &path, &mnt),
            model,
            "{label}: in the store after fsync"
        );

        // A synchronous (WAL-style) write is in the store when answered.
        let wal = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DSYNC)
            .open(mnt.join("wal"))
            .expect("create wal");
        wal.write_all_at(&pattern(8192, 3), 8192)
            .expect("O_DSYNC write");
        let mut expected = vec![0u8; 8192];
        expected.extend(pattern(8192, 3));
        assert_eq!(
            store_bytes(&fx.branch, &mnt.join("wal"), &mnt),
            expected,
            "{label}: durable write"
        );

        // Names: rename over, list, unlink while open and still read it.
        std::fs::write(mnt.join("a"), b"first").expect("write a");
        std::fs::write(mnt.join("b"), b"second").expect("write b");
        std::fs::rename(mnt.join("a"), mnt.join("b")).expect("rename over");
        let mut names: Vec<_> = std::fs::read_dir(&mnt)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["b", "data", "wal"].map(std::ffi::OsString::from),
            "{label}: listing"
        );
        let open = File::open(mnt.join("b")).expect("open b");
        std::fs::remove_file(mnt.join("b")).expect("unlink");
        let mut kept = String::new();
        (&open).read_to_string(&mut kept).expect("read unlinked");
        assert_eq!(kept, "first", "{label}: unlinked file still readable");
        assert_eq!(
            std::fs::metadata(mnt.join("b")).map_err(|e| e.kind()).err(),
            Some(ErrorKind::NotFound),
            "{label}: name gone"
        );

        // A clean unmount (no file left open) logs no error.
        drop((open, file, wal));
        drop(fx);
        let errors = String::from_utf8_lossy(&ERRORS.lock().unwrap()).into_owned();
        assert!(errors.is_empty(), "{label}: errors logged:\n{errors}");
    }
}
