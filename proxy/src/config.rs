//! How the proxy is configured by the daemon.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::ProxyMetrics;

/// The proxy's settings. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The address the daemon binds for the proxy (`serve` takes a bound
    /// listener; this is kept for the daemon and for logs).
    pub listen: SocketAddr,
    /// TLS for clients that ask for it; `None` answers SSLRequest with `N`.
    pub tls: Option<TlsConfig>,
    /// Roles that can never log in through the proxy.
    pub reserved_roles: Vec<String>,
    /// Bound on the whole startup phase (SSL negotiation + StartupMessage).
    pub startup_timeout: Duration,
    /// Bound on [`crate::Router::route`] (waking a compute).
    pub route_timeout: Duration,
    /// Bound on connecting to a compute's Unix socket.
    pub connect_timeout: Duration,
    /// How long `serve` lets open connections drain after shutdown is asked.
    pub shutdown_grace: Duration,
    /// Offer computes the client's socket after authentication (plain TCP
    /// only), so the session runs without the relay; the compute takes it
    /// when it has offshoot's handoff module (docs/proxy.md, "Socket handoff").
    pub handoff: bool,
    /// Counters the daemon reads (clone the `Arc` before calling `serve`).
    pub metrics: Arc<ProxyMetrics>,
}

/// PEM files of the server certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The default listen address: loopback, port 55432.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 55432);

/// The role offshoot itself uses over the private socket.
pub const DEFAULT_RESERVED_ROLE: &str = "offshoot_system";

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: DEFAULT_LISTEN,
            tls: None,
            reserved_roles: vec![DEFAULT_RESERVED_ROLE.to_string()],
            startup_timeout: Duration::from_secs(30),
            route_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            handoff: true,
            metrics: Arc::new(ProxyMetrics::default()),
        }
    }
}
