//! Finding and ending what a daemon leaves under its home: processes whose
//! working directory or command line points below the home (PostgreSQL
//! backends `chdir` into their data directory, the postmaster has `-D`, the
//! daemon has `--home`), and FUSE mounts below the home. Also sweeps homes
//! left behind by test processes that died before their cleanup ran.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A live process that belongs to a home.
#[derive(Debug, Clone)]
pub struct HomeProcess {
    pub pid: i32,
    pub cmdline: String,
}

fn cmdline_args(pid: i32) -> Vec<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Every live process (not this one, not zombies) whose cwd is below `dir`
/// or one of whose arguments names a path below `dir`.
pub fn processes_under(dir: &Path) -> Vec<HomeProcess> {
    let me = std::process::id() as i32;
    let needle = dir.as_os_str().as_bytes();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me || is_zombie(pid) {
            continue;
        }
        let cwd_under = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|cwd| cwd.starts_with(dir))
            .unwrap_or(false);
        let args = cmdline_args(pid);
        let arg_under = args
            .iter()
            .any(|a| a.windows(needle.len()).any(|w| w == needle));
        if cwd_under || arg_under {
            let cmdline = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            found.push(HomeProcess { pid, cmdline });
        }
    }
    found
}

/// Makes this process the subreaper of its descendants: when the daemon
/// dies, its computes become our children, so that the harness can reap
/// them. Without it they would wait for PID 1, which in some containers
/// never reaps, and a zombie postmaster still "holds" its data directory.
pub fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Waits (up to `timeout`) until each pid has left /proc, reaping those that
/// are our children. A killed compute becomes our child only once the daemon
/// that spawned it is gone, so a zombie that is not ours yet is waited for.
pub fn reap(pids: &[i32], timeout: Duration) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut pending: Vec<i32> = pids.to_vec();
    crate::wait_until(timeout, || {
        pending.retain(
            |&pid| match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                Ok(_) => false,
                // Not our child (yet): wait until it has left /proc; a zombie
                // becomes ours once the daemon that spawned it is gone.
                Err(_) => Path::new(&format!("/proc/{pid}")).exists(),
            },
        );
        pending.is_empty()
    });
}

/// SIGKILLs every process under `dir` until none is left or `timeout` passes,
/// and reaps them; returns those still alive.
pub fn kill_processes_under(dir: &Path, timeout: Duration) -> Vec<HomeProcess> {
    let mut left = Vec::new();
    let mut killed = Vec::new();
    crate::wait_until(timeout, || {
        left = processes_under(dir);
        for p in &left {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            killed.push(p.pid);
        }
        left.is_empty()
    });
    killed.sort_unstable();
    killed.dedup();
    reap(&killed, Duration::from_secs(5));
    left
}

/// Freezes (SIGSTOP) every process under `dir`, and `extra`, until no new one
/// appears, then SIGKILLs and reaps them all: they all die at one instant, as
/// in a machine crash, and none of them sees the others go. Returns them.
///
/// With `reap_computes` false, only `extra` is reaped: the others stay
/// zombies (children of this subreaper) until the test process ends, as an
/// unreaped postmaster does under an init that reaps lazily.
pub fn crash_processes_under(dir: &Path, extra: &[i32], reap_computes: bool) -> Vec<HomeProcess> {
    let mut frozen: Vec<HomeProcess> = Vec::new();
    for &pid in extra {
        let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
    }
    loop {
        let fresh: Vec<HomeProcess> = processes_under(dir)
            .into_iter()
            .filter(|p| !frozen.iter().any(|f| f.pid == p.pid))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for p in &fresh {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGSTOP);
        }
        frozen.extend(fresh);
    }
    let mut pids: Vec<i32> = extra.to_vec();
    pids.extend(frozen.iter().map(|p| p.pid));
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if reap_computes {
        reap(&pids, Duration::from_secs(10));
    } else {
        reap(extra, Duration::from_secs(10));
    }
    frozen.retain(|p| !extra.contains(&p.pid));
    frozen
}

/// Undoes the octal escapes (`\040` for a space) of /proc/self/mountinfo.
fn unescape_mount_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// FUSE mount points at or below `dir`, deepest first.
pub fn fuse_mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mountpoint = unescape_mount_path(left.split(' ').nth(4)?);
            let fstype = right.split(' ').next()?;
            (fstype.starts_with("fuse") && mountpoint.starts_with(dir)).then_some(mountpoint)
        })
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

/// Lazily unmounts every FUSE mount below `dir` (`fusermount3 -uz`, then
/// `umount -l`); returns those that are still mounted.
pub fn unmount_all_under(dir: &Path) -> Vec<PathBuf> {
    for m in fuse_mounts_under(dir) {
        let ok = Command::new("fusermount3")
            .arg("-uz")
            .arg(&m)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&m).output();
        }
    }
    fuse_mounts_under(dir)
}

/// Kills processes, unmounts and removes a whole test root.
pub fn clean_root(root: &Path) {
    kill_processes_under(root, Duration::from_secs(10));
    unmount_all_under(root);
    let _ = std::fs::remove_dir_all(root);
}

/// The directory holding every test root: `<tmp>/offshoot-e2e`.
pub fn roots_dir() -> PathBuf {
    std::env::temp_dir().join("offshoot-e2e")
}

/// Cleans the roots (`<pid>-<n>`) of test processes that are gone: they were
/// killed (a nextest timeout, SIGKILL) before their Drop guard could run.
pub fn sweep_dead_roots() {
    let Ok(entries) = std::fs::read_dir(roots_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !Path::new(&format!("/proc/{pid}")).exists() {
            clean_root(&entry.path());
        }
    }
}
