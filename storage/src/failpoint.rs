//! Failpoints that make an operation fail between two steps, so tests can
//! take a crash image at that moment. Compiled only with the `testing`
//! feature.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

/// A set of armed failpoint names, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct Failpoints {
    armed: Arc<Mutex<HashSet<String>>>,
}

impl Failpoints {
    /// Arms `name`: the next time the store passes it, the operation fails.
    pub fn arm(&self, name: &str) {
        self.armed.lock().insert(name.to_string());
    }

    /// Disarms every failpoint.
    pub fn clear(&self) {
        self.armed.lock().clear();
    }

    pub(crate) fn check(&self, name: &str) -> std::io::Result<()> {
        if self.armed.lock().contains(name) {
            return Err(std::io::Error::other(format!("failpoint {name}")));
        }
        Ok(())
    }
}
