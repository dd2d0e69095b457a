//! One client connection, from accept to close:
//!
//! 1. startup phase: SSLRequest (answer `S` and do TLS, or `N`),
//!    GSSENCRequest (`N`), then a CancelRequest (forwarded, then close) or a
//!    StartupMessage; bounded by `startup_timeout`;
//! 2. routing: branch and role from the StartupMessage ([`crate::routing`]),
//!    then [`crate::Router::route`] wakes the compute (bounded);
//! 3. connect to the compute's Unix socket and send the rewritten
//!    StartupMessage;
//! 4. authentication relay: bytes pass both ways while server messages are
//!    followed until ReadyForQuery, recording BackendKeyData for cancels;
//! 5. relay, no parsing, until both sides close: [`crate::relay`] (event
//!    loops) for plain TCP, `copy_bidirectional` under TLS; or, when the
//!    compute took the client socket in step 4 ([`crate::handoff`]), no
//!    relay at all: wait for the backend to exit.
//!
//! Errors before step 4 are answered with an `ErrorResponse` from
//! [`ClientError`]; after that the compute speaks for itself.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::backend_scan::{BackendScanner, ScanState};
use crate::cancel::{forward_cancel, CancelMap, CancelRegistration};
use crate::client_error::ClientError;
use crate::client_stream::ClientStream;
use crate::config::ProxyConfig;
use crate::handoff::{self, ClientGate, HandedOff};
use crate::metrics::FailReason;
use crate::relay;
use crate::router::Router;
use crate::routing;
use crate::startup::{self, CancelKey, FrontendPacket, StartupParams};

/// Relay buffer size per direction (TLS sessions).
const RELAY_BUFFER: usize = 64 * 1024;
/// How long the proxy tries to deliver its own ErrorResponse.
const ERROR_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) router: Arc<dyn Router>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) cancels: Arc<CancelMap>,
}

/// Why a connection ended before the relay.
enum Failure {
    /// Answer the client with this error, then close.
    Client(ClientError),
    /// Close without a word (the client is gone or the stream unusable).
    Silent(FailReason, io::Error),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

fn gone(e: io::Error) -> Failure {
    Failure::Silent(FailReason::ClientGone, e)
}

/// Serves one client until it disconnects. Never panics on client input.
pub(crate) async fn handle_client(io: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let metrics = Arc::clone(&shared.config.metrics);
    let _active = metrics.connection_opened();
    let mut client = ClientStream::Plain(io);
    match run(&mut client, &shared).await {
        Ok(()) => {}
        Err(Failure::Client(e)) => {
            metrics.failed(e.reason());
            info!(%peer, sqlstate = e.state().code(), message = e.message(), "connection refused");
            let reply = async {
                client.write_all(&e.encode()).await?;
                client.flush().await?;
                client.shutdown().await
            };
            let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, reply).await;
        }
        Err(Failure::Silent(reason, e)) => {
            metrics.failed(reason);
            debug!(%peer, reason = reason.as_str(), error = %e, "connection closed during startup");
        }
    }
}

/// What the startup phase ends with.
enum Opening {
    Cancel(CancelKey),
    Startup(StartupParams),
}

