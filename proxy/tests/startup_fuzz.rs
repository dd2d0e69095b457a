//! Property tests of the startup phase: random bytes and random mutations of
//! valid startup packets never panic, and a malformed packet never routes —
//! neither in the parser and router decision, nor over a real socket to a
//! running proxy (the control plane is never asked).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use offshoot_proxy::routing::{is_valid_branch_name, resolve, BRANCH_PARAM};
use offshoot_proxy::startup::{parse_packet, FrontendPacket, StartupParams, MAX_STARTUP_PACKET};
use offshoot_proxy::{BoxFuture, ProxyConfig, Route, RouteError, Router};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An independent, strict reading of a protocol 3.0 StartupMessage.
fn well_formed_v3(b: &[u8]) -> bool {
    if b.len() < 9 || b.len() > MAX_STARTUP_PACKET {
        return false;
    }
    if i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize != b.len()
        || b[4..8] != [0, 3, 0, 0]
        || b[b.len() - 1] != 0
    {
        return false;
    }
    let body = &b[8..b.len() - 1];
    if body.is_empty() {
        return false; // no user
    }
    if body[body.len() - 1] != 0 {
        return false;
    }
    let strings: Vec<&[u8]> = body[..body.len() - 1].split(|c| *c == 0).collect();
    if strings.len() % 2 != 0 {
        return false;
    }
    let mut keys = HashSet::new();
    let mut has_user = false;
    for pair in strings.chunks(2) {
        let (Ok(k), Ok(_)) = (std::str::from_utf8(pair[0]), std::str::from_utf8(pair[1])) else {
            return false;
        };
        if k.is_empty() || !keys.insert(k) {
            return false;
        }
        has_user |= k == "user";
    }
    has_user
}

fn reserved() -> Vec<String> {
    vec!["offshoot_system".to_string()]
}

/// What the proxy decides for `bytes`: `Some(branch)` only if it would route.
fn decide(bytes: &[u8]) -> Option<(String, usize, StartupParams)> {
    let (packet, used) = parse_packet(bytes).ok()??;
    let FrontendPacket::Startup(params) = packet else {
        return None;
    };
    let target = resolve(&params, &reserved()).ok()?;
    Some((target.branch, used, target.forwarded))
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_/-]{0,12}"
}

/// A valid StartupMessage naming a branch one way or another.
fn valid_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        name(),
        name(),
        any::<bool>(),
        prop::option::of("[ -~]{0,20}"),
    )
        .prop_map(|(role, branch, in_user, database)| {
            let mut pairs = Vec::new();
            if in_user {
                pairs.push(("user".to_string(), format!("{role}.{branch}")));
            } else {
                pairs.push(("user".to_string(), role));
                pairs.push(("options".to_string(), format!("-c {BRANCH_PARAM}={branch}")));
            }
            if let Some(db) = database {
                pairs.push(("database".to_string(), db));
            }
            StartupParams::from_pairs(pairs).encode().to_vec()
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    Length(i32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<i32>().prop_map(Mutation::Length),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len().max(1);
        match *m {
            Mutation::Flip(i, b) if !bytes.is_empty() => bytes[i % n] ^= b | 1,
            Mutation::Truncate(i) => bytes.truncate(i % n),
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Remove(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Mutation::Length(len) if bytes.len() >= 4 => {
                bytes[0..4].copy_from_slice(&len.to_be_bytes());
            }
            _ => {}
        }
    }
    bytes
}

fn mutated_packet() -> impl Strategy<Value = Vec<u8>> {
    (valid_packet(), prop::collection::vec(mutation(), 1..4)).prop_map(|(p, m)| mutate(p, &m))
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn random_bytes_never_route(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Some((_, used, _)) = decide(&bytes) {
            prop_assert!(well_formed_v3(&bytes[..used]), "routed {:?}", bytes);
        }
    }

    #[test]
    fn valid_packets_route(packet in valid_packet()) {
        let routed = decide(&packet);
        prop_assert!(routed.is_some());
    }

    #[test]
    fn mutated_packets_route_only_when_still_valid(packet in mutated_packet()) {
        if let Some((branch, used, forwarded)) = decide(&packet) {
            prop_assert!(well_formed_v3(&packet[..used]), "routed malformed {:?}", packet);
            prop_assert!(is_valid_branch_name(&branch));
            // What the compute receives is itself well-formed and carries no
            // branch setting.
            let encoded = forwarded.encode();
            prop_assert!(well_formed_v3(&encoded));
            prop_assert_eq!(forwarded.get(BRANCH_PARAM), None);
            let user = forwarded.get("user").unwrap_or_default();
            prop_assert!(!user.is_empty() && user != "offshoot_system");
        }
    }
}

/// Counts route calls; never routes anywhere real.
#[derive(Default)]
struct CountingRouter(AtomicUsize);

impl Router for CountingRouter {
    fn route(&self, branch: &str) -> BoxFuture<'_, Result<Route, RouteError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let err = RouteError::UnknownBranch {
            name: branch.to_string(),
            known: vec![],
        };
        Box::pin(async move { Err(err) })
    }
}

/// The same inputs over a real socket: the proxy answers or closes, and the
/// control plane is never asked for a malformed packet.
#[test]
fn malformed_input_over_the_wire_never_reaches_the_router() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let router = Arc::new(CountingRouter::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = ProxyConfig {
        startup_timeout: Duration::from_secs(2),
        ..ProxyConfig::default()
    };
    let server = rt.spawn(offshoot_proxy::serve(
        listener,
        config,
        router.clone(),
        std::future::pending(),
    ));
    let inputs = prop_oneof![prop::collection::vec(any::<u8>(), 0..200), mutated_packet(),];
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    runner
        .run(&inputs, |bytes| {
            let malformed = decide(&bytes).is_none();
            let before = router.0.load(Ordering::SeqCst);
            rt.block_on(async {
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                // The proxy may close early; a failed write is fine.
                let _ = s.write_all(&bytes).await;
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let closed =
                    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
                prop_assert!(
                    closed.is_ok(),
                    "proxy kept the connection open for {:?}",
                    bytes
                );
                Ok(())
            })?;
            if malformed {
                prop_assert_eq!(
                    router.0.load(Ordering::SeqCst),
                    before,
                    "routed {:?}",
                    bytes
                );
            }
            Ok(())
        })
        .expect("property holds");
    server.abort();
}
