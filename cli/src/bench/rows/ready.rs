//! Row 2: a copy ready to answer a query — create it, connect to it, and get
//! the first query's answer — for every method.

use std::time::Duration;

use anyhow::Result;

use super::methods::CopyTimes;
use crate::bench::context::{ms, timed, Ctx};
use crate::bench::daemon::Daemon;
use crate::bench::pg::first_query;

pub const ROW: u8 = 2;

pub async fn measure(ctx: &mut Ctx) -> Result<()> {
    let size = ctx.plan.main;
    let what = format!("copy of {} ready for its first query", size.label());
    let db = size.database();
    let native = ctx.native.target();
    let runs = ctx.plan.runs;
    let mut times = CopyTimes::default();
    let step = ctx
        .progress
        .step(&format!("{what}: {runs} runs of each method"));
    for run in 0..runs {
        if let Ok(daemon) = ctx.daemon() {
            let result = branch_ready(daemon, &format!("ready-api-{run}"), &db, By::Api).await;
            match result {
                Ok(took) => times.api.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by API"), &e),
            }
            let daemon = ctx.daemon()?;
            let result = branch_ready(daemon, &format!("ready-cli-{run}"), &db, By::Cli).await;
            match result {
                Ok(took) => times.cli.push(ms(took)),
                Err(e) => ctx.fail(&format!("{what} by CLI"), &e),
            }
        }
        times
            .time_natives(&ctx.tools, &native, &db, "ready", run, true)
            .await?;
    }
    step.done();
    let size_gib = Some(size.gib);
    times.record(ctx, ROW, &what, "ready copy", size_gib);
    Ok(())
}

/// How a branch is created: a call to the daemon's API, or the whole CLI
/// command.
#[derive(Debug, Clone, Copy)]
enum By {
    Api,
    Cli,
}

/// Time from creating branch `name` of main to its first query's answer from
/// `db`; the branch is deleted afterwards, whether or not it answered.
async fn branch_ready(daemon: &Daemon, name: &str, db: &str, by: By) -> Result<Duration> {
    let result = timed(async {
        match by {
            By::Api => {
                daemon.create_branch(name, "main").await?;
            }
            By::Cli => {
                daemon.create_branch_cli(name, "main").await?;
            }
        }
        first_query(&daemon.target(name), db).await
    })
    .await;
    let _ = daemon.delete_branch(name).await;
    result.map(|(_, took)| took)
}
