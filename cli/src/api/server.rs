//! The HTTP API server: axum on loopback, every route of docs/contracts.md
//! "The HTTP API" (documented with examples in docs/http-api.md and, for
//! programs, in `api/openapi.json`, served at `GET /v1/openapi.json`).
//!
//! Requests pass, in order: the bearer-token check (`auth`; everything but
//! the OpenAPI document), the 64 KiB body limit, then the handler, which
//! parses its body with `body::parse` (unknown fields rejected) and calls the
//! control plane. Every error answer is `{"error": {"code", "message"}}`,
//! unknown routes (404) and methods a route does not answer (405) included.

mod auth;
mod body;
mod error;
mod handlers;
mod metrics;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use offshoot_proxy::ProxyMetrics;
use tokio::net::TcpListener;

pub use error::ApiError;

use crate::daemon::control::Control;
use crate::home::DaemonInfo;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The hand-written OpenAPI 3 document.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// What every handler can reach.
pub struct ApiState {
    control: Arc<Control>,
    token: String,
    info: DaemonInfo,
    postgres_version: String,
    proxy_metrics: Arc<ProxyMetrics>,
}

impl ApiState {
    pub fn new(
        control: Arc<Control>,
        token: String,
        info: DaemonInfo,
        postgres_version: String,
        proxy_metrics: Arc<ProxyMetrics>,
    ) -> ApiState {
        ApiState {
            control,
            token,
            info,
            postgres_version,
            proxy_metrics,
        }
    }
}

/// Every route, with authentication and the body limit.
pub fn router(state: Arc<ApiState>) -> Router {
    let authed = Router::new()
        .route("/v1/status", get(handlers::status))
        .route(
            "/v1/branches",
            get(handlers::list_branches).post(handlers::create_branch),
        )
        .route(
            "/v1/branches/{name}",
            get(handlers::show_branch).delete(handlers::delete_branch),
        )
        .route("/v1/branches/{name}/reset", post(handlers::reset_branch))
        .route("/v1/branches/{name}/rename", post(handlers::rename_branch))
        .route(
            "/v1/branches/{name}/protect",
            post(handlers::protect_branch),
        )
        .route(
            "/v1/branches/{name}/unprotect",
            post(handlers::unprotect_branch),
        )
        .route(
            "/v1/branches/{name}/connection-string",
            get(handlers::connection_string),
        )
        .route("/metrics", get(metrics::metrics))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/v1/openapi.json", get(handlers::openapi))
        .merge(authed)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
