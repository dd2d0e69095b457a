//! A throwaway PostgreSQL 15 cluster: initdb (SCRAM, known password) into a
//! temp dir owned by the `postgres` user, the server spawned directly as that
//! user with its socket in the temp dir. Dropping the handle stops the server
//! (SIGINT, then SIGKILL) and removes the directory, also when a test fails.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The `postgres` role's password in every test cluster.
pub const PASSWORD: &str = "proxy-test-secret";
const PG_UID: u32 = 101;
const PG_GID: u32 = 104;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Shown by `SHOW cluster_name`: tells tests which server they reached.
    pub name: String,
    /// Also listen on 127.0.0.1 (for direct-vs-proxy comparisons).
    pub tcp: bool,
    pub max_connections: u32,
    /// Preload offshoot's handoff module, as offshoot's computes do.
    pub handoff: bool,
}

impl PgOptions {
    pub fn named(name: &str) -> Self {
        PgOptions {
            name: name.to_string(),
            tcp: false,
            max_connections: 50,
            handoff: true,
        }
    }
}

pub struct PgServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn as_postgres<'a>(cmd: &'a mut Command, cwd: &Path) -> &'a mut Command {
    cmd.uid(PG_UID)
        .gid(PG_GID)
        .current_dir(cwd)
        .env_remove("PGDATA")
}

impl PgServer {
    pub fn start(opts: PgOptions) -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("offshoot-proxy-pg-")
            .tempdir()
            .expect("create temp dir");
        chown(dir.path(), Some(PG_UID), Some(PG_GID)).expect("chown temp dir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).expect("write pwfile");
        chown(&pwfile, Some(PG_UID), Some(PG_GID)).expect("chown pwfile");
        let out = as_postgres(&mut Command::new(format!("{PG_BIN}/initdb")), dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("create log");
        chown(dir.path().join("postgres.log"), Some(PG_UID), Some(PG_GID)).expect("chown log");
        let listen = if opts.tcp { "127.0.0.1" } else { "" };
        let mut preload = String::new();
        if opts.handoff {
            let module = offshoot_compute::handoff::module_for(15)
                .expect("the handoff module is built (postgresql-server-dev-15 installed)");
            let path = dir.path().join("offshoot_handoff.so");
            std::fs::write(&path, module).expect("write the handoff module");
            preload = format!("\"{}\"", path.display());
        }
        let child = as_postgres(&mut Command::new(format!("{PG_BIN}/postgres")), dir.path())
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg(format!("listen_addresses={listen}"))
            .arg("-c")
            .arg(format!("max_connections={}", opts.max_connections))
            .arg("-c")
            .arg(format!("cluster_name={}", opts.name))
            .args(["-c", "fsync=off", "-c", "shared_buffers=32MB"])
            .arg("-c")
            .arg(format!("shared_preload_libraries={preload}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn postgres");
        let server = PgServer {
            dir,
            child: Some(child),
            port,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(format!("{PG_BIN}/pg_isready"))
                .arg("-h")
                .arg(self.dir.path())
                .arg("-p")
                .arg(self.port.to_string())
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The Unix socket a Router hands to the proxy.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join(format!(".s.PGSQL.{}", self.port))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
