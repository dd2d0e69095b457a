//! The zero-filled tail of open logs: a log that holds records keeps
//! written zeros ahead of its end; recovery reads them as the end of the
//! log (and keeps them), cuts a torn record followed by zeros, sealing cuts
//! the zeros, a log that never received a record stays at its header, and
//! on disk a fill releases the cached pages of records flushed a chunk ago.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use offshoot_storage::{Backend, FileId, FileKind, MemoryBackend, Store, StoreOptions, PAGE_SIZE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PS: usize = PAGE_SIZE;
const CHUNK: u64 = 64 * 1024;
const HEADER_LEN: u64 = 24;

fn opts() -> StoreOptions {
    StoreOptions {
        log_zero_chunk_bytes: CHUNK,
        // The file's shape is checked right after each sync.
        log_zero_fill_inline: true,
        ..Default::default()
    }
}

fn new_file(store: &Store, branch: &str) -> FileId {
    store
        .branch(branch)
        .unwrap()
        .create(FileId::ROOT, OsStr::new("f"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id
}

/// Every `layer-*` file with its current length, by name.
fn layer_lens(backend: &MemoryBackend) -> Vec<(String, u64)> {
    let mut names: Vec<String> = backend
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("layer-"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let len = backend.open(&n, false).unwrap().len().unwrap();
            (n, len)
        })
        .collect()
}

fn read_file(store: &Store, branch: &str, f: FileId) -> Vec<u8> {
    let b = store.branch(branch).unwrap();
    let size = b.getattr(f).unwrap().size as usize;
    let mut out = vec![0u8; size];
    assert_eq!(b.read(f, 0, &mut out).unwrap(), size);
    out
}

fn page_hash(data: &[u8], page: usize) -> u64 {
    let mut p = vec![0u8; PS];
    let start = (page * PS).min(data.len());
    let end = ((page + 1) * PS).min(data.len());
    p[..end - start].copy_from_slice(&data[start..end]);
    let mut h = DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

#[test]
fn a_crash_image_at_every_step_reads_as_a_synced_state() {
    let mut rng = StdRng::seed_from_u64(0x2e40_7a11);
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let f = new_file(&store, "main");
    let b = store.branch("main").unwrap();
    let pages = 24usize;
    let mut model = vec![0u8; pages * PS];
    // Versions each page may show after a crash: every one since the last sync.
    let mut allowed: HashMap<usize, HashSet<u64>> = HashMap::new();
    let reset = |allowed: &mut HashMap<usize, HashSet<u64>>, model: &[u8]| {
        allowed.clear();
        for p in 0..pages {
            allowed.entry(p).or_default().insert(page_hash(model, p));
        }
    };
    b.write(f, 0, &model).unwrap();
    b.sync().unwrap();
    reset(&mut allowed, &model);
    let mut saw_zero_tail = false;
    for step in 0..300 {
        if rng.gen_range(0..4) == 0 {
            b.sync().unwrap();
            reset(&mut allowed, &model);
        } else {
            let p = rng.gen_range(0..pages);
            let byte = rng.gen_range(1..=255u8);
            model[p * PS..(p + 1) * PS].fill(byte);
            b.write(f, (p * PS) as u64, &model[p * PS..(p + 1) * PS])
                .unwrap();
            allowed.entry(p).or_default().insert(page_hash(&model, p));
        }
        let image = Arc::new(backend.crash_image());
        for (name, len) in layer_lens(&image) {
            let tail = image
                .with_bytes(&name, |bytes| {
                    bytes.iter().rev().take_while(|&&b| b == 0).count() as u64
                })
                .unwrap();
            saw_zero_tail |= tail >= CHUNK / 2 && len > CHUNK;
        }
        let reopened = Store::open_with_backend(image, opts())
            .unwrap_or_else(|e| panic!("step {step}: the crash image does not open: {e}"));
        let got = read_file(&reopened, "main", f);
        assert_eq!(got.len(), model.len(), "step {step}");
        for p in 0..pages {
            assert!(
                allowed[&p].contains(&page_hash(&got, p)),
                "step {step}: page {p} shows a version it never had since the last sync"
            );
        }
    }
    assert!(saw_zero_tail, "no crash image had a zeroed tail");
    // 300 steps of 8 KiB pages: the log grew well past one chunk.
    assert!(layer_lens(&backend).iter().any(|(_, len)| *len > 4 * CHUNK));
}

#[test]
fn a_torn_record_followed_by_zeros_is_cut() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let f = new_file(&store, "main");
    let b = store.branch("main").unwrap();
    b.write(f, 0, &[1u8; PS]).unwrap();
    b.sync().unwrap();
    b.write(f, PS as u64, &[2u8; PS]).unwrap();
    b.sync().unwrap();
    let content = store.usage().total_bytes;
    let logs = layer_lens(&backend);
    let (name, len) = logs.last().unwrap().clone();
    let manifest_len = backend.open("MANIFEST", false).unwrap().len().unwrap();
    let log_end = content - manifest_len;
    assert!(len >= log_end + CHUNK / 2, "the log has a zeroed tail");
    drop((b, store));
    // Tear the last page record: its last byte lies just before the zeros.
    backend
        .with_bytes(&name, |bytes| {
            assert!(bytes[log_end as usize..].iter().all(|&b| b == 0));
            bytes[log_end as usize - 1] ^= 0x5a;
        })
        .unwrap();
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    let got = read_file(&store, "main", f);
    assert_eq!(&got[..PS], &[1u8; PS][..], "the earlier record is kept");
    assert!(got[PS..].iter().all(|&b| b == 0), "the torn page is gone");
    let cut = backend.open(&name, false).unwrap().len().unwrap();
    assert_eq!(
        cut,
        log_end - (8 + 1 + 16 + PS as u64),
        "cut at the torn record"
    );
    // Appending and syncing after the cut zero-fills again and recovers.
    let b = store.branch("main").unwrap();
    b.write(f, PS as u64, &[3u8; PS]).unwrap();
    b.sync().unwrap();
    assert!(backend.open(&name, false).unwrap().len().unwrap() > cut + CHUNK / 2);
    let image = Arc::new(backend.crash_image());
    let reopened = Store::open_with_backend(image, opts()).unwrap();
    assert_eq!(&read_file(&reopened, "main", f)[PS..], &[3u8; PS][..]);
}

#[test]
fn sealing_cuts_the_zeros_after_the_footer() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let f = new_file(&store, "main");
    let b = store.branch("main").unwrap();
    for i in 0..5u8 {
        b.write(f, u64::from(i) * PS as u64, &[i + 1; PS]).unwrap();
        b.sync().unwrap();
    }
    let (log, before) = layer_lens(&backend).last().unwrap().clone();
    let manifest_len = backend.open("MANIFEST", false).unwrap().len().unwrap();
    let content = store.usage().total_bytes - manifest_len;
    assert!(
        before > content,
        "the open log carries zeros past its records"
    );
    // A fork seals main's log.
    store.create_branch("child", Some("main")).unwrap();
    let sealed = backend.open(&log, false).unwrap();
    let len = sealed.len().unwrap();
    assert!(
        len < before && len > content,
        "{len} vs {before}, {content}"
    );
    let mut footer = [0u8; 64];
    sealed.read_exact_at(&mut footer, len - 64).unwrap();
    assert_eq!(&footer[..8], b"OSHSEAL\0", "the file ends with its footer");
    // Sealed and new open logs: the accounting counts content only.
    let total: u64 = layer_lens(&backend).iter().map(|(_, l)| l).sum();
    let manifest_len = backend.open("MANIFEST", false).unwrap().len().unwrap();
    assert_eq!(store.usage().total_bytes, total + manifest_len);
    drop((b, store));
    let image = Arc::new(backend.crash_image());
    let reopened = Store::open_with_backend(image, opts()).unwrap();
    for branch in ["main", "child"] {
        let got = read_file(&reopened, branch, f);
        for i in 0..5usize {
            assert!(got[i * PS..(i + 1) * PS].iter().all(|&b| b == i as u8 + 1));
        }
    }
}

