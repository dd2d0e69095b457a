//! A branch created with annotations is one durable commit: a crash at any
//! write of the create leaves either the branch with every annotation or no
//! branch, never a branch without them.

use std::collections::BTreeMap;
use std::sync::Arc;

use offshoot_storage::{MemoryBackend, Store, StoreOptions};

fn annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("offshoot.protected".to_string(), "true".to_string()),
        (
            "offshoot.expires_at".to_string(),
            "2030-01-01T00:00:00Z".to_string(),
        ),
    ])
}

#[test]
fn a_create_with_annotations_is_all_or_nothing_at_every_crash_point() {
    let mut seen_absent = false;
    let mut seen_whole = false;
    for allowed in 0..64 {
        let backend = Arc::new(MemoryBackend::new());
        let store = Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap();
        store.create_branch("main", None).unwrap();
        backend.set_fail_writes_after(Some(allowed));
        let created = store.create_branch_annotated("pr-1", Some("main"), annotations());
        backend.set_fail_writes_after(None);
        drop(store);

        let image = Arc::new(backend.crash_image());
        let store = Store::open_with_backend(image, StoreOptions::default()).unwrap();
        match store.branch_info("pr-1") {
            Ok(info) => {
                assert_eq!(
                    info.annotations,
                    annotations(),
                    "crash after {allowed} writes"
                );
                seen_whole = true;
            }
            Err(_) => {
                assert!(
                    created.is_err(),
                    "an acknowledged create was lost after {allowed} writes"
                );
                seen_absent = true;
            }
        }
        if created.is_ok() {
            break;
        }
    }
    assert!(
        seen_absent && seen_whole,
        "the crash points did not cover both outcomes"
    );
}
