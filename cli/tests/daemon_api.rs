//! The daemon and its HTTP API, started in-process on a temporary home with
//! OS-picked ports: authentication, request validation, branch lifecycle
//! (idempotent create, conflicts, protection, TTL, rename, reset), a
//! connection through the proxy to a new branch, scale to zero, and a
//! restart that finds every acknowledged change.
//!
//! Starts real PostgreSQL on real FUSE mounts (hence `pg_`), as few times as
//! the checks allow.

#[path = "daemon_api/http.rs"]
mod http;
#[path = "daemon_api/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use http::Api;
use offshoot::daemon::Daemon;
use offshoot::home::Home;
use support::{api, exec, options, uri_of, MountGuard};

fn names(api: &Api) -> Vec<String> {
    let list = api.get("/v1/branches");
    assert_eq!(list.status, 200, "{}", list.body);
    list.json()["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

async fn query_one(uri: &str, sql: &str) -> Result<i64, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    let row = client.query_one(sql, &[]).await;
    drop(client);
    let _ = task.await;
    row.map(|r| r.get::<_, i64>(0))
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mounted_under(dir: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/mounts").unwrap();
    let dir = dir.display().to_string();
    table
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|m| m.starts_with(&dir))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_daemon_api_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    // PostgreSQL runs as another user when the tests run as root.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let home = tmp.path().join("home");
    let _guard = MountGuard(home.join("mnt"));

    let daemon = Daemon::start(options(&home)).await.expect("first start");
    let info = Home::at(&home).read_daemon_info().unwrap().unwrap();
    assert_eq!(&info, daemon.info());
    assert_ne!(info.api_addr.port(), 0);
    let api = api(&daemon, &home);
    assert_eq!(names(&api), ["main"]);

    // --- authentication: 401 and nothing changed.
    let anonymous = Api {
        addr: api.addr,
        token: None,
    };
    let wrong = Api {
        addr: api.addr,
        token: Some("nope".into()),
    };
    for client in [&anonymous, &wrong] {
        let r = client.post("/v1/branches", r#"{"name":"sneaky"}"#);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.code(), "unauthorized");
        assert_eq!(client.get("/v1/status").status, 401);
        assert_eq!(client.get("/metrics").status, 401);
    }
    let openapi = anonymous.get("/v1/openapi.json");
    assert_eq!(openapi.status, 200);
    assert!(openapi.json()["paths"]["/v1/branches"].is_object());

    // --- malformed requests: 4xx with a reason, nothing changed.
    let cases: [(&str, u16, &str); 6] = [
        ("{", 400, "malformed JSON"),
        (
            r#"{"name":"a","colour":"red"}"#,
            400,
            "unknown field `colour`",
        ),
        (r#"{"name":"bad.name"}"#, 422, "1 to 63 characters"),
        (r#"{"name":"-x"}"#, 422, "1 to 63 characters"),
        (
            r#"{"name":"a","ttl_seconds":5,"expires_at":"2030-01-01T00:00:00Z"}"#,
            422,
            "not both",
        ),
        (r#"{"name":"a","parent":"nosuch"}"#, 404, "nosuch"),
    ];
    for (body, status, needle) in cases {
        let r = api.post("/v1/branches", body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{}",
            r.body
        );
    }
    let big = format!(r#"{{"name":"a","parent":"{}"}}"#, "x".repeat(70 * 1024));
    let r = api.post("/v1/branches", &big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.code(), "invalid");
    assert_eq!(api.get("/v1/branches/no.dots").status, 422);
    assert_eq!(api.get("/v1/branches/nosuch").code(), "not_found");
    // Unknown routes and methods answer the JSON error shape too.
    let r = api.get("/v2/nothing");
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "not_found"),
        "{}",
        r.body
    );
    let r = api.send("PUT", "/v1/branches", Some(b"{}"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (405, "invalid"),
        "{}",
        r.body
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("PUT"));
    let r = api.delete("/v1/status");
    assert_eq!(
        (r.status, r.code().as_str()),
        (405, "invalid"),
        "{}",
        r.body
    );
    assert_eq!(names(&api), ["main"]);

    // --- idempotent create, conflicting parent.
    let r = api.post("/v1/branches", r#"{"name":"feature/x"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    assert_eq!(created["created"], true);
    assert_eq!(created["branch"]["parent"], "main");
    assert_eq!(created["branch"]["state"], "stopped");
    let again = api.post("/v1/branches", r#"{"name":"feature/x","parent":"main"}"#);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["created"], false);
    assert_eq!(again.json()["branch"]["id"], created["branch"]["id"]);
    assert_eq!(api.post("/v1/branches", r#"{"name":"other"}"#).status, 201);
    let clash = api.post("/v1/branches", r#"{"name":"feature/x","parent":"other"}"#);
    assert_eq!(clash.status, 409, "{}", clash.body);
    assert_eq!(clash.code(), "conflict");
    let msg = clash.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("\"main\"") && msg.contains("\"other\""),
        "{msg}"
    );

    // --- protection.
    let r = api.post("/v1/branches", r#"{"name":"keep","protected":true}"#);
    assert_eq!(r.json()["branch"]["protected"], true);
    let r = api.delete("/v1/branches/keep");
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "protected"),
        "{}",
        r.body
    );
    let r = api.post("/v1/branches/keep/reset", "");
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "protected"),
        "{}",
        r.body
    );
    let r = api.delete("/v1/branches/main");
    assert_eq!(r.code(), "protected", "main is protected by default");

    // --- TTL.
    let r = api.post("/v1/branches", r#"{"name":"short-lived","ttl_seconds":1}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.json()["branch"]["expires_at"].is_string());
    wait_for("TTL expiry", Duration::from_secs(6), || {
        !names(&api).contains(&"short-lived".to_string())
    })
    .await;

    // --- rename keeps the id; the old name is gone.
    let r = api.post(
        "/v1/branches/feature%2Fx/rename",
        r#"{"new_name":"feature/y"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], created["branch"]["id"]);
    assert_eq!(api.get("/v1/branches/feature%2Fx").status, 404);
    let r = api.post("/v1/branches/other/rename", r#"{"new_name":"keep"}"#);
    assert_eq!(r.code(), "conflict");

    // --- a connection through the proxy to the new branch.
    let uri = uri_of(&api, "feature/y");
    assert!(
        uri.starts_with("postgresql://postgres.feature%2Fy:"),
        "{uri}"
    );
    exec(
        &uri,
        "CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3);",
    )
    .await;
    assert_eq!(
        query_one(&uri, "SELECT sum(v)::int8 FROM t").await.unwrap(),
        6
    );
    let main_uri = uri_of(&api, "main");
    let err = query_one(&main_uri, "SELECT count(*) FROM t")
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("does not exist"), "{err:?}");
    let metrics = api.get("/metrics");
    assert!(
        metrics.body.contains("offshoot_branches 4"),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .contains("offshoot_proxy_connections_relayed_total"));

    // --- scale to zero: idle computes stop and their branches unmount.
    let fuse_writes = metric(&api, "offshoot_fuse_writes_total");
    assert!(fuse_writes > 0.0);
    assert!(metric(&api, "offshoot_disk_free_bytes") > 0.0);
    wait_for("idle computes to stop", Duration::from_secs(15), || {
        api.get("/v1/status").json()["computes_running"] == 0
    })
    .await;
    wait_for("mounts to go", Duration::from_secs(5), || {
        mounted_under(&home.join("mnt")) == 0
    })
    .await;
    // Counters of unmounted branches are kept: they never go backwards.
    assert!(metric(&api, "offshoot_fuse_writes_total") >= fuse_writes);

    // --- restart: every acknowledged change is there.
    // Every field but owned_bytes: opening the store drops the inodes
    // PostgreSQL unlinked while the kernel still held them at unmount, which
    // appends a record or two to the branch's open log.
    let branches = |api: &Api| {
        let mut list = api.get("/v1/branches").json();
        for b in list["branches"].as_array_mut().unwrap() {
            b.as_object_mut().unwrap().remove("owned_bytes");
        }
        list
    };
    let before = branches(&api);
    daemon.shutdown().await;
    assert!(Home::at(&home).read_daemon_info().unwrap().is_none());
    assert_eq!(mounted_under(&home.join("mnt")), 0);

    let daemon = Daemon::start(options(&home)).await.expect("restart");
    let api = self::api(&daemon, &home);
    assert_eq!(branches(&api), before);
    let uri = uri_of(&api, "feature/y");
    assert_eq!(
        query_one(&uri, "SELECT sum(v)::int8 FROM t").await.unwrap(),
        6
    );

    // --- concurrent first connections to a stopped branch share one start.
    let keep_uri = uri_of(&api, "keep");
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let uri = keep_uri.clone();
            tokio::spawn(async move { query_one(&uri, "SELECT 1::int8").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 1);
    }

    // --- an unknown branch is refused by name, never routed to main.
    let unknown = keep_uri.replace("postgres.keep:", "postgres.nosuch:");
    let err = query_one(&unknown, "SELECT 1::int8").await.unwrap_err();
    assert!(format!("{err:?}").contains("nosuch"), "{err:?}");

    // --- reset: the branch gets main's contents again, same name and URI.
    let r = api.post("/v1/branches/feature%2Fy/reset", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(uri_of(&api, "feature/y"), uri);
    let start = Instant::now();
    loop {
        let answer = query_one(&uri, "SELECT count(*) FROM t").await;
        if matches!(&answer, Err(e) if format!("{e:?}").contains("does not exist")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "after reset: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // --- delete with children alive.
    assert_eq!(
        api.post("/v1/branches", r#"{"name":"child","parent":"other"}"#)
            .status,
        201
    );
    assert_eq!(api.delete("/v1/branches/other").status, 200);
    let child = api.get("/v1/branches/child");
    assert_eq!(child.status, 200);
    assert!(child.json()["parent"].is_null());

    daemon.shutdown().await;
    assert_eq!(mounted_under(&home.join("mnt")), 0);
}

/// The value of an unlabelled sample (or `name{labels}`) in `/metrics`.
fn metric(api: &Api, name: &str) -> f64 {
    let r = api.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{}", r.body))
}

/// The pid of the postmaster serving `datadir`, found in /proc (the test
/// never reads inside the daemon's own mounts).
fn postmaster_of(datadir: &Path) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_postmaster = args.first().is_some_and(|a| a.ends_with(b"/postgres"));
        let on_datadir = args.windows(2).any(|w| {
            w[0] == b"-D" && Path::new(std::str::from_utf8(w[1]).unwrap_or("")) == datadir
        });
        if is_postmaster && on_datadir {
            return Some(pid);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_daemon_restarts_a_crashed_compute() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let home = tmp.path().join("home");
    let _guard = MountGuard(home.join("mnt"));
    let mut opts = options(&home);
    opts.idle_timeout = Duration::ZERO; // never: the compute must not stop on its own
    let daemon = Daemon::start(opts).await.expect("start");
    let api = api(&daemon, &home);

    let r = api.post("/v1/branches", r#"{"name":"crashy"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["branch"]["id"].as_u64().unwrap();
    let uri = uri_of(&api, "crashy");

    // --- the I/O counters of /metrics move with a workload.
    const MOVING: [&str; 10] = [
        "offshoot_page_reads_total",
        "offshoot_page_writes_total",
        "offshoot_page_written_bytes_total",
        "offshoot_fsync_seconds_count",
        "offshoot_fsync_seconds_sum",
        "offshoot_fsync_seconds_bucket{le=\"+Inf\"}",
        "offshoot_fuse_reads_total",
        "offshoot_fuse_writes_total",
        "offshoot_fuse_written_bytes_total",
        "offshoot_fuse_fsyncs_total",
    ];
    // The WAL is beside the page store: a commit's WAL write never reaches
    // pagefs (an O_DSYNC write there would be a WAL file in the store).
    const WAL_WRITES: &str = "offshoot_fuse_sync_writes_total";
    let before: Vec<f64> = MOVING.iter().map(|m| metric(&api, m)).collect();
    let wal_writes_before = metric(&api, WAL_WRITES);
    exec(
        &uri,
        "CREATE TABLE t AS SELECT g AS v FROM generate_series(1, 1000) g; CHECKPOINT;",
    )
    .await;
    for (name, before) in MOVING.iter().zip(before) {
        let after = metric(&api, name);
        assert!(
            after > before,
            "{name}: {before} before the workload, {after} after"
        );
    }
    assert_eq!(metric(&api, WAL_WRITES), wal_writes_before, "{WAL_WRITES}");
    assert_eq!(
        metric(&api, "offshoot_fsync_seconds_count"),
        metric(&api, "offshoot_fsync_seconds_bucket{le=\"+Inf\"}")
    );
    let datadir = home.join("mnt").join(id.to_string());
    let first = postmaster_of(&datadir).expect("a postmaster on the branch");

    // --- SIGKILL the postmaster: the supervisor restarts it on the same mount.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let start = Instant::now();
    let count = loop {
        // Connections fail until the restart (backoff and crash recovery).
        match query_one(&uri, "SELECT count(*) FROM t").await {
            Ok(n) => break n,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(60),
                "no restart after a crash: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(count, 1000, "the committed rows survive the crash");
    let second = postmaster_of(&datadir).expect("a postmaster after the crash");
    assert_ne!(second, first, "the killed postmaster still runs");
    let branch = api.get("/v1/branches/crashy").json();
    assert_eq!(branch["state"], "running", "{branch}");
    let log = std::fs::read_to_string(home.join("logs").join(format!("{id}.log"))).unwrap();
    assert!(log.contains("postgres exited"), "{log}");
    exec(&uri, "INSERT INTO t VALUES (1001);").await;
    assert_eq!(
        query_one(&uri, "SELECT count(*) FROM t").await.unwrap(),
        1001
    );

    // --- shutdown stops the restarted compute before unmounting.
    daemon.shutdown().await;
    assert_eq!(postmaster_of(&datadir), None);
    assert_eq!(mounted_under(&home.join("mnt")), 0);
}
