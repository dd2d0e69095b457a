//! `Store::open_log_bytes`: what a branch just created owns, without
//! `Store::usage`'s walk of every branch.

use std::ffi::OsStr;
use std::sync::Arc;

use offshoot_storage::{FileId, FileKind, MemoryBackend, Store, StoreError, StoreOptions};

#[test]
fn a_new_branch_owns_exactly_its_open_log() {
    let store =
        Store::open_with_backend(Arc::new(MemoryBackend::new()), StoreOptions::default()).unwrap();
    store.create_branch("main", None).unwrap();
    let main = store.branch("main").unwrap();
    let f = main
        .create(FileId::ROOT, OsStr::new("t"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    main.write(f, 0, &[7u8; 3 * 8192]).unwrap();
    for name in ["a", "b", "c"] {
        store.create_branch(name, Some("main")).unwrap();
        let usage = store.usage();
        let own = store.open_log_bytes(name).unwrap();
        assert!(own > 0, "an open log has at least its header");
        assert_eq!(usage.owned_bytes.get(name).copied(), Some(own), "{name}");
    }
    // Main's open log after the seal is its own too.
    assert_eq!(
        store.usage().owned_bytes.get("main").copied(),
        Some(store.open_log_bytes("main").unwrap())
    );
    assert!(matches!(
        store.open_log_bytes("nope"),
        Err(StoreError::BranchNotFound(_))
    ));
}
