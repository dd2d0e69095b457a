//! A lease on a running branch: held by the proxy for as long as a client
//! connection lives. It counts the branch's active connections; dropping it
//! records the time of last activity, from which the idle reaper measures.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::Slot;

/// Keeps a branch counted as in use until dropped.
pub struct Lease {
    slot: Arc<Slot>,
    socket: PathBuf,
}

impl Lease {
    /// Called with the slot's lock held, so the reaper sees the count.
    pub(super) fn new(slot: Arc<Slot>, socket: PathBuf) -> Lease {
        slot.active.fetch_add(1, Ordering::SeqCst);
        Lease { slot, socket }
    }

    /// The compute's Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Activity first, then the count: the reaper reads them in the other order.
        *self.slot.last_activity.lock() = Instant::now();
        self.slot.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("branch", &self.slot.id)
            .field("socket", &self.socket)
            .finish()
    }
}
