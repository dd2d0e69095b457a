//! The FUSE view: presents one branch of the page store as a directory that
//! PostgreSQL accepts and runs on as its data directory. Knows nothing of
//! PostgreSQL itself.
//!
//! - `mount` owns the mount's lifecycle and its threads,
//! - `fs` turns FUSE requests into `offshoot_storage::Branch` calls,
//! - `uring` serves a mount over FUSE's io_uring queues when the kernel
//!   offers them,
//! - `stale` finds and removes mounts left by a daemon that died.
//!
//! See `docs/pagefs.md` for the options chosen and the pitfalls handled.

mod error;
mod fs;
mod metrics;
mod mount;
mod stale;
mod uring;

pub use error::PagefsError;
pub use fs::{Negotiated, MAX_REQUEST};
pub use metrics::MountMetrics;
pub use mount::{mount, Mount, MountOptions, Transport};
pub use stale::clean_stale_mounts;
pub use uring::{
    kernel_offers as kernel_offers_uring, QueuePriority, ENABLE_PARAMETER as URING_PARAMETER,
};