async fn run(client: &mut ClientStream<TcpStream>, shared: &Shared) -> Result<(), Failure> {
    let config = &shared.config;
    let mut pending = BytesMut::with_capacity(1024);
    let opening = tokio::time::timeout(
        config.startup_timeout,
        startup_phase(client, &mut pending, shared),
    )
    .await
    .map_err(|_| ClientError::startup_timeout())??;
    let params = match opening {
        Opening::Cancel(key) => {
            cancel(key, shared).await;
            return Ok(());
        }
        Opening::Startup(params) => params,
    };

    let target = routing::resolve(&params, &config.reserved_roles)?;
    let branch = target.branch.as_str();
    let route = match tokio::time::timeout(config.route_timeout, shared.router.route(branch)).await
    {
        Err(_) => return Err(ClientError::compute_wake_timeout(branch).into()),
        Ok(Err(e)) => {
            warn!(branch, error = %e, "routing failed");
            return Err(ClientError::from_route_error(branch, &e).into());
        }
        Ok(Ok(route)) => route,
    };

    let unreachable = |e: io::Error| {
        warn!(branch, socket = %route.socket.display(), error = %e, "compute unreachable");
        Failure::Client(ClientError::compute_unreachable(branch))
    };
    let mut server = match tokio::time::timeout(
        config.connect_timeout,
        UnixStream::connect(&route.socket),
    )
    .await
    {
        Ok(result) => result.map_err(unreachable)?,
        Err(_) => return Err(unreachable(io::ErrorKind::TimedOut.into())),
    };
    // The handoff is offered only where no client byte is held here: plain
    // TCP, nothing pipelined after the StartupMessage (docs/proxy.md).
    let offer = config.handoff && !client.is_tls() && pending.is_empty();
    let mut forwarded = target.forwarded.clone();
    if offer {
        forwarded.set(handoff::OFFER_PARAM, "on".to_owned());
    }
    let mut first = forwarded.encode();
    // Anything the client pipelined after its StartupMessage goes along.
    first.extend_from_slice(&pending);
    server.write_all(&first).await.map_err(unreachable)?;
    config.metrics.relayed();
    debug!(branch, role = %target.role, tls = client.is_tls(), "relaying");

    let result = async {
        let client_fd = match (&*client, offer) {
            (ClientStream::Plain(tcp), true) => Some(tcp.as_raw_fd()),
            _ => None,
        };
        let (registration, end) = relay_auth(
            client,
            &mut server,
            client_fd,
            &route.socket,
            &shared.cancels,
        )
        .await?;
        if end == AuthEnd::HandedOff {
            let ClientStream::Plain(tcp) = std::mem::replace(client, ClientStream::Upgrading)
            else {
                return Err(io::Error::other(
                    "handoff of a client that is not plain TCP",
                ));
            };
            config.metrics.handed_off();
            debug!(branch, "the compute took the client socket");
            // Off the proxy's event loop: the backend reads it now.
            let _kept = HandedOff(tcp.into_std()?);
            handoff::wait_session_end(&mut server).await;
        } else if end == AuthEnd::Open {
            match std::mem::replace(client, ClientStream::Upgrading) {
                ClientStream::Plain(tcp) => relay::relay(tcp, server).await?,
                other => {
                    *client = other;
                    tokio::io::copy_bidirectional_with_sizes(
                        client,
                        &mut server,
                        RELAY_BUFFER,
                        RELAY_BUFFER,
                    )
                    .await?;
                }
            }
        }
        // The cancel key is forgotten when the session ends.
        drop(registration);
        io::Result::Ok(())
    }
    .await;
    if let Err(e) = result {
        debug!(branch, error = %e, "relay ended with an error");
    }
    // The lease (in `route`) is dropped here: the branch is no longer in use
    // by this connection.
    Ok(())
}

/// SSL/GSS negotiation and the first real packet.
async fn startup_phase<S>(
    client: &mut ClientStream<S>,
    buf: &mut BytesMut,
    shared: &Shared,
) -> Result<Opening, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut ssl_asked = false;
    let mut gss_asked = false;
    loop {
        let packet = loop {
            if let Some((packet, used)) = startup::parse_packet(buf)? {
                buf.advance(used);
                break packet;
            }
            if client.read_buf(buf).await.map_err(gone)? == 0 {
                return Err(gone(io::ErrorKind::UnexpectedEof.into()));
            }
        };
        match packet {
            FrontendPacket::SslRequest => {
                if ssl_asked || client.is_tls() {
                    return Err(ClientError::duplicate_negotiation("SSL").into());
                }
                ssl_asked = true;
                // Bytes sent before our answer could not have been encrypted:
                // they may be injected (CVE-2021-23214).
                if !buf.is_empty() {
                    return Err(ClientError::unencrypted_data_after_ssl_request().into());
                }
                match &shared.tls {
                    Some(acceptor) => {
                        let ClientStream::Plain(mut plain) =
                            std::mem::replace(client, ClientStream::Upgrading)
                        else {
                            return Err(ClientError::internal().into());
                        };
                        plain.write_all(b"S").await.map_err(gone)?;
                        let tls = acceptor
                            .accept(plain)
                            .await
                            .map_err(|e| Failure::Silent(FailReason::Tls, e))?;
                        *client = ClientStream::Tls(Box::new(tls));
                    }
                    None => client.write_all(b"N").await.map_err(gone)?,
                }
            }
            FrontendPacket::GssEncRequest => {
                if gss_asked || client.is_tls() {
                    return Err(ClientError::duplicate_negotiation("GSSAPI encryption").into());
                }
                gss_asked = true;
                if !buf.is_empty() {
                    return Err(ClientError::unencrypted_data_after_gssenc_request().into());
                }
                client.write_all(b"N").await.map_err(gone)?;
            }
            FrontendPacket::Cancel(key) => return Ok(Opening::Cancel(key)),
            FrontendPacket::Startup(params) => return Ok(Opening::Startup(params)),
        }
        client.flush().await.map_err(gone)?;
    }
}

