//! PostgreSQL processes for the FUSE tests: initdb, a postmaster that is
//! stopped (SIGINT, then SIGKILL of its process group) even when a test
//! fails, and psql/pgbench runs. Everything runs as the `postgres` user.

#![allow(dead_code)]

use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PG_UID: u32 = 101;
pub const PG_GID: u32 = 104;

pub fn bindir() -> PathBuf {
    std::env::var_os("OFFSHOOT_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// A command that runs as the postgres user, in `/` (always reachable).
pub fn pg_command(tool: &str) -> Command {
    let mut cmd = Command::new(bindir().join(tool));
    cmd.uid(PG_UID)
        .gid(PG_GID)
        .current_dir("/")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

fn check(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory the postgres user owns (socket directory, native data dir).
pub fn pg_owned_dir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).expect("create dir");
    chown(path, Some(PG_UID), Some(PG_GID)).expect("chown dir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod dir");
}

/// Lets the postgres user walk through a root-owned temporary directory.
pub fn make_traversable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
}

pub fn initdb(datadir: &Path) {
    let out = pg_command("initdb")
        .arg("-D")
        .arg(datadir)
        .args(["-A", "trust", "-U", "postgres", "--no-locale", "-E", "UTF8"])
        .output()
        .expect("spawn initdb");
    check("initdb", out);
}

/// A running postmaster.
pub struct Postgres {
    child: Option<Child>,
    pub socket_dir: PathBuf,
    pub log: PathBuf,
}

impl Postgres {
    /// Starts `postgres -D datadir` in its own process group and waits until
    /// it accepts connections.
    pub fn start(datadir: &Path, socket_dir: &Path, log: &Path) -> Postgres {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let child = pg_command("postgres")
            .arg("-D")
            .arg(datadir)
            .arg("-k")
            .arg(socket_dir)
            .args(["-c", "listen_addresses=", "-c", "fsync=on"])
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("spawn postgres");
        let mut pg = Postgres {
            child: Some(child),
            socket_dir: socket_dir.to_path_buf(),
            log: log.to_path_buf(),
        };
        pg.wait_ready(Duration::from_secs(120));
        pg
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            let ok = pg_command("pg_isready")
                .arg("-h")
                .arg(&self.socket_dir)
                .arg("-q")
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "postgres exited ({status}) during start:\n{}",
                        self.log_text()
                    );
                }
            }
            assert!(
                start.elapsed() < timeout,
                "postgres not ready after {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs one SQL command and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = pg_command("psql")
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("spawn psql");
        check(&format!("psql {sql:?}"), out).trim().to_owned()
    }

    pub fn pgbench(&self, args: &[&str]) -> String {
        let out = pg_command("pgbench")
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-U", "postgres"])
            .args(args)
            .arg("postgres")
            .output()
            .expect("spawn pgbench");
        check(&format!("pgbench {args:?}"), out)
    }

    /// A crash: SIGKILL of the postmaster's process group, and wait.
    pub fn crash(mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on the process group we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Fast shutdown (SIGINT) and wait; SIGKILL of the group after a minute.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as i32;
        // SAFETY: plain kill(2) on the process group we created.
        unsafe { libc::kill(-pgid, libc::SIGINT) };
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if start.elapsed() < Duration::from_secs(60) => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    // SAFETY: as above.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    let _ = child.wait();
                    break;
                }
            }
        }
        // Backends may outlive the postmaster by a moment.
        let start = Instant::now();
        // SAFETY: signal 0 only probes whether the group still exists.
        while unsafe { libc::kill(-pgid, 0) } == 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Lines of a PostgreSQL log that report errors.
pub fn error_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("ERROR:") || l.contains("PANIC:") || l.contains("FATAL:"))
        // Connection probes before the server is up are not failures.
        .filter(|l| !l.contains("the database system is starting up"))
        .filter(|l| !l.contains("the database system is shutting down"))
        .filter(|l| !l.contains("the database system is not yet accepting connections"))
        .collect()
}

/// Checks pgbench's invariant: every balance change is in pgbench_history,
/// and accounts, tellers and branches agree. Returns the number of accounts.
pub fn check_pgbench_invariant(pg: &Postgres) -> i64 {
    let sums = pg.psql(
        "select (select sum(abalance) from pgbench_accounts) || ',' || \
                (select sum(bbalance) from pgbench_branches) || ',' || \
                (select sum(tbalance) from pgbench_tellers) || ',' || \
                (select coalesce(sum(delta), 0) from pgbench_history)",
    );
    let parts: Vec<&str> = sums.split(',').collect();
    assert_eq!(parts.len(), 4, "unexpected sums {sums:?}");
    assert!(
        parts.iter().all(|p| *p == parts[0]),
        "pgbench invariant broken: sum(abalance), sum(bbalance), sum(tbalance), sum(delta) = {sums}"
    );
    let accounts: i64 = pg
        .psql("select count(*) from pgbench_accounts")
        .parse()
        .expect("count");
    accounts
}
