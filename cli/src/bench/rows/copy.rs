//! Row 1: a full copy of a database of size S, for each size of the growth
//! figure — offshoot's branch creation through the API and as a whole CLI
//! command, against the three native copy methods. Also loads each size's
//! data (pgbench -i) into both sides first.

use anyhow::Result;

use super::methods::{checkpoint, drop_database, NativeCopy};
use crate::bench::args::DataSize;
use crate::bench::context::{method, ms, timed, Ctx};
use crate::bench::pg::{exec, ident};
use crate::bench::pgbench;
use crate::bench::results::Unit;

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
    let mut api = Vec::new();
    let mut cli = Vec::new();
    let mut natives: Vec<Vec<f64>> = vec![Vec::new(); NativeCopy::ALL.len()];
    let step = ctx
        .progress
        .step(&format!("{what}: {runs} runs of each method"));
    for run in 0..runs {
        if let Ok(daemon) = ctx.daemon() {
            let name = format!("copy-s{}-api-{run}", size.scale);
            match timed(daemon.create_branch(&name, "main")).await {
                Ok((_, took)) => api.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by API"), &e),
            }
            let daemon = ctx.daemon()?;
            let name = format!("copy-s{}-cli-{run}", size.scale);
            match daemon.create_branch_cli(&name, "main").await {
                Ok(took) => cli.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by CLI"), &e),
            }
        }
        for (i, m) in NativeCopy::ALL.iter().enumerate() {
            let copy = format!("copy_{}_{}", m.tag(), run);
            checkpoint(&native, "postgres").await?;
            let (_, took) = timed(m.copy(&ctx.tools, &native, &db, &copy)).await?;
            natives[i].push(ms(took));
            drop_database(&native, &copy).await?;
        }
    }
    step.done();
    let size_gib = Some(size.gib);
    ctx.record(
        ROW,
        &what,
        method::OFFSHOOT_API,
        Unit::Millis,
        &api,
        size_gib,
    );
    ctx.record(
        ROW,
        &what,
        method::OFFSHOOT_CLI,
        Unit::Millis,
        &cli,
        size_gib,
    );
    for (i, m) in NativeCopy::ALL.iter().enumerate() {
        ctx.record(ROW, &what, m.name(), Unit::Millis, &natives[i], size_gib);
    }
    for m in NativeCopy::ALL {
        ctx.compare(
            ROW,
            &format!("{what}: {} / offshoot (API)", m.name()),
            m.name(),
            method::OFFSHOOT_API,
            size_gib,
        );
    }
    ctx.compare(
        ROW,
        &format!("{what}: {} / offshoot (CLI)", method::FILE_COPY),
        method::FILE_COPY,
        method::OFFSHOOT_CLI,
        size_gib,
    );
    Ok(())
}
