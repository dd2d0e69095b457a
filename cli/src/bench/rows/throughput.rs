//! Rows 3 and 4: pgbench throughput, 4 clients. Each row measures two costs
//! side by side: the storage path (PostgreSQL on a branch, reached on its
//! compute's own Unix socket, vs native PostgreSQL on its Unix socket) and the
//! proxy (the same branch through the proxy vs native PostgreSQL over
//! loopback TCP). Row 3 is TPC-B (read/write) on a branch vs a native copy;
//! row 4 is `-S` (select-only) on a branch of main and natively, plus a branch
//! at the end of a chain of 50 branches through the proxy. Runs of all sides
//! alternate so that drift in the machine's load hits them alike; each side's
//! data (table and primary key) is read once before the runs (untimed) so
//! that all start with the OS cache warm. A compute reached on its socket is held awake by an idle
//! session through the proxy for the whole row (the daemon counts only proxy
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
/// start from a warm cache on every side: pgbench's lookups go through the
/// index, which a scan of the table alone leaves unread (on a new branch,
/// unread pages are reads through FUSE until its mount's page cache holds
/// them; the native cluster's files are cached from loading).
async fn warm(target: &Target, db: &str) -> Result<()> {
    let c = target.connect(db).await?;
    exec(
        &c,
        "SELECT count(*) FROM pgbench_accounts; \
         SET enable_seqscan = off; SET enable_bitmapscan = off; \
         SELECT count(aid) FROM pgbench_accounts WHERE aid > 0",
    )
    .await
}

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
    for run in 0..runs {
        let mut i = 0;
        while i < sides.len() {
            let s = &sides[i];
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
                    sides[i].tps.push(tps);
                    i += 1;
                }
                Err(e) => {
                    eprintln!("failed");
                    ctx.fail(&format!("{what} on {}", s.method), &e);
                    sides.remove(i);
                }
            }
        }
    }
}

/// The sides on one branch: through the proxy, and on its compute's socket.
fn branch_sides(daemon: &Daemon, branch: &BranchView, name: &str, db: &str) -> [Side; 2] {
    [
        Side::new(method::BRANCH, daemon.target(name), db),
        Side::on_compute_socket(
            method::BRANCH_SOCKET,
            daemon.socket_target(branch.id),
            daemon.target(name),
            db,
        ),
    ]
}

/// The sides on the native cluster: over loopback TCP, and on its socket.
fn native_sides(native: &NativeCluster, db: &str) -> [Side; 2] {
    [
        Side::new(method::NATIVE, native.target(), db),
        Side::new(method::NATIVE_SOCKET, native.socket_target(), db),
    ]
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
    let mut sides = Vec::from(native_sides(&ctx.native, &native_db));
    if let Ok(daemon) = ctx.daemon() {
        match daemon.create_branch("tpcb", "main").await {
            Ok(b) => sides.extend(branch_sides(daemon, &b, "tpcb", &db)),
            Err(e) => ctx.fail("creating branch tpcb", &e),
        }
    }
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
    let mut sides = Vec::from(native_sides(&ctx.native, &db));
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
            Ok((select, deepest)) => {
                sides.extend(branch_sides(daemon, &select, "select", &db));
                sides.push(Side::new(
                    method::BRANCH_DEPTH_50,
                    daemon.target(&deepest),
                    &db,
                ));
            }
            Err(e) => ctx.fail("creating the select-only branches", &e),
        }
    }
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
