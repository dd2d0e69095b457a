//! PostgreSQL as the benchmark uses it: the binaries and OS user (the same
//! ones the daemon's computes use), and connections to a server over TCP or
//! a Unix socket with a role and password, timed from the client's side.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio_postgres::{Client, NoTls};

/// The PostgreSQL installation and the user its servers run as.
#[derive(Debug, Clone)]
pub struct PgTools {
    pub bindir: PathBuf,
    pub version: String,
    /// `(uid, gid)` to run servers as; `None` when we are not root (run as ourselves).
    pub run_as: Option<(u32, u32)>,
}

impl PgTools {
    /// Finds the binaries as the daemon does (`OFFSHOOT_PG_BIN`, `pg_config`,
    /// `/usr/lib/postgresql/*/bin`, `PATH`) and the `postgres` user when root.
    pub fn discover() -> Result<PgTools> {
        let bins = offshoot_compute::PgBinaries::discover().map_err(|e| anyhow!("{e}"))?;
        for tool in ["pgbench", "pg_dump", "pg_restore"] {
            if !bins.tool(tool).exists() {
                bail!(
                    "{tool} is missing from {}: the benchmark needs pgbench, pg_dump and pg_restore",
                    bins.bindir.display()
                );
            }
        }
        let run_as = offshoot_compute::RunAs::for_current_process().map_err(|e| anyhow!("{e}"))?;
        Ok(PgTools {
            bindir: bins.bindir.clone(),
            version: bins.version.full.clone(),
            run_as: run_as.needs_switch().then_some((run_as.uid, run_as.gid)),
        })
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// A command for a server-side tool (initdb, postgres), run as the PostgreSQL user
    /// in its own process group (so a terminal's Ctrl-C reaches only the harness).
    pub fn server_command(&self, name: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(self.tool(name));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.process_group(0);
        cmd
    }
}

/// Where a client connects: host, port, role and password. A host starting
/// with `/` is a socket directory (`<host>/.s.PGSQL.<port>`), for libpq and
/// tokio-postgres alike.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Target {
    fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(database)
            .application_name("offshoot-bench")
            .connect_timeout(Duration::from_secs(120));
        cfg
    }

    /// Connects to `database` once.
    pub async fn connect(&self, database: &str) -> Result<Client> {
        let (client, conn) = self
            .config(database)
            .connect(NoTls)
            .await
            .with_context(|| {
                format!(
                    "connect to {database} as {} at {}:{}",
                    self.user, self.host, self.port
                )
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection closed: {e}");
            }
        });
        Ok(client)
    }

    /// Connects, retrying refused connections and "starting up" answers until `timeout`.
    pub async fn connect_retry(&self, database: &str, timeout: Duration) -> Result<Client> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.connect(database).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() < deadline && is_transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Environment for libpq tools (pgbench, pg_dump, pg_restore).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGPASSWORD", self.password.clone()),
            ("PGSSLMODE", "disable".to_string()),
        ]
    }
}

/// Refused connection, or a server still starting up / shutting down.
fn is_transient(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("refused")
        || text.contains("starting up")
        || text.contains("shutting down")
        || text.contains("connection reset")
        || text.contains("unexpected EOF")
}

/// The first query asked of a copy: it reads a table of the pgbench data.
pub const FIRST_QUERY: &str = "SELECT count(*) FROM pgbench_branches";

/// Connects to `database` and runs one query that reads data, returning when answered.
pub async fn first_query(target: &Target, database: &str) -> Result<()> {
    let client = target.connect(database).await?;
    let row = client
        .query_one(FIRST_QUERY, &[])
        .await
        .context("first query")?;
    let n: i64 = row.get(0);
    if n < 1 {
        bail!("pgbench_branches is empty on {database}");
    }
    Ok(())
}

/// Runs `sql` (no result wanted).
pub async fn exec(client: &Client, sql: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .with_context(|| format!("run `{sql}`"))
}

/// Quotes an identifier for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
