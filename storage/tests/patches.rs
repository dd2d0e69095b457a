//! Page patches (record kind 5): a page rewritten with a few bytes changed,
//! the way PostgreSQL rewrites its WAL's last page at every commit, is
//! logged as those bytes, and reads back exactly through the open log,
//! after recovery, after sealing, on a child branch, and in every crash
//! image; a damaged base record reads as corrupted, never as wrong bytes.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{
    Backend, FileId, FileKind, MemoryBackend, Store, StoreError, StoreOptions, PAGE_SIZE,
};

const PS: usize = PAGE_SIZE;

/// Bytes one simulated commit adds to the WAL page.
const COMMIT: usize = 190;

fn opts() -> StoreOptions {
    StoreOptions::default()
}

fn store_with_file(backend: &Arc<MemoryBackend>) -> (Store, FileId) {
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let f = store
        .branch("main")
        .unwrap()
        .create(FileId::ROOT, OsStr::new("wal"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    (store, f)
}

/// The WAL page after `commits` commits: each adds `COMMIT` bytes of its
/// own after the ones before; the rest of the page is zeros.
fn wal_page(commits: usize) -> Vec<u8> {
    let mut p = vec![0u8; PS];
    for c in 0..commits {
        let at = c * COMMIT;
        let end = (at + COMMIT).min(PS);
        if at >= end {
            break;
        }
        for (i, b) in p[at..end].iter_mut().enumerate() {
            *b = (c as u8).wrapping_mul(31).wrapping_add(i as u8) | 1;
        }
    }
    p
}

fn read_all(store: &Store, branch: &str, f: FileId, len: usize) -> Result<Vec<u8>, StoreError> {
    let b = store.branch(branch)?;
    let mut buf = vec![0xA5u8; len + PS];
    let n = b.read(f, 0, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn owned(store: &Store, branch: &str) -> u64 {
    store.usage().owned_bytes[branch]
}

/// Writes commit after commit into page 1 of `f` (page 0 stays a data page
/// written once), syncing after each, as PostgreSQL does with
/// `open_datasync`; checks every read on the way.
fn commit_many(store: &Store, f: FileId, commits: usize) -> Vec<u8> {
    let b = store.branch("main").unwrap();
    let data: Vec<u8> = (0..PS).map(|i| (i % 253) as u8 + 1).collect();
    b.write(f, 0, &data).unwrap();
    let mut expect = data;
    for c in 1..=commits {
        let page = wal_page(c);
        b.write(f, PS as u64, &page).unwrap();
        b.sync().unwrap();
        expect.truncate(PS);
        expect.extend_from_slice(&page);
        assert!(
            read_all(store, "main", f, 2 * PS).unwrap() == expect,
            "after commit {c}"
        );
    }
    expect
}

#[test]
fn a_rewritten_wal_page_is_logged_as_its_new_bytes_and_reads_back_everywhere() {
    let backend = Arc::new(MemoryBackend::new());
    let (store, f) = store_with_file(&backend);
    let before = owned(&store, "main");
    let commits = 40;
    let expect = commit_many(&store, f, commits);
    let logged = owned(&store, "main") - before;
    let as_whole_pages = (commits as u64 + 1) * (PS as u64 + 25);
    assert!(
        logged * 4 < as_whole_pages,
        "{commits} commits logged {logged} bytes; as whole pages {as_whole_pages}"
    );

    // Recovery replays the patches.
    drop(store);
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    assert!(
        read_all(&store, "main", f, 2 * PS).unwrap() == expect,
        "after reopen"
    );

    // More patches on the recovered log, then a child: main's log is
    // sealed, and both read the patched page through the sealed layer.
    let b = store.branch("main").unwrap();
    let page = wal_page(commits + 1);
    b.write(f, PS as u64, &page).unwrap();
    b.sync().unwrap();
    let mut expect = expect;
    expect[PS..].copy_from_slice(&page);
    store.create_branch("child", Some("main")).unwrap();
    for branch in ["main", "child"] {
        assert!(
            read_all(&store, branch, f, 2 * PS).unwrap() == expect,
            "{branch}"
        );
    }
    drop(store);
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    assert!(
        read_all(&store, "child", f, 2 * PS).unwrap() == expect,
        "child after reopen"
    );
}

#[test]
fn partial_writes_into_a_page_are_patches_too() {
    let backend = Arc::new(MemoryBackend::new());
    let (store, f) = store_with_file(&backend);
    let b = store.branch("main").unwrap();
    let mut expect = vec![0u8; PS];
    b.write(f, 0, &expect).unwrap(); // the size; zeros need no record
    let before = owned(&store, "main");
    for i in 0..100usize {
        let at = (i * 77) % (PS - 16);
        let bytes = [(i as u8) | 1; 16];
        b.write(f, at as u64, &bytes).unwrap();
        expect[at..at + 16].copy_from_slice(&bytes);
        assert!(
            read_all(&store, "main", f, PS).unwrap() == expect,
            "write {i}"
        );
    }
    let logged = owned(&store, "main") - before;
    // A chain ends after a few patches with the page logged whole (this
    // one has bytes all over it), so about one write in nine costs a page.
    assert!(
        logged * 6 < 100 * PS as u64,
        "100 writes of 16 bytes logged {logged} bytes"
    );
    drop(store);
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    assert!(
        read_all(&store, "main", f, PS).unwrap() == expect,
        "after reopen"
    );
}

#[test]
fn every_crash_image_of_a_patch_chain_reads_as_a_synced_state() {
    let backend = Arc::new(MemoryBackend::new());
    let (store, f) = store_with_file(&backend);
    let b = store.branch("main").unwrap();
    b.sync().unwrap();
    for c in 1..=30 {
        let page = wal_page(c);
        b.write(f, 0, &page).unwrap();
        // A crash before this commit's sync shows the page of the commit
        // before it, or this one: nothing else.
        let image = Arc::new(backend.crash_image());
        let crashed = Store::open_with_backend(image, opts()).unwrap();
        let got = read_all(&crashed, "main", f, PS).unwrap();
        let got = if got.is_empty() { vec![0u8; PS] } else { got };
        assert!(
            got == wal_page(c - 1) || got == page,
            "crash before sync {c}: neither the page before nor the new one"
        );
        b.sync().unwrap();
        let image = Arc::new(backend.crash_image());
        let crashed = Store::open_with_backend(image, opts()).unwrap();
        assert!(
            read_all(&crashed, "main", f, PS).unwrap() == page,
            "crash after sync {c}"
        );
    }
}

#[test]
fn a_damaged_base_makes_the_patched_page_read_as_corrupted() {
    let backend = Arc::new(MemoryBackend::new());
    let (store, f) = store_with_file(&backend);
    commit_many(&store, f, 5);
    store.create_branch("child", Some("main")).unwrap(); // seals main's log
    drop(store);
    let sealed = backend
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("layer-"))
        .min()
        .unwrap();
    // The first commit's bytes sit only in the chain's first record.
    let first = wal_page(1)[..COMMIT].to_vec();
    let at = backend
        .with_bytes(&sealed, |d| d.windows(COMMIT).position(|w| w == first))
        .flatten()
        .expect("first commit's bytes in the sealed layer");
    backend.with_bytes(&sealed, |d| d[at + 10] ^= 0x40).unwrap();
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    for branch in ["main", "child"] {
        match read_all(&store, branch, f, 2 * PS) {
            Err(StoreError::Corrupted { .. }) => {}
            other => panic!("{branch}: a damaged base read as {other:?}"),
        }
    }
}
