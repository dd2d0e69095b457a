//! Store-wide counters for monitoring: plain relaxed atomics bumped on the
//! read, write and sync paths (no lock, one uncontended add each), read as
//! a [`StoreMetrics`] snapshot by `Store::metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (inclusive, in microseconds) of the sync latency buckets;
/// a last bucket counts the syncs slower than the last bound.
pub const SYNC_BUCKET_BOUNDS_US: [u64; 6] = [250, 1_000, 4_000, 16_000, 64_000, 256_000];
const BUCKETS: usize = SYNC_BUCKET_BOUNDS_US.len() + 1;

/// A snapshot of the store's counters since it was opened. Each field is
/// read on its own (no global atomic snapshot), so two fields may be a few
/// operations apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreMetrics {
    /// Pages served by `Branch::read` (a read spanning 3 pages counts 3;
    /// holes and unwritten pages count too).
    pub page_reads: u64,
    /// Page records appended: written pages, zeroed pages and truncations
    /// carrying a page.
    pub page_writes: u64,
    /// Bytes returned by `Branch::read`.
    pub bytes_read: u64,
    /// Bytes passed to `Branch::write`.
    pub bytes_written: u64,
    /// `Branch::sync` calls that returned Ok or Err.
    pub syncs: u64,
    /// Total time spent in those calls, in microseconds.
    pub sync_micros_total: u64,
    /// Syncs per latency bucket: `sync_buckets[i]` counts syncs that took
    /// at most `SYNC_BUCKET_BOUNDS_US[i]` µs (and more than the bound
    /// before); the last entry counts the slower ones. Not cumulative.
    pub sync_buckets: [u64; BUCKETS],
    /// Open logs sealed into immutable layers.
    pub seals: u64,
    /// Reads (and read-modify-writes) that met a failed page check and
    /// answered `Corrupted`.
    pub corrupted_reads: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    page_reads: AtomicU64,
    page_writes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    syncs: AtomicU64,
    sync_micros: AtomicU64,
    sync_buckets: [AtomicU64; BUCKETS],
    seals: AtomicU64,
    corrupted_reads: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn read(&self, pages: u64, bytes: u64) {
        add(&self.page_reads, pages);
        add(&self.bytes_read, bytes);
    }

    pub fn write(&self, pages: u64, bytes: u64) {
        add(&self.page_writes, pages);
        add(&self.bytes_written, bytes);
    }

    pub fn sync(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        add(&self.syncs, 1);
        add(&self.sync_micros, us);
        let bucket = SYNC_BUCKET_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS - 1);
        add(&self.sync_buckets[bucket], 1);
    }

    pub fn seal(&self) {
        add(&self.seals, 1);
    }

    /// Counts `res` if it is a corruption; passes it on.
    pub fn check<T>(&self, res: Result<T, crate::StoreError>) -> Result<T, crate::StoreError> {
        if let Err(crate::StoreError::Corrupted { .. }) = &res {
            add(&self.corrupted_reads, 1);
        }
        res
    }

    pub fn snapshot(&self) -> StoreMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreMetrics {
            page_reads: get(&self.page_reads),
            page_writes: get(&self.page_writes),
            bytes_read: get(&self.bytes_read),
            bytes_written: get(&self.bytes_written),
            syncs: get(&self.syncs),
            sync_micros_total: get(&self.sync_micros),
            sync_buckets: std::array::from_fn(|i| get(&self.sync_buckets[i])),
            seals: get(&self.seals),
            corrupted_reads: get(&self.corrupted_reads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_latencies_land_in_their_buckets() {
        let c = Counters::default();
        c.sync(Duration::from_micros(10));
        c.sync(Duration::from_micros(250));
        c.sync(Duration::from_micros(251));
        c.sync(Duration::from_secs(2));
        let m = c.snapshot();
        assert_eq!(m.syncs, 4);
        assert_eq!(m.sync_micros_total, 10 + 250 + 251 + 2_000_000);
        assert_eq!(m.sync_buckets, [2, 1, 0, 0, 0, 0, 1]);
    }
}
