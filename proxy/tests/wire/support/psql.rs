//! Runs the real `psql` against the proxy, as a user would, capturing its
//! exit status, stdout and stderr (where libpq prints server errors).

use std::time::Duration;

use super::postgres::PG_BIN;

#[derive(Debug)]
pub struct PsqlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `psql -X -A -t -w <conninfo> -c <cmd>…` with PGPASSWORD set.
pub async fn psql(conninfo: &str, password: &str, commands: &[&str]) -> PsqlOutput {
    let mut cmd = tokio::process::Command::new(format!("{PG_BIN}/psql"));
    cmd.args(["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"])
        .arg(conninfo)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGUSER")
        .env_remove("PGOPTIONS")
        .kill_on_drop(true);
    for c in commands {
        cmd.arg("-c").arg(c);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("psql finished in time")
        .expect("run psql");
    PsqlOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
