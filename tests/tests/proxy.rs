//! The proxy with real clients: psql, tokio-postgres and pgbench on two
//! branches at once, database switches, every routing error as psql shows
//! it, and query cancellation.

use offshoot_e2e::pgbench::processed;
use offshoot_e2e::Daemon;
use std::time::{Duration, Instant};

/// Replaces the `user:password` part of a postgresql:// URL.
fn with_userinfo(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (_, host_and_db) = rest.rsplit_once('@').expect("a URL with user info");
    format!("{scheme}://{user}:{password}@{host_and_db}")
}

fn password_of(url: &str) -> String {
    let (_, rest) = url.split_once("://").expect("a URL with a scheme");
    let (userinfo, _) = rest.rsplit_once('@').expect("a URL with user info");
    userinfo
        .split_once(':')
        .expect("a password in the URL")
        .1
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_branches_at_once() {
    let d = Daemon::start();
    d.psql("main", "create table who (name text)");
    d.create_branch("left", Some("main"));
    d.create_branch("right", Some("main"));
    d.psql("left", "insert into who values ('left')");
    d.psql("right", "insert into who values ('right')");

    let url_left = d.connection_string("left", "postgres");
    let url_right = d.connection_string("right", "postgres");
    assert!(url_left.contains("postgres.left:"), "{url_left}");
    assert_ne!(url_left, url_right);

    // tokio-postgres, both open at once.
    let left = d.connect("left", "postgres").await;
    let right = d.connect("right", "postgres").await;
    let (l, r) = tokio::join!(
        left.query_one("select string_agg(name, ',') from who", &[]),
        right.query_one("select string_agg(name, ',') from who", &[])
    );
    assert_eq!(l.expect("query on left").get::<_, String>(0), "left");
    assert_eq!(r.expect("query on right").get::<_, String>(0), "right");

    // psql, while the tokio-postgres sessions stay open.
    assert_eq!(
        d.psql("left", "select string_agg(name, ',') from who"),
        "left"
    );
    assert_eq!(
        d.psql("right", "select string_agg(name, ',') from who"),
        "right"
    );

    // pgbench on both at once: each branch counts only its own transactions.
    let a = d.spawn_pgbench("left", &["-i", "-s", "1", "-q"], Duration::from_secs(180));
    let b = d.spawn_pgbench("right", &["-i", "-s", "1", "-q"], Duration::from_secs(180));
    for out in [a.wait(), b.wait()] {
        assert!(out.success(), "pgbench -i: {}", out.stderr);
    }
    let a = d.spawn_pgbench(
        "left",
        &["-n", "-c", "2", "-t", "60"],
        Duration::from_secs(180),
    );
    let b = d.spawn_pgbench(
        "right",
        &["-n", "-c", "2", "-t", "25"],
        Duration::from_secs(180),
    );
    let (a, b) = (a.wait(), b.wait());
    assert!(a.success() && b.success(), "{}{}", a.stderr, b.stderr);
    assert_eq!(processed(&a.stdout), 120);
    assert_eq!(processed(&b.stdout), 50);
    let hl = left
        .query_one("select count(*) from pgbench_history", &[])
        .await
        .expect("left history");
    let hr = right
        .query_one("select count(*) from pgbench_history", &[])
        .await
        .expect("right history");
    assert_eq!(hl.get::<_, i64>(0), 120);
    assert_eq!(hr.get::<_, i64>(0), 50);
    assert_eq!(
        d.psql("main", "select to_regclass('pgbench_history') is null"),
        "t"
    );
}

#[test]
fn database_switch_keeps_branch() {
    let mut d = Daemon::start();
    d.create_branch("feature", Some("main"));
    d.psql("feature", "create database app");
    d.psql_db(
        "feature",
        "app",
        "create table marker (v text); insert into marker values ('feature/app')",
    );
    d.psql(
        "feature",
        "create table marker (v text); insert into marker values ('feature/postgres')",
    );

    // One psql session that switches database with \c keeps its branch.
    let url = d.connection_string("feature", "postgres");
    let out = d.psql_url(&url, "select v from marker");
    assert_eq!(out.stdout.trim(), "feature/postgres", "{}", out.stderr);
    let mut cmd = std::process::Command::new(offshoot_e2e::paths::pg_tool("psql"));
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &url])
        .args([
            "-c",
            "select v from marker",
            "-c",
            "\\c app",
            "-c",
            "select current_database(), v from marker",
        ]);
    let out = offshoot_e2e::exec::run(cmd, Duration::from_secs(60));
    assert!(out.success(), "\\c app on branch feature: {}", out.stderr);
    assert_eq!(out.stdout.trim(), "feature/postgres\napp|feature/app");

    // main has no database app: the branch was not lost on the way.
    d.allow_errors(&[r#"FATAL:  database "app" does not exist"#]);
    let out = d.try_psql_db("main", "app", "select 1");
    assert!(!out.success());
    assert!(
        out.stderr.contains("database \"app\" does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn connection_errors() {
    let mut d = Daemon::start();
    d.allow_errors(&[r#"FATAL:  password authentication failed for user "postgres""#]);
    d.create_branch("dev", Some("main"));
    let url = d.connection_string("main", "postgres");
    let password = password_of(&url);
    let expect_error = |url: &str, needles: &[&str]| {
        let out = d.psql_url(url, "select 1");
        assert!(!out.success(), "psql connected with {url}: {}", out.stdout);
        for n in needles {
            assert!(
                out.stderr.contains(n),
                "psql stderr for {url} lacks {n:?}: {}",
                out.stderr
            );
        }
    };

    // No branch in the user name.
    expect_error(
        &with_userinfo(&url, "postgres", &password),
        &["no branch", "ROLE.BRANCH", "offshoot.branch"],
    );
    // Unknown branch: the message lists the known ones.
    expect_error(
        &with_userinfo(&url, "postgres.nosuch", &password),
        &["branch \"nosuch\" does not exist", "dev", "main"],
    );
    // Invalid branch name.
    expect_error(
        &with_userinfo(&url, "postgres.-bad", &password),
        &["invalid branch name", "-bad"],
    );
    // Wrong password: PostgreSQL's own SCRAM check, through the proxy.
    expect_error(
        &with_userinfo(&url, "postgres.main", "wrong-password"),
        &["password authentication failed"],
    );
    // The internal role cannot log in through the proxy, even with a branch.
    expect_error(
        &with_userinfo(&url, "offshoot_system.main", &password),
        &["offshoot_system", "reserved"],
    );
    // The branch through the startup option works, and a real query still does.
    let opt_url = format!(
        "{}?options=-c%20offshoot.branch%3Ddev",
        with_userinfo(&url, "postgres", &password)
    );
    let out = d.psql_url(&opt_url, "select 1");
    assert!(
        out.success(),
        "options=-c offshoot.branch=dev: {}",
        out.stderr
    );
    assert_eq!(d.psql("main", "select 1"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_pg_sleep() {
    let mut d = Daemon::start();
    d.allow_errors(&["ERROR:  canceling statement due to user request"]);
    let client = d.connect("main", "postgres").await;
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move {
        let r = client.simple_query("select pg_sleep(30)").await;
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let cancelled_at = Instant::now();
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("send the cancel request");
    let (result, done_at) = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("pg_sleep(30) still running 10 s after the cancel")
        .expect("join the query task");
    let took = done_at.duration_since(cancelled_at);
    let err = result.expect_err("pg_sleep(30) returned without error after a cancel");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    eprintln!("cancel took effect after {took:?}");
    assert!(took < Duration::from_millis(1500), "cancel took {took:?}");
}
