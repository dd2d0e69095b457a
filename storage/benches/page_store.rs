//! Page store micro-benchmarks: fork cost against index size and on the
//! real disk (idle parent, parent with unsealed pages), many forks in a
//! row, cached page reads against ancestry depth, sequential page writes
//! with and without sync.

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use offshoot_storage::{
    Backend, BackendFile, Branch, FileId, FileKind, Mapping, MemoryBackend, Store, StoreOptions,
    PAGE_SIZE,
};

/// Keeps names and file lengths only (manifest included): lets a benchmark build a million-page index
/// without writing 8 GiB. Reads return zeros (never used for page reads).
#[derive(Default)]
struct DiscardBackend {
    inner: MemoryBackend,
}

struct DiscardFile {
    len: AtomicU64,
    meta: Arc<dyn BackendFile>,
}

impl Backend for DiscardBackend {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn BackendFile>> {
        let meta = self.inner.open(name, create)?;
        Ok(Arc::new(DiscardFile {
            len: AtomicU64::new(0),
            meta,
        }))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn sync_dir(&self) -> io::Result<()> {
        // The memory backend's would copy the whole name table: not the
        // store's work, and a directory fsync on disk is one call.
        Ok(())
    }
}

impl BackendFile for DiscardFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.len.load(Ordering::Relaxed))
    }
    fn read_exact_at(&self, buf: &mut [u8], _offset: u64) -> io::Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.len
            .fetch_max(offset + data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.len.store(len, Ordering::Relaxed);
        self.meta.set_len(0)
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn map(&self) -> io::Result<Mapping> {
        Ok(Box::new(Vec::new()))
    }
}

fn new_file(b: &Branch, name: &str) -> FileId {
    b.create(FileId::ROOT, OsStr::new(name), FileKind::File, 0o600, 0, 0)
        .unwrap()
        .id
}

fn page(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE_SIZE];
    p[..8].copy_from_slice(&(i + 1).to_le_bytes());
    p
}

/// A store whose `main` holds `pages` distinct pages (in 1 GiB files).
fn store_with_pages(backend: Arc<dyn Backend>, pages: u64) -> (Store, FileId) {
    let store = Store::open_with_backend(backend, StoreOptions::default()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let mut file = new_file(&b, "rel0");
    let chunk: Vec<u8> = (0..16).flat_map(page).collect();
    for i in (0..pages).step_by(16) {
        if i > 0 && i % 131072 == 0 {
            file = new_file(&b, &format!("rel{}", i / 131072));
        }
        b.write(file, (i % 131072) * PAGE_SIZE as u64, &chunk)
            .unwrap();
    }
    (store, file)
}

fn fork(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork");
    for pages in [10_000u64, 1_000_000] {
        let (store, file) = store_with_pages(Arc::new(DiscardBackend::default()), pages);
        let main = store.branch("main").unwrap();
        g.bench_function(BenchmarkId::new("discard_backend", pages), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    main.write(file, 0, &page(i)).unwrap();
                    let t = Instant::now();
                    store.create_branch("child", Some("main")).unwrap();
                    total += t.elapsed();
                    store.drop_branch("child").unwrap();
                    if i % 64 == 63 {
                        store.gc().unwrap();
                    }
                }
                total
            })
        });
    }
    // Real disk, real fsyncs: what a user waits for.
    let dir = tempfile::tempdir().unwrap();
    let (store, file) = store_with_pages(
        Arc::new(offshoot_storage::DiskBackend::new(dir.path()).unwrap()),
        10_000,
    );
    let main = store.branch("main").unwrap();
    g.bench_function(BenchmarkId::new("disk", 10_000), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                main.write(file, 0, &page(i)).unwrap();
                let t = Instant::now();
                store.create_branch("child", Some("main")).unwrap();
                total += t.elapsed();
                store.drop_branch("child").unwrap();
                if i % 64 == 63 {
                    store.gc().unwrap();
                }
            }
            total
        })
    });
    // A running 1 GiB database on the real disk: fork cost with nothing
    // new in the parent (one manifest flush) and with 1,000 pages written
    // since the last fork (seal: one log flush, then one manifest flush).
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let (store, file) = store_with_pages(
        Arc::new(offshoot_storage::DiskBackend::new(dir.path()).unwrap()),
        131_072,
    );
    let main = store.branch("main").unwrap();
    main.sync().unwrap();
    g.sample_size(20);
    for unsealed in [0u64, 1000] {
        let label = if unsealed == 0 {
            "disk_1GiB_parent_idle".to_string()
        } else {
            format!("disk_1GiB_parent_{unsealed}_unsealed_pages")
        };
        let mut n = 0u64;
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for k in 0..unsealed {
                        main.write(file, k * PAGE_SIZE as u64, &page(n + k))
                            .unwrap();
                    }
                    n += unsealed;
                    let t = Instant::now();
                    store.create_branch("child", Some("main")).unwrap();
                    total += t.elapsed();
                    store.drop_branch("child").unwrap();
                    store.gc().unwrap();
                }
                total
            })
        });
    }
    g.finish();
}