/// Passes a CancelRequest to the compute whose session owns the key.
/// Unknown keys are dropped silently, as PostgreSQL does.
async fn cancel(key: CancelKey, shared: &Shared) {
    let socket = shared.cancels.lookup(&key);
    shared.config.metrics.cancel(socket.is_some());
    let Some(socket) = socket else {
        debug!(pid = key.pid, "cancel request for an unknown backend");
        return;
    };
    match forward_cancel(&socket, key, shared.config.connect_timeout).await {
        Ok(()) => debug!(pid = key.pid, "cancel request forwarded"),
        Err(e) => {
            warn!(pid = key.pid, socket = %socket.display(), error = %e, "cancel request failed")
        }
    }
}

/// How the authentication relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthEnd {
    /// One side closed (or the compute refused the login).
    Closed,
    /// ReadyForQuery: relay the session.
    Open,
    /// The compute took the client socket (`client_fd`).
    HandedOff,
}

/// Relays both ways until the compute sends ReadyForQuery or an
/// ErrorResponse, recording the session's cancel key on the way. With
/// `client_fd` (the handoff was offered), client reads are bounded by a
/// [`ClientGate`] and a handoff request from the compute is answered with
/// that socket.
async fn relay_auth<S>(
    client: &mut ClientStream<S>,
    server: &mut UnixStream,
    client_fd: Option<RawFd>,
    socket: &std::path::Path,
    cancels: &Arc<CancelMap>,
) -> io::Result<(Option<CancelRegistration>, AuthEnd)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut scanner = BackendScanner::new();
    let mut registration = None;
    let mut gate = ClientGate::new();
    let mut from_client = vec![0u8; 8 * 1024];
    let mut from_server = BytesMut::with_capacity(8 * 1024);
    loop {
        let limit = if client_fd.is_some() {
            gate.read_limit(from_client.len())
        } else {
            from_client.len()
        };
        tokio::select! {
            read = client.read(&mut from_client[..limit]), if limit > 0 => {
                let n = read?;
                if n == 0 {
                    return Ok((registration, AuthEnd::Closed));
                }
                gate.client_sent(&from_client[..n]);
                server.write_all(&from_client[..n]).await?;
            }
            read = server.read_buf(&mut from_server) => {
                if read? == 0 {
                    return Ok((registration, AuthEnd::Closed));
                }
                let fed = scanner.feed(&from_server).map_err(io::Error::other)?;
                if fed.forward > 0 {
                    client.write_all(&from_server[..fed.forward]).await?;
                    client.flush().await?;
                    gate.server_spoke();
                }
                from_server.clear();
                if registration.is_none() {
                    if let Some(key) = scanner.cancel_key() {
                        registration = Some(cancels.register(key, socket));
                    }
                }
                if fed.handoff.is_some() {
                    match client_fd {
                        Some(fd) if gate.at_boundary() => {
                            handoff::give(server, fd).await?;
                            return Ok((registration, AuthEnd::HandedOff));
                        }
                        Some(_) => {
                            return Err(io::Error::other(
                                "the compute asked for the client socket in the middle of a client message",
                            ))
                        }
                        None => handoff::decline(server).await?,
                    }
                }
                if scanner.state() != ScanState::Authenticating {
                    return Ok((registration, AuthEnd::Open));
                }
            }
        }
    }
}
