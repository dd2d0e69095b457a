//! Row 5: storage a copy takes after it updates 1% of `pgbench_accounts`
//! (the first 1% of the rows by `aid`, so about 1% of the table's pages — a
//! change spread over every page would make a branch own about as much as a
//! full copy, since copy-on-write works on 8 KiB pages).
//! offshoot: the bytes the branch owns (the API's `owned_bytes`) after the
//! update and a checkpoint. Native: `pg_database_size` of a copy made by each
//! method after the same update and checkpoint. Sizes are measured once (they
//! do not vary from run to run as times do).

use std::time::Duration;

use anyhow::{Context, Result};

use super::methods::{drop_database, NativeCopy};
use crate::bench::context::{method, Ctx};
use crate::bench::pg::{exec, Target};
use crate::bench::results::Unit;

pub const ROW: u8 = 5;

const UPDATE: &str = "UPDATE pgbench_accounts SET abalance = abalance + 1 \
     WHERE aid <= (SELECT max(aid) / 100 FROM pgbench_accounts)";

async fn update_one_percent(target: &Target, db: &str) -> Result<()> {
    let c = target.connect(db).await?;
    exec(&c, UPDATE).await?;
    exec(&c, "CHECKPOINT").await
}

async fn database_size(target: &Target, db: &str) -> Result<f64> {
    let c = target.connect(db).await?;
    let row = c
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .context("pg_database_size")?;
    let bytes: i64 = row.get(0);
    Ok(bytes as f64)
}

pub async fn measure(ctx: &mut Ctx) -> Result<()> {
    let size = ctx.plan.main;
    let db = size.database();
    let what = format!(
        "storage of a copy of {} after updating 1% of rows",
        size.label()
    );
    let native = ctx.native.target();
    let step = ctx.progress.step(&what);
    let size_gib = Some(size.gib);
    let source = database_size(&native, &db).await?;
    ctx.record(
        ROW,
        &what,
        "source database (pg_database_size)",
        Unit::Bytes,
        &[source],
        size_gib,
    );
    if let Ok(daemon) = ctx.daemon() {
        let owned = async {
            daemon.create_branch("update", "main").await?;
            update_one_percent(&daemon.target("update"), &db).await?;
            // owned_bytes may be computed in the background: give it a moment to settle.
            tokio::time::sleep(Duration::from_millis(500)).await;
            anyhow::Ok(daemon.branch("update").await?.owned_bytes as f64)
        }
        .await;
        match owned {
            Ok(bytes) => ctx.record(
                ROW,
                &what,
                method::OFFSHOOT_API,
                Unit::Bytes,
                &[bytes],
                size_gib,
            ),
            Err(e) => ctx.fail(&what, &e),
        }
    }
    for m in NativeCopy::ALL {
        let copy = format!("update_{}", m.tag());
        m.copy(&ctx.tools, &native, &db, &copy).await?;
        update_one_percent(&native, &copy).await?;
        let bytes = database_size(&native, &copy).await?;
        ctx.record(ROW, &what, m.name(), Unit::Bytes, &[bytes], size_gib);
        drop_database(&native, &copy).await?;
    }
    step.done();
    for m in NativeCopy::ALL {
        ctx.compare(
            ROW,
            &format!("storage: {} / offshoot branch", m.name()),
            m.name(),
            method::OFFSHOOT_API,
            None,
        );
    }
    if let Ok(daemon) = ctx.daemon() {
        let _ = daemon.delete_branch("update").await;
    }
    Ok(())
}
