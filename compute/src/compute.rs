//! One running `postgres` for one branch.
//!
//! [`Compute::start`] writes the offshoot-managed hba file (one for every
//! compute of a home, rewritten before each start, see `replace_file.rs`:
//! computes start concurrently), prepares the private socket directory,
//! opens the branch's log file (appending, as the daemon's user) and spawns
//! the postmaster directly — never `pg_ctl` — as [`RunAs`], in a process
//! group of its own, with its stdout and stderr on the log file. It is ready
//! when its log says `database system is ready to accept connections`; only
//! when that line does not show up does it probe the socket with a real SCRAM
//! login as [`crate::INTERNAL_ROLE`] (see `compute/ready.rs`).
//!
//! A `postmaster.pid` left by a crash that names a process which is not a
//! postmaster of this data directory (a zombie, a reused pid) is removed
//! first (see `compute/pidfile.rs`).
//!
//! [`Compute::stop`] is a fast shutdown (SIGINT) and a wait; after the timeout
//! an immediate shutdown (SIGQUIT), then SIGKILL to the whole group. Dropping
//! a `Compute` that was not stopped SIGKILLs its process group: no `postgres`
//! outlives its owner. PostgreSQL's own crash recovery runs on the next start.

mod log_file;
mod pidfile;
mod ready;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::binaries::PgBinaries;
use crate::config::{self, SOCKET_PORT};
use crate::error::ComputeError;
use crate::handoff;
use crate::process::{
    chown_to, command_as, group_alive, log_tail, require_absolute, setting_arg, signal_group,
    signal_pid,
};
use crate::replace_file;
use crate::run_as::RunAs;
use crate::secrets::Secrets;

/// How long `stop` waits after SIGQUIT before SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(5);
/// Lines of the log quoted in start errors.
const LOG_TAIL_LINES: usize = 20;

