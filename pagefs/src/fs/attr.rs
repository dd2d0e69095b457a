//! Conversions between the page store's types and FUSE's: attributes, file
//! kinds and error numbers. Pure functions, no state.

use std::time::{Duration, SystemTime};

use fuser::{Errno, FileType, INodeNo};
use offshoot_storage::{FileAttr, FileId, FileKind, StoreError, PAGE_SIZE};

/// How long the kernel may cache attributes and names. pagefs is the only
/// writer of a mounted branch, so the kernel's caches never go stale behind
/// its back; a long time saves a round trip per `stat` and per path step.
pub(crate) const TTL: Duration = Duration::from_secs(3600);

/// The FUSE inode number of a store inode: the same number (root 1 == 1).
pub(crate) fn ino(id: FileId) -> INodeNo {
    INodeNo(id.0)
}

/// The store inode a FUSE inode number names.
pub(crate) fn file_id(ino: INodeNo) -> FileId {
    FileId(ino.0)
}

pub(crate) fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
    }
}

/// The attributes FUSE reports for a store inode.
pub(crate) fn fuse_attr(attr: &FileAttr) -> fuser::FileAttr {
    fuser::FileAttr {
        ino: ino(attr.id),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.ctime,
        kind: file_type(attr.kind),
        perm: (attr.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: PAGE_SIZE as u32,
        flags: 0,
    }
}

/// The errno to answer for a store error. Real failures (I/O, corruption,
/// a stale branch) are logged here, once, where they are handled; expected
/// answers such as "not found" are not.
pub(crate) fn errno(op: &'static str, err: &StoreError) -> Errno {
    match err {
        StoreError::Io(_) | StoreError::Corrupted { .. } | StoreError::Stale => {
            tracing::error!(op, error = %err, "page store operation failed");
        }
        _ => tracing::debug!(op, error = %err, "page store answered an error"),
    }
    Errno::from_i32(err.errno())
}

/// `TimeOrNow` as a point in time.
pub(crate) fn time(t: fuser::TimeOrNow) -> SystemTime {
    match t {
        fuser::TimeOrNow::SpecificTime(t) => t,
        fuser::TimeOrNow::Now => SystemTime::now(),
    }
}
