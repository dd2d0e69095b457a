//! The I/O seam: every byte the store reads or writes goes through
//! [`Backend`]. [`DiskBackend`] is the real thing (one flat directory);
//! [`MemoryBackend`] keeps only what was made durable, so a test can take
//! the image a crash would leave and inject I/O errors.
//!
//! The store's directory is flat: the manifest and one file per layer.
//! Durability model, as the disk gives it: bytes written to a file are
//! durable once `sync_data` on that file returns; a created, renamed or
//! removed name is durable once `sync_dir` returns.

mod disk;
mod memory;

use std::io;
use std::ops::Deref;
use std::sync::Arc;

pub use disk::DiskBackend;
pub use memory::MemoryBackend;

/// Read-only bytes of a whole file (an mmap on disk).
pub type Mapping = Box<dyn Deref<Target = [u8]> + Send + Sync>;

/// A store directory.
pub trait Backend: Send + Sync + 'static {
    /// Opens `name`; with `create`, creates it empty if missing.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn BackendFile>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Names of every file.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Makes created, renamed and removed names durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// An open file.
#[allow(clippy::len_without_is_empty)]
pub trait BackendFile: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; an error if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `data` at `offset`.
    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes every byte written so far durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Tells the OS that `len` bytes from `offset`, already durable, will
    /// not be read soon, so it may free their cached pages. A hint only: it
    /// changes no content, and a backend with no cache of its own ignores it.
    fn release_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Asks the OS to start writing `len` bytes from `offset` to the device
    /// now, without waiting for it. A hint only: nothing is durable before
    /// `sync_data` returns, which then has less left to write.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Maps the whole file read-only. The caller guarantees the file is
    /// never written or truncated again while mapped.
    fn map(&self) -> io::Result<Mapping>;
}
