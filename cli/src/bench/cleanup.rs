//! The cleanup guard: every process the benchmark starts and every scratch
//! directory it creates is registered here, and stopped or removed at the end —
//! when the guard drops (success or error) or on Ctrl-C / SIGTERM, from a
//! watcher thread that then exits the process with status 130.
//!
//! Processes are stopped in reverse order of start (the daemon before anything
//! it depends on) with SIGINT (PostgreSQL's fast shutdown, the daemon's
//! graceful stop), then SIGKILL to the process group after a timeout.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

#[derive(Default)]
struct State {
    /// (pid, name); each was started in its own process group.
    processes: Vec<(u32, String)>,
    dirs: Vec<PathBuf>,
    done: bool,
}

/// Shared registry of what to stop and remove. Clone it freely.
#[derive(Clone, Default)]
pub struct Cleanup {
    state: Arc<Mutex<State>>,
}

impl Cleanup {
    /// A registry, with a thread that cleans up and exits on SIGINT or SIGTERM.
    pub fn install() -> Cleanup {
        let cleanup = Cleanup::default();
        let watcher = cleanup.clone();
        let spawned = std::thread::Builder::new()
            .name("bench-signals".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!("no signal watcher: {e}");
                        return;
                    }
                };
                rt.block_on(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        tracing::warn!("cannot watch SIGINT/SIGTERM");
                        return;
                    };
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                });
                eprintln!("\ninterrupted: stopping what the benchmark started …");
                watcher.run();
                std::process::exit(130);
            });
        if let Err(e) = spawned {
            tracing::warn!("no signal watcher thread: {e}");
        }
        cleanup
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a process to stop at the end. After the cleanup has run
    /// (an interrupt raced with a start), the process is stopped at once.
    pub fn add_process(&self, pid: u32, name: &str) {
        let mut s = self.lock();
        if s.done {
            drop(s);
            stop_process(pid, name, Duration::from_secs(30));
            return;
        }
        s.processes.push((pid, name.to_string()));
    }

    /// Forgets a process that was stopped normally.
    pub fn remove_process(&self, pid: u32) {
        self.lock().processes.retain(|(p, _)| *p != pid);
    }

    pub fn add_dir(&self, dir: &Path) {
        self.lock().dirs.push(dir.to_path_buf());
    }

    /// Stops every registered process and removes every registered directory. Idempotent.
    pub fn run(&self) {
        let (processes, dirs) = {
            let mut s = self.lock();
            if s.done {
                return;
            }
            s.done = true;
            (
                std::mem::take(&mut s.processes),
                std::mem::take(&mut s.dirs),
            )
        };
        for (pid, name) in processes.iter().rev() {
            stop_process(*pid, name, Duration::from_secs(30));
        }
        for dir in dirs.iter().rev() {
            remove_dir(dir);
        }
    }
}

/// Removes `dir`, retrying a few times: after an interrupt the benchmark's
/// own task may still be writing into it for a moment.
fn remove_dir(dir: &Path) {
    let mut last = None;
    for _ in 0..20 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(e) = last {
        eprintln!("could not remove {}: {e}", dir.display());
    }
}

/// Sends SIGINT, waits up to `timeout`, then SIGKILLs the process group.
pub fn stop_process(pid: u32, name: &str, timeout: Duration) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    let pid = Pid::from_raw(raw);
    if kill(pid, Signal::SIGINT).is_err() {
        return; // already gone
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if exited(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{name} (pid {pid}) did not stop in {timeout:?}; killing it");
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Whether `pid` has exited: reaps it when it is our child, else probes it with signal 0.
fn exited(pid: Pid) -> bool {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        // Not our child (or already reaped): alive while signal 0 succeeds.
        Err(_) => kill(pid, None).is_err(),
    }
}
