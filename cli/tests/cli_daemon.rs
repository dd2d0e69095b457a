//! The `offshoot` commands against a real daemon (`offshoot up` as a
//! subprocess: real PostgreSQL on real FUSE mounts, hence `pg_`): every
//! command in both output formats, exit codes, idempotent create, protection,
//! TTL expiry, reset keeping the connection string and password, rename,
//! space coming back after many branches are created and deleted, and a
//! daemon whose stdout cannot be written.

#[path = "cli_daemon/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::{disk_files, disk_usage, Daemon};

const BRANCH_KEYS: [&str; 8] = [
    "created_at",
    "expires_at",
    "id",
    "name",
    "owned_bytes",
    "parent",
    "protected",
    "state",
];

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn branch_keys() -> BTreeSet<String> {
    BRANCH_KEYS.iter().map(|k| k.to_string()).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `sql` over a fresh connection to `uri` and returns the first column
/// of each row as text.
fn query(uri: &str, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(conn);
        let result = client.simple_query(sql).await;
        drop(client);
        let _ = task.await;
        Ok(result?
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or("").to_string())
                }
                _ => None,
            })
            .collect())
    })
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pg_every_command_in_both_formats() {
    let mut d = Daemon::up();

    // status
    let status = d.ok(&["status"]);
    assert!(
        status.contains("proxy:") && status.contains("postgres:"),
        "{status}"
    );
    let status = d.json(&["status"]);
    let expected: BTreeSet<String> = [
        "api_addr",
        "branches",
        "computes_running",
        "disk_free_bytes",
        "home",
        "postgres_version",
        "proxy_addr",
        "storage_bytes",
        "version",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    assert_eq!(keys(&status), expected);
    assert_eq!(status["home"], d.home().to_str().unwrap());
    assert!(
        status["disk_free_bytes"].as_u64().is_some_and(|b| b > 0),
        "disk_free_bytes: {}",
        status["disk_free_bytes"]
    );

    // create: new, then idempotent, in both formats
    let out = d.ok(&[
        "branch", "create", "pr-1", "--parent", "main", "--ttl", "1h",
    ]);
    assert!(
        out.starts_with("created branch \"pr-1\" from \"main\""),
        "{out}"
    );
    let out = d.ok(&["branch", "create", "pr-1", "--parent", "main"]);
    assert!(out.contains("already existed"), "{out}");
    let again = d.json(&["branch", "create", "pr-1", "--parent", "main"]);
    assert_eq!(again["created"], false);
    assert_eq!(keys(&again["branch"]), branch_keys());
    assert_eq!(again["branch"]["parent"], "main");
    assert!(again["branch"]["expires_at"].is_string(), "{again}");
    let fresh = d.json(&["branch", "create", "base", "--protected"]);
    assert_eq!(fresh["created"], true);
    assert_eq!(fresh["branch"]["protected"], true);
    assert_eq!(
        fresh["branch"]["parent"], "main",
        "main is the default parent"
    );
    // the same name with another parent is an error
    let clash = d.fails(1, &["branch", "create", "pr-1", "--parent", "base"]);
    assert!(clash.contains("pr-1"), "{clash}");

    // list and show
    let table = d.ok(&["branch", "list"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{table}");
    let names: Vec<&str> = lines.filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["base", "main", "pr-1"], "{table}");
    let list = d.json(&["branch", "list"]);
    assert_eq!(keys(&list), BTreeSet::from(["branches".to_string()]));
    for b in list["branches"].as_array().unwrap() {
        assert_eq!(keys(b), branch_keys());
    }
    let show = d.ok(&["branch", "show", "pr-1"]);
    assert!(show.contains("parent:     main\n"), "{show}");
    let shown = d.json(&["branch", "show", "pr-1"]);
    assert_eq!(shown["name"], "pr-1");
    assert_eq!(shown["id"], again["branch"]["id"]);

    // not found, bad names
    let missing = d.fails(3, &["branch", "show", "nope"]);
    assert_eq!(missing, "offshoot: branch \"nope\" does not exist");
    d.fails(3, &["branch", "delete", "nope"]);
    d.fails(3, &["connection-string", "nope"]);
    let bad = d.fails(2, &["branch", "create", "feature.x"]);
    assert!(bad.contains("no dots"), "{bad}");

    // connection-string, and a real connection through the proxy
    let uri = d.ok(&["connection-string", "pr-1"]).trim_end().to_string();
    assert!(uri.starts_with("postgresql://postgres.pr-1:"), "{uri}");
    let json_uri = d.json(&["connection-string", "pr-1"]);
    assert_eq!(keys(&json_uri), BTreeSet::from(["uri".to_string()]));
    assert_eq!(json_uri["uri"], uri.as_str());
    let app_uri = d.ok(&["connection-string", "pr-1", "--database", "app"]);
    assert!(app_uri.trim_end().ends_with("/app"), "{app_uri}");
    query(&uri, "create table t (x int); insert into t values (7)").expect("write on pr-1");
    assert_eq!(query(&uri, "select x from t").unwrap(), ["7"]);
    assert_eq!(query(&uri, "select current_user").unwrap(), ["postgres"]);

    // protection refuses delete and reset
    d.ok(&["branch", "protect", "pr-1"]);
    assert_eq!(d.json(&["branch", "show", "pr-1"])["protected"], true);
    let refused = d.fails(1, &["branch", "delete", "pr-1"]);
    assert!(refused.contains("protected"), "{refused}");
    d.fails(1, &["branch", "reset", "pr-1"]);
    let unprotected = d.json(&["branch", "unprotect", "pr-1"]);
    assert_eq!(unprotected["protected"], false);

    // reset: same URL and password, the branch's changes are gone
    let out = d.ok(&["branch", "reset", "pr-1"]);
    assert!(out.starts_with("reset branch \"pr-1\""), "{out}");
    assert_eq!(d.ok(&["connection-string", "pr-1"]).trim_end(), uri);
    let gone = query(&uri, "select x from t").expect_err("t was created after the fork");
    assert_eq!(
        gone.as_db_error().map(|e| e.code().code()),
        Some("42P01"),
        "{gone:?}"
    );
    assert_eq!(query(&uri, "select 1").unwrap(), ["1"]);
    let reset = d.json(&["branch", "reset", "pr-1", "--parent", "base"]);
    assert_eq!(reset["name"], "pr-1");

    // rename
    let out = d.ok(&["branch", "rename", "pr-1", "pr-renamed"]);
    assert_eq!(out, "renamed branch \"pr-1\" to \"pr-renamed\"\n");
    d.fails(3, &["branch", "show", "pr-1"]);
    let renamed = d.json(&["branch", "rename", "pr-renamed", "pr-2"]);
    assert_eq!(renamed["name"], "pr-2");
    let uri2 = d.ok(&["connection-string", "pr-2"]);
    assert!(uri2.starts_with("postgresql://postgres.pr-2:"), "{uri2}");

    // psql with arguments after --
    let answer = d.ok(&["psql", "pr-2", "--", "-tAc", "select 40 + 2"]);
    assert_eq!(answer.trim(), "42");

    // delete, in both formats, and --if-exists
    let deleted = d.json(&["branch", "delete", "pr-2"]);
    assert_eq!(deleted["name"], "pr-2");
    assert_eq!(keys(&deleted), branch_keys());
    d.fails(3, &["branch", "delete", "pr-2"]);
    let out = d.ok(&["branch", "delete", "pr-2", "--if-exists"]);
    assert_eq!(out, "branch \"pr-2\" did not exist\n");
    d.ok(&["branch", "unprotect", "base"]);
    assert_eq!(
        d.ok(&["branch", "delete", "base"]),
        "deleted branch \"base\"\n"
    );

    // TTL and --expires-at: the daemon deletes them when they expire
    let short = d.json(&["branch", "create", "ttl-1", "--ttl", "2s"]);
    assert!(short["branch"]["expires_at"].is_string(), "{short}");
    let at =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3))
            .to_string();
    let dated = d.json(&["branch", "create", "ttl-2", "--expires-at", &at]);
    assert_eq!(dated["branch"]["expires_at"], at.as_str());
    wait_until("TTL branches deleted", Duration::from_secs(30), || {
        d.run(&["branch", "show", "ttl-1"]).code == 3
            && d.run(&["branch", "show", "ttl-2"]).code == 3
    });

    // once the daemon is gone: exit 4 with a hint
    assert!(d.stop(), "the daemon did not stop on SIGINT");
    let down = d.fails(4, &["branch", "list"]);
    assert!(down.contains("offshoot up"), "{down}");
    d.fails(4, &["status"]);
}

