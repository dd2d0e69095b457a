//! Rows 3 and 4: pgbench throughput, 4 clients. Row 3 is TPC-B (read/write)
//! on a branch through the proxy vs a native copy over loopback TCP; row 4 is
//! `-S` (select-only) on a branch of main, on a branch at the end of a chain of
//! 50 branches, and natively. Runs of the sides alternate so that drift in the
//! machine's load hits both alike; each side's data is read once before the
//! runs (untimed) so that both start with the OS cache warm.

use anyhow::Result;

use super::methods::{drop_database, NativeCopy};
use crate::bench::context::{method, Ctx};
use crate::bench::pg::{exec, Target};
use crate::bench::pgbench::{self, Workload};
use crate::bench::results::Unit;

/// Chain length for the depth figure.
pub const DEPTH: u32 = 50;

/// Reads the accounts table once, so the runs start from a warm cache.
async fn warm(target: &Target, db: &str) -> Result<()> {
    let c = target.connect(db).await?;
    exec(&c, "SELECT count(*) FROM pgbench_accounts").await
}

/// One side of a throughput comparison.
struct Side {
    method: &'static str,
    target: Target,
    db: String,
    tps: Vec<f64>,
}

impl Side {
    fn new(method: &'static str, target: Target, db: &str) -> Side {
        Side {
            method,
            target,
            db: db.to_owned(),
            tps: Vec::new(),
        }
    }
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
    ratios: &[(&str, &str, &str)],
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
    let mut i = 0;
    while i < sides.len() {
        if let Err(e) = warm(&sides[i].target, &sides[i].db).await {
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
    let mut sides = vec![Side::new(method::NATIVE, native.clone(), &native_db)];
    if let Ok(daemon) = ctx.daemon() {
        match daemon.create_branch("tpcb", "main").await {
            Ok(_) => sides.push(Side::new(method::BRANCH, daemon.target("tpcb"), &db)),
            Err(e) => ctx.fail("creating branch tpcb", &e),
        }
    }
    let ratios = [("TPC-B: branch / native", method::BRANCH, method::NATIVE)];
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
    let native = ctx.native.target();
    let mut sides = vec![Side::new(method::NATIVE, native, &db)];
    if let Ok(daemon) = ctx.daemon() {
        let chain = async {
            daemon.create_branch("select", "main").await?;
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
            anyhow::Ok(parent)
        }
        .await;
        match chain {
            Ok(deepest) => {
                sides.push(Side::new(method::BRANCH, daemon.target("select"), &db));
                sides.push(Side::new(
                    method::BRANCH_DEPTH_50,
                    daemon.target(&deepest),
                    &db,
                ));
            }
            Err(e) => ctx.fail("creating the select-only branches", &e),
        }
    }
    let ratios = [
        ("-S: branch / native", method::BRANCH, method::NATIVE),
        (
            "-S: branch at depth 50 / native",
            method::BRANCH_DEPTH_50,
            method::NATIVE,
        ),
        (
            "-S: branch at depth 50 / branch of main",
            method::BRANCH_DEPTH_50,
            method::BRANCH,
        ),
    ];
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
