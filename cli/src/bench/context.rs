//! What every row of the benchmark works with: the plan, both sides (native
//! cluster and offshoot daemon), the progress clock and the results so far.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::args::{DataSize, Plan};
use super::daemon::Daemon;
use super::native::NativeCluster;
use super::pg::PgTools;
use super::progress::Progress;
use super::results::{Comparison, Measurement, Unit};
use super::stats::Stats;

/// Method names shared by rows, the report and the chart.
pub mod method {
    pub const OFFSHOOT_API: &str = "offshoot branch (API)";
    pub const OFFSHOOT_CLI: &str = "offshoot branch create (CLI)";
    pub const FILE_COPY: &str = "CREATE DATABASE … STRATEGY FILE_COPY";
    pub const WAL_LOG: &str = "CREATE DATABASE … STRATEGY WAL_LOG";
    pub const DUMP_RESTORE: &str = "pg_dump -Fc | pg_restore";
    pub const NATIVE: &str = "native PostgreSQL (loopback TCP)";
    pub const NATIVE_SOCKET: &str = "native PostgreSQL (Unix socket)";
    pub const BRANCH: &str = "offshoot branch (proxy)";
    pub const BRANCH_SOCKET: &str = "offshoot branch (compute socket)";
    pub const BRANCH_DEPTH_50: &str = "offshoot branch at depth 50 (proxy)";
    pub const WAKE: &str = "offshoot wake from zero (proxy)";
    pub const COLD_START: &str = "native cold start (postgres start → query)";
}

pub struct Ctx {
    pub plan: Plan,
    pub tools: PgTools,
    pub progress: Progress,
    /// Scratch directory for both sides, removed at the end.
    pub work: PathBuf,
    pub native: NativeCluster,
    /// `None` when the daemon could not be started (its rows are then reported as failed).
    pub daemon: Option<Daemon>,
    pub measurements: Vec<Measurement>,
    pub comparisons: Vec<Comparison>,
    pub failures: Vec<String>,
    /// Sizes loaded so far (on both sides).
    pub loaded: Vec<DataSize>,
}

impl Ctx {
    pub fn daemon(&self) -> Result<&Daemon> {
        self.daemon
            .as_ref()
            .ok_or_else(|| anyhow!("the offshoot daemon is not running"))
    }

    /// Records a measurement from raw samples (milliseconds, tps or bytes).
    pub fn record(
        &mut self,
        row: u8,
        what: &str,
        method: &str,
        unit: Unit,
        samples: &[f64],
        size_gib: Option<f64>,
    ) {
        match Stats::of(samples) {
            Some(stats) => self.measurements.push(Measurement {
                row,
                what: what.to_string(),
                method: method.to_string(),
                unit,
                stats,
                size_gib,
            }),
            None => self
                .failures
                .push(format!("row {row}: {what} by {method}: no valid samples")),
        }
    }

    /// Records `a / b` of two medians already recorded in `row` (skipped when one is missing).
    pub fn compare(&mut self, row: u8, description: &str, a: &str, b: &str, size: Option<f64>) {
        let find = |m: &str| {
            self.measurements
                .iter()
                .find(|x| x.row == row && x.method == m && (size.is_none() || x.size_gib == size))
                .map(|x| x.stats.median)
        };
        if let (Some(a), Some(b)) = (find(a), find(b)) {
            if b > 0.0 {
                self.comparisons.push(Comparison {
                    row,
                    description: description.to_string(),
                    ratio: a / b,
                });
            }
        }
    }

    /// Notes a failed step and carries on with the rest of the benchmark.
    pub fn fail(&mut self, what: &str, err: &anyhow::Error) {
        let line = format!("{what}: {err:#}");
        self.progress.note(&format!("FAILED {line}"));
        self.failures.push(line);
    }
}

/// Milliseconds in a duration, as a sample.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times an async operation.
pub async fn timed<T, F: Future<Output = Result<T>>>(f: F) -> Result<(T, Duration)> {
    let started = Instant::now();
    let value = f.await?;
    Ok((value, started.elapsed()))
}