#[test]
fn pg_create_and_delete_100_branches_leaves_the_home_at_its_size() {
    let d = Daemon::up();
    // The first fork of `main` seals the open log initdb wrote: it appends
    // that layer's index and metadata section once (a few hundred KiB) and
    // never again. Take the baseline after that one-time seal, so that what
    // is measured is what the 100 branches leave behind.
    d.ok(&["branch", "create", "warm-up"]);
    d.ok(&["branch", "delete", "warm-up"]);
    // Let the GC after the delete settle.
    std::thread::sleep(Duration::from_secs(1));
    let before = disk_usage(d.home());
    let files_before = disk_files(d.home());
    for i in 0..100 {
        let name = format!("loop-{i}");
        d.ok(&["branch", "create", &name]);
        d.ok(&["branch", "delete", &name]);
    }
    let names = d.json(&["branch", "list"]);
    assert_eq!(
        names["branches"].as_array().map(Vec::len),
        Some(1),
        "{names}"
    );
    // The manifest appends a frame per change and is rewritten once it passes
    // its compaction threshold: it may grow up to that. Everything else must
    // come back, give or take a few blocks of the root branch's open log.
    let manifest_limit = offshoot_storage::StoreOptions::default().manifest_compact_bytes;
    let tolerance = 64 * 1024;
    let without_manifest = |files: &[(std::path::PathBuf, u64)]| -> u64 {
        files
            .iter()
            .filter(|(p, _)| !p.ends_with("MANIFEST"))
            .map(|(_, n)| n)
            .sum()
    };
    let manifest = |files: &[(std::path::PathBuf, u64)]| -> u64 {
        files
            .iter()
            .filter(|(p, _)| p.ends_with("MANIFEST"))
            .map(|(_, n)| n)
            .sum()
    };
    let base = without_manifest(&files_before);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut files_after = disk_files(d.home());
    while without_manifest(&files_after) > base + tolerance && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        files_after = disk_files(d.home());
    }
    let after = disk_usage(d.home());
    assert!(
        without_manifest(&files_after) <= base + tolerance
            && manifest(&files_after) <= manifest_limit,
        "home grew from {before} to {after} bytes\nbefore: {files_before:#?}\nafter: {files_after:#?}"
    );
    eprintln!("home: {before} bytes before, {after} bytes after 100 create/delete");
}

/// Regression: the banner was printed with `println!`, which panics when
/// stdout cannot be written; a daemon whose stdout was on a full disk died
/// at start. On `/dev/full` it must serve and stop as usual.
#[test]
fn pg_a_daemon_whose_stdout_cannot_be_written_serves_and_stops() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let mut d = Daemon::up_printing_to(Some(full));
    let list = d.ok(&["branch", "list"]);
    assert!(list.lines().any(|l| l.starts_with("main ")), "{list}");
    assert!(d.stop(), "the daemon did not stop by itself:\n{}", d.log());
    assert!(
        d.log().contains("could not print the banner"),
        "no warning about the banner:\n{}",
        d.log()
    );
}
