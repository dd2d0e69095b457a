//! The wire-protocol proxy: one TCP endpoint for every branch.
//!
//! A client connects with a normal PostgreSQL connection string. The proxy
//! reads the startup phase itself (SSL/GSS negotiation, CancelRequest,
//! StartupMessage), picks the branch from the user name (`ROLE.BRANCH`) or the
//! `offshoot.branch` option, asks the control plane ([`Router`]) to wake that
//! branch's compute, and then relays bytes between the client and the
//! compute's Unix socket. Authentication is the compute's own: the proxy never
//! sees a password. See `docs/proxy.md` for the whole story.
//!
//! Layout:
//! - [`startup`]: parsing of the first packets a client sends (pure, fuzzed);
//! - [`routing`]: which branch and role a StartupMessage names, and how it is
//!   rewritten for the compute;
//! - `client_error`: every error the proxy itself sends on the wire;
//! - `connection`: one client from accept to close; `backend_scan`: the
//!   server→client parse until ReadyForQuery; `relay`: the byte relay after
//!   it; `cancel`: CancelRequest routing;
//! - `server`: the accept loop and graceful shutdown;
//! - `metrics`, `config`, `router`, `tls`, `error`: the crate's surface.

mod backend_scan;
mod cancel;
mod client_error;
mod client_stream;
mod config;
mod connection;
mod error;
mod handoff;
mod metrics;
mod relay;
mod router;
pub mod routing;
mod server;
pub mod startup;
mod tls;

pub use client_error::{ClientError, SqlState};
pub use config::{ProxyConfig, TlsConfig};
pub use error::ProxyError;
pub use metrics::{FailReason, MetricsSnapshot, ProxyMetrics};
pub use router::{BoxFuture, Route, RouteError, Router};
pub use server::serve;
