//! The proxy under test, in-process on an ephemeral port, with a fake
//! control plane that maps branch names to sockets and counts leases.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use offshoot_proxy::{BoxFuture, ProxyConfig, ProxyError, ProxyMetrics, Route, RouteError, Router};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::postgres::{PgOptions, PgServer};

/// Routes from a fixed map; unknown names list the known ones.
#[derive(Default)]
pub struct FakeRouter {
    routes: BTreeMap<String, PathBuf>,
    /// Leases handed out and not yet dropped.
    pub leases: Arc<AtomicUsize>,
    /// How many times `route` was called.
    pub calls: AtomicUsize,
}

impl FakeRouter {
    pub fn new(routes: &[(&str, PathBuf)]) -> Arc<FakeRouter> {
        Arc::new(FakeRouter {
            routes: routes
                .iter()
                .map(|(n, p)| (n.to_string(), p.clone()))
                .collect(),
            ..FakeRouter::default()
        })
    }

    pub fn live_leases(&self) -> usize {
        self.leases.load(Ordering::SeqCst)
    }

    /// Live leases once the proxy has seen every client close (waits up to 5 s
    /// for the count to reach zero, then returns whatever it is).
    pub async fn settled_leases(&self) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.live_leases() != 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.live_leases()
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

struct Lease(Arc<AtomicUsize>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Router for FakeRouter {
    fn route(&self, branch: &str) -> BoxFuture<'_, Result<Route, RouteError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let result = match self.routes.get(branch) {
            Some(socket) => {
                self.leases.fetch_add(1, Ordering::SeqCst);
                Ok(Route {
                    socket: socket.clone(),
                    lease: Box::new(Lease(Arc::clone(&self.leases))),
                })
            }
            None => Err(RouteError::UnknownBranch {
                name: branch.to_string(),
                known: self.routes.keys().cloned().collect(),
            }),
        };
        Box::pin(async move { result })
    }
}

pub struct ProxyHarness {
    pub addr: SocketAddr,
    pub metrics: Arc<ProxyMetrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ProxyError>>>,
}

impl ProxyHarness {
    pub async fn start(router: Arc<dyn Router>, mut config: ProxyConfig) -> ProxyHarness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        config.listen = addr;
        let metrics = Arc::clone(&config.metrics);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(offshoot_proxy::serve(listener, config, router, async {
            let _ = stopped.await;
        }));
        ProxyHarness {
            addr,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn with_routes(routes: &[(&str, PathBuf)]) -> (ProxyHarness, Arc<FakeRouter>) {
        let router = FakeRouter::new(routes);
        let proxy = ProxyHarness::start(router.clone(), ProxyConfig::default()).await;
        (proxy, router)
    }

    /// A PostgreSQL server per name, each the compute of the branch of that
    /// name, behind a proxy. Bound as `let ([main, …], proxy, router) = …`,
    /// the servers outlive the proxy.
    pub async fn with_computes<const N: usize>(
        names: [&str; N],
    ) -> ([PgServer; N], ProxyHarness, Arc<FakeRouter>) {
        let servers = names.map(|name| PgServer::start(PgOptions::named(name)));
        let routes: Vec<(&str, PathBuf)> = names
            .iter()
            .zip(&servers)
            .map(|(name, server)| (*name, server.socket_path()))
            .collect();
        let (proxy, router) = ProxyHarness::with_routes(&routes).await;
        (servers, proxy, router)
    }

    /// A libpq URL through the proxy.
    pub fn url(&self, user: &str, dbname: &str, extra: &str) -> String {
        let sep = if extra.is_empty() { "" } else { "&" };
        format!(
            "postgresql://{user}@{}:{}/{dbname}?sslmode=disable{sep}{extra}",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// A tokio-postgres config through the proxy (password set).
    pub fn pg_config(&self, user: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(self.addr.ip().to_string())
            .port(self.addr.port())
            .user(user)
            .password(super::PASSWORD)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(10));
        c
    }

    /// Asks `serve` to stop and waits for it (bounded by the grace period).
    pub async fn shutdown(mut self) -> Result<(), ProxyError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("serve task panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for ProxyHarness {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
