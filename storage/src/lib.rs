//! The copy-on-write page store.
//!
//! Owns everything offshoot writes to disk for branch contents: the manifest,
//! each timeline's open layer (an append-only log) and the sealed, immutable
//! layer files. Knows nothing of FUSE, processes or sockets. The bytes of
//! every file are specified in `docs/storage-format.md`.

pub mod backend;
mod branch;
mod error;
#[cfg(feature = "testing")]
mod failpoint;
mod ids;
mod layer;
mod manifest;
mod metrics;
mod patch;
mod record;
mod store;
mod timeline;
mod tree;
mod types;

pub use backend::{Backend, BackendFile, DiskBackend, Mapping, MemoryBackend};
pub use branch::Branch;
pub use error::StoreError;
#[cfg(feature = "testing")]
pub use failpoint::Failpoints;
pub use ids::{BranchId, FileId, LayerId, PageNo, Seq, TimelineId};
pub use metrics::{StoreMetrics, SYNC_BUCKET_BOUNDS_US};
pub use store::Store;
pub use types::{
    BranchInfo, DirEntry, FileAttr, FileKind, GcReport, RenameFlags, SetAttr, StatFs, StorageUsage,
    StoreOptions, PAGE_SIZE,
};
