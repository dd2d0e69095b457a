//! Rows 3 and 4: pgbench throughput, 4 clients. Each row measures two costs
//! side by side: the storage path (PostgreSQL on a branch, reached on its
//! compute's own Unix socket, vs native PostgreSQL on its Unix socket) and the
//! proxy (the same branch through the proxy vs native PostgreSQL over
//! loopback TCP). Row 3 is TPC-B (read/write) on a branch vs a native copy;
//! row 4 is `-S` (select-only) on a branch of main and natively, plus a branch
//! at the end of a chain of 50 branches through the proxy.
//!
//! The machine's speed drifts from one half-minute to the next (a shared
//! host), so the runs are laid out to make drift hit both sides of every
//! ratio alike: the sides run in turn, each round; the two sides of a ratio
//! are neighbours in that order (native socket, branch socket, native TCP,
//! branch proxy, then depth 50 beside the branch proxy); and every other
//! round runs the order backwards (A B B A), so no side always runs first or
//! always follows the same one. Each side's data (table and primary key) is
//! read once before the runs (untimed) so that all start with the OS cache
//! warm. A compute reached on its socket is held awake by an idle session
//! through the proxy for the whole row (the daemon counts only proxy
//! sessions as activity).

use anyhow::Result;
use tokio_postgres::Client;

use super::methods::{drop_database, NativeCopy};
use crate::bench::context::{method, Ctx};
use crate::bench::daemon::{BranchView, Daemon};
use crate::bench::native::NativeCluster;
use crate::bench::pg::{exec, Target};
use crate::bench::pgbench::{self, Workload};
use crate::bench::results::Unit;

/// Chain length for the depth figure.
pub const DEPTH: u32 = 50;

/// Reads the accounts table and its primary key once each, so the runs
/// start from a warm cache on every side: on a new branch, unread pages
/// are reads through FUSE until its mount's page cache holds them (the
/// native cluster's files are cached from loading). Each read is forced
/// onto its access path: left to itself, the planner answers `count(*)`
/// on a vacuumed table from the primary key alone (an index-only scan),
/// which leaves the table unread, and the first timed run on the branch
/// would read it instead.
async fn warm(target: &Target, db: &str) -> Result<()> {
    let c = target.connect(db).await?;
    exec(&c, WARM_TABLE_AND_KEY).await
}

/// The statements of [`warm`]: a sequential scan of the table, then an
/// index-only scan of its key.
const WARM_TABLE_AND_KEY: &str = "\
    SET enable_indexscan = off; SET enable_indexonlyscan = off; \
    SET enable_bitmapscan = off; \
    SELECT count(*) FROM pgbench_accounts; \
    RESET enable_indexscan; RESET enable_indexonlyscan; SET enable_seqscan = off; \
    SELECT count(aid) FROM pgbench_accounts WHERE aid > 0";

/// One side of a throughput comparison.
struct Side {
    method: &'static str,
    target: Target,
    db: String,
    /// A proxy target of the same branch, for a side that reaches a compute
    /// on its own socket: a session held open there wakes the compute first
    /// and keeps the daemon from stopping it mid-run.
    keep_awake: Option<Target>,
    tps: Vec<f64>,
}

impl Side {
    fn new(method: &'static str, target: Target, db: &str) -> Side {
        Side {
            method,
            target,
            db: db.to_owned(),
            keep_awake: None,
            tps: Vec::new(),
        }
    }

    /// A side on the compute socket of a branch whose proxy target is `proxy`.
    fn on_compute_socket(method: &'static str, socket: Target, proxy: Target, db: &str) -> Side {
        Side {
            keep_awake: Some(proxy),
            ..Side::new(method, socket, db)
        }
    }
}

/// Opens the session through the proxy that keeps `side`'s compute running
/// (none for a side that needs none); the compute is up once it returns.
async fn hold_awake(side: &Side) -> Result<Option<Client>> {
    let Some(proxy) = &side.keep_awake else {
        return Ok(None);
    };
    let c = proxy.connect("postgres").await?;
    exec(&c, "SELECT 1").await?;
    Ok(Some(c))
}

/// What a row measures: `pgbench <workload>, <clients> clients, <duration>
/// s, <size>`.
fn describe(ctx: &Ctx, workload: &str) -> String {
    format!(
        "pgbench {workload}, {} clients, {} s, {}",
        ctx.plan.clients,
        ctx.plan.duration.as_secs(),
        ctx.plan.main.label()
    )
}

