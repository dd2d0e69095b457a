//! Running `pgbench`: loading data (`-i`) and timed runs, parsing the tps it reports.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::pg::{PgTools, Target};

/// Which pgbench workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The default TPC-B-like read/write transaction.
    TpcB,
    /// `-S`: select-only.
    SelectOnly,
}

async fn run(tools: &PgTools, target: &Target, args: &[String]) -> Result<String> {
    let out = tokio::process::Command::new(tools.tool("pgbench"))
        .args(args)
        .envs(target.libpq_env())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("run pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "pgbench {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

/// `pgbench -i -s SCALE DATABASE` (the database must exist).
pub async fn load(tools: &PgTools, target: &Target, database: &str, scale: u32) -> Result<()> {
    let args = vec![
        "-i".into(),
        "-q".into(),
        "-s".into(),
        scale.to_string(),
        database.into(),
    ];
    run(tools, target, &args).await.map(drop)
}

/// One timed run; returns the transactions per second pgbench reports.
pub async fn measure(
    tools: &PgTools,
    target: &Target,
    database: &str,
    workload: Workload,
    clients: u32,
    duration: Duration,
) -> Result<f64> {
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        clients.min(2).to_string(),
        "-T".into(),
        duration.as_secs().to_string(),
    ];
    if workload == Workload::SelectOnly {
        args.push("-S".into());
    }
    args.push(database.into());
    let stdout = run(tools, target, &args).await?;
    parse_tps(&stdout).with_context(|| format!("no tps in pgbench output:\n{stdout}"))
}

/// Finds `tps = 1234.5 (…)` in pgbench's report.
pub fn parse_tps(report: &str) -> Option<f64> {
    report.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("tps = ")?;
        let number = rest.split_whitespace().next()?;
        number.parse::<f64>().ok().filter(|x| x.is_finite())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pg15_report() {
        let report = "number of failed transactions: 0 (0.000%)\n\
                      latency average = 2.5 ms\n\
                      initial connection time = 12.3 ms\n\
                      tps = 1587.204181 (without initial connection time)\n";
        assert_eq!(parse_tps(report), Some(1587.204181));
    }

    #[test]
    fn no_tps_line_is_none() {
        assert_eq!(parse_tps("latency average = 2.5 ms\n"), None);
    }
}
