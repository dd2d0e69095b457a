//! Files opened for synchronous writes (`O_DSYNC`, `O_SYNC`): PostgreSQL's
//! WAL as offshoot runs it (`wal_sync_method = open_datasync`).
//!
//! Such an open is answered with `FOPEN_DIRECT_IO`, so each `write(2)` on
//! it is one FUSE `WRITE` that carries the file's flags, with no copy into
//! the page cache, and a write with `O_DSYNC` or `O_SYNC` is answered only
//! once `Branch::sync()` has made it durable. A commit is then one round
//! trip, where write + `fdatasync` through the writeback cache take two
//! (`WRITE` of the dirty page, then `FSYNC`); the kernel sends no `FSYNC`
//! of its own after a direct write.
//!
//! Other opens of the same file stay cached, so crash recovery and WAL
//! senders read WAL through the page cache with read-ahead. To keep those
//! pages true, a synchronous write to an inode that has had a cached open
//! (see `inodes`) invalidates the range it wrote in the kernel's cache
//! before it is answered: after the store holds the new bytes, so a read
//! that raced the write and cached the old ones is dropped too. (The
//! kernel these were measured on, 6.18, also drops the range before it
//! sends a direct write; that alone leaves the race open.)

use fuser::{INodeNo, Notifier};

/// Whether an open or a write with these file flags is synchronous.
pub(crate) fn wants_sync(flags: i32) -> bool {
    flags & (libc::O_DSYNC | libc::O_SYNC) != 0
}

/// Drops the kernel's cached pages of `ino` in `offset..offset + len`.
/// A failure is logged, not returned: the write itself is durable, and the
/// kernel refuses only when it holds nothing of the inode (`ENOENT`).
pub(crate) fn invalidate(notifier: Option<&Notifier>, ino: INodeNo, offset: u64, len: usize) {
    let Some(notifier) = notifier else {
        return;
    };
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    if let Err(err) = notifier.inval_inode(ino, offset, len) {
        if err.raw_os_error() != Some(libc::ENOENT) {
            tracing::warn!(ino = ino.0, offset, len, %err, "invalidating cached WAL pages failed");
        }
    }
}
