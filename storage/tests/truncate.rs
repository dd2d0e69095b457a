//! Truncation to a size inside a page is one log record: there is no moment
//! (in memory or in a crash image) where the file is shorter but the page
//! holding its new end still shows the bytes that were cut off.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{
    Branch, FileId, FileKind, MemoryBackend, SetAttr, Store, StoreOptions, PAGE_SIZE,
};

const PS: usize = PAGE_SIZE;
const CUT: usize = 5000;

fn set_size(b: &Branch, f: FileId, size: usize) -> Result<(), offshoot_storage::StoreError> {
    b.setattr(
        f,
        SetAttr {
            size: Some(size as u64),
            ..Default::default()
        },
    )
    .map(|_| ())
}

/// Extends `f` back to two pages and checks what it shows: either the
/// truncation never happened (all old bytes) or it did (zeros past `CUT`).
fn check_after_extend(b: &Branch, f: FileId, when: &str) {
    let size = b.getattr(f).unwrap().size as usize;
    if size == 2 * PS {
        let mut buf = vec![0u8; 2 * PS];
        assert_eq!(b.read(f, 0, &mut buf).unwrap(), 2 * PS);
        assert!(
            buf.iter().all(|&x| x == 0xAB),
            "{when}: truncate not applied, yet bytes changed"
        );
        return;
    }
    assert_eq!(size, CUT, "{when}: unexpected size");
    set_size(b, f, 2 * PS).unwrap();
    let mut buf = vec![0u8; 2 * PS];
    assert_eq!(b.read(f, 0, &mut buf).unwrap(), 2 * PS);
    assert!(buf[..CUT].iter().all(|&x| x == 0xAB), "{when}: prefix lost");
    let stale = buf[CUT..].iter().filter(|&&x| x != 0).count();
    assert_eq!(
        stale, 0,
        "{when}: {stale} stale bytes past the truncation point after extend"
    );
}

#[test]
fn crash_between_truncate_steps_never_shows_stale_bytes_after_extend() {
    let backend = Arc::new(MemoryBackend::new());
    let opts = StoreOptions::default();
    let store = Store::open_with_backend(backend.clone(), opts.clone()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = b
        .create(FileId::ROOT, OsStr::new("rel"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    b.write(f, 0, &vec![0xABu8; 2 * PS]).unwrap();
    b.sync().unwrap();

    // One write reaches the log, every later one fails: a truncation that
    // takes two appends stops between them.
    backend.set_fail_writes_after(Some(1));
    let _ = set_size(&b, f, CUT);
    backend.set_fail_writes_after(None);
    b.sync().unwrap();
    let image = Arc::new(backend.crash_image());

    check_after_extend(&b, f, "in memory");
    let crashed = Store::open_with_backend(image, opts).unwrap();
    check_after_extend(&crashed.branch("main").unwrap(), f, "after crash");
}

#[test]
fn truncate_inside_a_page_survives_seal_and_reopen() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = b
        .create(FileId::ROOT, OsStr::new("rel"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    b.write(f, 0, &vec![0xABu8; 2 * PS]).unwrap();
    set_size(&b, f, CUT).unwrap();
    // The fork seals the log holding the truncation record: the sealed
    // index must point at it.
    store.create_branch("child", Some("main")).unwrap();
    b.sync().unwrap();
    drop((b, store));
    let store = Store::open_with_backend(backend, StoreOptions::default()).unwrap();
    for name in ["main", "child"] {
        let b = store.branch(name).unwrap();
        check_after_extend(&b, f, name);
    }
}
