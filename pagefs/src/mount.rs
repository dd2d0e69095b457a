//! Mounting a branch, serving it, and taking the mount down again.
//!
//! Threading: fuser's session runs `THREADS` event-loop threads, each with
//! its own clone of the `/dev/fuse` descriptor (`FUSE_DEV_IOC_CLONE`). The
//! kernel hands each request to whichever thread reads next, and a thread
//! answers it before reading another; so a `fsync` waiting for the disk
//! occupies one thread while the others serve reads and writes of other
//! PostgreSQL backends. The serving threads only ever call the store: they
//! never touch the mount themselves (that would deadlock).
//!
//! When the kernel offers FUSE over io_uring (and `MountOptions::classic`
//! does not say otherwise), requests come through per-CPU io_uring queues
//! instead (see `uring`); the `/dev/fuse` threads then serve `FORGET` and
//! `INTERRUPT` alone. If the queues cannot be set up, the mount is made
//! again without them.
//!
//! Unmounting: a plain `umount(2)` first (or `fusermount3 -u` when not
//! root), which ends the connection and so the threads. If the mount is
//! busy, it is detached lazily and the connection aborted through the
//! fusectl filesystem when that is mounted, then the threads are joined
//! with a deadline. Stopping PostgreSQL first is the caller's job.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use offshoot_storage::Branch;

use crate::fs::{Negotiated, PageFs};
use crate::metrics::{Counters, MountMetrics};
use crate::stale::lazy_unmount;
use crate::uring::{QueuePriority, Rings};
use crate::PagefsError;

/// Event-loop threads per mount: enough for every backend of a small
/// PostgreSQL plus its background writers to have a request in flight.
const THREADS: usize = 16;

/// How long `unmount` waits for the serving threads at each step.
const JOIN_DEADLINE: Duration = Duration::from_secs(10);

/// How a branch is mounted.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Let users other than the mounting one in (`allow_other`): true when
    /// the daemon is root and PostgreSQL runs as another user. Needs root or
    /// `user_allow_other` in /etc/fuse.conf.
    pub allow_other: bool,
    /// Shown as the source in /proc/mounts, e.g. "offshoot:feature-x".
    pub fs_name: String,
    /// Serve `/dev/fuse` only, even when the kernel offers io_uring queues.
    pub classic: bool,
    /// How the io_uring queue threads are scheduled (real-time by default).
    pub queue_priority: QueuePriority,
}

/// How the kernel's requests reach a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Read from `/dev/fuse` by a pool of threads.
    DevFuse { threads: usize },
    /// Per-CPU io_uring queues (`FUSE_OVER_IO_URING`); `realtime`: every
    /// queue thread runs at real-time priority (see [`QueuePriority`]).
    IoUring {
        queues: usize,
        threads: usize,
        realtime: bool,
    },
}

/// A mounted branch, served on background threads until unmounted or dropped.
pub struct Mount {
    mountpoint: PathBuf,
    unmounter: SessionUnmounter,
    session: Option<JoinHandle<io::Result<()>>>,
    negotiated: Negotiated,
    counters: Arc<Counters>,
    /// The connection's number under /sys/fs/fuse/connections.
    connection: Option<u64>,
    rings: Option<Rings>,
}

/// Mounts `branch` at `mountpoint` and serves it on background threads until
/// the returned `Mount` is unmounted or dropped.
pub fn mount(branch: Branch, mountpoint: &Path, opts: MountOptions) -> Result<Mount, PagefsError> {
    let mountpoint = mountpoint
        .canonicalize()
        .map_err(|source| PagefsError::MountPoint {
            path: mountpoint.to_path_buf(),
            source,
        })?;
    if opts.classic {
        return mount_once(branch, &mountpoint, &opts, false).map_err(Failed::into_error);
    }
    match mount_once(branch.clone(), &mountpoint, &opts, true) {
        Err(Failed::Queues(first)) => {
            tracing::warn!(mountpoint = %mountpoint.display(), error = %first, "io_uring queues failed to start; mounting again on /dev/fuse");
            mount_once(branch, &mountpoint, &opts, false).map_err(Failed::into_error)
        }
        other => other.map_err(Failed::into_error),
    }
}

/// A failed mount attempt (already taken down): the queues alone failed
/// (worth another attempt on `/dev/fuse`), or the mount itself.
enum Failed {
    Queues(PagefsError),
    Mount(PagefsError),
}

impl Failed {
    fn into_error(self) -> PagefsError {
        match self {
            Failed::Queues(err) | Failed::Mount(err) => err,
        }
    }
}

