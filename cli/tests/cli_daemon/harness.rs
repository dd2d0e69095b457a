//! A daemon for CLI tests: `offshoot up` as a subprocess on a temporary home
//! with OS-picked ports, and helpers that run the `offshoot` binary against
//! it. Dropping the guard stops the daemon (SIGINT, a bounded wait, then
//! SIGKILL) and lazily unmounts anything left under the home, also when the
//! test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `offshoot` binary under test.
pub fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_offshoot"))
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `offshoot --home HOME ARGS…`.
pub fn run_in(home: &Path, args: &[&str]) -> Run {
    let output = Command::new(exe())
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("OFFSHOOT_HOME")
        .output()
        .unwrap_or_else(|e| panic!("run offshoot {args:?}: {e}"));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `offshoot up`; stopped and cleaned up on drop.
pub struct Daemon {
    home: tempfile::TempDir,
    /// Holds the daemon's log (outside the home, so it does not count in its size).
    logs: tempfile::TempDir,
    child: Option<Child>,
}

impl Daemon {
    /// Starts the daemon and waits until its `daemon.json` names it.
    pub fn up() -> Daemon {
        Daemon::up_printing_to(None)
    }

    /// [`Daemon::up`] with the daemon's stdout on `stdout` instead of its log.
    pub fn up_printing_to(stdout: Option<std::fs::File>) -> Daemon {
        let home = tempfile::Builder::new()
            .prefix("offshoot-cli-")
            .tempdir()
            .expect("temporary home");
        let logs = tempfile::tempdir().expect("temporary log dir");
        let log = std::fs::File::create(logs.path().join("daemon.log")).expect("log file");
        let child = Command::new(exe())
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--api-listen",
                "127.0.0.1:0",
            ])
            .args(["--idle-timeout", "3s"])
            .arg("--home")
            .arg(home.path())
            .env_remove("OFFSHOOT_HOME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout.unwrap_or_else(|| log.try_clone().expect("log file")))
            .stderr(log)
            .spawn()
            .expect("spawn offshoot up");
        let mut daemon = Daemon {
            home,
            logs,
            child: Some(child),
        };
        daemon.wait_ready(Duration::from_secs(120));
        daemon
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let pid = self.child.as_ref().map(Child::id).unwrap_or(0);
        let info_path = self.home().join("daemon.json");
        loop {
            if let Ok(text) = std::fs::read_to_string(&info_path) {
                let info: Result<serde_json::Value, _> = serde_json::from_str(&text);
                if matches!(info, Ok(v) if v["pid"] == pid) {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("offshoot up exited with {status}:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "offshoot up not ready after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs `offshoot ARGS…` against this daemon.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.home(), args)
    }

    /// Runs and expects exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "offshoot {args:?} failed: {run:?}");
        assert_eq!(run.stderr, "", "offshoot {args:?} wrote to stderr");
        run.stdout
    }

    /// Runs with `--output json`, expects exit 0, parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// Runs and expects the exit `code` with exactly one line on stderr; returns that line.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, code, "offshoot {args:?}: {run:?}");
        assert_eq!(run.stdout, "", "offshoot {args:?} printed on failure");
        assert!(
            run.stderr.starts_with("offshoot: ") && run.stderr.lines().count() == 1,
            "not one error line: {:?}",
            run.stderr
        );
        run.stderr.trim_end().to_string()
    }

    /// Stops the daemon: SIGINT and up to 30 s, then SIGKILL; then unmounts
    /// whatever is left under the home. Returns whether it stopped by itself.
    pub fn stop(&mut self) -> bool {
        let mut clean = true;
        if let Some(mut child) = self.child.take() {
            clean = stop_child(&mut child, Duration::from_secs(30));
        }
        unmount_below(self.home.path());
        clean
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- daemon log (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn stop_child(child: &mut Child, grace: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// `fusermount3 -uz` on every mount at or below `dir`, deepest first.
fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut below: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mount in below {
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&mount)
            .stderr(Stdio::null())
            .status();
    }
}

/// The bytes of the files of `dir` (apparent sizes: allocation lags behind
/// writes), outside the mount and socket directories (`mnt/`, `run/`).
pub fn disk_usage(dir: &Path) -> u64 {
    disk_files(dir).iter().map(|(_, bytes)| bytes).sum()
}

/// Every file of `dir` outside `mnt/` and `run/`, with its size.
pub fn disk_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if d == dir && matches!(entry.file_name().to_str(), Some("mnt" | "run")) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                files.push((rel, meta.len()));
            }
        }
    }
    files.sort();
    files
}