#[test]
fn an_idle_branch_log_stays_at_its_header() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let f = new_file(&store, "main");
    let main = store.branch("main").unwrap();
    main.write(f, 0, &[9u8; PS]).unwrap();
    main.sync().unwrap();
    let before: HashSet<String> = layer_lens(&backend).into_iter().map(|(n, _)| n).collect();
    for i in 0..20 {
        let name = format!("b{i}");
        store.create_branch(&name, Some("main")).unwrap();
        let b = store.branch(&name).unwrap();
        b.sync().unwrap();
        assert_eq!(&read_file(&store, &name, f)[..], &[9u8; PS][..]);
    }
    let fresh: Vec<(String, u64)> = layer_lens(&backend)
        .into_iter()
        .filter(|(n, _)| !before.contains(n))
        .collect();
    // 20 branch logs and main's new log after its seal.
    assert_eq!(fresh.len(), 21);
    for (name, len) in &fresh {
        assert_eq!(*len, HEADER_LEN, "{name} grew without a record");
    }
    // One record and a sync: the log is zero-filled ahead.
    let b = store.branch("b3").unwrap();
    b.write(f, 0, &[4u8; PS]).unwrap();
    b.sync().unwrap();
    let grown = layer_lens(&backend)
        .into_iter()
        .filter(|(n, _)| !before.contains(n))
        .filter(|(_, len)| *len > HEADER_LEN)
        .count();
    assert_eq!(grown, 1);
    // Dropped branches leave nothing after GC.
    for i in 0..20 {
        store.drop_branch(&format!("b{i}")).unwrap();
    }
    store.gc().unwrap();
    let left: Vec<_> = layer_lens(&backend)
        .into_iter()
        .filter(|(n, _)| !before.contains(n))
        .collect();
    assert_eq!(left.len(), 1, "only main's open log is new: {left:?}");
}

