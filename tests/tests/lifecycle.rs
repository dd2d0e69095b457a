//! Computes start on demand and stop when idle: scale to zero and back, a
//! stampede of clients on a stopped branch, and hundreds of connections over
//! many branches at once.

use offshoot_e2e::{wait_until, Daemon, DaemonOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Postmasters serving BRANCH (their data directory is its mount).
fn postmasters_of(d: &Daemon, branch: &str) -> usize {
    let mnt = d.home().join("mnt").join(d.branch_id(branch));
    let mnt = mnt.to_string_lossy().into_owned();
    d.postmasters()
        .iter()
        .filter(|p| p.cmdline.split(' ').any(|arg| arg == mnt))
        .count()
}

#[test]
fn idle_timeout_stops_and_wakes() {
    let d = Daemon::start_with(DaemonOptions {
        idle_timeout: Some("2s".into()),
        ..DaemonOptions::default()
    });
    d.psql("main", "create table t (v int); insert into t values (42)");
    // The compute stops once nobody is connected for the idle timeout.
    let mut state = String::new();
    let stopped = wait_until(Duration::from_secs(30), || {
        state = d.branch_state("main");
        state == "stopped"
    });
    assert!(
        stopped,
        "main still {state:?} 30 s after its last client left (idle timeout 2 s)"
    );
    assert_eq!(
        postmasters_of(&d, "main"),
        0,
        "state says stopped but postgres runs: {:?}",
        d.postmasters()
    );

    // The next connection wakes it, with the data where it was.
    let woke = Instant::now();
    assert_eq!(d.psql("main", "select v from t"), "42");
    eprintln!("wake-up and first query: {:?}", woke.elapsed());
    assert_eq!(d.branch_state("main"), "running");

    // A connected client keeps it up past the idle timeout.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let client = d.connect("main", "postgres").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let row = client
            .query_one("select v from t", &[])
            .await
            .expect("query after 5 s");
        assert_eq!(row.get::<_, i32>(0), 42);
    });
    assert_eq!(d.branch_state("main"), "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_on_stopped_branch() {
    let d = Daemon::start();
    d.psql("main", "create table t (v int); insert into t values (7)");
    d.create_branch("herd", Some("main"));
    assert_eq!(d.branch_state("herd"), "stopped");
    assert_eq!(postmasters_of(&d, "herd"), 0);

    let url = Arc::new(d.connection_string("herd", "postgres"));
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("client {i}: connect: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let row = client
                    .query_one("select v from t", &[])
                    .await
                    .map_err(|e| format!("client {i}: query: {e}"))?;
                Ok::<_, String>((row.get::<_, i32>(0), client))
            })
        })
        .collect();
    let mut open = Vec::new();
    for c in clients {
        let (v, client) = c.await.expect("join").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, 7);
        open.push(client);
    }
    assert_eq!(
        postmasters_of(&d, "herd"),
        1,
        "postmasters: {:?}",
        d.postmasters()
    );
    drop(open);
    let starts = d.branch_log("herd").matches("starting PostgreSQL").count();
    assert_eq!(
        starts, 1,
        "herd's PostgreSQL was started {starts} times for 20 simultaneous clients"
    );
}

/// A client error with the server's SQLSTATE and message when it sent one
/// (`tokio_postgres` displays those as just "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_connections_over_branches() {
    const BRANCHES: usize = 20;
    const PER_BRANCH: usize = 10;
    const ROWS: i64 = 20;
    let d = Daemon::start();
    d.psql("main", "create table hits (client int, n int)");
    let names: Vec<String> = (0..BRANCHES).map(|i| format!("many-{i:02}")).collect();
    for n in &names {
        d.create_branch(n, Some("main"));
    }
    let urls: Vec<Arc<String>> = names
        .iter()
        .map(|n| Arc::new(d.connection_string(n, "postgres")))
        .collect();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (b, url) in urls.iter().enumerate() {
        for c in 0..PER_BRANCH {
            let url = url.clone();
            let client_no = (b * PER_BRANCH + c) as i32;
            tasks.push(tokio::spawn(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("client {client_no}: connect: {}", describe(&e)))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                for n in 0..ROWS {
                    client
                        .execute(
                            "insert into hits values ($1, $2)",
                            &[&client_no, &(n as i32)],
                        )
                        .await
                        .map_err(|e| format!("client {client_no}: insert: {}", describe(&e)))?;
                }
                let row = client
                    .query_one("select count(*) from hits where client = $1", &[&client_no])
                    .await
                    .map_err(|e| format!("client {client_no}: select: {}", describe(&e)))?;
                Ok::<i64, String>(row.get(0))
            }));
        }
    }
    let mut errors = Vec::new();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(240), t).await {
            Ok(Ok(Ok(count))) => assert_eq!(count, ROWS),
            Ok(Ok(Err(e))) => errors.push(e),
            Ok(Err(e)) => errors.push(format!("join: {e}")),
            Err(_) => errors.push("client still running after 240 s".into()),
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} clients failed: {:?}",
        errors.len(),
        BRANCHES * PER_BRANCH,
        &errors[..errors.len().min(10)]
    );
    eprintln!(
        "{} clients over {BRANCHES} branches done in {:?}",
        BRANCHES * PER_BRANCH,
        started.elapsed()
    );

    for (b, n) in names.iter().enumerate() {
        let lo = b * PER_BRANCH;
        let hi = lo + PER_BRANCH - 1;
        assert_eq!(
            d.psql(n, "select count(*), min(client), max(client) from hits"),
            format!("{}|{lo}|{hi}", PER_BRANCH as i64 * ROWS),
            "rows on {n}"
        );
    }
    assert_eq!(d.psql("main", "select count(*) from hits"), "0");
}