/// Runs the sides (see [`run_sides`]), records each one's throughput as `what`
/// in `row`, and then each `(description, a, b)` ratio of medians.
async fn measure_sides(
    ctx: &mut Ctx,
    row: u8,
    what: &str,
    workload: Workload,
    mut sides: Vec<Side>,
    ratios: &[(String, &str, &str)],
) {
    run_sides(ctx, what, workload, &mut sides).await;
    let size_gib = Some(ctx.plan.main.gib);
    for s in &sides {
        ctx.record(row, what, s.method, Unit::Tps, &s.tps, size_gib);
    }
    for (description, a, b) in ratios {
        ctx.compare(row, description, a, b, None);
    }
}

/// Alternates runs over the sides; a side whose run fails is reported and dropped.
async fn run_sides(ctx: &mut Ctx, what: &str, workload: Workload, sides: &mut Vec<Side>) {
    let (runs, clients, duration) = (ctx.plan.runs, ctx.plan.clients, ctx.plan.duration);
    // Held until every run is done; dropping them closes the sessions.
    let mut awake = Vec::new();
    let mut i = 0;
    while i < sides.len() {
        let ready = async {
            if let Some(c) = hold_awake(&sides[i]).await? {
                awake.push(c);
            }
            warm(&sides[i].target, &sides[i].db).await
        };
        if let Err(e) = ready.await {
            ctx.fail(&format!("{what}: warming {}", sides[i].method), &e);
            sides.remove(i);
        } else {
            i += 1;
        }
    }
    // A side whose run failed is reported once and runs no more.
    let mut failed = vec![false; sides.len()];
    for run in 0..runs {
        for i in round_order(sides.len(), run) {
            if failed[i] {
                continue;
            }
            let s = &mut sides[i];
            let step = ctx.progress.step(&format!(
                "{what}: run {}/{runs} on {} ({}s)",
                run + 1,
                s.method,
                duration.as_secs()
            ));
            match pgbench::measure(&ctx.tools, &s.target, &s.db, workload, clients, duration).await
            {
                Ok(tps) => {
                    step.done_with(&format!("{tps:.0} tps"));
                    s.tps.push(tps);
                }
                Err(e) => {
                    eprintln!("failed");
                    ctx.fail(&format!("{what} on {}", s.method), &e);
                    failed[i] = true;
                }
            }
        }
    }
    let mut failed = failed.into_iter();
    sides.retain(|_| !failed.next().unwrap_or(false));
}

/// The order of the sides in round `run` (from 0): as listed in even
/// rounds, backwards in odd ones.
fn round_order(sides: usize, run: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sides).collect();
    if run % 2 == 1 {
        order.reverse();
    }
    order
}

/// The sides on one branch: on its compute's socket, and through the proxy.
fn branch_sides(daemon: &Daemon, branch: &BranchView, name: &str, db: &str) -> [Side; 2] {
    [
        Side::on_compute_socket(
            method::BRANCH_SOCKET,
            daemon.socket_target(branch.id),
            daemon.target(name),
            db,
        ),
        Side::new(method::BRANCH, daemon.target(name), db),
    ]
}

/// The sides on the native cluster: on its socket, and over loopback TCP.
fn native_sides(native: &NativeCluster, db: &str) -> [Side; 2] {
    [
        Side::new(method::NATIVE_SOCKET, native.socket_target(), db),
        Side::new(method::NATIVE, native.target(), db),
    ]
}

/// The native and branch sides in the order their runs take, the two sides
/// of each ratio next to each other: native socket, branch socket, native
/// TCP, branch proxy (the native ones alone if there is no branch).
fn in_pairs(native: [Side; 2], branch: Option<[Side; 2]>) -> Vec<Side> {
    match branch {
        Some(branch) => native
            .into_iter()
            .zip(branch)
            .flat_map(|(n, b)| [n, b])
            .collect(),
        None => Vec::from(native),
    }
}

/// The two ratios of a row's workload `label`: the storage path (compute
/// socket / native socket) and the proxy (proxy / loopback TCP).
fn storage_and_proxy(label: &str) -> [(String, &'static str, &'static str); 2] {
    [
        (
            format!("{label}: branch (compute socket) / native (Unix socket)"),
            method::BRANCH_SOCKET,
            method::NATIVE_SOCKET,
        ),
        (
            format!("{label}: branch (proxy) / native (loopback TCP)"),
            method::BRANCH,
            method::NATIVE,
        ),
    ]
}

