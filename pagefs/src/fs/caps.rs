//! What pagefs asks of the kernel at `FUSE_INIT`, and what it got.
//!
//! fuser's defaults are conservative (one-page writes aside, no writeback
//! cache, no readdirplus, serial directory operations); PostgreSQL's speed on
//! FUSE comes from the kernel doing the work, so each capability below is
//! requested when the kernel offers it and the outcome is recorded.

use std::io;
use std::time::Duration;

use fuser::{InitFlags, KernelConfig};

/// Largest write (and read) request: 1 MiB, the kernel's default page limit.
pub const MAX_REQUEST: u32 = 1 << 20;

/// Granularity of the timestamps the kernel keeps. With the writeback cache
/// the kernel sets mtime and ctime on every write and, when they changed,
/// sends them as a `setattr` inside the next `fsync`, before the `FSYNC`
/// itself: one more round trip on every commit of PostgreSQL's WAL. At a
/// one-second granularity a file's times change at most once a second, so
/// nearly every commit goes without it (as on ext3, times are then whole
/// seconds; PostgreSQL does not look at them).
const TIME_GRANULARITY: Duration = Duration::from_secs(1);

/// The capabilities in effect on a mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The kernel caches writes and sends them in the background
    /// (`FUSE_WRITEBACK_CACHE`); it then owns file size and mtime.
    pub writeback_cache: bool,
    /// Lookups and readdirs in one directory run in parallel.
    pub parallel_dirops: bool,
    /// `readdir` returns attributes too, saving a lookup per entry.
    pub readdirplus: bool,
    /// Reads of one file may be in flight at once (readahead).
    pub async_read: bool,
    /// Requests may span more than 32 pages.
    pub max_pages: bool,
    /// The largest write request, in bytes.
    pub max_write: u32,
    /// The kernel agreed to serve requests over io_uring queues
    /// (`FUSE_OVER_IO_URING`); whether the queues then registered is the
    /// mount's to say (`Mount::transport`).
    pub io_uring: bool,
}

/// The capabilities pagefs asks for, with their names for the log.
const WANTED: &[(InitFlags, &str)] = &[
    (InitFlags::FUSE_ASYNC_READ, "async_read"),
    (InitFlags::FUSE_BIG_WRITES, "big_writes"),
    (InitFlags::FUSE_MAX_PAGES, "max_pages"),
    (InitFlags::FUSE_WRITEBACK_CACHE, "writeback_cache"),
    (InitFlags::FUSE_PARALLEL_DIROPS, "parallel_dirops"),
    (InitFlags::FUSE_DO_READDIRPLUS, "readdirplus"),
    (InitFlags::FUSE_READDIRPLUS_AUTO, "readdirplus_auto"),
    (InitFlags::FUSE_ASYNC_DIO, "async_dio"),
    (InitFlags::FUSE_CACHE_SYMLINKS, "cache_symlinks"),
];

/// Configures the connection and says what was granted. `want_uring`
/// asks for FUSE over io_uring too, when the kernel offers it (it does
/// when its `fuse.enable_uring` parameter is on).
pub(crate) fn negotiate(config: &mut KernelConfig, want_uring: bool) -> io::Result<Negotiated> {
    let offered = config.capabilities();
    let mut granted = InitFlags::empty();
    for &(flag, name) in WANTED {
        if offered.contains(flag) {
            // Cannot fail: the kernel offered it.
            if config.add_capabilities(flag).is_ok() {
                granted |= flag;
            }
        } else {
            tracing::warn!(capability = name, "kernel does not offer FUSE capability");
        }
    }
    if want_uring {
        let flag = InitFlags::FUSE_OVER_IO_URING;
        if offered.contains(flag) && config.add_capabilities(flag).is_ok() {
            granted |= flag;
        } else {
            tracing::info!("kernel does not offer FUSE over io_uring (fuse.enable_uring is off); serving /dev/fuse");
        }
    }
    let max_write = match config.set_max_write(MAX_REQUEST) {
        Ok(_) => MAX_REQUEST,
        Err(nearest) => {
            let _ = config.set_max_write(nearest);
            nearest
        }
    };
    if let Err(nearest) = config.set_max_readahead(MAX_REQUEST) {
        let _ = config.set_max_readahead(nearest);
    }
    // Background requests are readahead and writeback: let many be in
    // flight, the worker threads take them in parallel.
    let _ = config.set_max_background(64);
    let _ = config.set_congestion_threshold(48);
    let _ = config.set_time_granularity(TIME_GRANULARITY);
    let negotiated = Negotiated {
        writeback_cache: granted.contains(InitFlags::FUSE_WRITEBACK_CACHE),
        parallel_dirops: granted.contains(InitFlags::FUSE_PARALLEL_DIROPS),
        readdirplus: granted.contains(InitFlags::FUSE_DO_READDIRPLUS),
        async_read: granted.contains(InitFlags::FUSE_ASYNC_READ),
        max_pages: granted.contains(InitFlags::FUSE_MAX_PAGES),
        max_write,
        io_uring: granted.contains(InitFlags::FUSE_OVER_IO_URING),
    };
    tracing::info!(?negotiated, "FUSE connection negotiated");
    Ok(negotiated)
}
