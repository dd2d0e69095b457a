//! `Store::metrics`: every counter moves with the operations it counts.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{
    FileId, FileKind, MemoryBackend, SetAttr, Store, StoreError, StoreOptions, PAGE_SIZE,
};

const PS: usize = PAGE_SIZE;

#[test]
fn counters_follow_reads_writes_syncs_seals_and_corruption() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap();
    assert_eq!(store.metrics(), Default::default());
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = b
        .create(FileId::ROOT, OsStr::new("f"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    // Three pages, the middle one all zeros (a hole: no record).
    let mut data = vec![1u8; 3 * PS];
    data[PS..2 * PS].fill(0);
    b.write(f, 0, &data).unwrap();
    let m = store.metrics();
    assert_eq!((m.page_writes, m.bytes_written), (2, 3 * PS as u64));

    let mut buf = vec![0u8; PS + 100];
    assert_eq!(b.read(f, (PS - 50) as u64, &mut buf).unwrap(), PS + 100);
    let m = store.metrics();
    assert_eq!((m.page_reads, m.bytes_read), (3, PS as u64 + 100));

    b.sync().unwrap();
    b.sync().unwrap();
    let m = store.metrics();
    assert_eq!(m.syncs, 2);
    assert_eq!(m.sync_buckets.iter().sum::<u64>(), 2);

    // A truncation inside a stored page carries the page.
    b.setattr(
        f,
        SetAttr {
            size: Some(PS as u64 / 2),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(store.metrics().page_writes, 3);

    assert_eq!(store.metrics().seals, 0);
    store.create_branch("child", Some("main")).unwrap();
    assert_eq!(store.metrics().seals, 1);
    // Nothing new in main: the next fork seals nothing.
    store.create_branch("child2", Some("main")).unwrap();
    assert_eq!(store.metrics().seals, 1);

    // Damage the page record main's next write goes to, then read it.
    b.write(f, 4 * PS as u64, &vec![7u8; PS]).unwrap();
    use offshoot_storage::Backend;
    let mut logs: Vec<String> = backend
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("layer-"))
        .collect();
    logs.sort();
    let hit = logs.iter().any(|name| {
        backend
            .with_bytes(name, |d| {
                let at = d.windows(PS).position(|w| w.iter().all(|&x| x == 7));
                if let Some(at) = at {
                    d[at + 10] ^= 0x40;
                }
                at.is_some()
            })
            .unwrap_or(false)
    });
    assert!(hit, "page not found");
    let mut page = vec![0u8; PS];
    assert!(matches!(
        b.read(f, 4 * PS as u64, &mut page),
        Err(StoreError::Corrupted { .. })
    ));
    assert_eq!(store.metrics().corrupted_reads, 1);
}
