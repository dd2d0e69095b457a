//! Crash consistency on the fsync-tracking backend: after every sync the
//! image a power loss would leave is reopened; the synced branch must read
//! exactly as the model did at the sync, and every page of every other
//! branch must be a version that branch really had since its last sync.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use offshoot_storage::{
    FileId, FileKind, MemoryBackend, SetAttr, Store, StoreError, StoreOptions, PAGE_SIZE,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PS: usize = PAGE_SIZE;
type Files = BTreeMap<String, Vec<u8>>;

fn opts() -> StoreOptions {
    StoreOptions {
        seal_threshold_bytes: 40 * 1024,
        // Several zero-fills per log before it seals.
        log_zero_chunk_bytes: 16 * 1024,
        ..Default::default()
    }
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

/// Page versions each (branch, file, page) may show after a crash.
type Allowed = HashMap<(String, String, usize), HashSet<u64>>;

fn allow(allowed: &mut Allowed, branch: &str, files: &Files) {
    for (f, data) in files {
        for p in 0..data.len().div_ceil(PS) + 1 {
            allowed
                .entry((branch.to_string(), f.clone(), p))
                .or_default()
                .insert(page_hash(data, p));
        }
    }
}

fn read_files(store: &Store, branch: &str) -> Result<Files, StoreError> {
    let b = store.branch(branch)?;
    let mut out = Files::new();
    for e in b.readdir(FileId::ROOT)? {
        let size = b.getattr(e.id)?.size as usize;
        let mut buf = vec![0u8; size];
        let n = b.read(e.id, 0, &mut buf)?;
        assert_eq!(n, size);
        out.insert(e.name.to_string_lossy().into_owned(), buf);
    }
    Ok(out)
}

#[test]
fn every_sync_survives_a_crash_and_nothing_is_invented() {
    let mut rng = StdRng::seed_from_u64(0x0ff5_400f);
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let mut model: BTreeMap<String, Files> = BTreeMap::new();
    model.insert("main".into(), Files::new());
    let mut allowed: Allowed = HashMap::new();
    let mut syncs = 0;
    for step in 0..400 {
        let names: Vec<String> = model.keys().cloned().collect();
        let bn = names[rng.gen_range(0..names.len())].clone();
        let b = store.branch(&bn).unwrap();
        match rng.gen_range(0..10) {
            0..=5 => {
                let f = format!("f{}", rng.gen_range(0..3));
                let id = match b.lookup(FileId::ROOT, OsStr::new(&f)) {
                    Ok(a) => a.id,
                    Err(_) => {
                        b.create(FileId::ROOT, OsStr::new(&f), FileKind::File, 0o600, 0, 0)
                            .unwrap()
                            .id
                    }
                };
                let off = rng.gen_range(0..5 * PS);
                let len = rng.gen_range(1..2 * PS);
                let byte = rng.gen::<u8>() | 1;
                let data = vec![byte; len];
                b.write(id, off as u64, &data).unwrap();
                let v = model.get_mut(&bn).unwrap().entry(f).or_default();
                if v.len() < off + len {
                    v.resize(off + len, 0);
                }
                v[off..off + len].copy_from_slice(&data);
            }
            6 => {
                let f = format!("f{}", rng.gen_range(0..3));
                if let Ok(a) = b.lookup(FileId::ROOT, OsStr::new(&f)) {
                    let size = rng.gen_range(0..4 * PS);
                    b.setattr(
                        a.id,
                        SetAttr {
                            size: Some(size as u64),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    model
                        .get_mut(&bn)
                        .unwrap()
                        .get_mut(&f)
                        .unwrap()
                        .resize(size, 0);
                }
            }
            7 if model.len() < 5 => {
                let child = format!("c{step}");
                store.create_branch(&child, Some(&bn)).unwrap();
                let files = model[&bn].clone();
                allow(&mut allowed, &child, &files);
                model.insert(child, files);
                // Forking seals the parent: its state so far is durable.
                let files = model[&bn].clone();
                allowed.retain(|k, _| k.0 != bn);
                allow(&mut allowed, &bn, &files);
            }
            _ => {
                b.sync().unwrap();
                syncs += 1;
                let files = model[&bn].clone();
                allowed.retain(|k, _| k.0 != bn);
                allow(&mut allowed, &bn, &files);
                let image = Arc::new(backend.crash_image());
                let crashed = Store::open_with_backend(image, opts()).unwrap();
                assert_eq!(
                    read_files(&crashed, &bn).unwrap(),
                    files,
                    "synced branch {bn} after step {step}"
                );
                for other in model.keys().filter(|n| **n != bn) {
                    let got = read_files(&crashed, other).unwrap();
                    for (f, data) in &got {
                        for p in 0..data.len().div_ceil(PS) {
                            let ok = allowed
                                .get(&(other.clone(), f.clone(), p))
                                .is_some_and(|s| s.contains(&page_hash(data, p)));
                            assert!(ok, "branch {other} file {f} page {p} shows a version it never had (step {step})");
                        }
                    }
                }
                continue;
            }
        }
        let files = model[&bn].clone();
        allow(&mut allowed, &bn, &files);
    }
    assert!(syncs > 50);
}

#[test]
fn crash_between_seal_and_manifest_update_loses_nothing() {
    let backend = Arc::new(MemoryBackend::new());
    let opts = opts();
    let store = Store::open_with_backend(backend.clone(), opts.clone()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = b
        .create(FileId::ROOT, OsStr::new("f"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    b.write(f, 0, &vec![9u8; 3 * PS]).unwrap();
    b.sync().unwrap();
    opts.failpoints.arm("seal-before-manifest");
    assert!(store.create_branch("child", Some("main")).is_err());
    let crashed =
        Store::open_with_backend(Arc::new(backend.crash_image()), StoreOptions::default()).unwrap();
    assert!(crashed.branch_info("child").is_err());
    let files = read_files(&crashed, "main").unwrap();
    assert_eq!(files["f"], vec![9u8; 3 * PS]);
    // The recovered store keeps working: fork now succeeds.
    crashed.create_branch("child", Some("main")).unwrap();
    assert_eq!(
        read_files(&crashed, "child").unwrap()["f"],
        vec![9u8; 3 * PS]
    );
}

#[test]
fn a_failed_flush_fails_every_later_sync() {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::open_with_backend(backend.clone(), opts()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let f = b
        .create(FileId::ROOT, OsStr::new("f"), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id;
    b.write(f, 0, b"x").unwrap();
    backend.set_fail_syncs(true);
    assert!(b.sync().is_err());
    backend.set_fail_syncs(false);
    b.write(f, 0, b"y").unwrap();
    assert!(
        b.sync().is_err(),
        "a sync after a lost flush must not report success"
    );
}
