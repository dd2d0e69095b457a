//! `GET /metrics` in the Prometheus text format (version 0.0.4): branches,
//! running computes, storage bytes and the disk's free bytes; the page store's I/O (page reads and
//! writes, bytes, seals, corrupted reads, and the latency of its syncs as a
//! histogram); the FUSE requests of every mount since the daemon started;
//! and the proxy's connection counters.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use offshoot_storage::SYNC_BUCKET_BOUNDS_US;

use super::ApiState;
use crate::daemon::disk_space;

pub async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
}

fn render(state: &ApiState) -> String {
    let control = &state.control;
    let store = control.store();
    let usage = store.usage();
    let io = store.metrics();
    let fuse = control.runtime().mount_metrics();
    let proxy = state.proxy_metrics.snapshot();
    let mut out = Text(String::with_capacity(4096));

    out.one(
        "offshoot_branches",
        "Branches in the store.",
        "gauge",
        store.branches().len() as u64,
    );
    out.one(
        "offshoot_computes_running",
        "Branches whose PostgreSQL is running.",
        "gauge",
        control.runtime().running_count() as u64,
    );
    out.one(
        "offshoot_storage_bytes",
        "Bytes of the page store on disk.",
        "gauge",
        usage.total_bytes,
    );
    if let Ok(free) = disk_space::free_bytes(&control.home().store_dir()) {
        out.one(
            "offshoot_disk_free_bytes",
            "Bytes the daemon can still write on the disk under the page store.",
            "gauge",
            free,
        );
    }
    out.head(
        "offshoot_branch_owned_bytes",
        "Bytes of layers only this branch can read.",
        "gauge",
    );
    for (branch, bytes) in &usage.owned_bytes {
        out.sample(
            "offshoot_branch_owned_bytes",
            &format!("{{branch=\"{}\"}}", escape(branch)),
            bytes,
        );
    }

    // The page store, since the daemon opened it.
    out.one(
        "offshoot_page_reads_total",
        "Pages read from the page store.",
        "counter",
        io.page_reads,
    );
    out.one(
        "offshoot_page_writes_total",
        "Page records written to the page store.",
        "counter",
        io.page_writes,
    );
    out.one(
        "offshoot_page_read_bytes_total",
        "Bytes read from the page store.",
        "counter",
        io.bytes_read,
    );
    out.one(
        "offshoot_page_written_bytes_total",
        "Bytes written to the page store.",
        "counter",
        io.bytes_written,
    );
    out.one(
        "offshoot_layer_seals_total",
        "Open logs sealed into immutable layers.",
        "counter",
        io.seals,
    );
    out.one(
        "offshoot_corrupted_reads_total",
        "Reads that met a failed checksum (answered with an I/O error).",
        "counter",
        io.corrupted_reads,
    );
    let name = "offshoot_fsync_seconds";
    out.head(
        name,
        "Time of the page store's durable syncs (a PostgreSQL fsync waits for one).",
        "histogram",
    );
    let mut cumulative = 0;
    for (i, count) in io.sync_buckets.iter().enumerate() {
        cumulative += count;
        let le = SYNC_BUCKET_BOUNDS_US
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |us| (*us as f64 / 1e6).to_string());
        out.sample(
            &format!("{name}_bucket"),
            &format!("{{le=\"{le}\"}}"),
            &cumulative,
        );
    }
    out.sample(
        &format!("{name}_sum"),
        "",
        &(io.sync_micros_total as f64 / 1e6),
    );
    out.sample(&format!("{name}_count"), "", &io.syncs);

    // FUSE requests of every mount, live or unmounted, since the daemon started.
    out.one(
        "offshoot_fuse_reads_total",
        "FUSE read requests.",
        "counter",
        fuse.reads,
    );
    out.one(
        "offshoot_fuse_read_bytes_total",
        "Bytes answered to FUSE reads.",
        "counter",
        fuse.read_bytes,
    );
    out.one(
        "offshoot_fuse_writes_total",
        "FUSE write requests.",
        "counter",
        fuse.writes,
    );
    out.one(
        "offshoot_fuse_written_bytes_total",
        "Bytes of FUSE writes.",
        "counter",
        fuse.write_bytes,
    );
    out.one(
        "offshoot_fuse_fsyncs_total",
        "FUSE fsync and fsyncdir requests.",
        "counter",
        fuse.fsyncs,
    );
    out.head(
        "offshoot_fuse_fsync_seconds_total",
        "Time spent answering FUSE fsync requests.",
        "counter",
    );
    out.sample(
        "offshoot_fuse_fsync_seconds_total",
        "",
        &fuse.fsync_time.as_secs_f64(),
    );
    out.one(
        "offshoot_fuse_sync_writes_total",
        "FUSE writes on O_DSYNC/O_SYNC handles (PostgreSQL's WAL), each durable when answered.",
        "counter",
        fuse.sync_writes,
    );
    out.head(
        "offshoot_fuse_sync_write_seconds_total",
        "Time pagefs spent on synchronous writes, from arrival to answer (append and flush).",
        "counter",
    );
    out.sample(
        "offshoot_fuse_sync_write_seconds_total",
        "",
        &fuse.sync_write_time.as_secs_f64(),
    );
    out.one(
        "offshoot_fuse_errors_total",
        "FUSE requests answered with an I/O, corruption or stale-branch error.",
        "counter",
        fuse.errors,
    );

    // The proxy.
    out.one(
        "offshoot_proxy_connections_accepted_total",
        "Client connections accepted by the proxy.",
        "counter",
        proxy.accepted,
    );
    out.one(
        "offshoot_proxy_connections_active",
        "Client connections open through the proxy.",
        "gauge",
        proxy.active,
    );
    out.one(
        "offshoot_proxy_connections_relayed_total",
        "Client connections relayed to a compute.",
        "counter",
        proxy.relayed,
    );
    out.one(
        "offshoot_proxy_connections_handed_off_total",
        "Relayed connections whose client socket the compute took over after login.",
        "counter",
        proxy.handed_off,
    );
    let name = "offshoot_proxy_connections_failed_total";
    out.head(
        name,
        "Client connections the proxy refused, by reason.",
        "counter",
    );
    for (reason, n) in &proxy.failed {
        out.sample(name, &format!("{{reason=\"{}\"}}", reason.as_str()), n);
    }
    let name = "offshoot_proxy_cancel_requests_total";
    out.head(
        name,
        "CancelRequests, by whether they matched a connection.",
        "counter",
    );
    out.sample(name, "{result=\"forwarded\"}", &proxy.cancel_forwarded);
    out.sample(name, "{result=\"unmatched\"}", &proxy.cancel_unmatched);
    out.0
}

/// The exposition being written.
struct Text(String);

impl Text {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: &dyn std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }

    /// A family with one unlabelled sample.
    fn one(&mut self, name: &str, help: &str, kind: &str, value: u64) {
        self.head(name, help, kind);
        self.sample(name, "", &value);
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn families_have_help_type_and_samples() {
        let mut t = Text(String::new());
        t.one("x_total", "Things.", "counter", 7);
        t.sample("y_bucket", "{le=\"0.001\"}", &3);
        assert_eq!(
            t.0,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 7\ny_bucket{le=\"0.001\"} 3\n"
        );
    }
}
