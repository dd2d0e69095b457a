//! Behaviour of single operations: truncation gaps across forks, orphans,
//! rename over an existing name, GC with a dropped parent, persistence.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{
    FileId, FileKind, MemoryBackend, RenameFlags, SetAttr, Store, StoreError, StoreOptions,
    PAGE_SIZE,
};

fn small_opts() -> StoreOptions {
    StoreOptions {
        seal_threshold_bytes: 64 * 1024,
        ..Default::default()
    }
}

fn new_file(b: &offshoot_storage::Branch, name: &str) -> FileId {
    b.create(FileId::ROOT, OsStr::new(name), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id
}

fn read_all(b: &offshoot_storage::Branch, id: FileId) -> Vec<u8> {
    let size = b.getattr(id).unwrap().size as usize;
    let mut buf = vec![0xAAu8; size + 10];
    let n = b.read(id, 0, &mut buf).unwrap();
    assert_eq!(n, size);
    buf.truncate(n);
    buf
}

#[test]
fn truncate_then_extend_reads_zeros_in_the_gap_across_a_fork() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), small_opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let main = store.branch("main").unwrap();
    let f = new_file(&main, "rel");
    main.write(f, 0, &vec![7u8; 4 * PAGE_SIZE]).unwrap();
    store.create_branch("child", Some("main")).unwrap();
    let child = store.branch("child").unwrap();
    // Truncate into the middle of page 1, then extend again.
    child
        .setattr(
            f,
            SetAttr {
                size: Some(PAGE_SIZE as u64 + 100),
                ..Default::default()
            },
        )
        .unwrap();
    child
        .setattr(
            f,
            SetAttr {
                size: Some(4 * PAGE_SIZE as u64),
                ..Default::default()
            },
        )
        .unwrap();
    let data = read_all(&child, f);
    assert!(data[..PAGE_SIZE + 100].iter().all(|&b| b == 7));
    assert!(
        data[PAGE_SIZE + 100..].iter().all(|&b| b == 0),
        "gap shows old pages"
    );
    // The parent is untouched.
    assert!(read_all(&main, f).iter().all(|&b| b == 7));
    // And the same after a crash, from the durable image.
    child.sync().unwrap();
    let store = Store::open_with_backend(Arc::new(backend.crash_image()), small_opts()).unwrap();
    let data = read_all(&store.branch("child").unwrap(), f);
    assert!(data[..PAGE_SIZE + 100].iter().all(|&b| b == 7));
    assert!(
        data[PAGE_SIZE + 100..].iter().all(|&b| b == 0),
        "gap shows old pages after crash"
    );
    assert!(read_all(&store.branch("main").unwrap(), f)
        .iter()
        .all(|&b| b == 7));
}

#[test]
fn unlinked_open_file_stays_readable_until_released() {
    let store = Store::open_with_backend(Arc::new(MemoryBackend::new()), small_opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = new_file(&b, "tmp");
    b.write(f, 10, b"hello").unwrap();
    assert_eq!(b.unlink(FileId::ROOT, OsStr::new("tmp")).unwrap(), f);
    assert!(matches!(
        b.lookup(FileId::ROOT, OsStr::new("tmp")),
        Err(StoreError::NotFound)
    ));
    assert_eq!(b.getattr(f).unwrap().nlink, 0);
    let mut buf = [0u8; 15];
    assert_eq!(b.read(f, 0, &mut buf).unwrap(), 15);
    assert_eq!(&buf[10..], b"hello");
    b.write(f, 15, b"!").unwrap();
    b.release_orphan(f).unwrap();
    assert!(matches!(b.getattr(f), Err(StoreError::NotFound)));
    assert!(matches!(b.read(f, 0, &mut buf), Err(StoreError::NotFound)));
}

#[test]
fn rename_replaces_an_existing_file_atomically() {
    let store = Store::open_with_backend(Arc::new(MemoryBackend::new()), small_opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let a = new_file(&b, "a");
    let t = new_file(&b, "t");
    b.write(a, 0, b"new").unwrap();
    b.write(t, 0, b"old").unwrap();
    let no = b.rename(
        FileId::ROOT,
        OsStr::new("a"),
        FileId::ROOT,
        OsStr::new("t"),
        RenameFlags { no_replace: true },
    );
    assert!(matches!(no, Err(StoreError::AlreadyExists)));
    let replaced = b
        .rename(
            FileId::ROOT,
            OsStr::new("a"),
            FileId::ROOT,
            OsStr::new("t"),
            RenameFlags::default(),
        )
        .unwrap();
    assert_eq!(replaced, Some(t));
    let names: Vec<_> = b
        .readdir(FileId::ROOT)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("t")]);
    assert_eq!(b.lookup(FileId::ROOT, OsStr::new("t")).unwrap().id, a);
    assert_eq!(read_all(&b, a), b"new");
    assert!(matches!(
        b.create(FileId::ROOT, OsStr::new("t"), FileKind::File, 0o600, 0, 0),
        Err(StoreError::AlreadyExists)
    ));
}

