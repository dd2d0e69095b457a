//! The relay after authentication, for a plain-TCP client: two OS threads,
//! one per direction, each a blocking `read` into a buffer and a `write_all`
//! of what it read, until end of stream.
//!
//! Why not `copy_bidirectional` on the async runtime: a pgbench `-S`
//! transaction is one small message each way, and per message the runtime
//! adds an `epoll_wait`, often a second (empty) `read`, and a wake-up of the
//! task, possibly on another worker thread. A blocked `read` is the least a
//! user-space relay can do per message: one wake-up, one `read`, one
//! `write`. The cost is two threads (small stacks) per open session, which
//! PostgreSQL itself matches with a process per session.
//!
//! The async side waits for both threads through a oneshot channel. If the
//! waiting task is dropped (shutdown after the grace period), the sockets
//! are shut down, which ends both blocked reads.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;

use tokio::sync::oneshot;

/// Relay buffer per direction.
const BUFFER: usize = 64 * 1024;
/// Stack of a relay thread: a loop and a heap buffer need little.
const STACK: usize = 64 * 1024;

/// Relays between `client` and `server` on two threads until both
/// directions have ended. Returns the first error either direction saw.
pub(crate) async fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::UnixStream,
) -> io::Result<()> {
    let client = blocking_tcp(client)?;
    let server = blocking_unix(server)?;
    let mut closer = Closer {
        client: client.try_clone()?,
        server: server.try_clone()?,
        armed: true,
    };
    let (up_done, up_rx) = oneshot::channel();
    let (down_done, down_rx) = oneshot::channel();
    let (client_r, server_w) = (client.try_clone()?, server.try_clone()?);
    spawn("relay-up", move || {
        let _ = up_done.send(pump(client_r, server_w, |s| s.shutdown(Shutdown::Write)));
    })?;
    let (server_r, client_w) = (server, client);
    spawn("relay-down", move || {
        let _ = down_done.send(pump(server_r, client_w, |c| c.shutdown(Shutdown::Write)));
    })?;
    let up = up_rx.await.unwrap_or(Ok(()));
    let down = down_rx.await.unwrap_or(Ok(()));
    // Both directions ended on their own: nothing left to shut down.
    closer.armed = false;
    up.and(down)
}

/// Copies `from` to `to` until end of stream, then half-closes `to`. On an
/// error both sockets are shut down, so the other direction ends too.
fn pump<R, W>(
    mut from: R,
    mut to: W,
    half_close: impl FnOnce(&W) -> io::Result<()>,
) -> io::Result<()>
where
    R: Read + ShutdownBoth,
    W: Write + ShutdownBoth,
{
    let mut buf = vec![0u8; BUFFER];
    let result = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break half_close(&to),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        if let Err(e) = to.write_all(&buf[..n]) {
            break Err(e);
        }
    };
    if result.is_err() {
        from.shutdown_both();
        to.shutdown_both();
    }
    // Ending a session the peer already closed is not an error worth
    // reporting (NotConnected after its shutdown).
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name(name.into())
        .stack_size(STACK)
        .spawn(f)
        .map(drop)
}

fn blocking_tcp(s: tokio::net::TcpStream) -> io::Result<TcpStream> {
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    Ok(s)
}

fn blocking_unix(s: tokio::net::UnixStream) -> io::Result<UnixStream> {
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    Ok(s)
}

/// Shuts both sockets down when the waiting task is dropped early, so the
/// relay threads' blocked reads return and the threads end.
struct Closer {
    client: TcpStream,
    server: UnixStream,
    armed: bool,
}

impl Drop for Closer {
    fn drop(&mut self) {
        if self.armed {
            self.client.shutdown_both();
            self.server.shutdown_both();
        }
    }
}

trait ShutdownBoth {
    fn shutdown_both(&self);
}

impl ShutdownBoth for TcpStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl ShutdownBoth for UnixStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}
