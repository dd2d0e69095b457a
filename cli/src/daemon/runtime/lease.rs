//! A lease on a running branch: held by the proxy for as long as a client
//! connection lives. It counts the branch's open connections (the idle
//! reaper never stops a branch with one out); dropping it records activity
//! in the supervisor, from which the idle time is measured.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use offshoot_compute::Supervisor;
use offshoot_storage::BranchId;

use super::Slot;

/// Keeps a branch counted as in use until dropped.
pub struct Lease {
    slot: Arc<Slot>,
    supervisor: Supervisor<BranchId>,
}

impl Lease {
    /// Called with the slot's lock held, so the reaper sees the count.
    pub(super) fn new(slot: Arc<Slot>, supervisor: Supervisor<BranchId>) -> Lease {
        slot.active.fetch_add(1, Ordering::SeqCst);
        Lease { slot, supervisor }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Activity first, then the count: the reaper reads them in the other order.
        self.supervisor.touch(&self.slot.id);
        self.slot.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("branch", &self.slot.id)
            .finish()
    }
}
