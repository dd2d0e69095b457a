//! Row 7: waking from zero. offshoot: the daemon is restarted with a short
//! idle timeout; a branch is queried once, its compute is left to stop, then
//! the first query after that is timed (connect through the proxy, the compute
//! starts, the answer comes back). Native: the cluster is stopped, then
//! `postgres` is started and the first query on the data timed from the spawn.

use std::time::Duration;

use anyhow::Result;

use crate::bench::context::{method, ms, timed, Ctx};
use crate::bench::pg::{first_query, FIRST_QUERY};
use crate::bench::results::Unit;

pub const ROW: u8 = 7;

/// The idle timeout the daemon is restarted with for this row.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn measure(ctx: &mut Ctx) -> Result<()> {
    let size = ctx.plan.main;
    let db = size.database();
    let what = format!("first query after scale to zero, {}", size.label());
    let runs = ctx.plan.runs;
    let size_gib = Some(size.gib);

    let mut native = Vec::new();
    let step = ctx
        .progress
        .step(&format!("native cold start: {runs} runs"));
    for _ in 0..runs {
        ctx.native.stop().await;
        let took = ctx.native.start(&db, FIRST_QUERY).await?;
        native.push(ms(took));
    }
    step.done();
    ctx.record(
        ROW,
        &what,
        method::COLD_START,
        Unit::Millis,
        &native,
        size_gib,
    );

    let Some(daemon) = ctx.daemon.as_mut() else {
        return Ok(());
    };
    let step = ctx.progress.step(&format!(
        "restarting the daemon with --idle-timeout {}s",
        IDLE_TIMEOUT.as_secs()
    ));
    daemon.restart(Some(IDLE_TIMEOUT)).await?;
    step.done();
    let daemon = ctx.daemon()?;
    let step = ctx.progress.step(&format!("wake from zero: {runs} runs"));
    let mut wake = Vec::new();
    let result = async {
        daemon.create_branch("wake", "main").await?;
        let target = daemon.target("wake");
        for _ in 0..runs {
            first_query(&target, &db).await?;
            daemon
                .wait_stopped("wake", Duration::from_secs(120))
                .await?;
            let (_, took) = timed(first_query(&target, &db)).await?;
            wake.push(ms(took));
        }
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => step.done(),
        Err(e) => {
            eprintln!("failed");
            ctx.fail(&what, &e);
        }
    }
    ctx.record(ROW, &what, method::WAKE, Unit::Millis, &wake, size_gib);
    ctx.compare(
        ROW,
        "wake: offshoot / native cold start",
        method::WAKE,
        method::COLD_START,
        None,
    );
    Ok(())
}
