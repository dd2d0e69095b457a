//! [`Daemon`]: one `offshoot up` on a fresh temporary home, and the clients
//! that talk to it (the CLI, psql, pgbench, tokio-postgres).
//!
//! Layout of a test root (`<tmp>/offshoot-e2e/<pid>-<n>/`, mode 0711 so that
//! the unprivileged PostgreSQL user can reach the mounts below it, as it would
//! below /var/lib):
//!
//! ```text
//! home/          the offshoot home (`--home`); created by the daemon
//! daemon.log     the daemon's stdout and stderr, appended across restarts
//! ```
//!
//! Cleanup guarantee: dropping a `Daemon` — also while a test panics — stops
//! the daemon (SIGINT, a bounded wait, then SIGKILL), SIGKILLs every process
//! whose working directory or arguments are below the root (the computes),
//! lazily unmounts every FUSE mount below the root and deletes the root
//! (kept when `OFFSHOOT_E2E_KEEP` is set). Roots of test processes killed
//! before their cleanup ran are swept by the next [`Daemon::start`].
//! Unless the test already failed, the drop then runs the allowed-errors log
//! check (see [`crate::logcheck`]) and fails the test on an unexpected line.

use crate::exec::{self, CmdOutput, Running};
use crate::logcheck;
use crate::paths::{offshoot_bin, pg_tool};
use crate::procs::{self, HomeProcess};
use crate::serial::SerialPermit;
use crate::wait_until;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use regex::Regex;
use serde_json::Value;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How long `offshoot up` may take to become ready (first start runs initdb).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGINT'ed daemon may take to stop its computes and unmount.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one CLI call.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one psql call.
pub const PSQL_TIMEOUT: Duration = Duration::from_secs(180);

/// Flags for `offshoot up` beyond home and addresses.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// `--idle-timeout`, e.g. "2s".
    pub idle_timeout: Option<String>,
    /// Any further flags, passed as they are.
    pub extra_args: Vec<String>,
}

/// How a stop went.
#[derive(Debug)]
pub struct StopReport {
    /// The daemon's exit status.
    pub status: Option<ExitStatus>,
    /// Whether it had to be SIGKILLed after [`STOP_TIMEOUT`].
    pub forced: bool,
    pub elapsed: Duration,
    /// Processes still running below the home after the daemon exited.
    pub leftover_processes: Vec<HomeProcess>,
    /// FUSE mounts still present below the home after the daemon exited.
    pub leftover_mounts: Vec<PathBuf>,
}

impl StopReport {
    /// Panics unless the daemon exited 0 on its own, leaving no process and no mount.
    pub fn assert_clean(&self) {
        assert!(
            !self.forced,
            "daemon did not stop within {STOP_TIMEOUT:?} of SIGINT"
        );
        assert!(
            self.status.is_some_and(|s| s.success()),
            "daemon exited with {:?} after SIGINT",
            self.status
        );
        assert!(
            self.leftover_processes.is_empty(),
            "processes left running after a clean stop: {:?}",
            self.leftover_processes
        );
        assert!(
            self.leftover_mounts.is_empty(),
            "FUSE mounts left after a clean stop: {:?}",
            self.leftover_mounts
        );
    }
}

/// A running `offshoot up` on its own temporary home. See the module doc.
pub struct Daemon {
    root: PathBuf,
    home: PathBuf,
    daemon_log: PathBuf,
    listen: SocketAddr,
    api_listen: SocketAddr,
    proxy_addr: SocketAddr,
    opts: DaemonOptions,
    child: Option<Child>,
    allowed: Vec<Regex>,
    checked: bool,
    _permit: SerialPermit,
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr of a bound listener")
}

/// Finds a socket address in daemon.json under a key containing `hint`.
fn find_addr(v: &Value, hint: &str) -> Option<SocketAddr> {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                if k.contains(hint) {
                    if let Some(s) = val.as_str() {
                        let s = s
                            .trim_start_matches("http://")
                            .trim_start_matches("postgresql://")
                            .trim_end_matches('/');
                        if let Ok(a) = s.parse() {
                            return Some(a);
                        }
                    }
                }
                if let Some(a) = find_addr(val, hint) {
                    return Some(a);
                }
            }
            None
        }
        _ => None,
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

static ROOT_SEQ: AtomicU32 = AtomicU32::new(0);

