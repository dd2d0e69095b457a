//! Stale PostgreSQL lock files: `postmaster.pid` in the data directory and
//! `.s.PGSQL.<port>.lock` in the socket directory.
//!
//! PostgreSQL refuses to start while either lock file names a live process. After a crash that process can be a zombie nobody
//! has reaped yet, or an unrelated process that got the PID again, and the
//! branch would never start. Before each start, [`clear_stale`] reads the file
//! and removes it unless the PID is a live (not zombie) process whose working
//! directory is this data directory — the postmaster `chdir`s there, so that
//! is what a real one looks like. A live postmaster's file is left alone, and
//! PostgreSQL then refuses with its own message.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::error::ComputeError;

/// Removes `<datadir>/postmaster.pid` when the postmaster it names is gone.
/// Returns true if it removed one.
pub(super) fn clear_stale(datadir: &Path) -> Result<bool, ComputeError> {
    clear_stale_lock(&datadir.join("postmaster.pid"), datadir)
}

/// Removes the lock file at `path` (whose first line is a postmaster's PID)
/// unless that postmaster is alive and works in `datadir`. Returns true if it
/// removed the file.
pub(super) fn clear_stale_lock(path: &Path, datadir: &Path) -> Result<bool, ComputeError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(ComputeError::io(format!("read {}", path.display()), e)),
    };
    let pid: Option<u32> = text.lines().next().and_then(|l| l.trim().parse().ok());
    if pid.is_some_and(|pid| postmaster_runs_in(pid, datadir)) {
        return Ok(false);
    }
    tracing::warn!(file = %path.display(), ?pid, "removing a stale lock file: no postmaster of this data directory runs with that pid");
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ComputeError::io(format!("remove {}", path.display()), e)),
    }
}

/// True if `pid` is alive, not a zombie, and works in `datadir`.
fn postmaster_runs_in(pid: u32, datadir: &Path) -> bool {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X") | Some("x")) {
        return false;
    }
    let Ok(cwd) = fs::read_link(proc_dir.join("cwd")) else {
        return false;
    };
    cwd == datadir || fs::canonicalize(datadir).is_ok_and(|d| d == cwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_stale_socket_lock_file() {
        // Regression: after a crash the socket directory's lock file still
        // names the dead postmaster and PostgreSQL refuses to start on it.
        let tmp = tempfile::tempdir().expect("tempdir");
        let lock = tmp.path().join(".s.PGSQL.5432.lock");
        fs::write(
            &lock,
            format!("{}\n{}\n", u32::MAX - 1, tmp.path().display()),
        )
        .expect("write");
        assert!(clear_stale_lock(&lock, tmp.path()).expect("clear"));
        assert!(!lock.exists());
    }

    #[test]
    fn removes_a_file_naming_an_unrelated_live_process() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pidfile = tmp.path().join("postmaster.pid");
        // Our own pid: alive, but working elsewhere.
        fs::write(
            &pidfile,
            format!("{}\n{}\n", std::process::id(), tmp.path().display()),
        )
        .expect("write");
        assert!(clear_stale(tmp.path()).expect("clear"));
        assert!(!pidfile.exists());
        assert!(!clear_stale(tmp.path()).expect("nothing to clear"));
    }

    #[test]
    fn keeps_a_file_naming_a_process_working_in_the_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(tmp.path())
            .spawn()
            .expect("spawn sleep");
        let pidfile = tmp.path().join("postmaster.pid");
        fs::write(&pidfile, format!("{}\n", child.id())).expect("write");
        let kept = !clear_stale(tmp.path()).expect("clear");
        let _ = child.kill();
        let _ = child.wait();
        assert!(kept && pidfile.exists());
        // Now the pid is dead: the file is stale.
        assert!(clear_stale(tmp.path()).expect("clear"));
    }
}
