//! PostgreSQL per branch: finds the binaries, runs `initdb`, starts and stops
//! one unmodified `postgres` per running branch and restarts it after a crash.
//!
//! The crate works on any directory: the daemon hands it a branch's pagefs
//! mount, tests hand it a plain temporary directory. It knows nothing of the
//! page store or FUSE.
//!
//! - [`binaries`]: where PostgreSQL is installed ([`PgBinaries::discover`]);
//! - [`run_as`]: which OS user runs it;
//! - [`secrets`]: the `postgres` and internal passwords and their files;
//! - [`initdb()`]: a new cluster with offshoot's settings and internal role;
//! - [`compute`]: one running postmaster ([`Compute`]);
//! - [`supervisor`]: one compute per branch, started once, restarted after a crash.
//! - [`checkpoint`]: a checkpoint asked of a running compute before its branch is copied.
//! - [`handoff`]: the PostgreSQL module that takes a client socket over from the proxy.
//! - [`wal_dir`]: a branch's WAL directory beside the page store, shared with
//!   its children at create.
//!
//! How PostgreSQL is run and why is written down in `docs/compute.md`.

pub mod binaries;
pub mod checkpoint;
pub mod compute;
pub mod config;
mod error;
pub mod handoff;
mod initdb;
mod internal_session;
mod process;
mod replace_file;
pub mod run_as;
pub mod secrets;
pub mod supervisor;
pub mod wal_dir;

pub use binaries::{DiscoverySources, PgBinaries, PgVersion};
pub use checkpoint::CheckpointOutcome;
pub use compute::{Compute, ComputeSpec};
pub use error::ComputeError;
pub use initdb::initdb;
pub use replace_file::remove_stale_temporaries;
pub use run_as::RunAs;
pub use secrets::Secrets;
pub use supervisor::{ComputeState, RunningCompute, Supervisor, SupervisorOptions};
pub use wal_dir::{complete_pending, WalSnapshot};

/// The role offshoot itself uses over the private socket (readiness probes,
/// maintenance). A superuser; the proxy refuses it.
pub const INTERNAL_ROLE: &str = "offshoot_system";
