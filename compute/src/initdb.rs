//! Creating a new cluster: `initdb`, offshoot's settings, the internal role.
//!
//! Steps, each as [`RunAs`]:
//! 1. `initdb` with SCRAM, the `postgres` superuser and its password (passed
//!    in a file of mode 0600 owned by the PostgreSQL user inside `work_dir`,
//!    removed afterwards), UTF-8, the `C.UTF-8` locale (or `C`);
//! 2. offshoot's block appended to `postgresql.conf` (see [`crate::config`]);
//! 3. [`INTERNAL_ROLE`] created in single-user mode (`postgres --single`): no
//!    socket, no listener, no authentication involved, nothing to stop.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::binaries::PgBinaries;
use crate::config;
use crate::error::ComputeError;
use crate::process::{chown_to, command_as, output_text, require_absolute};
use crate::run_as::RunAs;
use crate::secrets::{generate_password, Secrets};
use crate::INTERNAL_ROLE;

/// Runs initdb into `datadir` (an empty or missing directory, typically a
/// pagefs mount) as `run_as`, with SCRAM, creates the `postgres` superuser
/// with its password and [`INTERNAL_ROLE`], and writes offshoot's settings
/// into `postgresql.conf`. `work_dir` holds a temporary password file and must
/// be traversable by `run_as`. With `waldir`, the WAL goes there and
/// `pg_wal` is a link to it ([`crate::wal_dir`]).
pub async fn initdb(
    bins: &PgBinaries,
    run_as: &RunAs,
    datadir: &Path,
    waldir: Option<&Path>,
    secrets: &Secrets,
    work_dir: &Path,
) -> Result<(), ComputeError> {
    require_absolute(datadir, "the data directory")?;
    require_absolute(work_dir, "the work directory")?;
    let started = std::time::Instant::now();
    prepare_datadir(datadir, run_as)?;
    if let Some(waldir) = waldir {
        require_absolute(waldir, "the WAL directory")?;
        prepare_datadir(waldir, run_as)?;
    }

    let pwfile = PasswordFile::create(work_dir, &secrets.postgres_password, run_as)?;
    let mut cmd = command_as(&bins.tool("initdb"), run_as, Path::new("/"));
    cmd.arg("-D")
        .arg(datadir)
        .arg("--auth=scram-sha-256")
        .arg("--username=postgres")
        .arg(format!("--pwfile={}", pwfile.path.display()))
        .arg("--encoding=UTF8")
        .arg(format!("--locale={}", config::initdb_locale()))
        .arg("--no-instructions")
        .stdin(Stdio::null());
    if let Some(waldir) = waldir {
        cmd.arg(format!("--waldir={}", waldir.display()));
    }
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .map_err(|e| ComputeError::io("run initdb", e))?;
    drop(pwfile);
    if !out.status.success() {
        return Err(ComputeError::ToolFailed {
            tool: "initdb".to_owned(),
            status: out.status.to_string(),
            output: output_text(&out.stdout, &out.stderr),
        });
    }

    append_settings(datadir)?;
    create_internal_role(bins, run_as, datadir, secrets).await?;
    tracing::info!(datadir = %datadir.display(), elapsed = ?started.elapsed(), "initialised PostgreSQL cluster");
    Ok(())
}

fn prepare_datadir(datadir: &Path, run_as: &RunAs) -> Result<(), ComputeError> {
    let what = || format!("prepare directory {}", datadir.display());
    fs::create_dir_all(datadir).map_err(|e| ComputeError::io(what(), e))?;
    chown_to(datadir, run_as)?;
    fs::set_permissions(datadir, fs::Permissions::from_mode(0o700))
        .map_err(|e| ComputeError::io(what(), e))
}

fn append_settings(datadir: &Path) -> Result<(), ComputeError> {
    let path = datadir.join("postgresql.conf");
    let what = || format!("append offshoot settings to {}", path.display());
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| ComputeError::io(what(), e))?;
    f.write_all(config::postgresql_conf_block().as_bytes())
        .map_err(|e| ComputeError::io(what(), e))?;
    f.sync_all().map_err(|e| ComputeError::io(what(), e))
}

async fn create_internal_role(
    bins: &PgBinaries,
    run_as: &RunAs,
    datadir: &Path,
    secrets: &Secrets,
) -> Result<(), ComputeError> {
    let sql = format!(
        "CREATE ROLE {INTERNAL_ROLE} WITH SUPERUSER LOGIN PASSWORD '{}';\n",
        secrets.internal_password.replace('\'', "''")
    );
    let mut cmd = command_as(&bins.tool("postgres"), run_as, Path::new("/"));
    cmd.arg("--single")
        .arg("-D")
        .arg(datadir)
        .arg("postgres")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ComputeError::io("run postgres --single", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(sql.as_bytes())
            .await
            .map_err(|e| ComputeError::io("write to postgres --single", e))?;
        // Dropping stdin sends EOF: single-user mode then shuts down cleanly.
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| ComputeError::io("run postgres --single", e))?;
    let text =
        output_text(&out.stdout, &out.stderr).replace(&secrets.internal_password, "<redacted>");
    if !out.status.success() || text.contains("ERROR:") || text.contains("FATAL:") {
        return Err(ComputeError::ToolFailed {
            tool: format!("postgres --single (CREATE ROLE {INTERNAL_ROLE})"),
            status: out.status.to_string(),
            output: text,
        });
    }
    Ok(())
}

/// A password file readable only by the PostgreSQL user; removed on drop.
struct PasswordFile {
    path: PathBuf,
}

impl PasswordFile {
    fn create(dir: &Path, password: &str, run_as: &RunAs) -> Result<PasswordFile, ComputeError> {
        let path = dir.join(format!(".initdb-pw-{}", &generate_password()[..12]));
        let shown = path.display().to_string();
        let what = || format!("write password file {shown}");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ComputeError::io(what(), e))?;
        let file = PasswordFile { path };
        writeln!(f, "{password}").map_err(|e| ComputeError::io(what(), e))?;
        chown_to(&file.path, run_as)?;
        Ok(file)
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove initdb password file");
        }
    }
}
