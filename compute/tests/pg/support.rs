//! Test environment: a temporary root traversable by the PostgreSQL user, the
//! discovered binaries, fresh secrets, and a guard that kills every process
//! whose command line mentions the root when the test ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use offshoot_compute::{initdb, Compute, ComputeError, ComputeSpec, PgBinaries, RunAs, Secrets};
use tempfile::TempDir;

pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct TestEnv {
    pub root: PathBuf,
    pub bins: PgBinaries,
    pub run_as: RunAs,
    pub secrets: Secrets,
    // Dropped first: kills processes before the directory goes away.
    _reaper: Reaper,
    _tmp: TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let _ = tracing_init();
        let bins = PgBinaries::discover().expect("PostgreSQL installed");
        let run_as = RunAs::for_current_process().expect("a user to run PostgreSQL as");
        let tmp = tempfile::Builder::new()
            .prefix("offshoot-compute-")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().to_path_buf();
        if run_as.needs_switch() {
            nix::unistd::chown(
                &root,
                Some(nix::unistd::Uid::from_raw(run_as.uid)),
                Some(nix::unistd::Gid::from_raw(run_as.gid)),
            )
            .expect("chown test root");
        }
        TestEnv {
            _reaper: Reaper { root: root.clone() },
            root,
            bins,
            run_as,
            secrets: Secrets::generate(),
            _tmp: tmp,
        }
    }

    pub fn spec(&self, name: &str) -> ComputeSpec {
        let dir = self.root.join(name);
        ComputeSpec {
            name: name.to_owned(),
            datadir: dir.join("data"),
            socket_dir: dir.join("run"),
            hba_file: dir.join("hba.conf"),
            log_file: self.root.join("logs").join(format!("{name}.log")),
            settings: vec![("shared_buffers".to_owned(), "16MB".to_owned())],
        }
    }

    pub async fn init(&self, name: &str) -> ComputeSpec {
        let spec = self.spec(name);
        initdb(
            &self.bins,
            &self.run_as,
            &spec.datadir,
            None,
            &self.secrets,
            &self.root,
        )
        .await
        .expect("initdb");
        spec
    }

    /// Starts PostgreSQL on `spec` with this environment's binaries, user and
    /// secrets, giving it [`READY_TIMEOUT`].
    pub async fn start(&self, spec: &ComputeSpec) -> Result<Compute, ComputeError> {
        self.start_within(spec, READY_TIMEOUT).await
    }

    /// [`TestEnv::start`] with a deadline of its own.
    pub async fn start_within(
        &self,
        spec: &ComputeSpec,
        ready_timeout: Duration,
    ) -> Result<Compute, ComputeError> {
        Compute::start(
            &self.bins,
            &self.run_as,
            spec.clone(),
            &self.secrets,
            ready_timeout,
        )
        .await
    }

    /// Logs in as `postgres` with its password over the socket in `socket_dir`.
    pub async fn login(&self, socket_dir: &Path) -> Result<Session, tokio_postgres::Error> {
        connect(socket_dir, "postgres", &self.secrets.postgres_password).await
    }
}

fn tracing_init() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("offshoot_compute=debug")
        .try_init()
}

/// A client connection whose background task can be awaited on close.
pub struct Session {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

impl std::ops::Deref for Session {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Session {
    /// Ends the session and waits until the server side has seen Terminate,
    /// so that a following stop finds no connection to cut off.
    pub async fn close(self) {
        drop(self.client);
        let _ = self.task.await;
    }
}

/// Connects over the socket in `socket_dir` as `user`.
pub async fn connect(
    socket_dir: &Path,
    user: &str,
    password: &str,
) -> Result<Session, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::Config::new()
        .host_path(socket_dir)
        .port(5432)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await?;
    Ok(Session {
        client,
        task: tokio::spawn(conn),
    })
}

/// Pids of postmasters running on `datadir` (`postgres -D <datadir> …`).
///
/// A child the postmaster has just forked carries the postmaster's command
/// line until it sets its process title; it is not counted (its parent is a
/// match too).
pub fn postmasters(datadir: &Path) -> Vec<u32> {
    let matches: Vec<u32> = processes()
        .into_iter()
        .filter(|(_, args)| {
            args.first().is_some_and(|a| a.ends_with("postgres"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "-D" && Path::new(&w[1]) == datadir)
        })
        .map(|(pid, _)| pid)
        .collect();
    matches
        .iter()
        .copied()
        .filter(|pid| parent_of(*pid).is_none_or(|ppid| !matches.contains(&ppid)))
        .collect()
}

/// The parent pid from `/proc/<pid>/stat` (the field after the state).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Waits up to five seconds for every postmaster on `datadir` to be gone;
/// panics with `what` if one is still there then.
pub async fn await_no_postmaster(datadir: &Path, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !postmasters(datadir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every process with its arguments.
fn processes() -> Vec<(u32, Vec<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// Kills, on drop, every process whose command line mentions `root`.
struct Reaper {
    root: PathBuf,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let root = self.root.to_string_lossy().into_owned();
        for (pid, args) in processes() {
            if args.iter().any(|a| a.contains(&root)) {
                eprintln!("reaper: killing leftover process {pid}: {args:?}");
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Reads the whole log file.
pub fn read_log(spec: &ComputeSpec) -> String {
    std::fs::read_to_string(&spec.log_file).unwrap_or_default()
}