#[test]
fn gc_reclaims_a_dropped_parent_while_its_child_reads_on() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), small_opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let main = store.branch("main").unwrap();
    let f = new_file(&main, "data");
    let pattern: Vec<u8> = (0..40 * PAGE_SIZE)
        .map(|i| (i / PAGE_SIZE) as u8 + 1)
        .collect();
    main.write(f, 0, &pattern).unwrap();
    store.create_branch("child", Some("main")).unwrap();
    // The parent keeps writing: those layers are only the parent's.
    for i in 0..40u64 {
        main.write(f, i * PAGE_SIZE as u64, &vec![0xEE; PAGE_SIZE])
            .unwrap();
    }
    let before = store.usage();
    assert!(before.owned_bytes["main"] > 40 * PAGE_SIZE as u64);
    store.drop_branch("main").unwrap();
    assert!(matches!(
        main.read(f, 0, &mut [0u8; 1]),
        Err(StoreError::Stale)
    ));
    let report = store.gc().unwrap();
    assert!(report.layers_removed > 0, "{report:?}");
    assert!(report.bytes_removed >= 40 * PAGE_SIZE as u64, "{report:?}");
    let after = store.usage();
    assert!(after.total_bytes + report.bytes_removed <= before.total_bytes + 4096);
    let child = store.branch("child").unwrap();
    assert_eq!(read_all(&child, f), pattern);
    // Still so after a restart.
    drop((child, store));
    let store = Store::open_with_backend(backend, small_opts()).unwrap();
    let child = store.branch("child").unwrap();
    assert_eq!(read_all(&child, f), pattern);
}

#[test]
fn writes_persist_across_reopen_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let f;
    {
        let store = Store::open(dir.path(), small_opts()).unwrap();
        store.create_branch("main", None).unwrap();
        let b = store.branch("main").unwrap();
        f = new_file(&b, "x");
        for i in 0..30u64 {
            b.write(f, i * 3000, &vec![(i + 1) as u8; 5000]).unwrap();
        }
        b.sync().unwrap();
        store
            .set_annotation("main", "protected", Some("true"))
            .unwrap();
    }
    let store = Store::open(dir.path(), small_opts()).unwrap();
    assert_eq!(
        store.branch_info("main").unwrap().annotations["protected"],
        "true"
    );
    let b = store.branch("main").unwrap();
    let data = read_all(&b, f);
    assert_eq!(data.len(), 29 * 3000 + 5000);
    assert_eq!(data[0], 1);
    assert_eq!(data[29 * 3000 + 4999], 30);
    assert_eq!(data[3000], 2);
}

#[test]
fn reset_moves_the_name_and_children_of_reset_branches_live_on() {
    let store = Store::open_with_backend(Arc::new(MemoryBackend::new()), small_opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let main = store.branch("main").unwrap();
    let f = new_file(&main, "f");
    main.write(f, 0, b"v1").unwrap();
    let info = store.create_branch("dev", Some("main")).unwrap();
    let dev = store.branch("dev").unwrap();
    dev.write(f, 0, b"dv").unwrap();
    store.create_branch("grandchild", Some("dev")).unwrap();
    main.write(f, 0, b"v2").unwrap();
    let reset = store.reset_branch("dev", None).unwrap();
    assert_eq!(reset.id, info.id);
    assert!(reset.reset_at.is_some());
    assert!(matches!(
        dev.read(f, 0, &mut [0u8; 2]),
        Err(StoreError::Stale)
    ));
    let dev = store.branch("dev").unwrap();
    assert_eq!(read_all(&dev, f), b"v2");
    let gc = store.branch("grandchild").unwrap();
    assert_eq!(read_all(&gc, f), b"dv");
    assert!(matches!(
        store.reset_branch("main", None),
        Err(StoreError::NoParent(_))
    ));
}

#[test]
fn concurrent_writers_readers_and_syncs_agree() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let files: Vec<FileId> = (0..6).map(|i| new_file(&b, &format!("f{i}"))).collect();
    std::thread::scope(|s| {
        for (t, &f) in files.iter().enumerate() {
            let b = b.clone();
            s.spawn(move || {
                for p in 0..40u64 {
                    b.write(
                        f,
                        p * PAGE_SIZE as u64,
                        &vec![(t as u8 + 1) ^ p as u8; PAGE_SIZE],
                    )
                    .unwrap();
                    if p % 5 == 0 {
                        b.sync().unwrap();
                    }
                    // Read back an earlier page while others write.
                    let mut buf = vec![0u8; PAGE_SIZE];
                    let q = p / 2;
                    b.read(f, q * PAGE_SIZE as u64, &mut buf).unwrap();
                    assert!(buf.iter().all(|&x| x == (t as u8 + 1) ^ q as u8));
                }
            });
        }
    });
    b.sync().unwrap();
    drop(b);
    let store = Store::open(dir.path(), small_opts()).unwrap();
    let b = store.branch("main").unwrap();
    for (t, &f) in files.iter().enumerate() {
        let data = read_all(&b, f);
        for p in 0..40usize {
            let want = (t as u8 + 1) ^ p as u8;
            assert!(data[p * PAGE_SIZE..(p + 1) * PAGE_SIZE]
                .iter()
                .all(|&x| x == want));
        }
    }
}