/// Where disk benchmarks keep their stores (`OFFSHOOT_BENCH_DIR`, else the
/// system temporary directory).
fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("OFFSHOOT_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir)
}

/// `n` forks of one idle parent in a row, each a new branch that stays:
/// the total must grow linearly with `n` (no commit may cost O(branches)).
fn fork_many(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork_many");
    g.sample_size(10);
    // Every sample the same number of runs (at least one each).
    g.sampling_mode(SamplingMode::Flat);
    for n in [250usize, 1000] {
        g.bench_function(BenchmarkId::new("discard_backend", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (store, _) = store_with_pages(Arc::new(DiscardBackend::default()), 16);
                    let t = Instant::now();
                    for i in 0..n {
                        store
                            .create_branch(&format!("pr-{i}"), Some("main"))
                            .unwrap();
                    }
                    total += t.elapsed();
                }
                total
            })
        });
    }
    for n in [250usize, 1000] {
        g.bench_function(BenchmarkId::new("disk", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
                    let backend = offshoot_storage::DiskBackend::new(dir.path()).unwrap();
                    let (store, _) = store_with_pages(Arc::new(backend), 16);
                    let t = Instant::now();
                    for i in 0..n {
                        store
                            .create_branch(&format!("pr-{i}"), Some("main"))
                            .unwrap();
                    }
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn read_depth(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (store, file) = store_with_pages(
        Arc::new(offshoot_storage::DiskBackend::new(dir.path()).unwrap()),
        4096,
    );
    let mut parent = "main".to_string();
    for d in 1..=50 {
        let name = format!("d{d}");
        store.create_branch(&name, Some(&parent)).unwrap();
        // Each level changes a few pages of its own.
        let b = store.branch(&name).unwrap();
        for k in 0..8u64 {
            b.write(file, (d * 64 + k) * PAGE_SIZE as u64, &page(d * 1000 + k))
                .unwrap();
        }
        parent = name;
    }
    let mut g = c.benchmark_group("cached_page_read");
    g.throughput(Throughput::Bytes(PAGE_SIZE as u64));
    for (label, name) in [("depth_0", "main"), ("depth_50", "d50")] {
        let b = store.branch(name).unwrap();
        let mut buf = vec![0u8; PAGE_SIZE];
        let mut i = 0u64;
        g.bench_function(label, |bench| {
            bench.iter(|| {
                i = (i + 7919) % 4096;
                b.read(file, i * PAGE_SIZE as u64, &mut buf).unwrap()
            })
        });
    }
    g.finish();
}

fn sequential_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("sequential_write");
    g.throughput(Throughput::Bytes(PAGE_SIZE as u64));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store.create_branch("main", None).unwrap();
    let b = store.branch("main").unwrap();
    let file = new_file(&b, "wal");
    let mut at = 0u64;
    let data = page(42);
    g.bench_function("8k_no_sync", |bench| {
        bench.iter(|| {
            b.write(file, at * PAGE_SIZE as u64, &data).unwrap();
            at = (at + 1) % 131072;
        })
    });
    g.bench_function("8k_then_sync", |bench| {
        bench.iter(|| {
            b.write(file, at * PAGE_SIZE as u64, &data).unwrap();
            b.sync().unwrap();
            at = (at + 1) % 131072;
        })
    });
    g.finish();
}

criterion_group!(benches, fork, fork_many, read_depth, sequential_write);
criterion_main!(benches);
