//! Connecting through the proxy with each way of naming a branch.

use tokio_postgres::NoTls;

use crate::support::{psql, ProxyHarness, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_psql_names_branch_by_user_and_by_options() {
    let ([_main, _dev], proxy, router) = ProxyHarness::with_computes(["main", "dev"]).await;

    let out = psql(
        &proxy.url("postgres.dev", "postgres", ""),
        PASSWORD,
        &["SELECT current_user || ' ' || current_setting('cluster_name')"],
    )
    .await;
    assert!(out.success, "{out:?}");
    assert_eq!(out.stdout.trim(), "postgres dev");

    // options: the branch setting is removed, the others reach PostgreSQL.
    let out = psql(
        &proxy.url(
            "postgres",
            "postgres",
            "options=-c%20offshoot.branch%3Dmain%20-c%20search_path%3Dbranchy",
        ),
        PASSWORD,
        &["SELECT current_setting('cluster_name') || ' ' || current_setting('search_path')"],
    )
    .await;
    assert!(out.success, "{out:?}");
    assert_eq!(out.stdout.trim(), "main branchy");
    assert_eq!(
        router.settled_leases().await,
        0,
        "leases dropped after psql exits"
    );
    assert_eq!(proxy.metrics.snapshot().relayed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_tokio_postgres_connects_and_holds_a_lease() {
    let ([_main], proxy, router) = ProxyHarness::with_computes(["main"]).await;

    let (client, conn) = proxy
        .pg_config("postgres.main")
        .connect(NoTls)
        .await
        .expect("connect with ROLE.BRANCH");
    let conn = tokio::spawn(conn);
    let row = client
        .query_one("SELECT current_user::text, 40 + $1::int", &[&2i32])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "postgres");
    assert_eq!(row.get::<_, i32>(1), 42);
    assert_eq!(router.live_leases(), 1, "lease held while connected");
    drop(client);
    let _ = conn.await;

    let mut config = proxy.pg_config("postgres");
    config.options("-c offshoot.branch=main");
    let (client, conn) = config.connect(NoTls).await.expect("connect with options");
    let conn = tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT count(*) FROM pg_database", &[])
        .await
        .expect("query")
        .get(0);
    assert!(n >= 3);
    drop(client);
    let _ = conn.await;

    assert_eq!(router.settled_leases().await, 0);
    for _ in 0..100 {
        if proxy.metrics.snapshot().active == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.metrics.snapshot().active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_switching_database_stays_on_the_branch() {
    let ([_main, _dev], proxy, _router) = ProxyHarness::with_computes(["main", "dev"]).await;
    // psql's \c reconnects with the same user name, so the branch follows.
    let out = psql(
        &proxy.url("postgres.dev", "postgres", ""),
        PASSWORD,
        &[
            "SELECT current_database() || '@' || current_setting('cluster_name')",
            "\\c template1",
            "SELECT current_database() || '@' || current_setting('cluster_name')",
        ],
    )
    .await;
    assert!(out.success, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().filter(|l| l.contains('@')).collect();
    assert_eq!(lines, ["postgres@dev", "template1@dev"], "{out:?}");
}
