//! Which files' writes go to the branch's log and which are deferred.
//!
//! Files in `pg_wal/` (the directory of that name at the root) are
//! written with `Branch::write`; every other file with
//! `Branch::write_deferred`, and an `fsync` of any file is
//! `Branch::sync_file`. So PostgreSQL's WAL flush (an fsync of a segment)
//! flushes the log alone: the WAL and every metadata change, not the data
//! pages the kernel wrote back since the last flush, which PostgreSQL
//! makes durable itself at its checkpoint by fsyncing each data file.
//!
//! The choice is about speed only. `sync_file` makes a file's writes
//! durable whichever way they were written, so a file classed wrongly
//! (renamed into or out of `pg_wal`, seen before `pg_wal` existed) is
//! still safe; it only flushes more or less than it could.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};

use offshoot_storage::{Branch, FileAttr, FileId, FileKind};
use parking_lot::RwLock;

const WAL_DIR: &str = "pg_wal";

#[derive(Default)]
pub(crate) struct WriteRouting {
    /// The id of `/pg_wal`, once found; 0 until then.
    wal_dir: AtomicU64,
    /// Files seen in `/pg_wal`: their writes are logged.
    logged: RwLock<HashSet<FileId>>,
}

impl WriteRouting {
    /// The kernel learned `attr` as an entry of `parent`.
    pub(crate) fn note(&self, branch: &Branch, parent: FileId, attr: &FileAttr) {
        if attr.kind == FileKind::File && self.wal_dir(branch) == Some(parent) {
            self.logged.write().insert(attr.id);
        }
    }

    /// Whether writes to `id` go to the log (not deferred).
    pub(crate) fn is_logged(&self, id: FileId) -> bool {
        self.logged.read().contains(&id)
    }

    /// `id` is gone for good.
    pub(crate) fn forget(&self, id: FileId) {
        self.logged.write().remove(&id);
    }

    fn wal_dir(&self, branch: &Branch) -> Option<FileId> {
        match self.wal_dir.load(Ordering::Acquire) {
            0 => {
                let attr = branch.lookup(FileId::ROOT, OsStr::new(WAL_DIR)).ok()?;
                (attr.kind == FileKind::Directory).then(|| {
                    self.wal_dir.store(attr.id.0, Ordering::Release);
                    attr.id
                })
            }
            id => Some(FileId(id)),
        }
    }
}
