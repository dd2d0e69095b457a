//! The relay after authentication, for a plain-TCP client: bytes copied both
//! ways with no parsing, by a few event-loop threads shared by all sessions.
//!
//! Why not `copy_bidirectional` on the async runtime, or a blocked thread
//! per direction: a pgbench `-S` transaction is one small message each way,
//! so the relay's cost is what it spends per message. The runtime adds a
//! task wake-up, often on another worker thread, to each; two threads per
//! session add a thread wake-up to each and cost 2 threads per idle session.
//! A loop on `epoll` spends one `read` and one `write` per message, and
//! under load one `epoll_wait` serves many messages ([`session`] has the
//! readiness rules, [`event_loop`] the threads).
//!
//! The async side waits for the session's end through a oneshot channel. If
//! the waiting task is dropped (shutdown after the grace period), the
//! sockets are shut down, which ends the session in its loop.

mod event_loop;
mod session;

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;

use tokio::sync::oneshot;

use event_loop::Loops;
use session::Session;

/// Relays between `client` and `server` until both directions have ended.
/// Returns the first error either direction saw.
pub(crate) async fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::UnixStream,
) -> io::Result<()> {
    // Leaving tokio's reactor keeps the sockets non-blocking.
    let client = client.into_std()?;
    let server = server.into_std()?;
    let mut closer = Closer {
        client: client.try_clone()?,
        server: server.try_clone()?,
        armed: true,
    };
    let (done, finished) = oneshot::channel();
    let session = Session::new(
        mio::net::TcpStream::from_std(client),
        mio::net::UnixStream::from_std(server),
        done,
    );
    Loops::get()?.submit(session)?;
    let result = finished
        .await
        .unwrap_or_else(|_| Err(io::Error::other("relay loop dropped the session")));
    // The session ended on its own: nothing left to shut down.
    closer.armed = false;
    result
}

/// Shuts both sockets down when the waiting task is dropped early, so the
/// session sees the end of both streams and its loop drops it.
struct Closer {
    client: TcpStream,
    server: UnixStream,
    armed: bool,
}

impl Drop for Closer {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.server.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Reads to the end of stream in 4 KiB reads, pausing 5 ms at each
    /// MiB, so the writer on the other side of the relay outruns it.
    fn read_slowly(from: &mut impl Read) -> Vec<u8> {
        let mut got = Vec::new();
        let mut chunk = vec![0; 4096];
        loop {
            let n = from.read(&mut chunk).unwrap();
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&chunk[..n]);
            if got.len() % (1 << 20) < 4096 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Streams larger than both sockets' buffers pass intact and in order
    /// both ways while each reader is slower than its writer (so writes
    /// come back short and bytes wait in the session), and each end of
    /// stream reaches the other side.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_readers_get_every_byte_in_order_and_the_end_of_stream() {
        const LEN: usize = 8 << 20;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client_thread = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(&pattern(LEN, 1)).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            read_slowly(&mut c)
        });
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        let (proxy_end, server_end) = UnixStream::pair().unwrap();
        proxy_end.set_nonblocking(true).unwrap();
        let server_thread = std::thread::spawn(move || {
            let mut s = server_end;
            let got = read_slowly(&mut s);
            s.write_all(&pattern(LEN, 2)).unwrap();
            drop(s);
            got
        });
        let result = relay(
            tokio::net::TcpStream::from_std(accepted).unwrap(),
            tokio::net::UnixStream::from_std(proxy_end).unwrap(),
        )
        .await;
        result.expect("relay ends cleanly");
        let got = server_thread.join().unwrap();
        let back = client_thread.join().unwrap();
        assert!(got == pattern(LEN, 1), "client to server bytes differ");
        assert!(back == pattern(LEN, 2), "server to client bytes differ");
    }

    /// A relay whose waiting task is dropped shuts both sockets down, so
    /// both peers see the end of their streams.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_relay_ends_both_streams() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        let (proxy_end, mut server_end) = UnixStream::pair().unwrap();
        proxy_end.set_nonblocking(true).unwrap();
        let task = tokio::spawn(relay(
            tokio::net::TcpStream::from_std(accepted).unwrap(),
            tokio::net::UnixStream::from_std(proxy_end).unwrap(),
        ));
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        server_end.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        task.abort();
        let _ = task.await;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        server_end
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(client.read(&mut buf).unwrap(), 0, "client sees the end");
        assert_eq!(server_end.read(&mut buf).unwrap(), 0, "server sees the end");
    }
}
