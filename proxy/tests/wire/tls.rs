//! TLS between client and proxy (the proxy→compute leg stays plain).

use std::process::Command;

use offshoot_proxy::{ProxyConfig, TlsConfig};

use crate::support::{psql, FakeRouter, PgOptions, PgServer, ProxyHarness, PASSWORD};

/// A self-signed certificate for localhost, made with the openssl CLI.
fn self_signed(dir: &std::path::Path) -> TlsConfig {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    TlsConfig { cert, key }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_tls_with_sslmode_require() {
    let main = PgServer::start(PgOptions::named("main"));
    let certs = tempfile::tempdir().unwrap();
    let config = ProxyConfig {
        tls: Some(self_signed(certs.path())),
        ..ProxyConfig::default()
    };
    let router = FakeRouter::new(&[("main", main.socket_path())]);
    let proxy = ProxyHarness::start(router.clone(), config).await;
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres.main dbname=postgres sslmode=require",
        proxy.addr.port()
    );
    let out = psql(&conninfo, PASSWORD, &["\\conninfo", "SELECT 'over tls'"]).await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains("SSL connection (protocol: TLSv1."),
        "{out:?}"
    );
    assert!(out.stdout.contains("over tls"), "{out:?}");

    // Without TLS the same proxy still serves plain clients.
    let out = psql(
        &proxy.url("postgres.main", "postgres", ""),
        PASSWORD,
        &["\\conninfo"],
    )
    .await;
    assert!(out.success, "{out:?}");
    assert!(!out.stdout.contains("SSL connection"), "{out:?}");
    assert_eq!(router.settled_leases().await, 0);
}

#[tokio::test]
async fn missing_certificate_fails_serve() {
    let config = ProxyConfig {
        tls: Some(TlsConfig {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        }),
        ..ProxyConfig::default()
    };
    let proxy = ProxyHarness::start(FakeRouter::new(&[]), config).await;
    let err = proxy.shutdown().await.expect_err("serve refused to start");
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}
