//! The native ways to copy a database, as the rows run them: `CREATE DATABASE
//! … TEMPLATE … STRATEGY FILE_COPY`, `… STRATEGY WAL_LOG`, and `pg_dump -Fc |
//! pg_restore` into a new database. Each is one timed operation; dropping the
//! copy afterwards is not timed.

use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::bench::context::{method, ms, timed, Ctx};
use crate::bench::pg::{exec, first_query, ident, PgTools, Target};
use crate::bench::results::Unit;

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

/// Milliseconds per run of every copy method a row compares: offshoot's branch
/// creation by API and by CLI, and each native method.
#[derive(Debug, Default)]
pub struct CopyTimes {
    pub api: Vec<f64>,
    pub cli: Vec<f64>,
    /// One list per method, in the order of [`NativeCopy::ALL`].
    pub natives: [Vec<f64>; NativeCopy::ALL.len()],
}

impl CopyTimes {
    /// Times one run of each native method on `target`: after a checkpoint,
    /// copies `template` to a new database `{prefix}_<tag>_{run}` and, if
    /// `then_query`, waits for the copy's first query's answer too. Dropping
    /// the copy afterwards is not timed.
    pub async fn time_natives(
        &mut self,
        tools: &PgTools,
        target: &Target,
        template: &str,
        prefix: &str,
        run: u32,
        then_query: bool,
    ) -> Result<()> {
        for (m, samples) in NativeCopy::ALL.iter().zip(&mut self.natives) {
            let copy = format!("{prefix}_{}_{}", m.tag(), run);
            checkpoint(target, "postgres").await?;
            let (_, took) = timed(async {
                m.copy(tools, target, template, &copy).await?;
                if then_query {
                    first_query(target, &copy).await?;
                }
                anyhow::Ok(())
            })
            .await?;
            samples.push(ms(took));
            drop_database(target, &copy).await?;
        }
        Ok(())
    }

    /// Records every method's samples as `what` in `row`, then each native
    /// method against offshoot's API as `{label}: <method> / offshoot (API)`.
    pub fn record(&self, ctx: &mut Ctx, row: u8, what: &str, label: &str, size_gib: Option<f64>) {
        ctx.record(
            row,
            what,
            method::OFFSHOOT_API,
            Unit::Millis,
            &self.api,
            size_gib,
        );
        ctx.record(
            row,
            what,
            method::OFFSHOOT_CLI,
            Unit::Millis,
            &self.cli,
            size_gib,
        );
        for (m, samples) in NativeCopy::ALL.iter().zip(&self.natives) {
            ctx.record(row, what, m.name(), Unit::Millis, samples, size_gib);
        }
        for m in NativeCopy::ALL {
            ctx.compare(
                row,
                &format!("{label}: {} / offshoot (API)", m.name()),
                m.name(),
                method::OFFSHOOT_API,
                size_gib,
            );
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
