//! Open directory handles: a listing taken at `opendir`, served by index.
//!
//! POSIX wants a directory stream to neither skip nor repeat entries that
//! were there all along while others are added or removed; reading a
//! snapshot by position gives exactly that. The handle is dropped at
//! `releasedir`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use offshoot_storage::{FileId, FileKind};
use parking_lot::Mutex;

/// One entry of a listing, `.` and `..` included.
pub(crate) struct Entry {
    pub(crate) name: OsString,
    pub(crate) id: FileId,
    pub(crate) kind: FileKind,
}

#[derive(Default)]
pub(crate) struct DirHandles {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Vec<Entry>>>>,
}

impl DirHandles {
    pub(crate) fn insert(&self, entries: Vec<Entry>) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.open.lock().insert(fh, Arc::new(entries));
        fh
    }

    pub(crate) fn get(&self, fh: u64) -> Option<Arc<Vec<Entry>>> {
        self.open.lock().get(&fh).cloned()
    }

    pub(crate) fn remove(&self, fh: u64) {
        self.open.lock().remove(&fh);
    }
}
