//! Changes the control plane makes inside a branch's files, through the store
//! (never through a mount): a new or reset branch loses the runtime files of
//! the PostgreSQL that ran on its source, so that its own PostgreSQL starts
//! with normal crash recovery instead of refusing on a stale lock file.

use std::ffi::OsStr;

use offshoot_storage::{FileId, Store, StoreError};

/// Runtime files of a postmaster, in the data directory's root.
const POSTMASTER_FILES: [&str; 2] = ["postmaster.pid", "postmaster.opts"];

/// Removes `postmaster.pid` and `postmaster.opts` from the root of branch
/// `name` (absent files are fine) and syncs the branch.
pub fn remove_postmaster_files(store: &Store, name: &str) -> Result<(), StoreError> {
    let branch = store.branch(name)?;
    for file in POSTMASTER_FILES {
        match branch.unlink(FileId::ROOT, OsStr::new(file)) {
            Ok(orphan) => branch.release_orphan(orphan)?,
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    branch.sync()
}
