//! What a user sees when a connection is refused, as psql prints it.

use std::path::PathBuf;

use offshoot_proxy::FailReason;

use crate::support::{psql, PgOptions, PgServer, ProxyHarness, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_wrong_password_is_rejected_by_the_compute() {
    let ([_main], proxy, router) = ProxyHarness::with_computes(["main"]).await;
    let out = psql(
        &proxy.url("postgres.main", "postgres", ""),
        "not-the-password",
        &["SELECT 1"],
    )
    .await;
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("password authentication failed for user \"postgres\""),
        "{out:?}"
    );
    assert_eq!(router.settled_leases().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_refusals_say_what_is_wrong() {
    let main = PgServer::start(PgOptions::named("main"));
    let (proxy, router) = ProxyHarness::with_routes(&[
        ("main", main.socket_path()),
        ("pr-12", PathBuf::from("/nonexistent/.s.PGSQL.5432")),
    ])
    .await;
    let cases = [
        (
            proxy.url("offshoot_system.main", "postgres", ""),
            "FATAL:  role \"offshoot_system\" is reserved for offshoot and cannot log in through the proxy",
        ),
        (
            proxy.url("postgres.feature-x", "postgres", ""),
            "FATAL:  branch \"feature-x\" does not exist; branches: main, pr-12",
        ),
        (
            proxy.url("postgres", "postgres", ""),
            "FATAL:  no branch named: connect as user \"ROLE.BRANCH\" (e.g. postgres.main) or pass options=-c offshoot.branch=BRANCH",
        ),
        (
            proxy.url("postgres.-bad", "postgres", ""),
            "FATAL:  invalid branch name \"-bad\": a branch name is 1-63 characters from a-z A-Z 0-9 - _ /, not starting with - or /",
        ),
        (
            proxy.url("postgres.main", "postgres", "options=-c%20offshoot.branch%3Dpr-12"),
            "FATAL:  conflicting branches named: \"main\" and \"pr-12\"",
        ),
        (
            proxy.url("postgres.pr-12", "postgres", ""),
            "FATAL:  could not connect to the compute of branch \"pr-12\"; try again",
        ),
    ];
    for (url, expected) in &cases {
        let out = psql(url, PASSWORD, &["SELECT 1"]).await;
        assert!(!out.success, "{url}: {out:?}");
        assert!(out.stderr.contains(expected), "{url}: {}", out.stderr);
    }
    // Only the unknown branch and the unreachable compute consulted the router.
    assert_eq!(router.calls(), 2);
    assert_eq!(router.settled_leases().await, 0);
    let m = proxy.metrics.snapshot();
    assert_eq!(m.failed(FailReason::Auth), 1);
    assert_eq!(m.failed(FailReason::UnknownBranch), 1);
    assert_eq!(m.failed(FailReason::NoBranch), 2);
    assert_eq!(m.failed(FailReason::InvalidBranch), 1);
    assert_eq!(m.failed(FailReason::ComputeUnavailable), 1);
    assert_eq!(m.relayed, 0);
}
