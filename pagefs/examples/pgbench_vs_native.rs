//! pgbench on PostgreSQL running on a pagefs mount, side by side with the
//! same PostgreSQL on a plain directory of the same disk, in one run.
//!
//! Run as root (mounts FUSE, runs PostgreSQL as `postgres`):
//!
//! ```text
//! cargo run --release -p offshoot-pagefs --example pgbench_vs_native -- [SCALE] [CLIENTS] [SECONDS] [DIR] [ROUNDS]
//! ```
//!
//! Defaults: scale 20, 4 clients, 30 s per run, a temporary directory under
//! /var/tmp, 2 rounds. Both servers run with PostgreSQL's default settings,
//! except that the pagefs one also gets the WAL settings offshoot gives its
//! computes (`PAGEFS_WAL_SETTINGS`, see docs/compute.md); in each round the
//! TPC-B and select-only (`-S`) runs alternate between them, native first in
//! odd rounds and pagefs first in even ones. Each
//! pagefs run also prints the CPU per transaction (PostgreSQL's processes,
//! and this process, the FUSE server), the FUSE requests per transaction,
//! and the time pagefs spent on each synchronous (WAL) write, to set against
//! the WAL write time PostgreSQL reports: the difference is the kernel's
//! queueing and wake-ups.
//! All settings are in place (ALTER SYSTEM and a restart) before the load.
//! `OFFSHOOT_BENCH_SETTINGS="name=value,…"` sets server settings on both
//! sides (e.g. `checkpoint_timeout=30s` for runs with
//! checkpoints in them); `OFFSHOOT_BENCH_PAGEFS_SETTINGS` sets them on the
//! pagefs side alone, after those (e.g. `wal_sync_method=fdatasync` to
//! compare with offshoot's own choice, or on both sides to compare like
//! with like). `OFFSHOOT_BENCH_LOG_ZERO_CHUNK=BYTES` sets the page store's
//! `log_zero_chunk_bytes` (0: no zero-filled tail).
//! `OFFSHOOT_BENCH_QUEUE_PRIORITY=normal` keeps the io_uring queue threads
//! at normal priority (they run at real-time priority by default). At the end both servers are killed
//! (SIGKILL) and started again, and the crash recovery of each (WAL
//! replayed, seconds) is printed.

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::path::{Path, PathBuf};

use offshoot_pagefs::{mount, MountOptions, QueuePriority};
use offshoot_storage::{FileId, SetAttr, Store, StoreOptions};
use postgres::{initdb, make_traversable, pg_owned_dir, Postgres, PG_GID, PG_UID};

fn tps(output: &str) -> f64 {
    output
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{output}"))
}

fn transactions(output: &str) -> u64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) of process `pid`: its threads, and with
/// `children` its live children and the children it has reaped.
fn cpu_of(pid: u32, children: bool) -> f64 {
    let ticks = |stat: &str, fields: &[usize]| -> u64 {
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        fields
            .iter()
            .filter_map(|&i| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()))
            .sum()
    };
    let read = |p: &str| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
    // utime, stime (14, 15); cutime, cstime (16, 17).
    let own: &[usize] = if children {
        &[14, 15, 16, 17]
    } else {
        &[14, 15]
    };
    let mut total = ticks(&read(&pid.to_string()), own);
    if children {
        let kids =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        total += kids
            .split_whitespace()
            .map(|k| ticks(&read(k), &[14, 15, 16, 17]))
            .sum::<u64>();
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    total as f64 / hz
}

/// One pgbench run against `pg`: tps, transactions, and the CPU seconds
/// PostgreSQL and this process (the FUSE server) used meanwhile.
fn measured(pg: &Postgres, args: &[&str]) -> (String, f64, f64) {
    let pid = pg.pid().unwrap_or(0);
    let me = std::process::id();
    let (pg0, me0) = (cpu_of(pid, true), cpu_of(me, false));
    let out = pg.pgbench(args);
    // Backends exit when pgbench disconnects; give the postmaster a moment
    // to reap them so their time shows in its children's total.
    std::thread::sleep(std::time::Duration::from_millis(300));
    (out, cpu_of(pid, true) - pg0, cpu_of(me, false) - me0)
}

