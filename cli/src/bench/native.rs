//! The native baseline: a plain PostgreSQL cluster on the same disk, with the
//! same binaries and the settings offshoot's computes use, started by the
//! harness itself (`postgres -D … -k sockdir -c listen_addresses=127.0.0.1 -p PORT`),
//! reached over loopback TCP or on its Unix socket in `sockdir`.
//!
//! Its directory (`<work>/native/`: `data/`, `sock/`, `pwfile`, `postgres.log`)
//! is removed by the cleanup guard with the rest of the work directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cleanup::{stop_process, Cleanup};
use super::pg::{PgTools, Target};

/// Settings offshoot's computes run with (offshoot-compute's postgresql.conf
/// block), so that the baseline differs only in the storage under it. The
/// WAL settings computes get at start (`wal_sync_method=open_datasync`,
/// `wal_init_zero=off`, `wal_buffers=16MB`, `wal_compression=lz4`) are left
/// out: they are chosen for pagefs's FUSE transport and the page store, and
/// the baseline is PostgreSQL as it is run on a local disk.
const BRANCH_SETTINGS: &[(&str, &str)] = &[
    ("password_encryption", "scram-sha-256"),
    ("shared_buffers", "128MB"),
    ("max_connections", "100"),
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
    ("logging_collector", "off"),
];

/// A native cluster: initialised, and running while `pid` is set.
pub struct NativeCluster {
    tools: PgTools,
    dir: PathBuf,
    port: u16,
    password: String,
    pid: Option<u32>,
    cleanup: Cleanup,
}

impl NativeCluster {
    /// Runs initdb (as the PostgreSQL user) into `<work>/native/data`.
    pub async fn init(
        tools: &PgTools,
        work: &Path,
        port: u16,
        password: &str,
        cleanup: &Cleanup,
    ) -> Result<NativeCluster> {
        let dir = work.join("native");
        let sock = dir.join("sock");
        std::fs::create_dir_all(&sock).with_context(|| format!("create {}", sock.display()))?;
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n"))?;
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = tools.run_as {
            for p in [&dir, &sock, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .with_context(|| format!("chown {}", p.display()))?;
            }
        }
        let mut cmd = tools.server_command("initdb");
        cmd.arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .output()
            .await
            .context("run initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(NativeCluster {
            tools: tools.clone(),
            dir,
            port,
            password: password.to_string(),
            pid: None,
            cleanup: cleanup.clone(),
        })
    }

    /// How a client reaches it: loopback TCP, role `postgres`.
    pub fn target(&self) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "postgres".into(),
            password: self.password.clone(),
        }
    }

    /// How a client reaches it on its Unix socket (the `-k` directory; a host
    /// starting with `/` is a socket directory to libpq and tokio-postgres),
    /// role `postgres`.
    pub fn socket_target(&self) -> Target {
        Target {
            host: self.dir.join("sock").display().to_string(),
            port: self.port,
            user: "postgres".into(),
            password: self.password.clone(),
        }
    }

    /// Starts `postgres` and returns once `probe` on `database` is answered,
    /// with the time from spawn to that answer (a cold start).
    pub async fn start(&mut self, database: &str, probe: &str) -> Result<Duration> {
        if self.pid.is_some() {
            bail!("native cluster already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))?;
        let mut cmd = self.tools.server_command("postgres");
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(self.dir.join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string());
        for (k, v) in BRANCH_SETTINGS {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let started = Instant::now();
        let child = cmd.spawn().context("start the native postgres")?;
        let pid = child.id();
        self.cleanup.add_process(pid, "native postgres");
        self.pid = Some(pid);
        let target = self.target();
        let answered = async {
            let client = target
                .connect_retry(database, Duration::from_secs(60))
                .await?;
            client.simple_query(probe).await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = answered {
            bail!(
                "native postgres did not answer: {e:#}; see {}",
                self.dir.join("postgres.log").display()
            );
        }
        Ok(started.elapsed())
    }

    /// Fast shutdown, waiting for the postmaster to exit.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            tokio::task::block_in_place(|| {
                stop_process(pid, "native postgres", Duration::from_secs(60))
            });
            self.cleanup.remove_process(pid);
        }
    }
}
