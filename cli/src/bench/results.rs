//! The results of one benchmark run: measurements, comparisons and targets, as
//! written to `results.json` and rendered to the terminal, `results.md` and the chart.

use serde::{Deserialize, Serialize};

use super::stats::Stats;

/// What a measurement counts, and so how to print it and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Millis,
    Tps,
    Bytes,
}

/// One line of a row: a method measured `stats.n` times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// The row number (1..=7) of the benchmark.
    pub row: u8,
    /// What was measured, e.g. "full copy of 1 GiB".
    pub what: String,
    /// Who did it, e.g. "offshoot (API)" or "CREATE DATABASE … FILE_COPY".
    pub method: String,
    pub unit: Unit,
    pub stats: Stats,
    /// The data size in GiB this line belongs to, when it has one.
    pub size_gib: Option<f64>,
}

/// A ratio computed inside the run, e.g. FILE_COPY time / offshoot time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub row: u8,
    pub description: String,
    pub ratio: f64,
}

/// A goal the benchmark reports against, met or missed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub description: String,
    /// The measured value, as printed (e.g. "412×", "93.1 %", "n/a: one size").
    pub actual: String,
    /// `None` when the run had no data to judge it (e.g. one size only).
    pub met: Option<bool>,
}

/// Where and how the run happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub command: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub disk: String,
    pub kernel: String,
    pub postgres_version: String,
    pub runs: u32,
    pub pgbench_seconds: u64,
    pub pgbench_clients: u32,
    pub size_gib: f64,
    pub pgbench_scale: u32,
    pub started_at: String,
    pub total_seconds: f64,
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub environment: Environment,
    pub measurements: Vec<Measurement>,
    pub comparisons: Vec<Comparison>,
    pub targets: Vec<Target>,
    /// Steps that could not be measured, with the reason (never silently dropped).
    pub failures: Vec<String>,
}

impl Results {
    /// The median of the measurement of `row` by `method` (at `size_gib` when given).
    pub fn median(&self, row: u8, method: &str, size_gib: Option<f64>) -> Option<f64> {
        self.measurements
            .iter()
            .find(|m| {
                m.row == row && m.method == method && (size_gib.is_none() || m.size_gib == size_gib)
            })
            .map(|m| m.stats.median)
    }
}