/// Everything needed to start PostgreSQL on one branch.
#[derive(Debug, Clone)]
pub struct ComputeSpec {
    /// For logs and errors (the branch name).
    pub name: String,
    /// The branch's data directory (its pagefs mount).
    pub datadir: PathBuf,
    /// Private runtime directory for the socket; created 0700, owned by the PostgreSQL user.
    pub socket_dir: PathBuf,
    /// Offshoot-managed hba file (rewritten at every start); its directory
    /// must be traversable by the PostgreSQL user.
    pub hba_file: PathBuf,
    /// One per branch, appended to.
    pub log_file: PathBuf,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

/// One running `postgres`, spawned directly (not pg_ctl) in its own process group.
#[derive(Debug)]
pub struct Compute {
    name: String,
    child: tokio::process::Child,
    pid: u32,
    socket_dir: PathBuf,
    log_file: PathBuf,
    log_offset: u64,
    startup_time: Duration,
    /// Set once the postmaster has been reaped.
    exit_status: Option<ExitStatus>,
    /// Set when `stop` finished and the process group is gone.
    stopped: bool,
}

impl Compute {
    /// Starts PostgreSQL for `spec` and waits (at most `ready_timeout`) until
    /// it accepts a login. On failure the error carries the tail of the log,
    /// and nothing is left running.
    pub async fn start(
        bins: &PgBinaries,
        run_as: &RunAs,
        spec: ComputeSpec,
        secrets: &Secrets,
        ready_timeout: Duration,
    ) -> Result<Compute, ComputeError> {
        for (path, what) in [
            (&spec.datadir, "the data directory"),
            (&spec.socket_dir, "the socket directory"),
            (&spec.hba_file, "the hba file"),
            (&spec.log_file, "the log file"),
        ] {
            require_absolute(path, what)?;
        }
        let started = Instant::now();
        write_hba(&spec.hba_file, run_as)?;
        prepare_socket_dir(&spec.socket_dir, run_as)?;
        let (log, log_offset) = open_log(&spec)?;
        if pidfile::clear_stale(&spec.datadir)? {
            log_note(
                &spec.log_file,
                "removed a stale postmaster.pid left by a crash",
            );
        }
        let socket_lock = spec.socket_dir.join(format!(".s.PGSQL.{SOCKET_PORT}.lock"));
        if pidfile::clear_stale_lock(&socket_lock, &spec.datadir)? {
            log_note(
                &spec.log_file,
                "removed a stale socket lock file left by a crash",
            );
        }

        let mut settings = config::start_settings(
            &spec.socket_dir,
            &spec.hba_file,
            bins.version.major,
            bins.lz4,
        );
        let module_dir = spec.hba_file.parent().unwrap_or(Path::new("/"));
        if let Some(preload) = handoff::preload_setting(bins, run_as, &spec.datadir, module_dir)? {
            settings.push(("shared_preload_libraries".to_owned(), preload));
        }

        let mut cmd = command_as(&bins.tool("postgres"), run_as, Path::new("/"));
        cmd.arg("-D").arg(&spec.datadir);
        for (k, v) in settings.iter().chain(&spec.settings) {
            cmd.arg("-c").arg(setting_arg(k, v));
        }
        let log_err = log
            .try_clone()
            .map_err(|e| ComputeError::io(format!("open {}", spec.log_file.display()), e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        let child = tokio::process::Command::from(cmd)
            .spawn()
            .map_err(|e| ComputeError::io(format!("spawn postgres for {}", spec.name), e))?;
        let Some(pid) = child.id() else {
            return Err(ComputeError::io(
                format!("spawn postgres for {}", spec.name),
                std::io::Error::other("the child has no pid"),
            ));
        };
        let spawned = started.elapsed();
        // From here on, dropping `compute` (error or cancellation) kills the group.
        let mut compute = Compute {
            name: spec.name.clone(),
            child,
            pid,
            socket_dir: spec.socket_dir.clone(),
            log_file: spec.log_file.clone(),
            log_offset,
            startup_time: Duration::ZERO,
            exit_status: None,
            stopped: false,
        };
        compute.wait_ready(secrets, started, ready_timeout).await?;
        compute.startup_time = started.elapsed();
        tracing::info!(
            branch = %compute.name,
            pid,
            spawned_ms = spawned.as_secs_f64() * 1000.0,
            ready_ms = compute.startup_time.as_secs_f64() * 1000.0,
            "postgres is ready"
        );
        Ok(compute)
    }

    async fn wait_ready(
        &mut self,
        secrets: &Secrets,
        started: Instant,
        timeout: Duration,
    ) -> Result<(), ComputeError> {
        let mut ready_line = ready::ReadyLine::new(&self.log_file, self.log_offset);
        let mut probes = ready::ProbeSchedule::new();
        loop {
            if let Some(status) = self.try_reap()? {
                return Err(ComputeError::ExitedEarly {
                    name: self.name.clone(),
                    status: status.to_string(),
                    log: self.log_file.clone(),
                    log_tail: self.log_tail(),
                });
            }
            // The line is printed only once the server accepts connections
            // (recovery done, socket listening): no login is needed to know.
            if ready_line.seen() && self.socket_path().exists() {
                tracing::debug!(branch = %self.name, after = ?started.elapsed(), "ready line seen");
                return Ok(());
            }
            if probes.due(started.elapsed()) {
                match ready::probe(&self.socket_dir, secrets).await {
                    ready::Probe::Ready => return Ok(()),
                    ready::Probe::NotYet => {}
                    ready::Probe::Rejected(reason) => {
                        return Err(ComputeError::ProbeRejected {
                            name: self.name.clone(),
                            reason,
                        })
                    }
                }
            }
            if started.elapsed() >= timeout {
                return Err(ComputeError::StartTimeout {
                    name: self.name.clone(),
                    timeout,
                    log: self.log_file.clone(),
                    log_tail: self.log_tail(),
                });
            }
            // Reading the tail of our own log is one small read: poll often.
            tokio::time::sleep(ready::POLL).await;
        }
    }

    /// `<socket_dir>/.s.PGSQL.5432`.
    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{SOCKET_PORT}"))
    }

    /// The private directory holding the socket (what `host=` names in libpq).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The postmaster's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Time from the beginning of `start` until the server was ready.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The branch's log file.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// SIGINT (fast shutdown) and wait, SIGQUIT then SIGKILL after the timeout.
    pub async fn stop(mut self, timeout: Duration) -> Result<(), ComputeError> {
        if self.exit_status.is_none() {
            signal_pid(self.pid, Signal::SIGINT);
            if !self.wait_for(timeout).await? {
                tracing::warn!(branch = %self.name, pid = self.pid, ?timeout, "postgres did not stop after SIGINT; sending SIGQUIT");
                signal_pid(self.pid, Signal::SIGQUIT);
                if !self.wait_for(QUIT_GRACE).await? {
                    tracing::warn!(branch = %self.name, pid = self.pid, "postgres did not stop after SIGQUIT; killing its process group");
                    signal_group(self.pid, Signal::SIGKILL);
                    self.wait_for(Duration::MAX).await?;
                }
            }
        }
        // Backends leave with the postmaster; make sure of it.
        if group_alive(self.pid) {
            signal_group(self.pid, Signal::SIGKILL);
        }
        self.stopped = true;
        tracing::info!(branch = %self.name, pid = self.pid, status = ?self.exit_status, "postgres stopped");
        Ok(())
    }

    /// Resolves when the postmaster exits (for the supervisor's restart loop).
    /// Cancel-safe.
    pub async fn exited(&mut self) -> Result<ExitStatus, ComputeError> {
        if let Some(status) = self.exit_status {
            return Ok(status);
        }
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| ComputeError::io(format!("wait for postgres of {}", self.name), e))?;
        self.exit_status = Some(status);
        Ok(status)
    }

