//! Deferred writes and per-file sync: a `sync_file` of one file does not
//! flush another file's deferred writes (the point of the page file), a
//! lost deferred write reads as the version before it, page files are
//! sealed, reopened, checked and collected with their layer.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{
    Backend, FileId, FileKind, MemoryBackend, Store, StoreError, StoreOptions, PAGE_SIZE,
};

const PS: usize = PAGE_SIZE;

fn open(backend: &Arc<MemoryBackend>) -> Store {
    Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap()
}

fn crash(backend: &MemoryBackend) -> (Arc<MemoryBackend>, Store) {
    let image = Arc::new(backend.crash_image());
    let store = open(&image);
    (image, store)
}

fn read(store: &Store, branch: &str, name: &str) -> Vec<u8> {
    let b = store.branch(branch).unwrap();
    let id = b.lookup(FileId::ROOT, OsStr::new(name)).unwrap().id;
    let mut buf = vec![0u8; b.getattr(id).unwrap().size as usize];
    let n = b.read(id, 0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Every byte of `bytes` is `byte` (and there are some).
fn all(bytes: &[u8], byte: u8) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| b == byte)
}

fn page_files(backend: &MemoryBackend) -> Vec<String> {
    let mut v: Vec<String> = backend
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".pages"))
        .collect();
    v.sort();
    v
}

/// `main` with a data file `d` (two pages of 1s, synced) and a log file `w`.
fn setup() -> (Arc<MemoryBackend>, Store, FileId, FileId) {
    let backend = Arc::new(MemoryBackend::new());
    let store = open(&backend);
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let mk = |name: &str| {
        b.create(FileId::ROOT, OsStr::new(name), FileKind::File, 0o600, 0, 0)
            .unwrap()
            .id
    };
    let (d, w) = (mk("d"), mk("w"));
    b.write_deferred(d, 0, &vec![1u8; 2 * PS]).unwrap();
    b.sync().unwrap();
    (backend, store, d, w)
}

#[test]
fn a_file_sync_leaves_other_files_deferred_writes_unflushed() {
    let (backend, store, d, w) = setup();
    let b = store.branch("main").unwrap();
    // A deferred overwrite and a deferred extension of `d`, then a logged
    // write of `w` and its fsync (a WAL flush, for PostgreSQL).
    b.write_deferred(d, 0, &vec![2u8; PS]).unwrap();
    b.write_deferred(d, 2 * PS as u64, &vec![3u8; PS]).unwrap();
    b.write(w, 0, b"commit record").unwrap();
    b.sync_file(w).unwrap();

    let (_, crashed) = crash(&backend);
    assert_eq!(read(&crashed, "main", "w"), b"commit record");
    let got = read(&crashed, "main", "d");
    // The size is metadata (durable with the log); the data is not.
    assert_eq!(got.len(), 3 * PS);
    assert!(all(&got[..2 * PS], 1), "old pages, not the unsynced ones");
    assert!(all(&got[2 * PS..], 0), "the lost extension reads as zeros");

    // The same file's own sync flushes its deferred writes.
    b.sync_file(d).unwrap();
    let (_, crashed) = crash(&backend);
    let got = read(&crashed, "main", "d");
    assert!(all(&got[..PS], 2));
    assert!(all(&got[PS..2 * PS], 1));
    assert!(all(&got[2 * PS..], 3));
}

