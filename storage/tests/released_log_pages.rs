//! On disk, with the default options (4 MiB zero-fill chunks filled on a
//! background thread, cached pages of flushed records released): every
//! page written reads back as written, from the branch that wrote it and
//! from a child branch created afterwards, while writes, syncs and reads
//! interleave from several threads.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{FileId, FileKind, Store, StoreOptions, PAGE_SIZE};

const PS: usize = PAGE_SIZE;

fn page_of(file: usize, page: usize, version: u32) -> Vec<u8> {
    let mut data = vec![0u8; PS];
    for (i, chunk) in data.chunks_mut(8).enumerate() {
        let word = (file as u64) << 48 ^ (page as u64) << 24 ^ u64::from(version) ^ i as u64;
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    data
}

#[test]
fn pages_read_back_after_their_cache_is_released() {
    // Races between appends and fills show in some runs only.
    for _ in 0..4 {
        one_run();
    }
}

fn one_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
    store.create_branch("main", None).unwrap();
    let main = store.branch("main").unwrap();
    let files: Vec<FileId> = (0..4)
        .map(|i| {
            main.create(
                FileId::ROOT,
                OsStr::new(&format!("f{i}")),
                FileKind::File,
                0o600,
                0,
                0,
            )
            .unwrap()
            .id
        })
        .collect();
    // 4 writers × 1600 pages of 8 KiB, a sync every 7 pages: ~50 MiB of
    // log, a dozen fills, most of it released before the end.
    let pages = 1600usize;
    std::thread::scope(|s| {
        for (n, &f) in files.iter().enumerate() {
            let main = store.branch("main").unwrap();
            s.spawn(move || {
                for p in 0..pages {
                    main.write(f, (p * PS) as u64, &page_of(n, p, 1)).unwrap();
                    if p % 7 == 0 {
                        main.sync().unwrap();
                    }
                    if p % 50 == 49 {
                        // Rewrite an early page: its old version is released.
                        let q = p / 3;
                        main.write(f, (q * PS) as u64, &page_of(n, q, 2)).unwrap();
                    }
                }
                main.sync().unwrap();
            });
        }
    });
    let expect = |n: usize, p: usize| {
        let rewritten = (0..pages).any(|r| r % 50 == 49 && r / 3 == p);
        page_of(n, p, if rewritten { 2 } else { 1 })
    };
    store.create_branch("child", Some("main")).unwrap();
    for name in ["main", "child"] {
        let b = store.branch(name).unwrap();
        let mut buf = vec![0u8; PS];
        for (n, &f) in files.iter().enumerate() {
            for p in 0..pages {
                assert_eq!(b.read(f, (p * PS) as u64, &mut buf).unwrap(), PS);
                assert!(buf == expect(n, p), "{name}: file {n} page {p} differs");
            }
        }
    }
}
