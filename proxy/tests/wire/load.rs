//! Many clients at once over two branches.

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio_postgres::NoTls;

use crate::support::{PgOptions, PgServer, ProxyHarness};

const CLIENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_200_concurrent_connections_over_two_routes() {
    let big = |name: &str| {
        PgServer::start(PgOptions {
            max_connections: 120,
            ..PgOptions::named(name)
        })
    };
    let (a, b) = (big("alpha"), big("beta"));
    let (proxy, router) =
        ProxyHarness::with_routes(&[("alpha", a.socket_path()), ("beta", b.socket_path())]).await;
    let proxy = Arc::new(proxy);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let branch = if i % 2 == 0 { "alpha" } else { "beta" };
        let (proxy, barrier) = (proxy.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let (client, conn) = proxy
                .pg_config(&format!("postgres.{branch}"))
                .connect(NoTls)
                .await
                .map_err(|e| format!("client {i} connect: {e}"))?;
            tokio::spawn(conn);
            // Everyone connected at the same time before the workload.
            // (Bounded, so that one failed connect cannot hang the test.)
            tokio::time::timeout(std::time::Duration::from_secs(60), barrier.wait())
                .await
                .map_err(|_| format!("client {i}: not everyone connected"))?;
            for q in 0..10i32 {
                let row = client
                    .query_one("SELECT current_setting('cluster_name'), $1::int * 2", &[&q])
                    .await
                    .map_err(|e| format!("client {i} query: {e}"))?;
                let cluster: String = row.get(0);
                if cluster != branch || row.get::<_, i32>(1) != q * 2 {
                    return Err(format!("client {i} on {branch} got {cluster}"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("client workload");
    }
    let m = proxy.metrics.snapshot();
    assert_eq!(m.relayed, CLIENTS as u64);
    assert_eq!(m.failed.iter().map(|(_, n)| n).sum::<u64>(), 0);
    assert_eq!(router.settled_leases().await, 0);
}
