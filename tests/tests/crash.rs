//! `kill -9` of the daemon and its computes in the middle of a write
//! workload: after `offshoot up`, every commit that was acknowledged to a
//! client is there, and PostgreSQL recovered on its own.

use offshoot_e2e::Daemon;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WORKERS: i64 = 4;

/// Inserts ids `worker * 1e9 + n` in autocommit until an error; records every
/// id whose INSERT returned success, and the one in flight when it failed.
async fn insert_loop(
    url: String,
    worker: i64,
    acked: Arc<Mutex<Vec<i64>>>,
    in_flight: Arc<Mutex<Vec<i64>>>,
    stop: Arc<AtomicBool>,
) {
    let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
        return;
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let Ok(stmt) = client
        .prepare("insert into acked (id, pad) values ($1, repeat('p', 200))")
        .await
    else {
        return;
    };
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let id = worker * 1_000_000_000 + n;
        match client.execute(&stmt, &[&id]).await {
            Ok(1) => acked.lock().unwrap_or_else(|e| e.into_inner()).push(id),
            Ok(other) => panic!("insert of {id} reported {other} rows"),
            Err(_) => {
                in_flight.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                return;
            }
        }
        n += 1;
    }
}

#[test]
fn crash_kill9() {
    let mut d = Daemon::start();
    d.psql(
        "main",
        "create table acked (id bigint primary key, pad text)",
    );
    let url = d.connection_string("main", "postgres");

    let acked = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            rt.spawn(insert_loop(
                url.clone(),
                w,
                acked.clone(),
                in_flight.clone(),
                stop.clone(),
            ))
        })
        .collect();

    std::thread::sleep(Duration::from_secs(6));
    let before_kill = acked.lock().unwrap_or_else(|e| e.into_inner()).len();
    let victims = d.kill9();
    eprintln!(
        "killed the daemon and {} processes after {before_kill} acknowledged inserts",
        victims.len()
    );
    assert!(
        victims.iter().any(|p| p.cmdline.contains("postgres")),
        "no PostgreSQL process was running under the home at the kill: {victims:?}"
    );
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    });
    stop.store(true, Ordering::Relaxed);
    drop(rt);

    let acked: BTreeSet<i64> = acked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    let in_flight: BTreeSet<i64> = in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    assert!(
        acked.len() > 100,
        "only {} inserts were acknowledged before the kill",
        acked.len()
    );

    d.start_again();
    let present: BTreeSet<i64> = d
        .psql("main", "select id from acked order by id")
        .lines()
        .map(|l| l.trim().parse::<i64>().expect("an id"))
        .collect();
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged commits lost after kill -9 (of {}), e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    let unexpected: Vec<_> = present
        .difference(&acked)
        .filter(|id| !in_flight.contains(id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "rows nobody inserted: {unexpected:?}"
    );

    let log = d.branch_log("main");
    assert!(
        log.contains("was interrupted") || log.contains("not properly shut down"),
        "main's PostgreSQL log shows no crash recovery"
    );
    assert!(log.contains("redo done") || log.contains("automatic recovery in progress"));
    d.check_logs();
}

/// Regression: after a crash, the branch's `postmaster.pid` names the killed
/// postmaster; if that PID still looks alive (a zombie, or a reused PID),
/// PostgreSQL refuses to start unless offshoot removes the stale file. See
/// "Bugs found by e2e" in docs/contracts.md. A temporary file the killed
/// daemon left in `run/` is removed too.
#[test]
fn crash_restart_with_stale_postmaster_pid() {
    let mut d = Daemon::start();
    d.psql("main", "create table t (v int); insert into t values (1)");
    let killed_daemon = d.pid().expect("daemon pid");
    let victims = d.kill9_leaving_zombies();
    assert!(
        victims.iter().any(|p| p.cmdline.contains("postgres")),
        "no PostgreSQL process was running under the home at the kill: {victims:?}"
    );
    // What a kill in the middle of rewriting the hba file leaves behind.
    let left_over = d
        .home()
        .join("run")
        .join(format!(".pg_hba.conf.{killed_daemon}.0.tmp"));
    std::fs::write(&left_over, "partial").expect("plant a temporary file");
    d.start_again();
    assert!(
        !left_over.exists(),
        "the new daemon left {} in place",
        left_over.display()
    );
    let out = d.try_psql_db("main", "postgres", "select v from t");
    assert!(
        out.success(),
        "main did not start after a crash while its old postmaster PID still exists: {}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "1");
    d.check_logs();
}
