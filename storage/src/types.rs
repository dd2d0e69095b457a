//! Plain data types of the API: attributes, directory entries, branch info,
//! options and reports.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::ids::{BranchId, FileId};

/// Size of a page: the unit of copy-on-write.
pub const PAGE_SIZE: usize = 8192;

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
}

/// Attributes of an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAttr {
    pub id: FileId,
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits only.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// A change of attributes; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

/// Flags of `rename`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// Fail with `AlreadyExists` instead of replacing the target.
    pub no_replace: bool,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub id: FileId,
    pub kind: FileKind,
}

/// Filesystem statistics, as `statfs` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: u32,
}

/// What the store knows of a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchInfo {
    pub id: BranchId,
    pub name: String,
    /// The parent's name, while the parent exists.
    pub parent: Option<String>,
    pub created_at: SystemTime,
    pub reset_at: Option<SystemTime>,
    pub annotations: BTreeMap<String, String>,
}

/// What `Store::gc` reclaimed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub layers_removed: u64,
    pub bytes_removed: u64,
    pub timelines_removed: u64,
}

/// Bytes on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageUsage {
    /// Every file of the store.
    pub total_bytes: u64,
    /// Per branch name: bytes of layers only that branch can read.
    pub owned_bytes: BTreeMap<String, u64>,
}

/// Tuning of the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// An open layer is sealed once its log grows past this many bytes.
    pub seal_threshold_bytes: u64,
    /// The manifest's delta log is compacted into a snapshot once it grows
    /// past this many bytes (and past the size of the snapshot itself).
    pub manifest_compact_bytes: u64,
    /// An open log that holds records keeps at least half this many bytes
    /// of written zeros ahead of its end, zero-filled (and flushed) this
    /// many at a time by a `sync` after its flush, so a later `sync`
    /// overwrites bytes already on disk instead of growing the file (no
    /// journal commit for the new length). An open log that never received
    /// a record stays at its header's size. 0 turns it off.
    pub log_zero_chunk_bytes: u64,
    /// Zero-fill on the thread of the `sync` that found it due, before that
    /// `sync` returns, instead of on a background thread. Off by default:
    /// writing and flushing a chunk takes milliseconds, which would stall
    /// the commit that happened to trigger it (and every commit queued
    /// behind it). Tests that check the file's exact shape after a `sync`
    /// turn it on.
    pub log_zero_fill_inline: bool,
    /// Failpoints (tests only).
    #[cfg(feature = "testing")]
    pub failpoints: crate::failpoint::Failpoints,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            seal_threshold_bytes: 64 << 20,
            manifest_compact_bytes: 4 << 20,
            log_zero_chunk_bytes: 4 << 20,
            log_zero_fill_inline: false,
            #[cfg(feature = "testing")]
            failpoints: Default::default(),
        }
    }
}
