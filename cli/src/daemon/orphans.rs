//! PostgreSQL processes left running by a daemon that died without shutting
//! down (`kill -9`, a crash). Their mounts are dead, yet they hold the
//! branch's `postmaster.pid`, and a new postmaster would refuse to start
//! while they live. At startup, before cleaning stale mounts, the daemon
//! kills every postmaster whose data directory is under its `mnt/` (with its
//! whole process group) and waits until they are gone. The `postmaster.pid`
//! they leave is stale, and the compute crate removes it before the next
//! start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpgid, Pid};

/// How long to wait for killed processes to disappear.
const GONE_DEADLINE: Duration = Duration::from_secs(5);

/// Kills postmasters running on a data directory under `mnt_dir`; returns
/// their pids.
pub fn kill_orphan_postmasters(mnt_dir: &Path) -> Vec<u32> {
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Some(datadir) = postmaster_datadir(&cmdline) else {
            continue;
        };
        if !datadir.starts_with(mnt_dir) {
            continue;
        }
        let pid = Pid::from_raw(pid);
        let target = getpgid(Some(pid)).unwrap_or(pid);
        tracing::warn!(pid = pid.as_raw(), datadir = %datadir.display(), "killing PostgreSQL left by an earlier daemon");
        if killpg(target, Signal::SIGKILL).is_err() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        killed.push(pid.as_raw() as u32);
    }
    let start = Instant::now();
    while killed
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}/cmdline")).exists() && !is_zombie(*pid))
        && start.elapsed() < GONE_DEADLINE
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed
}

/// The `-D` argument of a `postgres` postmaster command line.
fn postmaster_datadir(cmdline: &[u8]) -> Option<PathBuf> {
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next()?;
    if Path::new(&program).file_name()? != "postgres" {
        return None;
    }
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "-D" {
            return args.next().map(PathBuf::from);
        }
    }
    None
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_datadir_of_a_postmaster_only() {
        let pm = b"/usr/lib/postgresql/15/bin/postgres\0-D\0/h/mnt/2\0-c\0port=5432\0";
        assert_eq!(postmaster_datadir(pm), Some(PathBuf::from("/h/mnt/2")));
        assert_eq!(postmaster_datadir(b"postgres: checkpointer \0"), None);
        assert_eq!(postmaster_datadir(b"/bin/cat\0-D\0/h/mnt/2\0"), None);
        assert!(Path::new("/h/mnt/2").starts_with(Path::new("/h/mnt")));
        assert!(!Path::new("/h/mnt2/x").starts_with(Path::new("/h/mnt")));
    }
}
