//! Row 1: a full copy of a database of size S, for each size of the growth
//! figure — offshoot's branch creation through the API and as a whole CLI
//! command, against the three native copy methods. Also loads each size's
//! data (pgbench -i) into both sides first.

use anyhow::Result;

use super::methods::{checkpoint, CopyTimes};
use crate::bench::args::DataSize;
use crate::bench::context::{method, ms, timed, Ctx};
use crate::bench::pg::{exec, ident};
use crate::bench::pgbench;

pub const ROW: u8 = 1;

/// Loads `size` into database `bench_s<scale>` natively and in `main`.
pub async fn load(ctx: &mut Ctx, size: DataSize) -> Result<()> {
    let db = size.database();
    let native = ctx.native.target();
    let step = ctx.progress.step(&format!(
        "loading {} (pgbench scale {}) into the native cluster",
        size.label(),
        size.scale
    ));
    let admin = native.connect("postgres").await?;
    exec(&admin, &format!("CREATE DATABASE {}", ident(&db))).await?;
    pgbench::load(&ctx.tools, &native, &db, size.scale).await?;
    checkpoint(&native, &db).await?;
    step.done();
    if let Ok(daemon) = ctx.daemon() {
        let main = daemon.target("main");
        let step = ctx
            .progress
            .step(&format!("loading {} into offshoot main", size.label()));
        let result = async {
            let admin = main.connect("postgres").await?;
            exec(&admin, &format!("CREATE DATABASE {}", ident(&db))).await?;
            pgbench::load(&ctx.tools, &main, &db, size.scale).await?;
            checkpoint(&main, &db).await
        }
        .await;
        match result {
            Ok(()) => step.done(),
            Err(e) => {
                eprintln!("failed");
                ctx.fail(&format!("loading {} into offshoot main", size.label()), &e);
            }
        }
    }
    ctx.loaded.push(size);
    Ok(())
}

/// Measures every copy method at `size` (already loaded).
pub async fn measure(ctx: &mut Ctx, size: DataSize) -> Result<()> {
    let what = format!("full copy of {}", size.label());
    let db = size.database();
    let native = ctx.native.target();
    let runs = ctx.plan.runs;
    let mut times = CopyTimes::default();
    let step = ctx
        .progress
        .step(&format!("{what}: {runs} runs of each method"));
    for run in 0..runs {
        if let Ok(daemon) = ctx.daemon() {
            let name = format!("copy-s{}-api-{run}", size.scale);
            match timed(daemon.create_branch(&name, "main")).await {
                Ok((_, took)) => times.api.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by API"), &e),
            }
            let daemon = ctx.daemon()?;
            let name = format!("copy-s{}-cli-{run}", size.scale);
            match daemon.create_branch_cli(&name, "main").await {
                Ok(took) => times.cli.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by CLI"), &e),
            }
        }
        times
            .time_natives(&ctx.tools, &native, &db, "copy", run, false)
            .await?;
    }
    step.done();
    let size_gib = Some(size.gib);
    times.record(ctx, ROW, &what, &what, size_gib);
    ctx.compare(
        ROW,
        &format!("{what}: {} / offshoot (CLI)", method::FILE_COPY),
        method::FILE_COPY,
        method::OFFSHOOT_CLI,
        size_gib,
    );
    Ok(())
}