/// PostgreSQL's own account of its WAL I/O since the last reset (needs
/// `track_wal_io_timing`, which this harness turns on): writes and syncs per
/// transaction and the average time of each.
fn wal_io(pg: &Postgres, txns: f64) -> String {
    let row = pg.psql("select wal_write, wal_sync, wal_write_time, wal_sync_time from pg_stat_wal");
    let v: Vec<f64> = row
        .trim()
        .split('|')
        .filter_map(|x| x.parse().ok())
        .collect();
    let [writes, syncs, write_ms, sync_ms] = v[..] else {
        panic!("unexpected pg_stat_wal row: {row:?}");
    };
    format!(
        "{:.2} WAL writes/txn at {:.3} ms, {:.2} WAL syncs/txn at {:.3} ms",
        writes / txns,
        write_ms / writes.max(1.0),
        syncs / txns,
        sync_ms / syncs.max(1.0),
    )
}

/// A log position (`0/1A2B3C`) as a byte offset.
fn lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The last crash recovery in a PostgreSQL log: MB of WAL replayed and the
/// seconds the redo took, from `redo starts at` and `redo done at … elapsed`.
fn last_recovery(log: &str) -> Option<(f64, f64)> {
    let after = |line: &str, key: &str| -> Option<String> {
        let rest = &line[line.find(key)? + key.len()..];
        Some(
            rest.split_whitespace()
                .next()?
                .trim_end_matches(',')
                .to_owned(),
        )
    };
    let start = log
        .lines()
        .rev()
        .find_map(|l| after(l, "redo starts at "))?;
    let done_line = log.lines().rev().find(|l| l.contains("redo done at "))?;
    let done = after(done_line, "redo done at ")?;
    let elapsed: f64 = after(done_line, "elapsed: ")?.parse().ok()?;
    let bytes = lsn(&done)?.checked_sub(lsn(&start)?)?;
    Some((bytes as f64 / 1e6, elapsed))
}

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// `ALTER SYSTEM` for each `name=value` in the environment variable `var`.
fn apply_settings(pg: &Postgres, var: &str) {
    apply(pg, var, &std::env::var(var).unwrap_or_default());
}

/// `ALTER SYSTEM` for each `name=value` in `settings`, which come from `what`.
fn apply(pg: &Postgres, what: &str, settings: &str) {
    for setting in settings.split(',').filter(|s| !s.is_empty()) {
        let Some((name, value)) = setting.split_once('=') else {
            panic!("{what}: {setting:?} is not name=value");
        };
        pg.psql(&format!("alter system set {name} = '{value}'"));
    }
}

/// What offshoot's computes run with on pagefs (`compute/src/config.rs`);
/// `wal_compression=lz4` is added where the server has LZ4 (see
/// [`lz4_if_built`]), as the computes do.
const PAGEFS_WAL_SETTINGS: &str =
    "wal_sync_method=open_datasync,wal_init_zero=off,wal_buffers=16MB";

/// `wal_compression=lz4` if `pg` was built with LZ4 (its `wal_compression`
/// accepts `lz4`; PostgreSQL 15+ lists only the methods it was built
/// with), else nothing.
fn lz4_if_built(pg: &Postgres) -> &'static str {
    let offered = pg.psql(
        "select count(*) from pg_settings \
         where name = 'wal_compression' and 'lz4' = any(enumvals)",
    );
    match offered.trim() {
        "1" => "wal_compression=lz4",
        _ => "",
    }
}

