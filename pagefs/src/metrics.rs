//! Counters of one mount, for the daemon's `/metrics`: relaxed atomics,
//! bumped on the request path and read without locks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Counters {
    reads: AtomicU64,
    read_bytes: AtomicU64,
    writes: AtomicU64,
    write_bytes: AtomicU64,
    setattrs: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos: AtomicU64,
    sync_writes: AtomicU64,
    sync_write_nanos: AtomicU64,
    errors: AtomicU64,
}

/// A snapshot of a mount's counters since it was mounted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountMetrics {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub write_bytes: u64,
    /// `setattr` requests (sizes, modes, owners, and the times the kernel
    /// writes back; see `TIME_GRANULARITY` in `fs/caps.rs`).
    pub setattrs: u64,
    /// Flushes of the branch, and the time they took in all: `fsync` and
    /// `fsyncdir` requests, and synchronous writes (`O_DSYNC`/`O_SYNC`),
    /// each made durable before it was answered.
    pub fsyncs: u64,
    pub fsync_time: Duration,
    /// Synchronous writes (`O_DSYNC`/`O_SYNC` handles: PostgreSQL's WAL as
    /// offshoot runs it), and the time pagefs spent on them in all, from
    /// the request's arrival to its answer (the append to the store and its
    /// flush). What the writer waits for beyond that is the kernel's part:
    /// the request's queueing and the wake-ups of a serving thread and of
    /// the writer.
    pub sync_writes: u64,
    pub sync_write_time: Duration,
    /// Requests answered with an I/O, corruption or stale-branch error.
    pub errors: u64,
}

impl Counters {
    pub(crate) fn read(&self, bytes: usize) {
        self.reads.fetch_add(1, Relaxed);
        self.read_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn write(&self, bytes: usize) {
        self.writes.fetch_add(1, Relaxed);
        self.write_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn setattr(&self) {
        self.setattrs.fetch_add(1, Relaxed);
    }

    pub(crate) fn fsync(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_nanos.fetch_add(nanos(took), Relaxed);
    }

    pub(crate) fn sync_write(&self, took: Duration) {
        self.sync_writes.fetch_add(1, Relaxed);
        self.sync_write_nanos.fetch_add(nanos(took), Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MountMetrics {
        MountMetrics {
            reads: self.reads.load(Relaxed),
            read_bytes: self.read_bytes.load(Relaxed),
            writes: self.writes.load(Relaxed),
            write_bytes: self.write_bytes.load(Relaxed),
            setattrs: self.setattrs.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            fsync_time: Duration::from_nanos(self.fsync_nanos.load(Relaxed)),
            sync_writes: self.sync_writes.load(Relaxed),
            sync_write_time: Duration::from_nanos(self.sync_write_nanos.load(Relaxed)),
            errors: self.errors.load(Relaxed),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
