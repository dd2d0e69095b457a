//! FUSE over io_uring: the kernel hands requests to per-CPU queues of
//! entries that the server registers, and the server answers one request
//! and fetches the next in a single `io_uring_enter`, where `/dev/fuse`
//! takes a `write` and a `read`. A request is queued on the CPU it was made
//! on; its queue's threads run wherever the scheduler puts them (pinned to
//! the queue's CPU, a synchronous write took 13–17 µs longer: see
//! docs/benchmarks.md, "Queue threads unpinned"), at real-time priority
//! where the process may ask for it (`priority`).
//!
//! Once the kernel has granted `FUSE_OVER_IO_URING` at `FUSE_INIT`, it
//! holds every request until each CPU's queue has an entry, then sends
//! all of them through the queues (only `FORGET` and `INTERRUPT` still go
//! to `/dev/fuse`, where the mount's fuser session serves them). So the
//! entries are registered before `mount` returns, and a queue thread must
//! be able to answer anything: `queue` serves reads, writes and syncs
//! itself, `cold` passes the rest to a fuser session behind a socket.
//!
//! `abi` holds the kernel's structures. The kernel offers this transport
//! when its `fuse.enable_uring` parameter is on (Linux 6.14 and later).

mod abi;
mod cold;
mod priority;
mod queue;

pub use priority::QueuePriority;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::thread::JoinHandle;

use fuser::SessionACL;

use crate::fs::PageFs;
use cold::Cold;

/// The kernel parameter that makes it offer FUSE over io_uring.
pub const ENABLE_PARAMETER: &str = "/sys/module/fuse/parameters/enable_uring";

/// Queue threads per mount, spread over the CPUs' queues (at least one per
/// queue, at most eight).
const THREADS: usize = 16;

/// The io_uring queues serving one mount.
pub(crate) struct Rings {
    /// Keeps the descriptor the entries were registered on open.
    _fuse: Arc<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    cold: Arc<Cold>,
    queues: usize,
    /// Every queue thread runs at real-time priority.
    realtime: bool,
}

impl Rings {
    /// Registers entries for every CPU's queue on the connection `fuse`,
    /// served by `fs`. Fails if the kernel refused any; the caller must then
    /// not use this connection (the kernel may hold requests for queues
    /// that never filled).
    pub(crate) fn start(
        fuse: OwnedFd,
        fs: PageFs,
        acl: SessionACL,
        priority: QueuePriority,
    ) -> io::Result<Rings> {
        let offered = fs
            .offered()
            .ok_or_else(|| io::Error::other("FUSE_INIT has not happened"))?;
        let cold = Arc::new(Cold::start(fs.clone(), acl, offered)?);
        let fuse = Arc::new(fuse);
        let queues = possible_cpus()?;
        let per_queue = (THREADS / queues).clamp(1, 8);
        let (registered, outcomes) = channel();
        let mut threads = Vec::with_capacity(queues * per_queue);
        for queue in 0..queues {
            for _ in 0..per_queue {
                let (fs, cold, registered, raw) = (
                    fs.clone(),
                    cold.clone(),
                    registered.clone(),
                    fuse.as_raw_fd(),
                );
                let queue_id =
                    u16::try_from(queue).map_err(|_| io::Error::other("too many CPUs"))?;
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("pagefs-q{queue}"))
                        .spawn(move || {
                            queue::serve(raw, queue_id, fs, cold, priority, registered)
                        })?,
                );
            }
        }
        drop(registered);
        let mut realtime = 0;
        for _ in 0..threads.len() {
            match outcomes.recv() {
                Ok(Ok(rt)) => realtime += usize::from(rt),
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(io::Error::other("a queue thread ended before registering")),
            }
        }
        if priority == QueuePriority::RealTime && realtime < threads.len() {
            tracing::info!(
                realtime,
                threads = threads.len(),
                "io_uring queue threads not allowed real-time priority (needs CAP_SYS_NICE); serving at normal priority"
            );
        }
        Ok(Rings {
            _fuse: fuse,
            realtime: realtime == threads.len(),
            threads,
            cold,
            queues,
        })
    }

    /// Whether every queue thread runs at real-time priority.
    pub(crate) fn realtime(&self) -> bool {
        self.realtime
    }

    /// Queue threads serving the mount.
    pub(crate) fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queues (one per possible CPU).
    pub(crate) fn queues(&self) -> usize {
        self.queues
    }

    /// Whether every queue thread has finished (the connection ended).
    pub(crate) fn finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Waits for the queue threads (they end with the connection), then
    /// stops the socket session.
    pub(crate) fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        if let Ok(cold) = Arc::try_unwrap(self.cold) {
            cold.stop();
        }
    }
}

/// Whether the kernel offers FUSE over io_uring to new mounts.
pub fn kernel_offers() -> bool {
    std::fs::read_to_string(ENABLE_PARAMETER).is_ok_and(|v| v.trim() == "Y")
}

/// The kernel makes one queue per possible CPU (numbered from 0).
fn possible_cpus() -> io::Result<usize> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let last = list
        .trim()
        .split([',', '-'])
        .filter_map(|n| n.parse::<usize>().ok())
        .max()
        .ok_or_else(|| io::Error::other(format!("cannot read the possible CPUs from {list:?}")))?;
    Ok(last + 1)
}
