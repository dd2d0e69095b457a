//! Corruption: flipped bytes in sealed layers (page data, index, footer)
//! and in open logs. Reads of an affected page answer `Corrupted`, a
//! damaged sealed index or footer fails the branches that read that layer
//! (the others open), a damaged open-log tail
//! is cut with every earlier record kept; never wrong bytes.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{
    FileId, FileKind, MemoryBackend, Store, StoreError, StoreOptions, PAGE_SIZE,
};

const PS: usize = PAGE_SIZE;

fn opts() -> StoreOptions {
    StoreOptions::default()
}

/// A store whose branch `main` has file `f` with pages of bytes 1..=n, each
/// written by its own call; returns the backend and the file id.
fn setup(n: u8) -> (Arc<MemoryBackend>, Store, FileId) {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = b
        .create(FileId::ROOT, OsStr::new("f"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    for i in 0..n {
        b.write(f, i as u64 * PS as u64, &vec![i + 1; PS]).unwrap();
    }
    b.sync().unwrap();
    (backend, store, f)
}

fn layers(backend: &MemoryBackend) -> Vec<String> {
    use offshoot_storage::Backend;
    let mut v: Vec<String> = backend
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("layer-"))
        .collect();
    v.sort();
    v
}

/// Offset of the page whose bytes are all `byte`, in `name`.
fn find_page(backend: &MemoryBackend, name: &str, byte: u8) -> usize {
    backend
        .with_bytes(name, |d| {
            d.windows(PS).position(|w| w.iter().all(|&b| b == byte))
        })
        .flatten()
        .expect("page not found in layer")
}

fn flip(backend: &MemoryBackend, name: &str, at: usize) {
    backend.with_bytes(name, |d| d[at] ^= 0x40).unwrap();
}

fn read_page(store: &Store, f: FileId, page: usize) -> Result<Vec<u8>, StoreError> {
    let b = store.branch("main")?;
    let mut buf = vec![0u8; PS];
    let n = b.read(f, (page * PS) as u64, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn flipped_page_data_in_a_sealed_layer_reads_as_corrupted() {
    let (backend, store, f) = setup(6);
    store.create_branch("child", Some("main")).unwrap(); // seals main's log
    let sealed = layers(&backend)[0].clone();
    let at = find_page(&backend, &sealed, 4);
    drop(store);
    flip(&backend, &sealed, at + 100);
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    assert!(matches!(
        read_page(&store, f, 3),
        Err(StoreError::Corrupted { .. })
    ));
    // The child shares the layer: same answer, never wrong bytes.
    let child = store.branch("child").unwrap();
    let mut buf = vec![0u8; 3 * PS];
    assert!(matches!(
        child.read(f, 2 * PS as u64, &mut buf),
        Err(StoreError::Corrupted { .. })
    ));
    for p in [0usize, 1, 2, 4, 5] {
        assert_eq!(read_page(&store, f, p).unwrap(), vec![p as u8 + 1; PS]);
    }
}

#[test]
fn flipped_index_or_footer_of_a_sealed_layer_fails_only_the_branches_reading_it() {
    for from_end in [64 + 10, 30, 3] {
        // 74: inside the index section; 30 and 3: inside the footer.
        let backend = Arc::new(MemoryBackend::new());
        let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
        store.create_branch("main", None).unwrap();
        // Forked before main wrote anything: reads none of main's layers.
        store.create_branch("early", Some("main")).unwrap();
        let main = store.branch("main").unwrap();
        let f = main
            .create(FileId::ROOT, OsStr::new("f"), FileKind::File, 0o600, 0, 0)
            .unwrap()
            .id;
        main.write(f, 0, &vec![1u8; 3 * PS]).unwrap();
        main.sync().unwrap();
        store.create_branch("other", None).unwrap();
        let other = store.branch("other").unwrap();
        let g = other
            .create(FileId::ROOT, OsStr::new("g"), FileKind::File, 0o600, 0, 0)
            .unwrap()
            .id;
        other.write(g, 0, &vec![5u8; PS]).unwrap();
        other.sync().unwrap();
        store.create_branch("child", Some("main")).unwrap(); // seals main's log
        drop((main, other, store));
        let sealed = layers(&backend)[0].clone();
        let len = backend.with_bytes(&sealed, |d| d.len()).unwrap();
        flip(&backend, &sealed, len - from_end);
        let store = Store::open_with_backend(backend.clone(), opts())
            .unwrap_or_else(|e| panic!("one damaged layer refused the whole store: {e}"));
        for name in ["main", "child"] {
            match store.branch(name) {
                Err(StoreError::Corrupted { what }) => {
                    assert!(what.contains(&sealed), "{name}: {what}")
                }
                Err(e) => panic!("{name}: expected Corrupted, got {e}"),
                Ok(_) => {
                    panic!("{name} opened over a damaged layer ({from_end} bytes from the end)")
                }
            }
        }
        let other = store.branch("other").unwrap();
        let mut buf = vec![0u8; PS];
        assert_eq!(other.read(g, 0, &mut buf).unwrap(), PS);
        assert_eq!(buf, vec![5u8; PS]);
        let early = store.branch("early").unwrap();
        assert!(early.readdir(FileId::ROOT).unwrap().is_empty());
        assert!(early.lookup(FileId::ROOT, OsStr::new("f")).is_err());
        // The damaged branches can still be dropped, and the store works on.
        store.drop_branch("child").unwrap();
        store.create_branch("later", Some("other")).unwrap();
    }
}

#[test]
fn flipped_page_in_an_open_log_reads_as_corrupted_while_running() {
    let (backend, store, f) = setup(3);
    let open = layers(&backend)[0].clone();
    let at = find_page(&backend, &open, 2);
    flip(&backend, &open, at + 5);
    assert!(matches!(
        read_page(&store, f, 1),
        Err(StoreError::Corrupted { .. })
    ));
    assert_eq!(read_page(&store, f, 0).unwrap(), vec![1u8; PS]);
}

#[test]
fn torn_tail_of_an_open_log_is_cut_and_earlier_records_survive() {
    let (backend, store, f) = setup(5);
    drop(store);
    let open = layers(&backend)[0].clone();
    let len_before = backend.with_bytes(&open, |d| d.len()).unwrap();
    let at = find_page(&backend, &open, 5);
    flip(&backend, &open, at + PS - 1);
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    for p in 0..4usize {
        assert_eq!(read_page(&store, f, p).unwrap(), vec![p as u8 + 1; PS]);
    }
    let last = read_page(&store, f, 4).unwrap();
    assert_ne!(last, vec![5u8; PS]);
    assert!(
        last.iter().all(|&b| b == 0),
        "the cut page must not show damaged bytes"
    );
    let len_after = backend.with_bytes(&open, |d| d.len()).unwrap();
    assert!(len_after < len_before, "the torn tail was not cut off");
    // The log keeps working after the cut.
    let b = store.branch("main").unwrap();
    b.write(f, 4 * PS as u64, &vec![9u8; PS]).unwrap();
    b.sync().unwrap();
    drop((b, store));
    let store = Store::open_with_backend(backend, opts()).unwrap();
    assert_eq!(read_page(&store, f, 4).unwrap(), vec![9u8; PS]);
}
