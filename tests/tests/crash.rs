//! `kill -9` of the daemon and its computes in the middle of a write
//! workload: after `offshoot up`, every commit that was acknowledged to a
//! client is there, and PostgreSQL recovered on its own.

use offshoot_e2e::acked::{AckLog, CREATE_TABLE};
use offshoot_e2e::Daemon;
use std::time::Duration;

const WORKERS: i64 = 4;

#[test]
fn crash_kill9() {
    let mut d = Daemon::start();
    d.psql("main", CREATE_TABLE);
    let url = d.connection_string("main", "postgres");

    let clients = AckLog::new();
    let (rt, tasks) = clients.start(&url, WORKERS, 200);

    std::thread::sleep(Duration::from_secs(6));
    let before_kill = clients.acked().len();
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
    clients.stop();
    drop(rt);
    assert!(
        clients.acked().len() > 100,
        "only {} inserts were acknowledged before the kill",
        clients.acked().len()
    );

    d.start_again();
    clients.assert_present(&d, "main", "after kill -9");

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
