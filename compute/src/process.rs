//! Spawning PostgreSQL programs as the right user, and signalling them.
//!
//! Every program is spawned directly (never through a shell or `pg_ctl`) with
//! a cleaned environment; when we are root it runs as [`RunAs`] (std's
//! `CommandExt::uid` also drops supplementary groups). The postmaster gets its
//! own process group, so that a signal to the group reaches every backend.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::error::ComputeError;
use crate::run_as::RunAs;

/// Environment variables passed through to PostgreSQL programs; everything
/// else (PGDATA, PGPORT, PGHOST, LANG, …) is dropped so that the caller's
/// environment cannot change how the server runs.
const KEPT_ENV: &[&str] = &["PATH", "TZ"];

/// A command for `program` that runs as `run_as`, in the working directory
/// `cwd`, with a clean environment.
///
/// A switch of user goes through `setpriv` when it is installed: std can then
/// start the child with `posix_spawn` (a vfork), where setting the uid itself
/// makes it `fork` the whole daemon first. The daemon's memory is large (page
/// store, FUSE buffers), and a fork plus the child's exec took 150-250 ms of
/// every PostgreSQL start on a loaded machine; `posix_spawn` plus `setpriv`'s
/// own exec take a few milliseconds. Without `setpriv`, std's uid/gid switch
/// is used.
pub(crate) fn command_as(program: &Path, run_as: &RunAs, cwd: &Path) -> Command {
    let setpriv = run_as
        .needs_switch()
        .then(|| SETPRIV.iter().map(Path::new).find(|p| p.is_file()))
        .flatten();
    let mut cmd = match setpriv {
        Some(setpriv) => {
            let mut cmd = Command::new(setpriv);
            cmd.arg(format!("--reuid={}", run_as.uid))
                .arg(format!("--regid={}", run_as.gid))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.env_clear();
    for key in KEPT_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("LC_ALL", "C");
    cmd.current_dir(cwd);
    if run_as.needs_switch() && setpriv.is_none() {
        cmd.uid(run_as.uid).gid(run_as.gid);
    }
    cmd
}

/// Where util-linux's `setpriv` is looked for (absolute paths only: the
/// daemon's `PATH` does not choose what runs as another user).
const SETPRIV: &[&str] = &["/usr/bin/setpriv", "/bin/setpriv"];

/// Sends `sig` to one process; a process already gone is not an error.
pub(crate) fn signal_pid(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(e) = signal::kill(Pid::from_raw(raw), sig) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pid, ?sig, error = %e, "could not signal postgres");
        }
    }
}

/// Sends `sig` to a whole process group; a group already gone is not an error.
pub(crate) fn signal_group(pgid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid_nonzero(pgid)) else {
        return;
    };
    if let Err(e) = signal::killpg(Pid::from_raw(raw), sig) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pgid, ?sig, error = %e, "could not signal postgres process group");
        }
    }
}

/// Guards against ever signalling group 0 (our own group) by mistake.
fn pid_nonzero(pid: u32) -> u32 {
    if pid == 0 {
        u32::MAX
    } else {
        pid
    }
}

/// True while some process of group `pgid` is alive.
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid_nonzero(pgid)) else {
        return false;
    };
    signal::killpg(Pid::from_raw(raw), None).is_ok()
}

/// Changes the owner of `path` to `run_as` when we are root and it differs.
pub(crate) fn chown_to(path: &Path, run_as: &RunAs) -> Result<(), ComputeError> {
    use std::os::unix::fs::MetadataExt;
    if !run_as.needs_switch() {
        return Ok(());
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| ComputeError::io(format!("stat {}", path.display()), e))?;
    if meta.uid() == run_as.uid && meta.gid() == run_as.gid {
        return Ok(());
    }
    nix::unistd::chown(path, Some(run_as.nix_uid()), Some(run_as.nix_gid())).map_err(|e| {
        ComputeError::io(
            format!("chown {} to {}", path.display(), run_as.name),
            e.into(),
        )
    })
}

/// Refuses relative paths (PostgreSQL runs with another working directory).
pub(crate) fn require_absolute(path: &Path, what: &str) -> Result<(), ComputeError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ComputeError::InvalidPath {
            path: path.to_path_buf(),
            reason: format!("{what} must be an absolute path"),
        })
    }
}

/// The last `max_lines` lines of `path` written after byte `from`, for error
/// messages. Never fails: an unreadable log says so.
pub(crate) fn log_tail(path: &Path, from: u64, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 16 * 1024;
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let start = from.max(len.saturating_sub(MAX_BYTES)).min(len);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(max_lines)..];
            if tail.is_empty() {
                "(the log is empty)".to_owned()
            } else {
                tail.join("\n")
            }
        }
        Err(e) => format!("(could not read the log: {e})"),
    }
}

/// Renders a command's output for an error message.
pub(crate) fn output_text(stdout: &[u8], stderr: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(stdout).trim().to_owned();
    let err = String::from_utf8_lossy(stderr);
    if !err.trim().is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(err.trim());
    }
    s
}

/// `name=value` for a `-c` argument.
pub(crate) fn setting_arg(name: &str, value: &str) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(name);
    s.push(OsStr::new("="));
    s.push(value);
    s
}