#[test]
fn a_lost_deferred_write_never_lets_a_later_record_take_its_place() {
    let (backend, store, d, w) = setup();
    let b = store.branch("main").unwrap();
    b.write_deferred(d, 0, &vec![2u8; PS]).unwrap();
    b.write(w, 0, b"x").unwrap();
    b.sync_file(w).unwrap();

    // The crash loses the page record the log refers to; the next page
    // record goes past that reference, not over it.
    let image = Arc::new(backend.crash_image());
    let pages = page_files(&image);
    assert_eq!(pages.len(), 1);
    let synced_len = image.with_bytes(&pages[0], |v| v.len()).unwrap();
    let crashed = open(&image);
    let b = crashed.branch("main").unwrap();
    assert!(
        read(&crashed, "main", "d") == vec![1u8; 2 * PS],
        "the lost write reads as before"
    );
    b.write_deferred(d, PS as u64, &vec![4u8; PS]).unwrap();
    b.sync().unwrap();
    let len = image.with_bytes(&pages[0], |v| v.len()).unwrap();
    assert!(
        len >= synced_len + 2 * (PS + 25),
        "page file is {len} bytes: a new record was written where a lost one is referenced"
    );
    drop(crashed);
    let again = open(&image);
    let got = read(&again, "main", "d");
    assert!(got[..PS] == vec![1u8; PS][..] && got[PS..] == vec![4u8; PS][..]);
}

#[test]
fn page_files_are_sealed_with_their_layer_and_collected_with_it() {
    let (backend, store, d, _) = setup();
    let b = store.branch("main").unwrap();
    b.write_deferred(d, PS as u64, &vec![5u8; PS]).unwrap();
    // Forking seals main's open layer: its page file is flushed with it,
    // without any sync of the branch.
    store.create_branch("child", Some("main")).unwrap();
    let c = store.branch("child").unwrap();
    c.write_deferred(d, 0, &vec![6u8; PS]).unwrap();
    c.sync().unwrap();
    let (_, crashed) = crash(&backend);
    let main = read(&crashed, "main", "d");
    assert!(all(&main[PS..], 5));
    let child = read(&crashed, "child", "d");
    assert!(all(&child[..PS], 6));
    assert!(all(&child[PS..], 5));

    // Dropping the child and collecting removes its page file.
    let before = page_files(&backend);
    store.drop_branch("child").unwrap();
    store.gc().unwrap();
    let after = page_files(&backend);
    assert_eq!(after.len() + 1, before.len(), "{before:?} -> {after:?}");
    assert!(all(&read(&store, "main", "d")[PS..], 5));
}

#[test]
fn a_damaged_sealed_page_file_is_an_error_never_other_bytes() {
    let (backend, store, d, _) = setup();
    store.create_branch("child", Some("main")).unwrap();
    drop(store);
    let name = page_files(&backend).remove(0);
    backend
        .with_bytes(&name, |v| {
            let at = v.len() - 100;
            v[at] ^= 0x40;
        })
        .unwrap();
    let store = open(&backend);
    let b = store.branch("main").unwrap();
    let mut buf = vec![0u8; PS];
    assert!(b.read(d, 0, &mut buf).is_ok(), "the first page is intact");
    let err = b.read(d, PS as u64, &mut buf).unwrap_err();
    assert!(matches!(err, StoreError::Corrupted { .. }), "{err:?}");
}

/// What `recovery_init_sync_method=syncfs` relies on (`docs/compute.md`):
/// PostgreSQL's end-of-recovery checkpoint fsyncs `pg_control`, a file with
/// deferred writes, and that makes every page the store had received
/// durable, including pages recovery read but did not write.
#[test]
fn a_sync_of_a_file_with_deferred_writes_flushes_every_deferred_write() {
    let (backend, store, d, _) = setup();
    let b = store.branch("main").unwrap();
    let control = b
        .create(
            FileId::ROOT,
            OsStr::new("pg_control"),
            FileKind::File,
            0o600,
            0,
            0,
        )
        .unwrap()
        .id;
    b.write_deferred(d, 0, &vec![7u8; PS]).unwrap();
    b.write_deferred(control, 0, &vec![8u8; 512]).unwrap();
    b.sync_file(control).unwrap();
    let (_, crashed) = crash(&backend);
    assert!(all(&read(&crashed, "main", "pg_control"), 8));
    let got = read(&crashed, "main", "d");
    assert!(
        all(&got[..PS], 7),
        "another file's deferred page was not flushed"
    );
}
