//! The byte relay after authentication: large results pass intact, and a
//! session ends at the compute when its client leaves and when the proxy
//! shuts down after its grace period (the relay lets go of both
//! sockets).

use std::time::{Duration, Instant};

use offshoot_proxy::ProxyConfig;
use tokio_postgres::{Client, NoTls};

use crate::support::{FakeRouter, PgOptions, PgServer, ProxyHarness, PASSWORD};

const APP: &str = "relay-test";

/// A session straight to the server's Unix socket, not through the proxy.
async fn direct(pg: &PgServer) -> Client {
    let socket = pg.socket_path();
    let dir = socket.parent().expect("socket dir");
    let (client, conn) = tokio_postgres::Config::new()
        .host_path(dir)
        .port(pg.port)
        .user("postgres")
        .password(PASSWORD)
        .dbname("postgres")
        .connect(NoTls)
        .await
        .expect("direct connect");
    tokio::spawn(conn);
    client
}

/// Backends of sessions that came through the proxy.
async fn relayed_backends(admin: &Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&APP],
        )
        .await
        .expect("count backends")
        .get(0)
}

/// Waits up to 5 s for the relayed backend count to reach `want`.
async fn settle(admin: &Client, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = relayed_backends(admin).await;
        if n == want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_relay_carries_large_results_and_ends_sessions() {
    let pg = PgServer::start(PgOptions::named("main"));
    let router = FakeRouter::new(&[("main", pg.socket_path())]);
    let config = ProxyConfig {
        shutdown_grace: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let proxy = ProxyHarness::start(router.clone(), config).await;
    let admin = direct(&pg).await;

    let mut clients = Vec::new();
    for _ in 0..3 {
        let (client, conn) = proxy
            .pg_config("postgres.main")
            .application_name(APP)
            .connect(NoTls)
            .await
            .expect("connect through the proxy");
        tokio::spawn(conn);
        clients.push(client);
    }
    // Larger than a relay buffer each way: a 1 MB parameter in, 1 MB out.
    let big: String = (0..1_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for client in &clients {
        let row = client
            .query_one("SELECT $1::text || 'end'", &[&big])
            .await
            .expect("large round trip");
        let echoed: &str = row.get(0);
        assert_eq!(echoed.len(), big.len() + 3);
        assert!(echoed.starts_with(&big) && echoed.ends_with("end"));
    }
    assert_eq!(settle(&admin, 3).await, 3, "three relayed sessions");

    // A client that leaves ends its backend (and its lease).
    drop(clients.pop());
    assert_eq!(
        settle(&admin, 2).await,
        2,
        "backend of the closed client ended"
    );

    // Shutdown: after the grace period the open sessions are cut at both ends.
    let started = Instant::now();
    proxy.shutdown().await.expect("serve returned cleanly");
    assert!(started.elapsed() < Duration::from_secs(3), "drain bounded");
    assert_eq!(
        settle(&admin, 0).await,
        0,
        "relayed backends ended at shutdown"
    );
    for client in &clients {
        assert!(
            client.simple_query("SELECT 1").await.is_err(),
            "session closed by the proxy's shutdown"
        );
    }
    assert_eq!(router.settled_leases().await, 0, "every lease dropped");
}
