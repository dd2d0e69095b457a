//! `GET /metrics` in the Prometheus text format (version 0.0.4): branches,
//! running computes, storage bytes (total and owned per branch), and the
//! proxy's connection counters.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;

pub async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let control = &state.control;
    let store = control.store();
    let usage = store.usage();
    let proxy = state.proxy_metrics.snapshot();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    gauge(
        "offshoot_branches",
        "Branches in the store.",
        "gauge",
        &one(store.branches().len() as u64),
    );
    gauge(
        "offshoot_computes_running",
        "Branches whose PostgreSQL is running.",
        "gauge",
        &one(control.runtime().running_count() as u64),
    );
    gauge(
        "offshoot_storage_bytes",
        "Bytes of the page store on disk.",
        "gauge",
        &one(usage.total_bytes),
    );
    let owned: Vec<(String, u64)> = usage
        .owned_bytes
        .iter()
        .map(|(b, v)| (format!("{{branch=\"{}\"}}", escape(b)), *v))
        .collect();
    gauge(
        "offshoot_branch_owned_bytes",
        "Bytes of layers only this branch can read.",
        "gauge",
        &owned,
    );
    gauge(
        "offshoot_proxy_connections_accepted_total",
        "Client connections accepted by the proxy.",
        "counter",
        &one(proxy.accepted),
    );
    gauge(
        "offshoot_proxy_connections_active",
        "Client connections open through the proxy.",
        "gauge",
        &one(proxy.active),
    );
    gauge(
        "offshoot_proxy_connections_relayed_total",
        "Client connections relayed to a compute.",
        "counter",
        &one(proxy.relayed),
    );
    let failed: Vec<(String, u64)> = proxy
        .failed
        .iter()
        .map(|(reason, n)| (format!("{{reason=\"{}\"}}", reason.as_str()), *n))
        .collect();
    gauge(
        "offshoot_proxy_connections_failed_total",
        "Client connections the proxy refused, by reason.",
        "counter",
        &failed,
    );
    gauge(
        "offshoot_proxy_cancel_requests_total",
        "CancelRequests, by whether they matched a connection.",
        "counter",
        &[
            ("{result=\"forwarded\"}".to_string(), proxy.cancel_forwarded),
            ("{result=\"unmatched\"}".to_string(), proxy.cancel_unmatched),
        ],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
