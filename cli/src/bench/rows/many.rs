//! Row 6: creating many branches (1,000; 50 in quick mode) of main through
//! the API, one after another: the total time, each creation's time, and the
//! storage they add (the API's `storage_bytes` before and after).

use anyhow::Result;

use crate::bench::context::{ms, timed, Ctx};
use crate::bench::results::Unit;

pub const ROW: u8 = 6;

pub async fn measure(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.plan.branches;
    let daemon = ctx.daemon()?;
    let step = ctx.progress.step(&format!("creating {n} branches"));
    let before = daemon.status().await?.storage_bytes;
    let mut each = Vec::with_capacity(n as usize);
    let (_, total) = timed(async {
        for i in 0..n {
            let (_, took) = timed(daemon.create_branch(&format!("many-{i}"), "main")).await?;
            each.push(ms(took));
        }
        anyhow::Ok(())
    })
    .await?;
    let after = daemon.status().await?.storage_bytes;
    step.done();
    let what = format!("{n} branches");
    ctx.record(
        ROW,
        &what,
        "total create time",
        Unit::Millis,
        &[ms(total)],
        None,
    );
    ctx.record(ROW, &what, "each create (API)", Unit::Millis, &each, None);
    ctx.record(
        ROW,
        &what,
        "storage added",
        Unit::Bytes,
        &[after.saturating_sub(before) as f64],
        None,
    );
    Ok(())
}
