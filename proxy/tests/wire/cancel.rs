//! CancelRequest routing through the proxy.

use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::support::ProxyHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_cancel_request_reaches_the_right_compute() {
    let ([_main, _other], proxy, _router) = ProxyHarness::with_computes(["main", "other"]).await;
    // A session on another branch, so that the map holds more than one key.
    let (_other_client, other_conn) = proxy
        .pg_config("postgres.other")
        .connect(NoTls)
        .await
        .expect("connect other");
    tokio::spawn(other_conn);

    let (client, conn) = proxy
        .pg_config("postgres.main")
        .connect(NoTls)
        .await
        .expect("connect main");
    tokio::spawn(conn);
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token
        .cancel_query(NoTls)
        .await
        .expect("send cancel through the proxy");
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("query ended")
        .expect("join");
    let elapsed = started.elapsed();
    let err = result.expect_err("the sleep was cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert_eq!(proxy.metrics.snapshot().cancel_forwarded, 1);
}
