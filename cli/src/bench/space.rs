//! The disk space a run needs, checked before anything starts.
//!
//! A branch keeps every page version it writes until it is deleted (there is
//! no compaction yet, docs/storage-format.md "What space is kept"), so the
//! TPC-B row's branch grows by its whole write rate for every second of
//! pgbench. A run with the defaults at 1 GiB (5 runs of 60 s) had written
//! 19 GiB into the page store and 3.2 GiB into the native cluster when the
//! disk filled on 4 December 2026, twenty minutes in: the page store
//! answered "No space left on device" and the branch's PostgreSQL stopped.
//! Failing at the start, with the numbers, is better.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::args::Plan;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Bytes per second of TPC-B that a branch adds to the page store: about
/// 30 MiB/s measured (some 16 GiB in about 535 s of pgbench on the branch at
/// 1,900–2,500 tps on a 2-core machine, WAL and data pages), with room for
/// a faster machine.
const TPCB_STORE_BYTES_PER_SEC: u64 = 40 * MIB;

/// What a run of `plan` may write under `--out`, with room to spare: every
/// size loaded into both the native cluster and main (data and its WAL,
/// twice the size on each side), the copies of the largest (up to four
/// natively), and the TPC-B row's branch written through both of its sides.
pub fn needed_bytes(plan: &Plan) -> u64 {
    let gib = |size: f64| (size * GIB as f64).ceil() as u64;
    let loads: u64 = plan.sizes.iter().map(|s| 4 * gib(s.gib)).sum();
    // `sizes` includes `main`.
    let largest = plan.sizes.iter().map(|s| gib(s.gib)).max().unwrap_or(0);
    let copies = 4 * largest;
    let tpcb = 2 * u64::from(plan.runs) * plan.duration.as_secs() * TPCB_STORE_BYTES_PER_SEC;
    loads + copies + tpcb + GIB
}

/// Fails, saying what to change, unless the filesystem of `dir` has
/// [`needed_bytes`] available to this user.
pub fn check(dir: &Path, plan: &Plan) -> Result<()> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .with_context(|| format!("free space of {}", dir.display()))?;
    let available = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let needed = needed_bytes(plan);
    if available < needed {
        bail!(
            "this run needs about {:.1} GiB free under {} and there are {:.1} GiB: \
             a branch keeps every page version it writes, and the TPC-B row writes \
             about {} MiB per second of pgbench. Free some space, choose --out on a \
             larger disk, or run fewer or shorter runs (--runs, --duration, --quick)",
            needed as f64 / GIB as f64,
            dir.display(),
            available as f64 / GIB as f64,
            TPCB_STORE_BYTES_PER_SEC / MIB
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::args::BenchArgs;

    fn plan(size: f64, quick: bool, runs: Option<u32>) -> Plan {
        BenchArgs {
            size,
            sizes: vec![],
            out: None,
            quick,
            plot: false,
            runs,
            duration: None,
            branches: None,
        }
        .into_plan("/var/tmp/out".into())
        .expect("plan")
    }

    #[test]
    fn the_default_run_at_one_gib_needs_more_than_it_wrote_when_the_disk_filled() {
        let p = plan(1.0, false, None);
        assert_eq!((p.runs, p.duration), (5, Duration::from_secs(60)));
        // 19 GiB in the page store and 3.2 GiB natively, with two TPC-B
        // runs on the branch still to go.
        assert!(needed_bytes(&p) > 23 * GIB, "{}", needed_bytes(&p));
    }

    #[test]
    fn a_quick_run_needs_a_few_gib_at_most() {
        let p = plan(0.02, true, None);
        assert!(needed_bytes(&p) < 2 * GIB, "{}", needed_bytes(&p));
    }

    #[test]
    fn a_disk_without_room_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = plan(1024.0, false, Some(1000));
        let err = check(dir.path(), &p).expect_err("no disk has this much room");
        let text = format!("{err:#}");
        assert!(text.contains("GiB free under"), "{text}");
        assert!(text.contains("--runs, --duration"), "{text}");
        check(dir.path(), &plan(0.02, true, None)).expect("a quick run fits");
    }
}