impl Daemon {
    /// Starts a daemon with default options on a fresh home.
    pub fn start() -> Daemon {
        Daemon::start_with(DaemonOptions::default())
    }

    /// Starts a daemon on a fresh home and waits until it is ready.
    pub fn start_with(opts: DaemonOptions) -> Daemon {
        let permit = SerialPermit::acquire();
        procs::become_subreaper();
        procs::sweep_dead_roots();
        let base = procs::roots_dir();
        std::fs::create_dir_all(&base).expect("create the e2e roots dir");
        let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711));
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = base.join(format!(
            "{}-{}-{nanos}",
            std::process::id(),
            ROOT_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).expect("create the test root");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))
            .expect("chmod the test root");
        let listen = free_port();
        let mut api_listen = free_port();
        while api_listen == listen {
            api_listen = free_port();
        }
        let mut d = Daemon {
            home: root.join("home"),
            daemon_log: root.join("daemon.log"),
            root,
            listen,
            api_listen,
            proxy_addr: listen,
            opts,
            child: None,
            allowed: logcheck::DEFAULT_ALLOWED
                .iter()
                .map(|p| Regex::new(p).expect("default allowed pattern"))
                .collect(),
            checked: false,
            _permit: permit,
        };
        d.spawn_and_wait();
        d
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The proxy address the daemon announced in daemon.json.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// The daemon's stdout+stderr so far.
    pub fn daemon_output(&self) -> String {
        std::fs::read(&self.daemon_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The PID of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn_and_wait(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.daemon_log)
            .expect("open daemon.log");
        let log2 = log.try_clone().expect("clone daemon.log handle");
        let mut cmd = Command::new(offshoot_bin());
        cmd.arg("up")
            .arg("--home")
            .arg(&self.home)
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--api-listen")
            .arg(self.api_listen.to_string());
        if let Some(t) = &self.opts.idle_timeout {
            cmd.arg("--idle-timeout").arg(t);
        }
        cmd.args(&self.opts.extra_args)
            .env("OFFSHOOT_HOME", &self.home)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let spawned_at = SystemTime::now() - Duration::from_millis(5);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `offshoot up`: {e}"));
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        let daemon_json = self.home.join("daemon.json");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "`offshoot up` exited with {status} before it was ready; its output:\n{}",
                        tail(&self.daemon_log, 60)
                    );
                }
            }
            if let Some(addr) = self.read_ready(&daemon_json, spawned_at, pid) {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                    self.proxy_addr = addr;
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "`offshoot up` not ready within {READY_TIMEOUT:?} (no fresh {} or proxy not accepting); its output:\n{}",
                    daemon_json.display(),
                    tail(&self.daemon_log, 60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The proxy address from a daemon.json written by this daemon process.
    fn read_ready(&self, path: &Path, spawned_at: SystemTime, pid: u32) -> Option<SocketAddr> {
        let md = std::fs::metadata(path).ok()?;
        if md.modified().ok()? < spawned_at {
            return None; // left by an earlier (killed) daemon
        }
        let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        if let Some(p) = v.get("pid").and_then(Value::as_u64) {
            if p != u64::from(pid) {
                return None;
            }
        }
        Some(find_addr(&v, "proxy").unwrap_or(self.listen))
    }

    // ---- the CLI ----

    /// Runs `offshoot ARGS --home HOME` and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new(offshoot_bin());
        cmd.args(args)
            .arg("--home")
            .arg(&self.home)
            .env("OFFSHOOT_HOME", &self.home);
        exec::run(cmd, CLI_TIMEOUT)
    }

    /// Runs the CLI and panics unless it exits 0; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.success(),
            "`offshoot {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    /// Runs the CLI with `--output json` and parses its stdout.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.cli_ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`offshoot {}` printed no JSON ({e}): {out}", all.join(" ")))
    }

    /// `offshoot branch create NAME [--parent P]`, panicking on failure;
    /// returns how long the call took.
    pub fn create_branch(&self, name: &str, parent: Option<&str>) -> Duration {
        let mut args = vec!["branch", "create", name];
        if let Some(p) = parent {
            args.extend(["--parent", p]);
        }
        let out = self.cli(&args);
        assert!(
            out.success(),
            "`offshoot {}` failed: {}",
            args.join(" "),
            out.stderr
        );
        out.elapsed
    }

    /// The branch as `branch show NAME --output json` reports it.
    pub fn branch_show(&self, name: &str) -> Value {
        let v = self.cli_json(&["branch", "show", name]);
        v.get("branch").cloned().unwrap_or(v)
    }

    /// The branch's compute state ("stopped", "starting", "running", "failed").
    pub fn branch_state(&self, name: &str) -> String {
        let v = self.branch_show(name);
        v.get("state")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no state in `branch show {name}`: {v}"))
            .to_string()
    }

    /// The branch's id as the API reports it (names its mount and log).
    pub fn branch_id(&self, name: &str) -> String {
        let v = self.branch_show(name);
        match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => panic!("no id in `branch show {name}`: {v}"),
        }
    }

    /// `offshoot connection-string BRANCH --database DB`.
    pub fn connection_string(&self, branch: &str, db: &str) -> String {
        self.cli_ok(&["connection-string", branch, "--database", db])
            .trim()
            .to_string()
    }

    // ---- psql and pgbench ----

    /// Runs one psql command on a connection string; does not check the result.
    pub fn psql_url(&self, url: &str, sql: &str) -> CmdOutput {
        let mut cmd = Command::new(pg_tool("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "60");
        exec::run(cmd, PSQL_TIMEOUT)
    }

    /// Runs `sql` with psql on BRANCH/DB; does not check the result.
    pub fn try_psql_db(&self, branch: &str, db: &str, sql: &str) -> CmdOutput {
        self.psql_url(&self.connection_string(branch, db), sql)
    }

    /// Runs `sql` with psql on BRANCH/DB and returns its trimmed, unaligned
    /// tuples-only output; panics if psql fails.
    pub fn psql_db(&self, branch: &str, db: &str, sql: &str) -> String {
        let out = self.try_psql_db(branch, db, sql);
        assert!(
            out.success(),
            "psql on {branch}/{db} failed for `{sql}`: {}",
            out.stderr
        );
        out.stdout.trim().to_string()
    }

    /// [`Daemon::psql_db`] on database `postgres`.
    pub fn psql(&self, branch: &str, sql: &str) -> String {
        self.psql_db(branch, "postgres", sql)
    }

    /// Starts pgbench with ARGS on BRANCH (database `postgres`) in the background.
    pub fn spawn_pgbench(&self, branch: &str, args: &[&str], timeout: Duration) -> Running {
        let url = self.connection_string(branch, "postgres");
        let mut cmd = Command::new(pg_tool("pgbench"));
        cmd.args(args).arg(url).env("PGCONNECT_TIMEOUT", "60");
        exec::spawn(cmd, timeout)
    }

    /// Runs pgbench with ARGS on BRANCH and returns its stdout; panics if it fails.
    pub fn pgbench(&self, branch: &str, args: &[&str]) -> String {
        let out = self
            .spawn_pgbench(branch, args, Duration::from_secs(300))
            .wait();
        assert!(
            out.success(),
            "pgbench {} on {branch} failed: {}{}",
            args.join(" "),
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    /// Opens a tokio-postgres connection to BRANCH/DB (spawns its connection task).
    pub async fn connect(&self, branch: &str, db: &str) -> tokio_postgres::Client {
        let url = self.connection_string(branch, db);
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("tokio-postgres connect to {branch}/{db}: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    // ---- processes ----

    /// PostgreSQL postmasters running below the home (their argv is not
    /// rewritten, unlike the backends' "postgres: …").
    pub fn postmasters(&self) -> Vec<HomeProcess> {
        procs::processes_under(&self.home)
            .into_iter()
            .filter(|p| {
                let argv0 = p.cmdline.split(' ').next().unwrap_or("");
                argv0.ends_with("/postgres") || argv0 == "postgres" || argv0.ends_with("postmaster")
            })
            .collect()
    }

    /// Stops the daemon with SIGINT and waits for it (SIGKILL after
    /// [`STOP_TIMEOUT`]); reports what it left behind.
    pub fn stop(&mut self) -> StopReport {
        let started = Instant::now();
        let Some(mut child) = self.child.take() else {
            return StopReport {
                status: None,
                forced: false,
                elapsed: Duration::ZERO,
                leftover_processes: procs::processes_under(&self.home),
                leftover_mounts: procs::fuse_mounts_under(&self.home),
            };
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
        let mut status = None;
        wait_until(STOP_TIMEOUT, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        let forced = status.is_none();
        if forced {
            let _ = child.kill();
            status = child.wait().ok();
        }
        StopReport {
            status,
            forced,
            elapsed: started.elapsed(),
            leftover_processes: procs::processes_under(&self.home),
            leftover_mounts: procs::fuse_mounts_under(&self.home),
        }
    }

    /// Starts `offshoot up` again on the same home and ports.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        self.spawn_and_wait();
    }

    /// Stops the daemon (asserting a clean stop) and starts it again.
    pub fn restart(&mut self) {
        self.stop().assert_clean();
        self.start_again();
    }

    /// Crashes the daemon and its computes together, as a power cut would:
    /// freezes (SIGSTOP) the daemon and every process below the home, then
    /// SIGKILLs and reaps them all; leaves the FUSE mounts as they are.
    /// Returns the processes killed besides the daemon.
    pub fn kill9(&mut self) -> Vec<HomeProcess> {
        self.crash(true)
    }

    /// [`Daemon::kill9`], but the killed computes stay unreaped zombies, so
    /// their PIDs still look alive (as under a lazily reaping init, or after
    /// PID reuse).
    pub fn kill9_leaving_zombies(&mut self) -> Vec<HomeProcess> {
        self.crash(false)
    }

    fn crash(&mut self, reap_computes: bool) -> Vec<HomeProcess> {
        let daemon: Vec<i32> = self.child.iter().map(|c| c.id() as i32).collect();
        let victims = procs::crash_processes_under(&self.home, &daemon, reap_computes);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        let left = procs::kill_processes_under(&self.home, Duration::from_secs(20));
        assert!(left.is_empty(), "processes survived SIGKILL: {left:?}");
        victims
    }

    // ---- the log check ----

    /// Allows PostgreSQL log lines matching these regexes for the rest of the test.
    pub fn allow_errors(&mut self, patterns: &[&str]) {
        for p in patterns {
            self.allowed
                .push(Regex::new(p).unwrap_or_else(|e| panic!("bad allowed pattern {p}: {e}")));
        }
    }

    /// All PostgreSQL logs of this home, concatenated.
    pub fn pg_logs(&self) -> String {
        logcheck::log_files(&self.home.join("logs"))
            .iter()
            .filter_map(|f| std::fs::read(f).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The PostgreSQL log of one branch (`logs/<id>.log`).
    pub fn branch_log(&self, name: &str) -> String {
        let id = self.branch_id(name);
        std::fs::read(self.home.join("logs").join(format!("{id}.log")))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_problems(&self) -> Vec<String> {
        let mut problems: Vec<String> =
            logcheck::unexpected_lines(&self.home.join("logs"), &self.allowed)
                .into_iter()
                .map(|u| format!("{}: {}", u.file.display(), u.line))
                .collect();
        problems.extend(
            logcheck::daemon_panics(&self.daemon_log)
                .into_iter()
                .map(|l| format!("daemon: {l}")),
        );
        problems
    }

    /// Runs the allowed-errors check now; panics on an unexpected line.
    pub fn check_logs(&mut self) {
        self.checked = true;
        let problems = self.log_problems();
        assert!(
            problems.is_empty(),
            "unexpected errors in the logs:\n{}",
            problems.join("\n")
        );
    }

    fn print_diagnostics(&self) {
        eprintln!(
            "---- offshoot up output (last 100 lines) ----\n{}",
            tail(&self.daemon_log, 100)
        );
        for f in logcheck::log_files(&self.home.join("logs")) {
            eprintln!(
                "---- {} (last 40 lines) ----\n{}",
                f.display(),
                tail(&f, 40)
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if self.child.is_some() {
            let report = self.stop();
            if report.forced {
                eprintln!("daemon ignored SIGINT for {STOP_TIMEOUT:?}; killed it");
            }
        }
        let left = procs::kill_processes_under(&self.root, Duration::from_secs(20));
        if !left.is_empty() {
            eprintln!("processes survived SIGKILL: {left:?}");
        }
        let mounts = procs::unmount_all_under(&self.root);
        if !mounts.is_empty() {
            eprintln!("mounts survived a lazy unmount: {mounts:?}");
        }
        let problems = if failing || self.checked {
            Vec::new()
        } else {
            self.log_problems()
        };
        if failing || !problems.is_empty() {
            self.print_diagnostics();
        }
        if std::env::var_os("OFFSHOOT_E2E_KEEP").is_some() {
            eprintln!("kept the test root {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        if !problems.is_empty() {
            panic!("unexpected errors in the logs:\n{}", problems.join("\n"));
        }
    }
}