fn main() {
    let scale: u32 = arg(1, 20);
    let clients: u32 = arg(2, 4);
    let seconds: u32 = arg(3, 30);
    let base: PathBuf = arg(4, PathBuf::from("/var/tmp"));
    let rounds: u32 = arg(5, 2);
    let dir = tempfile::tempdir_in(&base).expect("tempdir");
    make_traversable(dir.path());
    let p = |name: &str| dir.path().join(name);

    // Native: a plain directory.
    let native_data = p("native");
    pg_owned_dir(&native_data, 0o700);
    initdb(&native_data);

    // pagefs: a page store on the same disk, mounted.
    std::fs::create_dir(p("store")).expect("mkdir store");
    let mut store_opts = StoreOptions::default();
    if let Ok(chunk) = std::env::var("OFFSHOOT_BENCH_LOG_ZERO_CHUNK") {
        store_opts.log_zero_chunk_bytes = chunk.parse().unwrap_or_else(|_| {
            panic!("OFFSHOOT_BENCH_LOG_ZERO_CHUNK={chunk:?}: not a byte count")
        });
    }
    let store = Store::open(&p("store"), store_opts).expect("open store");
    store.create_branch("main", None).expect("create main");
    let branch = store.branch("main").expect("main");
    branch
        .setattr(
            FileId::ROOT,
            SetAttr {
                uid: Some(PG_UID),
                gid: Some(PG_GID),
                mode: Some(0o700),
                ..SetAttr::default()
            },
        )
        .expect("chown root");
    std::fs::create_dir(p("mnt")).expect("mkdir mnt");
    let mnt = mount(
        branch,
        &p("mnt"),
        MountOptions {
            allow_other: true,
            fs_name: "offshoot:bench".into(),
            classic: std::env::var_os("OFFSHOOT_BENCH_CLASSIC").is_some(),
            queue_priority: QueuePriority::from_env("OFFSHOOT_BENCH_QUEUE_PRIORITY"),
        },
    )
    .expect("mount");
    println!("negotiated: {:?}", mnt.negotiated());
    println!("transport: {:?}", mnt.transport());
    initdb(mnt.mountpoint());

    let start = |data: &Path, name: &str| {
        let sock = p(&format!("sock-{name}"));
        pg_owned_dir(&sock, 0o700);
        Postgres::start(data, &sock, &p(&format!("{name}.log")))
    };
    // Settings go in with ALTER SYSTEM and a restart (`wal_buffers` takes
    // effect only at start), before the load: a load into a branch runs
    // with the compute's settings too.
    let configured = |data: &Path, name: &str, defaults: &str, vars: &[&str]| {
        let pg = start(data, name);
        pg.psql("alter system set track_wal_io_timing = on");
        apply(&pg, "PAGEFS_WAL_SETTINGS", defaults);
        if !defaults.is_empty() {
            apply(&pg, "PAGEFS_WAL_SETTINGS", lz4_if_built(&pg));
        }
        for var in vars {
            apply_settings(&pg, var);
        }
        pg.stop();
        start(data, name)
    };
    let native = configured(&native_data, "native", "", &["OFFSHOOT_BENCH_SETTINGS"]);
    let fuse = configured(
        mnt.mountpoint(),
        "pagefs",
        PAGEFS_WAL_SETTINGS,
        &["OFFSHOOT_BENCH_SETTINGS", "OFFSHOOT_BENCH_PAGEFS_SETTINGS"],
    );
    let init = ["-i", "-q", "-s", &scale.to_string()].map(String::from);
    for (pg, side) in [(&native, "native"), (&fuse, "pagefs")] {
        let loading = std::time::Instant::now();
        pg.pgbench(&init.iter().map(String::as_str).collect::<Vec<_>>());
        println!(
            "load (pgbench -i -s {scale}), {side}: {:.1} s",
            loading.elapsed().as_secs_f64()
        );
        pg.psql("checkpoint");
    }

    let (c, t) = (clients.to_string(), seconds.to_string());
    let mut rows = Vec::new();
    let workloads = [("TPC-B (default)", None), ("select-only (-S)", Some("-S"))];
    for (round, (label, extra)) in (1..=rounds).flat_map(|r| workloads.map(|w| (r, w))) {
        let mut args = vec!["-c", &c, "-j", "2", "-T", &t];
        args.extend(extra);
        for pg in [&native, &fuse] {
            pg.psql("select pg_stat_reset_shared('wal')");
        }
        // Which side runs first alternates from round to round, so that a
        // drift in the machine's speed does not favour one side.
        let pagefs_first = round % 2 == 0;
        let run_native = || measured(&native, &args);
        let run_pagefs = || {
            let before = mnt.metrics();
            let run = measured(&fuse, &args);
            (before, run, mnt.metrics())
        };
        let ((native_out, native_pg_cpu, _), (before, (out, fuse_pg_cpu, server_cpu), after)) =
            if pagefs_first {
                let pagefs = run_pagefs();
                (run_native(), pagefs)
            } else {
                let native = run_native();
                (native, run_pagefs())
            };
        println!(
            "  ran first: {}",
            if pagefs_first { "pagefs" } else { "native" }
        );
        let native_tps = tps(&native_out);
        let native_txns = transactions(&native_out).max(1) as f64;
        let fuse_tps = tps(&out);
        let txns = transactions(&out).max(1) as f64;
        println!("  native: {}", wal_io(&native, native_txns));
        println!("  pagefs: {}", wal_io(&fuse, txns));
        let sync_writes = after.sync_writes - before.sync_writes;
        println!(
            "  pagefs: {:.2} synchronous writes/txn, {:.3} ms each from arrival to answer in pagefs",
            sync_writes as f64 / txns,
            (after.sync_write_time - before.sync_write_time).as_secs_f64() * 1e3
                / sync_writes.max(1) as f64,
        );
        println!(
            "  CPU per transaction: native PostgreSQL {:.0} us; pagefs PostgreSQL {:.0} us + FUSE server {:.0} us",
            native_pg_cpu / native_txns * 1e6,
            fuse_pg_cpu / txns * 1e6,
            server_cpu / txns * 1e6,
        );
        println!(
            "  pagefs per transaction: {:.3} FUSE reads ({:.1} kB), {:.2} FUSE writes ({:.1} kB), {:.3} setattrs, {:.2} fsyncs, fsync avg {:.2} ms",
            (after.reads - before.reads) as f64 / txns,
            (after.read_bytes - before.read_bytes) as f64 / txns / 1024.0,
            (after.writes - before.writes) as f64 / txns,
            (after.write_bytes - before.write_bytes) as f64 / txns / 1024.0,
            (after.setattrs - before.setattrs) as f64 / txns,
            (after.fsyncs - before.fsyncs) as f64 / txns,
            (after.fsync_time - before.fsync_time).as_secs_f64() * 1e3
                / (after.fsyncs - before.fsyncs).max(1) as f64,
        );
        println!("{label}, round {round}: native {native_tps:.0} tps, pagefs {fuse_tps:.0} tps");
        rows.push((label, round, native_tps, fuse_tps));
    }
    // Crash recovery over the WAL of every run since the checkpoint after
    // the load (unless a timed checkpoint came between): after the pagefs
    // server's direct WAL writes, none of it is in the page cache there.
    native.crash();
    fuse.crash();
    let native = start(&native_data, "native");
    let fuse = start(mnt.mountpoint(), "pagefs");
    for (name, pg) in [("native", &native), ("pagefs", &fuse)] {
        match last_recovery(&pg.log_text()) {
            Some((mb, secs)) => println!(
                "crash recovery, {name}: {mb:.0} MB of WAL replayed in {secs:.2} s ({:.1} ms per MB)",
                secs * 1e3 / mb.max(0.001)
            ),
            None => println!("crash recovery, {name}: no redo in the log"),
        }
    }
    native.stop();
    fuse.stop();
    mnt.unmount().expect("unmount");

    println!("\nscale {scale}, {clients} clients, {seconds} s per run\n");
    println!("| workload | round | native tps | pagefs tps | pagefs / native |");
    println!("|---|---:|---:|---:|---:|");
    for (label, round, n, f) in rows {
        println!(
            "| {label} | {round} | {n:.0} | {f:.0} | {:.0}% |",
            100.0 * f / n
        );
    }
}
