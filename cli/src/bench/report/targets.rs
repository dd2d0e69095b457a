//! The targets offshoot is measured against, judged from one run's results.
//! A target the run had no data for is reported as not measured, never dropped.

use crate::bench::context::method;
use crate::bench::results::{Results, Target};

fn target(
    description: String,
    value: Option<f64>,
    show: impl Fn(f64) -> String,
    ok: impl Fn(f64) -> bool,
) -> Target {
    match value {
        Some(v) if v.is_finite() => Target {
            description,
            actual: show(v),
            met: Some(ok(v)),
        },
        _ => Target {
            description,
            actual: "not measured".into(),
            met: None,
        },
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// A throughput target: `a`'s median in `row` is at least `min` times `b`'s.
fn throughput_target(
    r: &Results,
    row: u8,
    description: &str,
    a: &str,
    b: &str,
    min: f64,
) -> Target {
    target(
        description.into(),
        ratio(r.median(row, a, None), r.median(row, b, None)),
        |v| format!("{:.1}%", v * 100.0),
        |v| v >= min,
    )
}

/// Judges every target. `main_gib` is the size rows 2–7 used; `sizes` those of row 1.
pub fn judge(r: &Results, main_gib: f64, sizes: &[f64]) -> Vec<Target> {
    let label = crate::bench::args::trim_float(main_gib);
    let copy = |m: &str, s: f64| r.median(1, m, Some(s));
    let mut out = vec![target(
        format!("copy of {label} GiB ≥ 300× faster than FILE_COPY"),
        ratio(
            copy(method::FILE_COPY, main_gib),
            copy(method::OFFSHOOT_API, main_gib),
        ),
        |v| format!("{v:.0}×"),
        |v| v >= 300.0,
    )];
    let (constant, span) = match (sizes.first(), sizes.last()) {
        (Some(&lo), Some(&hi)) if sizes.len() >= 2 => (
            ratio(
                copy(method::OFFSHOOT_API, hi),
                copy(method::OFFSHOOT_API, lo),
            ),
            format!(
                "{} → {} GiB",
                crate::bench::args::trim_float(lo),
                crate::bench::args::trim_float(hi)
            ),
        ),
        _ => (None, "needs --sizes with two sizes".into()),
    };
    out.push(target(
        format!("copy time constant in size ({span}: offshoot time grows ≤ 1.5×)"),
        constant,
        |v| format!("{v:.2}×"),
        |v| v <= 1.5,
    ));
    // The branch's storage: its compute's own socket vs native's socket.
    out.push(throughput_target(
        r,
        3,
        "pgbench TPC-B on a branch ≥ 90% of native",
        method::BRANCH_SOCKET,
        method::NATIVE_SOCKET,
        0.90,
    ));
    out.push(throughput_target(
        r,
        4,
        "pgbench -S on a branch ≥ 95% of native",
        method::BRANCH_SOCKET,
        method::NATIVE_SOCKET,
        0.95,
    ));
    // The proxy: a branch through it vs native over loopback TCP.
    out.push(throughput_target(
        r,
        4,
        "pgbench -S through the proxy ≥ 90% of native over loopback TCP",
        method::BRANCH,
        method::NATIVE,
        0.90,
    ));
    out.push(throughput_target(
        r,
        4,
        "pgbench -S at depth 50 within 5% of a branch of main",
        method::BRANCH_DEPTH_50,
        method::BRANCH,
        0.95,
    ));
    out.push(target(
        "create + first query < 400 ms".into(),
        r.median(2, method::OFFSHOOT_API, None),
        |v| format!("{v:.0} ms"),
        |v| v < 400.0,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::{Environment, Measurement, Unit};
    use crate::bench::stats::Stats;

    fn results(ms: &[(u8, &str, f64, Option<f64>)]) -> Results {
        Results {
            environment: Environment {
                command: String::new(),
                cpus: 2,
                cpu_model: String::new(),
                memory_gib: 0.0,
                disk: String::new(),
                kernel: String::new(),
                postgres_version: String::new(),
                runs: 1,
                pgbench_seconds: 1,
                pgbench_clients: 4,
                size_gib: 1.0,
                pgbench_scale: 68,
                started_at: String::new(),
                total_seconds: 0.0,
            },
            measurements: ms
                .iter()
                .map(|&(row, m, v, size)| Measurement {
                    row,
                    what: String::new(),
                    method: m.into(),
                    unit: Unit::Millis,
                    stats: Stats::single(v),
                    size_gib: size,
                })
                .collect(),
            comparisons: vec![],
            targets: vec![],
            failures: vec![],
        }
    }

    #[test]
    fn copy_speedup_met_and_missed() {
        let r = results(&[
            (1, method::FILE_COPY, 3000.0, Some(1.0)),
            (1, method::OFFSHOOT_API, 5.0, Some(1.0)),
        ]);
        let t = judge(&r, 1.0, &[1.0]);
        assert_eq!(t[0].met, Some(true), "{:?}", t[0]);
        assert_eq!(t[0].actual, "600×");
        let r = results(&[
            (1, method::FILE_COPY, 3000.0, Some(1.0)),
            (1, method::OFFSHOOT_API, 50.0, Some(1.0)),
        ]);
        assert_eq!(judge(&r, 1.0, &[1.0])[0].met, Some(false));
    }

    #[test]
    fn missing_data_is_not_measured_not_hidden() {
        let t = judge(&results(&[]), 1.0, &[1.0]);
        assert_eq!(t.len(), 7);
        assert!(t
            .iter()
            .all(|t| t.met.is_none() && t.actual == "not measured"));
    }

    /// The target named `description` in `t`.
    fn find<'a>(t: &'a [Target], description: &str) -> &'a Target {
        t.iter()
            .find(|t| t.description == description)
            .unwrap_or_else(|| panic!("no target {description:?} in {t:?}"))
    }

    const TPCB: &str = "pgbench TPC-B on a branch ≥ 90% of native";
    const SELECT: &str = "pgbench -S on a branch ≥ 95% of native";
    const PROXY: &str = "pgbench -S through the proxy ≥ 90% of native over loopback TCP";

    /// Rows 3 and 4 with every side: sockets at `socket` tps on the branch
    /// (native 1000), the proxy at `proxy` tps (native TCP 1000).
    fn throughput(socket: f64, proxy: f64) -> Results {
        let mut ms = Vec::new();
        for row in [3, 4] {
            ms.extend([
                (row, method::NATIVE_SOCKET, 1000.0, None),
                (row, method::BRANCH_SOCKET, socket, None),
                (row, method::NATIVE, 1000.0, None),
                (row, method::BRANCH, proxy, None),
            ]);
        }
        results(&ms)
    }

    #[test]
    fn storage_targets_compare_the_sockets_not_the_proxy() {
        // Fast storage, slow proxy: the storage targets are met, the proxy's missed.
        let t = judge(&throughput(960.0, 600.0), 1.0, &[1.0]);
        assert_eq!(find(&t, TPCB).met, Some(true), "{t:?}");
        assert_eq!(find(&t, TPCB).actual, "96.0%");
        assert_eq!(find(&t, SELECT).met, Some(true), "{t:?}");
        assert_eq!(find(&t, PROXY).met, Some(false), "{t:?}");
        assert_eq!(find(&t, PROXY).actual, "60.0%");
        // Slow storage, fast proxy: the other way round.
        let t = judge(&throughput(850.0, 950.0), 1.0, &[1.0]);
        assert_eq!(find(&t, TPCB).met, Some(false), "{t:?}");
        assert_eq!(find(&t, SELECT).met, Some(false), "{t:?}");
        assert_eq!(find(&t, PROXY).met, Some(true), "{t:?}");
    }

    #[test]
    fn select_on_a_branch_needs_95_percent() {
        // 92% meets TPC-B's 90% but not -S's 95%.
        let t = judge(&throughput(920.0, 950.0), 1.0, &[1.0]);
        assert_eq!(find(&t, TPCB).met, Some(true), "{t:?}");
        assert_eq!(find(&t, SELECT).met, Some(false), "{t:?}");
    }

    #[test]
    fn throughput_without_the_socket_sides_is_not_measured() {
        // Only the proxy and loopback TCP sides: the storage targets cannot be judged.
        let r = results(&[
            (3, method::NATIVE, 1000.0, None),
            (3, method::BRANCH, 950.0, None),
            (4, method::NATIVE, 1000.0, None),
            (4, method::BRANCH, 950.0, None),
        ]);
        let t = judge(&r, 1.0, &[1.0]);
        assert_eq!(find(&t, TPCB).met, None, "{t:?}");
        assert_eq!(find(&t, SELECT).met, None, "{t:?}");
        assert_eq!(find(&t, PROXY).met, Some(true), "{t:?}");
    }

    #[test]
    fn constant_in_size_uses_smallest_and_largest() {
        let r = results(&[
            (1, method::OFFSHOOT_API, 5.0, Some(1.0)),
            (1, method::OFFSHOOT_API, 9.0, Some(5.0)),
        ]);
        let t = judge(&r, 1.0, &[1.0, 5.0]);
        assert_eq!(t[1].met, Some(false));
        assert_eq!(t[1].actual, "1.80×");
    }
}