fn mount_once(
    branch: Branch,
    mountpoint: &Path,
    opts: &MountOptions,
    want_uring: bool,
) -> Result<Mount, Failed> {
    let mountpoint = mountpoint.to_path_buf();
    let negotiated = Arc::new(OnceLock::new());
    let counters = Arc::new(Counters::default());
    let notifier = Arc::new(OnceLock::new());
    let fs = PageFs::new(
        branch,
        negotiated.clone(),
        notifier.clone(),
        counters.clone(),
        want_uring,
    );
    let shared = fs.clone();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(opts.fs_name.clone()),
        MountOption::Subtype("offshoot".into()),
        // The kernel checks owner and mode bits itself (PostgreSQL's data
        // directory is 0700 and owned by its user).
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::RW,
    ];
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(THREADS);
    config.clone_fd = true;

    let acl = config.acl;
    let error = |source| PagefsError::Mount {
        path: mountpoint.clone(),
        source,
    };
    let mount_err = |source| Failed::Mount(error(source));
    let mut session = Session::new(fs, &mountpoint, &config).map_err(mount_err)?;
    let unmounter = session.unmount_callable();
    let _ = notifier.set(session.notifier());
    let negotiated = negotiated.get().copied().unwrap_or_default();
    let fuse = session.as_fd().try_clone_to_owned().map_err(mount_err)?;
    let session = std::thread::Builder::new()
        .name("pagefs-session".into())
        .spawn(move || session.run())
        .map_err(mount_err)?;
    let connection = connection_of(&mountpoint);
    let mut mount = Mount {
        mountpoint: mountpoint.clone(),
        unmounter,
        session: Some(session),
        negotiated,
        counters,
        connection,
        rings: None,
    };
    if negotiated.io_uring {
        // Until every queue has an entry the kernel holds all requests,
        // so nothing may touch the mount before this.
        match Rings::start(fuse, shared, acl, opts.queue_priority) {
            Ok(rings) => mount.rings = Some(rings),
            Err(source) => {
                drop(mount);
                return Err(Failed::Queues(error(source)));
            }
        }
    }
    if let Some(conn) = connection {
        lift_dirty_limit(conn);
    }
    tracing::info!(
        mountpoint = %mountpoint.display(),
        fs_name = %opts.fs_name,
        transport = ?mount.transport(),
        "branch mounted"
    );
    Ok(mount)
}

impl Mount {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The FUSE capabilities in effect.
    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// How requests reach this mount.
    pub fn transport(&self) -> Transport {
        match &self.rings {
            Some(rings) => Transport::IoUring {
                queues: rings.queues(),
                threads: rings.threads(),
                realtime: rings.realtime(),
            },
            None => Transport::DevFuse { threads: THREADS },
        }
    }

    /// Counters since the mount was made (for the daemon's `/metrics`).
    pub fn metrics(&self) -> MountMetrics {
        self.counters.snapshot()
    }

    /// Unmounts and waits for the serving threads to finish. Drop does the same.
    pub fn unmount(mut self) -> Result<(), PagefsError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), PagefsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let path = self.mountpoint.clone();
        let fail = |reason: String| PagefsError::Unmount {
            path: path.clone(),
            reason,
        };
        if let Err(err) = self.unmounter.unmount() {
            tracing::warn!(mountpoint = %path.display(), error = %err, "unmount failed; detaching lazily");
            lazy_unmount(&path).map_err(&fail)?;
        }
        if !wait_finished(&session, JOIN_DEADLINE) {
            tracing::warn!(mountpoint = %path.display(), "mount still in use; aborting the FUSE connection");
            self.abort_connection();
            if !wait_finished(&session, JOIN_DEADLINE) {
                return Err(fail(
                    "serving threads did not finish (mount still in use)".into(),
                ));
            }
        }
        if let Some(rings) = self.rings.take() {
            if !wait_until(|| rings.finished(), JOIN_DEADLINE) {
                tracing::warn!(mountpoint = %path.display(), "io_uring queues still busy; aborting the FUSE connection");
                self.abort_connection();
                if !wait_until(|| rings.finished(), JOIN_DEADLINE) {
                    return Err(fail("io_uring queue threads did not finish".into()));
                }
            }
            rings.join();
        }
        match session.join() {
            Ok(Ok(())) => {
                tracing::info!(mountpoint = %path.display(), "branch unmounted");
                Ok(())
            }
            Ok(Err(source)) => Err(PagefsError::Session { path, source }),
            Err(_) => Err(fail("a serving thread panicked".into())),
        }
    }

    fn abort_connection(&self) {
        let Some(conn) = self.connection else {
            return;
        };
        let abort = format!("/sys/fs/fuse/connections/{conn}/abort");
        if let Err(err) = std::fs::write(&abort, "1") {
            tracing::warn!(%abort, error = %err, "cannot abort FUSE connection (is fusectl mounted?)");
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            tracing::error!(error = %err, "unmount on drop failed");
        }
    }
}

/// The kernel gives every FUSE mount a strict dirty-page limit of 1% of the
/// dirty threshold (tens of MB), so that a stuck daemon cannot pin memory;
/// past it, every writer is throttled in `balance_dirty_pages`, which with
/// the writeback cache makes PostgreSQL's buffer writes crawl. The store
/// serves writeback promptly, so lift the limit to what a local disk gets
/// (Linux 6.2+ exposes it per device in sysfs; older kernels keep the limit).
fn lift_dirty_limit(conn: u64) {
    let bdi = format!("/sys/class/bdi/0:{conn}");
    for (knob, value) in [("strict_limit", "0"), ("max_ratio", "100")] {
        let path = format!("{bdi}/{knob}");
        if let Err(err) = std::fs::write(&path, value) {
            tracing::warn!(%path, error = %err, "cannot lift the FUSE dirty-page limit");
        }
    }
}

fn wait_finished(handle: &JoinHandle<io::Result<()>>, deadline: Duration) -> bool {
    wait_until(|| handle.is_finished(), deadline)
}

fn wait_until(done: impl Fn() -> bool, deadline: Duration) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The FUSE connection number of the mount at `mountpoint` (its anonymous
/// device minor), read from /proc/self/mountinfo rather than by `stat` on
/// the mount itself.
fn connection_of(mountpoint: &Path) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|line| {
        // id parent major:minor root mount_point options ... - fstype source ...
        let mut fields = line.split(' ');
        let dev = fields.nth(2)?;
        let point = fields.nth(1)?;
        let fs_type = line.split(" - ").nth(1)?.split(' ').next()?;
        let is_ours =
            fs_type.starts_with("fuse") && Path::new(&crate::stale::unescape(point)) == mountpoint;
        let (major, minor) = dev.split_once(':')?;
        (is_ours && major == "0").then(|| minor.parse().ok())?
    })
}