    /// Waits up to `timeout` for the postmaster to exit; true if it did.
    async fn wait_for(&mut self, timeout: Duration) -> Result<bool, ComputeError> {
        match tokio::time::timeout(timeout, self.exited()).await {
            Ok(r) => r.map(|_| true),
            Err(_) => Ok(false),
        }
    }

    fn try_reap(&mut self) -> Result<Option<ExitStatus>, ComputeError> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .map_err(|e| ComputeError::io(format!("wait for postgres of {}", self.name), e))?;
        }
        Ok(self.exit_status)
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_file, self.log_offset, LOG_TAIL_LINES)
    }
}

impl Drop for Compute {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let running = self.exit_status.is_none() && matches!(self.child.try_wait(), Ok(None));
        if running {
            tracing::warn!(branch = %self.name, pid = self.pid, "compute dropped while running; killing postgres");
        }
        // Also reaps backends left behind by a postmaster that died.
        signal_group(self.pid, Signal::SIGKILL);
    }
}

fn write_hba(path: &Path, run_as: &RunAs) -> Result<(), ComputeError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| ComputeError::io(format!("create {}", parent.display()), e))?;
    }
    replace_file::replace(path, config::hba_contents().as_bytes(), 0o600, Some(run_as))
}

fn prepare_socket_dir(dir: &Path, run_as: &RunAs) -> Result<(), ComputeError> {
    let what = || format!("prepare socket directory {}", dir.display());
    fs::create_dir_all(dir).map_err(|e| ComputeError::io(what(), e))?;
    chown_to(dir, run_as)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| ComputeError::io(what(), e))
}

/// Opens the log for appending and writes the start banner; returns it
/// and its length before this start.
fn open_log(spec: &ComputeSpec) -> Result<(File, u64), ComputeError> {
    let what = || format!("open log file {}", spec.log_file.display());
    if let Some(parent) = spec.log_file.parent() {
        fs::create_dir_all(parent).map_err(|e| ComputeError::io(what(), e))?;
    }
    let mut f = log_file::open(&spec.log_file).map_err(|e| ComputeError::io(what(), e))?;
    let offset = f.metadata().map_err(|e| ComputeError::io(what(), e))?.len();
    let banner = format!(
        "starting postgres for {} (data directory {})",
        spec.name,
        spec.datadir.display()
    );
    log_file::append_note(&mut f, &banner).map_err(|e| ComputeError::io(what(), e))?;
    Ok((f, offset))
}

/// Appends one offshoot line to the branch's log, next to PostgreSQL's own.
pub(crate) fn log_note(path: &Path, msg: &str) {
    let write = || log_file::open(path).and_then(|mut f| log_file::append_note(&mut f, msg));
    if let Err(e) = write() {
        tracing::warn!(log = %path.display(), error = %e, "could not write to compute log");
    }
}
