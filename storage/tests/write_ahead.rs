//! Writeback started ahead of flushes: once a branch has appended a few
//! hundred KiB of records since the last start, the store asks the OS to
//! start writing them (a hint; durability still comes from `sync`).

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{FileId, FileKind, MemoryBackend, Store, StoreOptions, PAGE_SIZE};

const PS: usize = PAGE_SIZE;

#[test]
fn appends_past_a_few_hundred_kib_start_their_writeback_and_small_ones_do_not() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = b
        .create(FileId::ROOT, OsStr::new("f"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    let page: Vec<u8> = (0..PS).map(|i| (i % 251) as u8 + 1).collect();
    // Ten pages: far below the threshold.
    for p in 0..10 {
        b.write(f, (p * PS) as u64, &page).unwrap();
    }
    assert_eq!(
        backend.writeback_started(),
        0,
        "small appends start no writeback"
    );
    // 1 MiB more, a page at a time, as the kernel writes data pages back.
    for p in 10..138 {
        b.write(f, (p * PS) as u64, &page).unwrap();
    }
    let started = backend.writeback_started();
    let appended = (138 * (PS + 25)) as u64;
    assert!(
        started >= appended - (256 << 10) && started <= appended,
        "writeback started for {started} of {appended} bytes appended"
    );
    // Nothing about durability changed: a crash image before `sync` holds
    // none of it.
    let image = Arc::new(backend.crash_image());
    let crashed = Store::open_with_backend(image, StoreOptions::default()).unwrap();
    let f_in_image = crashed
        .branch("main")
        .unwrap()
        .lookup(FileId::ROOT, OsStr::new("f"));
    assert!(f_in_image.is_err(), "the file was never synced");
}
