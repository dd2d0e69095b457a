//! A scripted branch lifecycle with a daemon restart between every step:
//! after each acknowledged change the daemon is shut down and started again
//! on the same home, and the branch list must be exactly what was
//! acknowledged — names, ids, parents, creation times, expiry, protection.
//! A refused change (deleting a protected branch) must leave nothing behind
//! either. Also a data check: rows written on a branch before a restart are
//! there after it, and a reset's new contents survive one.
//!
//! Starts real PostgreSQL on real FUSE mounts (hence `pg_`).

#[path = "daemon_api/http.rs"]
mod http;
#[path = "daemon_api/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use http::Api;
use offshoot::daemon::{Daemon, UpOptions};
use serde_json::Value;
use support::{api, exec, uri_of, MountGuard};

/// A daemon whose computes never stop for idleness: restarts, not the idle
/// reaper, are what this test exercises.
fn options(home: &Path) -> UpOptions {
    let mut opts = support::options(home);
    opts.idle_timeout = Duration::ZERO;
    opts
}

/// The acknowledged state of every branch: everything but what a restart may
/// legitimately change (the compute's state, and owned bytes, which move when
/// recovery drops inodes that were unlinked while still open).
fn state(api: &Api) -> Value {
    let r = api.get("/v1/branches");
    assert_eq!(r.status, 200, "{}", r.body);
    let mut list = r.json();
    for b in list["branches"].as_array_mut().unwrap() {
        let b = b.as_object_mut().unwrap();
        b.remove("owned_bytes");
        b.remove("state");
    }
    list
}

async fn query_i64(uri: &str, sql: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"));
    let task = tokio::spawn(conn);
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    drop(client);
    let _ = task.await;
    row.get::<_, i64>(0)
}

/// Shuts the daemon down, starts it again on the same home, and checks the
/// branch list is exactly `acknowledged`.
async fn restart(daemon: Daemon, home: &Path, acknowledged: &Value, step: &str) -> (Daemon, Api) {
    daemon.shutdown().await;
    let daemon = Daemon::start(options(home))
        .await
        .unwrap_or_else(|e| panic!("restart after {step}: {e:#}"));
    let api = api(&daemon, home);
    assert_eq!(
        &state(&api),
        acknowledged,
        "state after restarting past {step}"
    );
    (daemon, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_lifecycle_survives_a_restart_after_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    // PostgreSQL runs as another user when the tests run as root.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let home = tmp.path().join("home");
    let _guard = MountGuard(home.join("mnt"));

    let mut daemon = Daemon::start(options(&home)).await.expect("first start");
    let mut api = api(&daemon, &home);

    // Each step: one acknowledged change, then a restart that must find it.
    type Step = (&'static str, &'static str, &'static str, &'static str, u16);
    let steps: [Step; 9] = [
        (
            "create dev",
            "POST",
            "/v1/branches",
            r#"{"name":"dev"}"#,
            201,
        ),
        (
            "create pr-1 from dev with ttl and protection",
            "POST",
            "/v1/branches",
            r#"{"name":"pr-1","parent":"dev","ttl_seconds":86400,"protected":true}"#,
            201,
        ),
        (
            "unprotect pr-1",
            "POST",
            "/v1/branches/pr-1/unprotect",
            "",
            200,
        ),
        (
            "rename pr-1 to pr/one",
            "POST",
            "/v1/branches/pr-1/rename",
            r#"{"new_name":"pr/one"}"#,
            200,
        ),
        ("protect dev", "POST", "/v1/branches/dev/protect", "", 200),
        (
            "delete protected dev (refused)",
            "DELETE",
            "/v1/branches/dev",
            "",
            409,
        ),
        (
            "reset pr/one",
            "POST",
            "/v1/branches/pr%2Fone/reset",
            "",
            200,
        ),
        (
            "unprotect dev",
            "POST",
            "/v1/branches/dev/unprotect",
            "",
            200,
        ),
        (
            "delete dev (its child lives on)",
            "DELETE",
            "/v1/branches/dev",
            "",
            200,
        ),
    ];

    for (i, (step, method, path, body, want)) in steps.into_iter().enumerate() {
        if step == "reset pr/one" {
            // Data written on the branch before the reset must be gone after
            // it, and stay gone across the restart.
            let uri = uri_of(&api, "pr/one");
            exec(&uri, "CREATE TABLE scratch AS SELECT 1 AS v").await;
        }
        let r = match method {
            "DELETE" => api.delete(path),
            _ => api.post(path, body),
        };
        assert_eq!(r.status, want, "{step}: {}", r.body);
        if want == 409 {
            assert_eq!(r.code(), "protected", "{step}: {}", r.body);
        }
        let acknowledged = state(&api);
        (daemon, api) = restart(daemon, &home, &acknowledged, step).await;

        if i == 0 {
            // Rows written on a branch survive a restart too.
            let uri = uri_of(&api, "dev");
            exec(
                &uri,
                "CREATE TABLE t AS SELECT generate_series(1, 100) AS v",
            )
            .await;
            let acknowledged = state(&api);
            (daemon, api) = restart(daemon, &home, &acknowledged, "write on dev").await;
            let uri = uri_of(&api, "dev");
            assert_eq!(query_i64(&uri, "SELECT count(*) FROM t").await, 100);
        }
    }

    // The end state, spelled out: main and pr/one, whose parent was deleted.
    let end = state(&api);
    let names: Vec<_> = end["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["main", "pr/one"]);
    let pr = &end["branches"][1];
    assert!(pr["expires_at"].is_string(), "{pr}");
    assert_eq!(pr["protected"], false, "{pr}");
    // pr/one was reset from dev after dev got table t, then dev was deleted:
    // pr/one reads t through its deleted parent, and not the scratch table.
    let uri = uri_of(&api, "pr/one");
    assert_eq!(query_i64(&uri, "SELECT count(*) FROM t").await, 100);
    assert_eq!(
        query_i64(
            &uri,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'scratch'"
        )
        .await,
        0
    );
    daemon.shutdown().await;
}
