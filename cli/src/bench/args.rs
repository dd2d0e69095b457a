//! The flags of `offshoot bench` and their validation into a ready [`Plan`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

/// Megabytes of data per pgbench scale unit (`pgbench -i -s 1` ≈ 15 MB on disk).
const MB_PER_SCALE: f64 = 15.0;

/// Measure offshoot against plain PostgreSQL on this machine, in one run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Size of the pgbench database in GiB (fractions allowed, e.g. 0.02).
    #[arg(long, default_value_t = 1.0)]
    pub size: f64,
    /// Comma-separated sizes in GiB for the copy-time growth figure (e.g. 1,5).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<f64>,
    /// Where results.json, results.md and the chart go (and the scratch clusters meanwhile).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A short smoke run: 2 runs, 5 s pgbench, 50 branches.
    #[arg(long)]
    pub quick: bool,
    /// Also write copy-time-vs-size.svg.
    #[arg(long)]
    pub plot: bool,
    /// Runs per measurement (median, min and max are reported). Default 5, quick 2.
    #[arg(long)]
    pub runs: Option<u32>,
    /// Seconds per pgbench run. Default 60, quick 5.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Branches created in the many-branches row. Default 1000, quick 50.
    #[arg(long)]
    pub branches: Option<u32>,
}

/// One data size: the GiB asked for and the pgbench scale that gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataSize {
    pub gib: f64,
    pub scale: u32,
}

impl DataSize {
    pub fn new(gib: f64) -> DataSize {
        let scale = (gib * 1024.0 / MB_PER_SCALE).round().max(1.0) as u32;
        DataSize { gib, scale }
    }

    /// The database that holds this size's data (on both sides).
    pub fn database(&self) -> String {
        format!("bench_s{}", self.scale)
    }

    pub fn label(&self) -> String {
        format!("{} GiB", trim_float(self.gib))
    }
}

/// Formats a float without trailing zeros (1.0 -> "1", 0.25 -> "0.25").
pub fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The validated settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The size every row but the growth figure uses.
    pub main: DataSize,
    /// Every size of the copy-time figure, ascending, including `main`.
    pub sizes: Vec<DataSize>,
    pub out: PathBuf,
    pub plot: bool,
    pub quick: bool,
    pub runs: u32,
    pub duration: Duration,
    pub branches: u32,
    pub clients: u32,
    /// The command line, for the report.
    pub command: String,
}

impl BenchArgs {
    /// Checks the flags and fills in the defaults. `default_out` is used when `--out` is absent.
    pub fn into_plan(self, default_out: PathBuf) -> Result<Plan> {
        let check = |gib: f64| -> Result<()> {
            if !gib.is_finite() || gib <= 0.0 || gib > 1024.0 {
                bail!("size {gib} GiB is out of range (0 < size <= 1024)");
            }
            Ok(())
        };
        check(self.size)?;
        for &s in &self.sizes {
            check(s)?;
        }
        let main = DataSize::new(self.size);
        let mut sizes: Vec<DataSize> = self.sizes.iter().map(|&g| DataSize::new(g)).collect();
        sizes.push(main);
        sizes.sort_by_key(|s| s.scale);
        sizes.dedup_by_key(|s| s.scale);
        // Keep the main size's label exactly as asked when another size maps to its scale.
        for s in &mut sizes {
            if s.scale == main.scale {
                *s = main;
            }
        }
        let runs = self.runs.unwrap_or(if self.quick { 2 } else { 5 });
        if runs == 0 {
            bail!("--runs must be at least 1");
        }
        let duration = self.duration.unwrap_or(if self.quick { 5 } else { 60 });
        if duration == 0 {
            bail!("--duration must be at least 1 second");
        }
        let branches = self.branches.unwrap_or(if self.quick { 50 } else { 1000 });
        if branches == 0 {
            bail!("--branches must be at least 1");
        }
        Ok(Plan {
            main,
            sizes,
            out: self.out.unwrap_or(default_out),
            plot: self.plot,
            quick: self.quick,
            runs,
            duration: Duration::from_secs(duration),
            branches,
            clients: 4,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BenchArgs {
        BenchArgs {
            size: 1.0,
            sizes: vec![],
            out: None,
            quick: false,
            plot: false,
            runs: None,
            duration: None,
            branches: None,
        }
    }

    #[test]
    fn one_gib_is_scale_68() {
        assert_eq!(DataSize::new(1.0).scale, 68);
        assert_eq!(DataSize::new(0.001).scale, 1);
        assert_eq!(DataSize::new(5.0).scale, 341);
    }

    #[test]
    fn defaults_differ_in_quick_mode() {
        let full = args().into_plan("x".into()).unwrap();
        assert_eq!(
            (full.runs, full.duration.as_secs(), full.branches),
            (5, 60, 1000)
        );
        let quick = BenchArgs {
            quick: true,
            ..args()
        }
        .into_plan("x".into())
        .unwrap();
        assert_eq!(
            (quick.runs, quick.duration.as_secs(), quick.branches),
            (2, 5, 50)
        );
    }

    #[test]
    fn sizes_include_the_main_size_once_and_sorted() {
        let plan = BenchArgs {
            sizes: vec![5.0, 1.0],
            ..args()
        }
        .into_plan("x".into())
        .unwrap();
        let scales: Vec<u32> = plan.sizes.iter().map(|s| s.scale).collect();
        assert_eq!(scales, vec![68, 341]);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(BenchArgs {
            size: 0.0,
            ..args()
        }
        .into_plan("x".into())
        .is_err());
        assert!(BenchArgs {
            runs: Some(0),
            ..args()
        }
        .into_plan("x".into())
        .is_err());
        assert!(BenchArgs {
            sizes: vec![f64::NAN],
            ..args()
        }
        .into_plan("x".into())
        .is_err());
    }

    #[test]
    fn labels_trim_zeros() {
        assert_eq!(DataSize::new(1.0).label(), "1 GiB");
        assert_eq!(DataSize::new(0.02).label(), "0.02 GiB");
    }
}