/// By default the zero-fill runs on a background thread: a `sync` that
/// finds it due returns without it, the zeros reach the file soon after,
/// and every synced write survives a crash image taken at any point of it.
#[test]
fn a_background_fill_grows_the_log_after_the_sync_returns() {
    let backend = Arc::new(MemoryBackend::new());
    let background = StoreOptions {
        log_zero_fill_inline: false,
        ..opts()
    };
    let store = Store::open_with_backend(backend.clone(), background.clone()).unwrap();
    store.create_branch("main", None).unwrap();
    let f = new_file(&store, "main");
    let b = store.branch("main").unwrap();
    let pages = 40u8;
    for i in 0..pages {
        b.write(f, u64::from(i) * PS as u64, &[i + 1; PS]).unwrap();
        b.sync().unwrap();
        // A crash image mid-fill still holds every synced page.
        let image = Arc::new(backend.crash_image());
        let reopened = Store::open_with_backend(image, opts()).unwrap();
        let got = read_file(&reopened, "main", f);
        for p in 0..=usize::from(i) {
            assert!(
                got[p * PS..(p + 1) * PS].iter().all(|&v| v == p as u8 + 1),
                "page {p} after sync {i}"
            );
        }
    }
    // The records end well past the first chunk; the zeros follow them.
    let content = u64::from(pages) * PS as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, len) = layer_lens(&backend).last().unwrap().clone();
        if len >= content + CHUNK / 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log never grew past its records: {len} bytes for {content} of pages"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Which of the file's pages are in the OS page cache (`mincore` over a
/// mapping, which itself faults nothing in).
fn resident_pages(path: &std::path::Path) -> Vec<bool> {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the mapping is only passed to `mincore`, never read, and the
    // file is not truncated while it lives (the store is idle).
    let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
    let page = 4096;
    let mut vec = vec![0u8; map.len().div_ceil(page)];
    // SAFETY: `map` is a live mapping of `map.len()` bytes and `vec` holds
    // one byte per page of it, as `mincore` requires.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut _, map.len(), vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().map(|v| v & 1 == 1).collect()
}

#[test]
fn on_disk_a_fill_releases_the_cached_pages_of_records_flushed_a_chunk_ago() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let f = new_file(&store, "main");
    let b = store.branch("main").unwrap();
    let pages = 64usize;
    let mut model = vec![0u8; pages * PS];
    for p in 0..pages {
        model[p * PS..(p + 1) * PS].fill(p as u8 + 1);
        b.write(f, (p * PS) as u64, &model[p * PS..(p + 1) * PS])
            .unwrap();
        b.sync().unwrap();
    }
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("layer-")
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let resident = resident_pages(&log);
    let len = std::fs::metadata(&log).unwrap().len() as usize;
    assert!(len > pages * PS, "the log holds every page ({len} bytes)");
    // Records end under CHUNK / 2 + CHUNK before the file's end; every fill
    // released what lay more than a chunk behind the records' end then.
    // (A folio cut by the last release stays until the next one.)
    let released_end = (len - 4 * CHUNK as usize) / 4096;
    let early = &resident[1..released_end];
    assert!(
        early.iter().all(|r| !r),
        "records flushed long ago are still cached: {} of {} pages",
        early.iter().filter(|r| **r).count(),
        early.len()
    );
    let recent = &resident[resident.len() - (CHUNK as usize / 4096)..];
    assert!(
        recent.iter().all(|r| *r),
        "the zeroed tail ahead of the records was released"
    );
    // Released pages read back from the device.
    assert_eq!(read_file(&store, "main", f), model);
}
