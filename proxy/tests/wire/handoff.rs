//! Socket handoff: after login, the backend takes the client's TCP socket
//! and the session no longer passes through the proxy. Seen from SQL: the
//! backend's client address is the TCP peer (`inet_client_addr()`), where a
//! relayed session, which reaches PostgreSQL over its Unix socket, has none.

use std::time::Duration;

use offshoot_proxy::ProxyConfig;
use tokio_postgres::{Client, NoTls};

use crate::support::{psql, FakeRouter, PgOptions, PgServer, ProxyHarness, PASSWORD};

/// `host(inet_client_addr())`: `None` over a Unix socket.
async fn client_addr(client: &Client) -> Option<String> {
    client
        .query_one("SELECT host(inet_client_addr())", &[])
        .await
        .expect("query the client address")
        .get(0)
}

async fn connect(proxy: &ProxyHarness) -> Client {
    let (client, conn) = proxy
        .pg_config("postgres.main")
        .connect(NoTls)
        .await
        .expect("connect through the proxy");
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_session_runs_on_the_clients_socket_after_login() {
    let ([_main], proxy, router) = ProxyHarness::with_computes(["main"]).await;

    let client = connect(&proxy).await;
    assert_eq!(client_addr(&client).await.as_deref(), Some("127.0.0.1"));
    // The whole protocol works on the socket the backend took: extended
    // queries, a result far larger than any buffer, errors, transactions.
    let row = client
        .query_one("SELECT 40 + $1::int, pg_backend_pid()", &[&2i32])
        .await
        .expect("extended query");
    assert_eq!(row.get::<_, i32>(0), 42);
    let big: i64 = client
        .query_one(
            "SELECT sum(length(repeat('x', 1000) || g)) FROM generate_series(1, 20000) g",
            &[],
        )
        .await
        .expect("aggregate")
        .get(0);
    assert!(big > 20_000_000);
    let rows = client
        .query(
            "SELECT repeat('y', 1000) FROM generate_series(1, 5000)",
            &[],
        )
        .await
        .expect("a 5 MB result");
    assert_eq!(rows.len(), 5000);
    let err = client.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22012"), "{err}");
    client
        .batch_execute("BEGIN; CREATE TABLE t(x int); INSERT INTO t VALUES (7); COMMIT")
        .await
        .expect("transaction");

    let snapshot = proxy.metrics.snapshot();
    assert_eq!((snapshot.relayed, snapshot.handed_off), (1, 1));
    assert_eq!(
        router.live_leases(),
        1,
        "the lease is held while the backend runs"
    );

    // psql too; and its session ends when it exits.
    let out = psql(
        &proxy.url("postgres.main", "postgres", ""),
        PASSWORD,
        &["SELECT host(inet_client_addr()) || ' ' || (SELECT x FROM t)"],
    )
    .await;
    assert!(out.success, "{out:?}");
    assert_eq!(out.stdout.trim(), "127.0.0.1 7");
    assert_eq!(proxy.metrics.snapshot().handed_off, 2);

    // The proxy learns of the end from the backend's exit.
    drop(client);
    assert_eq!(
        router.settled_leases().await,
        0,
        "leases dropped at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_without_the_module_or_with_handoff_off_sessions_are_relayed() {
    let plain = PgServer::start(PgOptions {
        handoff: false,
        ..PgOptions::named("main")
    });
    let (proxy, _router) = ProxyHarness::with_routes(&[("main", plain.socket_path())]).await;
    let client = connect(&proxy).await;
    assert_eq!(
        client_addr(&client).await,
        None,
        "relayed over the Unix socket"
    );
    assert_eq!(proxy.metrics.snapshot().handed_off, 0);
    drop(client);
    drop(proxy);

    let with_module = PgServer::start(PgOptions::named("main"));
    let router = FakeRouter::new(&[("main", with_module.socket_path())]);
    let config = ProxyConfig {
        handoff: false,
        ..ProxyConfig::default()
    };
    let proxy = ProxyHarness::start(router, config).await;
    let client = connect(&proxy).await;
    assert_eq!(client_addr(&client).await, None, "not offered: relayed");
    assert_eq!(proxy.metrics.snapshot().handed_off, 0);
    // A client cannot ask for the handoff itself: the proxy strips it.
    let mut config = proxy.pg_config("postgres.main");
    config.options("-c offshoot.handoff=on");
    let (asked, conn) = config.connect(NoTls).await.expect("connect");
    tokio::spawn(conn);
    assert_eq!(client_addr(&asked).await, None);
    assert_eq!(proxy.metrics.snapshot().handed_off, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stopping_the_proxy_ends_handed_off_sessions() {
    let main = PgServer::start(PgOptions::named("main"));
    let router = FakeRouter::new(&[("main", main.socket_path())]);
    let config = ProxyConfig {
        shutdown_grace: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let proxy = ProxyHarness::start(router, config).await;
    let client = connect(&proxy).await;
    assert_eq!(client_addr(&client).await.as_deref(), Some("127.0.0.1"));
    tokio::time::timeout(Duration::from_secs(10), proxy.shutdown())
        .await
        .expect("the proxy stops after its grace period")
        .expect("serve ends cleanly");
    let after = tokio::time::timeout(Duration::from_secs(5), client.simple_query("SELECT 1"))
        .await
        .expect("the session ends instead of hanging");
    assert!(after.is_err(), "the session outlived the proxy: {after:?}");
}
