//! The native ways to copy a database, as the rows run them: `CREATE DATABASE
//! … TEMPLATE … STRATEGY FILE_COPY`, `… STRATEGY WAL_LOG`, and `pg_dump -Fc |
//! pg_restore` into a new database. Each is one timed operation; dropping the
//! copy afterwards is not timed.

use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::bench::context::method;
use crate::bench::pg::{exec, ident, PgTools, Target};

/// A native copy method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeCopy {
    FileCopy,
    WalLog,
    DumpRestore,
}

impl NativeCopy {
    pub const ALL: [NativeCopy; 3] = [
        NativeCopy::FileCopy,
        NativeCopy::WalLog,
        NativeCopy::DumpRestore,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NativeCopy::FileCopy => method::FILE_COPY,
            NativeCopy::WalLog => method::WAL_LOG,
            NativeCopy::DumpRestore => method::DUMP_RESTORE,
        }
    }

    /// A short tag for database names.
    pub fn tag(self) -> &'static str {
        match self {
            NativeCopy::FileCopy => "fc",
            NativeCopy::WalLog => "wl",
            NativeCopy::DumpRestore => "dr",
        }
    }

    /// Copies `template` to a new database `copy` on the cluster at `target`.
    pub async fn copy(
        self,
        tools: &PgTools,
        target: &Target,
        template: &str,
        copy: &str,
    ) -> Result<()> {
        let admin = target.connect("postgres").await?;
        match self {
            NativeCopy::FileCopy | NativeCopy::WalLog => {
                let strategy = if self == NativeCopy::FileCopy {
                    "FILE_COPY"
                } else {
                    "WAL_LOG"
                };
                exec(
                    &admin,
                    &format!(
                        "CREATE DATABASE {} TEMPLATE {} STRATEGY {strategy}",
                        ident(copy),
                        ident(template)
                    ),
                )
                .await
            }
            NativeCopy::DumpRestore => {
                exec(
                    &admin,
                    &format!("CREATE DATABASE {} TEMPLATE template0", ident(copy)),
                )
                .await?;
                dump_restore(tools, target, template, copy).await
            }
        }
    }
}

/// `pg_dump -Fc FROM | pg_restore -d TO`, both over the target's TCP address.
async fn dump_restore(tools: &PgTools, target: &Target, from: &str, to: &str) -> Result<()> {
    let mut dump = tokio::process::Command::new(tools.tool("pg_dump"))
        .args(["-Fc", "-d", from])
        .envs(target.libpq_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("start pg_dump")?;
    let Some(dump_out) = dump.stdout.take() else {
        bail!("pg_dump has no stdout");
    };
    let dump_stdio: Stdio = dump_out.try_into().context("pipe pg_dump to pg_restore")?;
    let restore = tokio::process::Command::new(tools.tool("pg_restore"))
        .args(["--no-owner", "-d", to])
        .envs(target.libpq_env())
        .stdin(dump_stdio)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let (dumped, restored) = tokio::join!(dump.wait_with_output(), restore);
    let dumped = dumped.context("wait for pg_dump")?;
    let restored = restored.context("wait for pg_restore")?;
    if !dumped.status.success() {
        bail!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&dumped.stderr).trim()
        );
    }
    if !restored.status.success() {
        bail!(
            "pg_restore failed: {}",
            String::from_utf8_lossy(&restored.stderr).trim()
        );
    }
    Ok(())
}

/// Drops a copy, closing any session still on it.
pub async fn drop_database(target: &Target, name: &str) -> Result<()> {
    let admin = target.connect("postgres").await?;
    exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name)),
    )
    .await
}

/// A checkpoint, so that each copy starts from the same clean state.
pub async fn checkpoint(target: &Target, database: &str) -> Result<()> {
    let c = target.connect(database).await?;
    exec(&c, "CHECKPOINT").await
}
