//! Startup-phase behaviour seen on the raw socket (no PostgreSQL needed):
//! negotiation answers, hardening, cancel of unknown keys, shutdown.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use offshoot_proxy::startup::StartupParams;
use offshoot_proxy::{FailReason, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{FakeRouter, ProxyHarness};

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];

fn startup(user: &str) -> Vec<u8> {
    StartupParams::from_pairs(vec![("user".into(), user.into())])
        .encode()
        .to_vec()
}

async fn proxy() -> (ProxyHarness, std::sync::Arc<FakeRouter>) {
    ProxyHarness::with_routes(&[("main", PathBuf::from("/nonexistent/.s.PGSQL.5432"))]).await
}

/// Everything the proxy sends until it closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("proxy closed the connection")
        .expect("read");
    out
}

/// (SQLSTATE, message) of an ErrorResponse.
fn error_fields(bytes: &[u8]) -> (String, String) {
    assert_eq!(bytes.first(), Some(&b'E'), "{bytes:?}");
    let mut code = String::new();
    let mut message = String::new();
    for field in bytes[5..].split(|b| *b == 0) {
        match field.first() {
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'M') => message = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

#[tokio::test]
async fn bytes_after_ssl_request_are_rejected() {
    let (proxy, router) = proxy().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut sent = SSL_REQUEST.to_vec();
    sent.extend(startup("postgres.main"));
    s.write_all(&sent).await.unwrap();
    let reply = read_to_close(&mut s).await;
    let (code, message) = error_fields(&reply);
    assert_eq!(code, "08P01");
    assert_eq!(message, "received unencrypted data after SSL request");
    assert_eq!(router.calls(), 0);
}

#[tokio::test]
async fn ssl_request_without_tls_gets_n_then_startup_continues() {
    let (proxy, _router) = proxy().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&GSSENC_REQUEST).await.unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    s.write_all(&SSL_REQUEST).await.unwrap();
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    s.write_all(&startup("postgres")).await.unwrap();
    let (code, message) = error_fields(&read_to_close(&mut s).await);
    assert_eq!(code, "08004");
    assert!(message.starts_with("no branch named"), "{message}");
}

#[tokio::test]
async fn bad_versions_and_sizes_are_rejected() {
    let (proxy, router) = proxy().await;
    let mut v2 = startup("postgres.main");
    v2[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    let mut huge = 20_000i32.to_be_bytes().to_vec();
    huge.extend((3i32 << 16).to_be_bytes());
    for (bytes, expected) in [(v2, "0A000"), (huge, "08P01"), (vec![0, 0, 0, 2], "08P01")] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let (code, _) = error_fields(&read_to_close(&mut s).await);
        assert_eq!(code, expected);
    }
    assert_eq!(router.calls(), 0);
    assert_eq!(proxy.metrics.snapshot().failed(FailReason::Protocol), 3);
}

#[tokio::test]
async fn cancel_for_unknown_key_closes_silently() {
    let (proxy, _router) = proxy().await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut cancel = vec![0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
    cancel.extend(1234i32.to_be_bytes());
    cancel.extend(5678i32.to_be_bytes());
    s.write_all(&cancel).await.unwrap();
    assert!(read_to_close(&mut s).await.is_empty());
    assert_eq!(proxy.metrics.snapshot().cancel_unmatched, 1);
}

#[tokio::test]
async fn slow_startup_times_out() {
    let config = ProxyConfig {
        startup_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let proxy = ProxyHarness::start(FakeRouter::new(&[]), config).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[0, 0]).await.unwrap();
    let (code, message) = error_fields(&read_to_close(&mut s).await);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("08P01", "timeout while waiting for the startup packet")
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_and_bounds_the_drain() {
    let config = ProxyConfig {
        shutdown_grace: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let proxy = ProxyHarness::start(FakeRouter::new(&[]), config).await;
    let addr = proxy.addr;
    // An idle connection that would otherwise stay for the startup timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(proxy.metrics.snapshot().active, 1);
    let metrics = proxy.metrics.clone();
    let started = Instant::now();
    proxy.shutdown().await.expect("serve returned cleanly");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "drained for {took:?}");
    assert!(took < Duration::from_secs(3), "drain bounded: {took:?}");
    assert_eq!(metrics.snapshot().active, 0);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    let mut rest = Vec::new();
    let n = idle.read_to_end(&mut rest).await.unwrap_or(0);
    assert_eq!(n, 0);
}
