//! One daemon at a time per test process. nextest already runs the e2e tests
//! one by one; this permit gives the same under plain `cargo test`, whose
//! threads would otherwise start several daemons (and PostgreSQLs) at once.

use std::sync::{Condvar, Mutex};

static BUSY: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

/// Held by a running [`crate::Daemon`]; released on drop.
pub struct SerialPermit(());

impl SerialPermit {
    pub fn acquire() -> SerialPermit {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        SerialPermit(())
    }
}

impl Drop for SerialPermit {
    fn drop(&mut self) {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        *busy = false;
        FREED.notify_one();
    }
}
