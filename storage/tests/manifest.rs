//! The manifest is a snapshot plus a log of small delta batches: a commit
//! appends bytes independent of how many branches exist, compaction and
//! replay keep every change, and a torn tail loses only the last batch.

use std::sync::Arc;

use offshoot_storage::{BranchInfo, MemoryBackend, Store, StoreOptions};

fn manifest_len(backend: &MemoryBackend) -> usize {
    backend.with_bytes("MANIFEST", |d| d.len()).unwrap()
}

/// What must survive a reopen (creation times included).
fn listing(store: &Store) -> Vec<BranchInfo> {
    store.branches()
}

#[test]
fn a_branch_create_appends_a_delta_whose_size_does_not_grow_with_branch_count() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap();
    store.create_branch("main", None).unwrap();
    let mut growth = Vec::new();
    for i in 0..400 {
        let before = manifest_len(&backend);
        store
            .create_branch(&format!("pr-{i:04}"), Some("main"))
            .unwrap();
        growth.push(manifest_len(&backend) - before);
    }
    let (first, last) = (growth[10], growth[399]);
    assert!(last < 1024, "one create appended {last} bytes");
    assert!(
        last <= first + 16,
        "commit size grows with the branch count: {first} bytes at 10 branches, {last} at 400"
    );
}

#[test]
fn compaction_and_replay_keep_every_change_across_crashes() {
    let backend = Arc::new(MemoryBackend::new());
    let opts = StoreOptions {
        manifest_compact_bytes: 4096,
        ..Default::default()
    };
    let store = Store::open_with_backend(backend.clone(), opts.clone()).unwrap();
    store.create_branch("main", None).unwrap();
    let mut last_len = manifest_len(&backend);
    let mut compactions = 0;
    for i in 0..120 {
        let name = format!("b{i}");
        store.create_branch(&name, Some("main")).unwrap();
        match i % 5 {
            0 => {
                store.set_annotation(&name, "ttl", Some("1h")).unwrap();
            }
            1 => {
                store.rename_branch(&name, &format!("renamed-{i}")).unwrap();
            }
            2 => store.drop_branch(&name).unwrap(),
            3 => {
                store.reset_branch(&name, None).unwrap();
            }
            _ => {
                store.gc().unwrap();
            }
        }
        let len = manifest_len(&backend);
        if len < last_len {
            compactions += 1;
        }
        last_len = len;
        if i % 7 == 0 {
            let image = Arc::new(backend.crash_image());
            let crashed = Store::open_with_backend(image, opts.clone()).unwrap();
            assert_eq!(listing(&crashed), listing(&store), "after step {i}");
        }
    }
    // The log passed the threshold and was rewritten as a snapshot.
    assert!(compactions >= 2, "only {compactions} compactions");
    assert!(
        compactions <= 20,
        "{compactions} compactions in 120 steps: rewrites are not amortized"
    );
    use offshoot_storage::Backend;
    assert!(!backend.list().unwrap().iter().any(|n| n == "MANIFEST.tmp"));
    let expected = listing(&store);
    drop(store);
    let reopened = Store::open_with_backend(backend, opts).unwrap();
    assert_eq!(listing(&reopened), expected);
    assert_eq!(expected.len(), 1 + 120 - 24);
    assert!(expected.iter().any(|b| b.name == "renamed-1"));
    assert_eq!(reopened.branch_info("b0").unwrap().annotations["ttl"], "1h");
    assert!(reopened.branch_info("b3").unwrap().reset_at.is_some());
}

#[test]
fn a_torn_manifest_tail_loses_only_the_last_commit() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap();
    store.create_branch("main", None).unwrap();
    store.create_branch("a", Some("main")).unwrap();
    let before_b = manifest_len(&backend);
    store.create_branch("b", Some("main")).unwrap();
    drop(store);
    // Damage the last byte of the last batch.
    backend
        .with_bytes("MANIFEST", |d| {
            let last = d.len() - 1;
            d[last] ^= 0x20;
        })
        .unwrap();
    let store = Store::open_with_backend(backend.clone(), StoreOptions::default()).unwrap();
    let names: Vec<String> = store.branches().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["a", "main"]);
    assert_eq!(
        manifest_len(&backend),
        before_b,
        "the torn batch was not cut"
    );
    // The cut log keeps working.
    store.create_branch("c", Some("a")).unwrap();
    drop(store);
    let store = Store::open_with_backend(backend, StoreOptions::default()).unwrap();
    assert_eq!(store.branch_info("c").unwrap().parent.as_deref(), Some("a"));
}
