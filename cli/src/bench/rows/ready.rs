//! Row 2: a copy ready to answer a query — create it, connect to it, and get
//! the first query's answer — for every method.

use anyhow::Result;

use super::methods::{checkpoint, drop_database, NativeCopy};
use crate::bench::context::{method, ms, timed, Ctx};
use crate::bench::pg::first_query;
use crate::bench::results::Unit;

pub const ROW: u8 = 2;

pub async fn measure(ctx: &mut Ctx) -> Result<()> {
    let size = ctx.plan.main;
    let what = format!("copy of {} ready for its first query", size.label());
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
            let name = format!("ready-api-{run}");
            let result = timed(async {
                daemon.create_branch(&name, "main").await?;
                first_query(&daemon.target(&name), &db).await
            })
            .await;
            let _ = daemon.delete_branch(&name).await;
            match result {
                Ok((_, took)) => api.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by API"), &e),
            }
            let daemon = ctx.daemon()?;
            let name = format!("ready-cli-{run}");
            let result = timed(async {
                daemon.create_branch_cli(&name, "main").await?;
                first_query(&daemon.target(&name), &db).await
            })
            .await;
            let _ = daemon.delete_branch(&name).await;
            match result {
                Ok((_, took)) => cli.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by CLI"), &e),
            }
        }
        for (i, m) in NativeCopy::ALL.iter().enumerate() {
            let copy = format!("ready_{}_{}", m.tag(), run);
            checkpoint(&native, "postgres").await?;
            let (_, took) = timed(async {
                m.copy(&ctx.tools, &native, &db, &copy).await?;
                first_query(&native, &copy).await
            })
            .await?;
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
            &format!("ready copy: {} / offshoot (API)", m.name()),
            m.name(),
            method::OFFSHOOT_API,
            size_gib,
        );
    }
    Ok(())
}
