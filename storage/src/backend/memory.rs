//! An in-memory backend for tests. It tracks, per file, the bytes written
//! and the bytes made durable by `sync_data`, and per name whether it was
//! made durable by `sync_dir`; [`MemoryBackend::crash_image`] returns a new
//! backend holding only what a power loss would leave. Errors can be
//! injected into writes and syncs.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Backend, BackendFile, Mapping};

#[derive(Default)]
struct Inode {
    data: Mutex<Vec<u8>>,
    durable: Mutex<Vec<u8>>,
}

#[derive(Default)]
struct Dir {
    live: BTreeMap<String, Arc<Inode>>,
    durable: BTreeMap<String, Arc<Inode>>,
}

/// Files in memory that remember what was fsynced.
pub struct MemoryBackend {
    dir: Mutex<Dir>,
    fail_writes: Arc<AtomicBool>,
    fail_syncs: Arc<AtomicBool>,
    /// Writes still allowed before writes start failing; `u64::MAX`: no limit.
    writes_left: Arc<AtomicU64>,
    /// Bytes whose writeback was asked to start (`start_writeback`).
    writeback_started: Arc<AtomicU64>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            dir: Mutex::default(),
            fail_writes: Arc::default(),
            fail_syncs: Arc::default(),
            writes_left: Arc::new(AtomicU64::new(u64::MAX)),
            writeback_started: Arc::default(),
        }
    }
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// A new backend holding only durable names with their durable bytes.
    pub fn crash_image(&self) -> MemoryBackend {
        let dir = self.dir.lock();
        let mut image = Dir::default();
        for (name, inode) in &dir.durable {
            let bytes = inode.durable.lock().clone();
            let copy = Arc::new(Inode {
                data: Mutex::new(bytes.clone()),
                durable: Mutex::new(bytes),
            });
            image.live.insert(name.clone(), copy.clone());
            image.durable.insert(name.clone(), copy);
        }
        MemoryBackend {
            dir: Mutex::new(image),
            ..MemoryBackend::default()
        }
    }

    /// Makes every later write fail (or not).
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Lets `n` more writes (`write_all_at`, `set_len`) through, then makes
    /// every later one fail, so a test can stop an operation between two
    /// of its writes; `None` lifts the limit.
    pub fn set_fail_writes_after(&self, n: Option<u64>) {
        self.writes_left
            .store(n.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Makes every later sync fail (or not).
    pub fn set_fail_syncs(&self, fail: bool) {
        self.fail_syncs.store(fail, Ordering::SeqCst);
    }

    /// Bytes of all files whose writeback was asked to start early.
    pub fn writeback_started(&self) -> u64 {
        self.writeback_started.load(Ordering::SeqCst)
    }

    /// The current bytes of `name` (tests flip bytes through this).
    pub fn with_bytes<R>(&self, name: &str, f: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
        let inode = self.dir.lock().live.get(name).cloned()?;
        let mut data = inode.data.lock();
        let r = f(&mut data);
        *inode.durable.lock() = data.clone();
        Some(r)
    }
}

fn injected() -> io::Error {
    io::Error::other("injected I/O error")
}

impl Backend for MemoryBackend {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn BackendFile>> {
        let mut dir = self.dir.lock();
        let inode = match dir.live.get(name) {
            Some(inode) => inode.clone(),
            None if create => {
                let inode = Arc::new(Inode::default());
                dir.live.insert(name.to_string(), inode.clone());
                inode
            }
            None => return Err(io::Error::from(io::ErrorKind::NotFound)),
        };
        Ok(Arc::new(MemFile {
            inode,
            fail_writes: self.fail_writes.clone(),
            fail_syncs: self.fail_syncs.clone(),
            writes_left: self.writes_left.clone(),
            writeback_started: self.writeback_started.clone(),
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut dir = self.dir.lock();
        let inode = dir
            .live
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        dir.live.insert(to.to_string(), inode);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut dir = self.dir.lock();
        dir.live
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.dir.lock().live.keys().cloned().collect())
    }

    fn sync_dir(&self) -> io::Result<()> {
        if self.fail_syncs.load(Ordering::SeqCst) {
            return Err(injected());
        }
        let mut dir = self.dir.lock();
        dir.durable = dir.live.clone();
        Ok(())
    }
}

struct MemFile {
    inode: Arc<Inode>,
    fail_writes: Arc<AtomicBool>,
    fail_syncs: Arc<AtomicBool>,
    writes_left: Arc<AtomicU64>,
    writeback_started: Arc<AtomicU64>,
}

impl MemFile {
    fn check_write(&self) -> io::Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(injected());
        }
        let allowed =
            self.writes_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                    u64::MAX => Some(n),
                    0 => None,
                    n => Some(n - 1),
                });
        allowed.map(|_| ()).map_err(|_| injected())
    }
}

impl BackendFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.inode.data.lock().len() as u64)
    }

    fn start_writeback(&self, _offset: u64, len: u64) -> io::Result<()> {
        self.writeback_started.fetch_add(len, Ordering::SeqCst);
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.inode.data.lock();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&end| end <= data.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.check_write()?;
        let mut data = self.inode.data.lock();
        let start = offset as usize;
        if data.len() < start + bytes.len() {
            data.resize(start + bytes.len(), 0);
        }
        data[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_write()?;
        self.inode.data.lock().resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.fail_syncs.load(Ordering::SeqCst) {
            return Err(injected());
        }
        // The live bytes stay locked until they are the durable ones: two
        // concurrent syncs must not let the older copy land last (a real
        // flush never makes a file's durable state go back in time).
        let data = self.inode.data.lock();
        *self.inode.durable.lock() = data.clone();
        Ok(())
    }

    fn map(&self) -> io::Result<Mapping> {
        Ok(Box::new(self.inode.data.lock().clone()))
    }
}