/// Row 3: TPC-B on a branch vs a native copy.
pub async fn tpcb(ctx: &mut Ctx) -> Result<()> {
    const ROW: u8 = 3;
    let db = ctx.plan.main.database();
    let what = describe(ctx, "TPC-B");
    let native = ctx.native.target();
    let native_db = "tpcb_native".to_string();
    NativeCopy::FileCopy
        .copy(&ctx.tools, &native, &db, &native_db)
        .await?;
    let mut branch = None;
    if let Ok(daemon) = ctx.daemon() {
        match daemon.create_branch("tpcb", "main").await {
            Ok(b) => branch = Some(branch_sides(daemon, &b, "tpcb", &db)),
            Err(e) => ctx.fail("creating branch tpcb", &e),
        }
    }
    let sides = in_pairs(native_sides(&ctx.native, &native_db), branch);
    let ratios = storage_and_proxy("TPC-B");
    measure_sides(ctx, ROW, &what, Workload::TpcB, sides, &ratios).await;
    drop_database(&native, &native_db).await?;
    if let Ok(daemon) = ctx.daemon() {
        let _ = daemon.delete_branch("tpcb").await;
    }
    Ok(())
}

/// Row 4: select-only on a branch of main, at depth 50, and natively.
pub async fn select_only(ctx: &mut Ctx) -> Result<()> {
    const ROW: u8 = 4;
    let db = ctx.plan.main.database();
    let what = describe(ctx, "-S");
    let mut branch = None;
    let mut deepest = None;
    if let Ok(daemon) = ctx.daemon() {
        let chain = async {
            let select = daemon.create_branch("select", "main").await?;
            let step = ctx
                .progress
                .step(&format!("creating a chain of {DEPTH} branches"));
            let mut parent = "main".to_string();
            for depth in 1..=DEPTH {
                let name = format!("chain-{depth}");
                daemon.create_branch(&name, &parent).await?;
                parent = name;
            }
            step.done();
            anyhow::Ok((select, parent))
        }
        .await;
        match chain {
            Ok((select, chain_end)) => {
                branch = Some(branch_sides(daemon, &select, "select", &db));
                deepest = Some(Side::new(
                    method::BRANCH_DEPTH_50,
                    daemon.target(&chain_end),
                    &db,
                ));
            }
            Err(e) => ctx.fail("creating the select-only branches", &e),
        }
    }
    // Depth 50 runs next to the branch through the proxy, its ratio's other side.
    let mut sides = in_pairs(native_sides(&ctx.native, &db), branch);
    sides.extend(deepest);
    let mut ratios = Vec::from(storage_and_proxy("-S"));
    ratios.extend([
        (
            "-S: branch at depth 50 (proxy) / native (loopback TCP)".to_string(),
            method::BRANCH_DEPTH_50,
            method::NATIVE,
        ),
        (
            "-S: branch at depth 50 / branch of main (both proxy)".to_string(),
            method::BRANCH_DEPTH_50,
            method::BRANCH,
        ),
    ]);
    measure_sides(ctx, ROW, &what, Workload::SelectOnly, sides, &ratios).await;
    if let Ok(daemon) = ctx.daemon() {
        // Deepest first: every branch is then a leaf when it goes.
        for depth in (1..=DEPTH).rev() {
            let _ = daemon.delete_branch(&format!("chain-{depth}")).await;
        }
        let _ = daemon.delete_branch("select").await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(method: &'static str) -> Side {
        let target = Target {
            host: "/nowhere".into(),
            port: 5432,
            user: "postgres".into(),
            password: String::new(),
        };
        Side::new(method, target, "db")
    }

    /// Both sides of every ratio run one after the other, in either direction.
    #[test]
    fn each_ratio_has_its_sides_next_to_each_other() {
        let native = [side(method::NATIVE_SOCKET), side(method::NATIVE)];
        let branch = [side(method::BRANCH_SOCKET), side(method::BRANCH)];
        let order: Vec<_> = in_pairs(native, Some(branch))
            .iter()
            .map(|s| s.method)
            .collect();
        for (_, a, b) in storage_and_proxy("x") {
            let at = |m| order.iter().position(|&o| o == m).unwrap();
            assert_eq!(at(a).abs_diff(at(b)), 1, "{a} and {b} apart in {order:?}");
        }
        let alone = in_pairs([side(method::NATIVE_SOCKET), side(method::NATIVE)], None);
        assert_eq!(alone.len(), 2);
    }

    #[test]
    fn every_other_round_runs_backwards() {
        assert_eq!(round_order(4, 0), [0, 1, 2, 3]);
        assert_eq!(round_order(4, 1), [3, 2, 1, 0]);
        assert_eq!(round_order(4, 2), [0, 1, 2, 3]);
        assert_eq!(round_order(1, 3), [0]);
        assert!(round_order(0, 1).is_empty());
    }
}
