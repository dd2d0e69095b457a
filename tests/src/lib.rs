//! End-to-end tests live in `tests/tests/`; this library holds their shared
//! harness: [`Daemon`] starts `offshoot up` on a temporary home with free
//! ports, runs the CLI, psql, pgbench and tokio-postgres against it, and
//! cleans up (processes, FUSE mounts, the home) even when a test panics.
//!
//! Harness helpers panic with a readable message instead of returning errors:
//! a failed step is a failed test, and the message says which step and why.

pub mod acked;
pub mod daemon;
pub mod disk;
pub mod exec;
pub mod logcheck;
pub mod loopfs;
pub mod paths;
pub mod pgbench;
pub mod procs;
pub mod serial;

pub use daemon::{Daemon, DaemonOptions, StopReport};
pub use exec::CmdOutput;

use std::time::{Duration, Instant};

/// Polls `cond` every 50 ms until it returns true or `timeout` passes;
/// returns whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
