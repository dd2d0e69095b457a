//! `pg_bench_quick`: the whole `offshoot bench --quick` on a tiny database, run
//! as the real binary. It checks that every row is produced and sane (positive
//! numbers, min ≤ median ≤ max, finite ratios, every target judged), never how
//! fast anything is.

use std::path::PathBuf;
use std::process::Command;

use super::context::method;
use super::results::{Results, Unit};

/// The `offshoot` binary next to this test's `deps/` directory.
fn offshoot_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir");
    let bin = dir.join("offshoot");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p offshoot)",
        bin.display()
    );
    bin
}

#[test]
fn pg_bench_quick() {
    let out = tempfile::Builder::new()
        .prefix("offshoot-bench-test")
        .tempdir_in("/tmp")
        .expect("temp dir");
    // The PostgreSQL user must be able to reach the scratch clusters inside.
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let output = Command::new(offshoot_binary())
        .args(["bench", "--quick", "--size", "0.02", "--duration", "2"])
        .args(["--branches", "10", "--plot", "--out"])
        .arg(out.path())
        .output()
        .expect("run offshoot bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "offshoot bench failed ({}):\n{stderr}\n{stdout}",
        output.status
    );

    let json = std::fs::read_to_string(out.path().join("results.json")).expect("results.json");
    let r: Results = serde_json::from_str(&json).expect("results.json parses");
    assert!(r.failures.is_empty(), "failures: {:?}", r.failures);

    let expected: &[(u8, &[&str])] = &[
        (
            1,
            &[
                method::OFFSHOOT_API,
                method::OFFSHOOT_CLI,
                method::FILE_COPY,
                method::WAL_LOG,
                method::DUMP_RESTORE,
            ],
        ),
        (
            2,
            &[
                method::OFFSHOOT_API,
                method::OFFSHOOT_CLI,
                method::FILE_COPY,
                method::WAL_LOG,
                method::DUMP_RESTORE,
            ],
        ),
        (
            3,
            &[
                method::NATIVE,
                method::NATIVE_SOCKET,
                method::BRANCH,
                method::BRANCH_SOCKET,
            ],
        ),
        (
            4,
            &[
                method::NATIVE,
                method::NATIVE_SOCKET,
                method::BRANCH,
                method::BRANCH_SOCKET,
                method::BRANCH_DEPTH_50,
            ],
        ),
        (
            5,
            &[
                method::OFFSHOOT_API,
                method::FILE_COPY,
                method::WAL_LOG,
                method::DUMP_RESTORE,
            ],
        ),
        (
            6,
            &["total create time", "each create (API)", "storage added"],
        ),
        (7, &[method::WAKE, method::COLD_START]),
    ];
    for (row, methods) in expected {
        for m in *methods {
            assert!(
                r.median(*row, m, None).is_some(),
                "row {row} has no measurement by {m}"
            );
        }
    }
    for m in &r.measurements {
        let s = m.stats;
        assert!(s.min <= s.median && s.median <= s.max, "{m:?}");
        let may_be_zero = m.unit == Unit::Bytes;
        assert!(
            s.min > 0.0 || (may_be_zero && s.min == 0.0),
            "non-positive value: {m:?}"
        );
        assert!(s.max.is_finite(), "{m:?}");
    }
    // Runs per timed figure follow --quick (2).
    let copy = r.measurements.iter().find(|m| m.row == 1).expect("row 1");
    assert_eq!(copy.stats.n, 2);
    assert!(!r.comparisons.is_empty());
    for c in &r.comparisons {
        assert!(c.ratio.is_finite() && c.ratio > 0.0, "{c:?}");
    }
    assert_eq!(r.targets.len(), 7);
    // One size only: "constant in size" cannot be judged; every other target is.
    let judged = r.targets.iter().filter(|t| t.met.is_some()).count();
    assert_eq!(judged, 6, "{:?}", r.targets);
    assert!(stdout.contains("MISSED") || stdout.contains("met"));
    assert!(out.path().join("results.md").exists());
    let svg = std::fs::read_to_string(out.path().join("copy-time-vs-size.svg")).expect("svg");
    assert!(svg.contains("<polyline"));
    // Nothing left behind in --out but the three result files.
    let left: Vec<_> = std::fs::read_dir(out.path())
        .expect("read out")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 3, "left behind: {left:?}");
}
