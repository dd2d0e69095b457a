//! One relayed session as a state machine driven by readiness events: the
//! client socket, the server socket, and a [`Direction`] each way.
//!
//! Sockets are registered edge-triggered, so the session keeps each
//! socket's readiness itself: a socket is readable from its event until a
//! read comes back short (the queue was drained) or would block, and
//! writable from its event until a write comes back short or would block.
//! A short read ends the pumping without the extra `read` that would only
//! say "would block": one `read` and one `write` per message is the least a
//! user-space relay can do.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::{TcpStream, UnixStream};
use tokio::sync::oneshot;

/// Which of the session's two sockets an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Client,
    Server,
}

/// Bytes flowing one way: read from one socket, written to the other.
#[derive(Default)]
struct Direction {
    /// Bytes read but not yet written because the destination was full.
    pending: Vec<u8>,
    /// The source reached end of stream.
    source_ended: bool,
    /// The destination's write half was shut down after the end of stream:
    /// this direction is finished.
    finished: bool,
}

/// Readiness of one socket as the session knows it.
#[derive(Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// The peer's end of stream (or an error) was signalled: the socket
    /// stays readable until a read returns it, since no further edge will
    /// come for it.
    read_closed: bool,
}

/// What one readiness event said about a socket.
#[derive(Clone, Copy, Debug)]
pub(super) struct Event {
    pub(super) readable: bool,
    pub(super) writable: bool,
    pub(super) read_closed: bool,
}

/// What the event loop should do with a session after an event.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Waiting for more readiness.
    Open,
    /// Both directions finished, or one failed: the session is over.
    Ended,
}

pub(super) struct Session {
    pub(super) client: TcpStream,
    pub(super) server: UnixStream,
    client_ready: Readiness,
    server_ready: Readiness,
    up: Direction,
    down: Direction,
    done: Option<oneshot::Sender<io::Result<()>>>,
}

impl Session {
    pub(super) fn new(
        client: TcpStream,
        server: UnixStream,
        done: oneshot::Sender<io::Result<()>>,
    ) -> Self {
        // Bytes may already wait in either socket (the client can pipeline
        // its first query behind the authentication): start as if both were
        // ready, and let the first reads find out.
        let ready = Readiness {
            readable: true,
            writable: true,
            read_closed: false,
        };
        Session {
            client,
            server,
            client_ready: ready,
            server_ready: ready,
            up: Direction::default(),
            down: Direction::default(),
            done: Some(done),
        }
    }

    /// Records an event for `side` and moves bytes as far as readiness
    /// allows.
    pub(super) fn on_event(&mut self, side: Side, event: Event) -> Progress {
        let ready = match side {
            Side::Client => &mut self.client_ready,
            Side::Server => &mut self.server_ready,
        };
        ready.readable |= event.readable || event.read_closed;
        ready.writable |= event.writable;
        ready.read_closed |= event.read_closed;
        self.pump()
    }

    /// Moves bytes both ways until neither can move without new readiness.
    pub(super) fn pump(&mut self) -> Progress {
        let up = pump(
            &mut self.up,
            &mut self.client,
            &mut self.client_ready,
            &mut self.server,
            &mut self.server_ready,
        );
        let down = up.and_then(|()| {
            pump(
                &mut self.down,
                &mut self.server,
                &mut self.server_ready,
                &mut self.client,
                &mut self.client_ready,
            )
        });
        match down {
            Err(e) => {
                let _ = self.client.shutdown(Shutdown::Both);
                let _ = self.server.shutdown(Shutdown::Both);
                // Ending a session the peer already closed is not an error
                // worth reporting (NotConnected after its shutdown).
                let result = match e.kind() {
                    io::ErrorKind::NotConnected => Ok(()),
                    _ => Err(e),
                };
                self.finish(result);
                Progress::Ended
            }
            Ok(()) if self.up.finished && self.down.finished => {
                self.finish(Ok(()));
                Progress::Ended
            }
            Ok(()) => Progress::Open,
        }
    }

    /// Reports the session's end to the task waiting for it.
    pub(super) fn finish(&mut self, result: io::Result<()>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(result);
        }
    }
}

/// The scratch buffer a read goes into: large enough for a burst of
/// result rows, and shared by every session of one event loop because
/// bytes only stay in it between a read and its write.
pub(super) const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUFFER: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(vec![0; SCRATCH]);
}

/// Moves bytes from `source` to `dest` in `dir` until one of them would
/// block or the source ends.
fn pump<S, D>(
    dir: &mut Direction,
    source: &mut S,
    source_ready: &mut Readiness,
    dest: &mut D,
    dest_ready: &mut Readiness,
) -> io::Result<()>
where
    S: Read,
    D: Write + HalfClose,
{
    if dir.finished {
        return Ok(());
    }
    loop {
        if !dir.pending.is_empty() {
            if !dest_ready.writable {
                return Ok(());
            }
            let written = write_some(dest, &dir.pending, dest_ready)?;
            dir.pending.drain(..written);
            if !dir.pending.is_empty() {
                return Ok(());
            }
        }
        if dir.source_ended {
            dest.shut_write()?;
            dir.finished = true;
            return Ok(());
        }
        if !source_ready.readable {
            return Ok(());
        }
        let moved = SCRATCH_BUFFER.with(|cell| -> io::Result<()> {
            let mut buf = cell.borrow_mut();
            let n = match source.read(&mut buf) {
                Ok(0) => {
                    dir.source_ended = true;
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    source_ready.readable = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            };
            if n < buf.len() && !source_ready.read_closed {
                // A stream socket's read returns everything queued up to
                // the buffer's size: a short read drained it, and the next
                // arrival brings a new edge. Not so for an end of stream
                // that came with the last bytes: only the next read says
                // it, and no edge will announce it again.
                source_ready.readable = false;
            }
            let written = if dest_ready.writable {
                write_some(dest, &buf[..n], dest_ready)?
            } else {
                0
            };
            dir.pending.extend_from_slice(&buf[written..n]);
            Ok(())
        });
        moved?;
    }
}

/// Writes what the destination takes now; a short write or "would block"
/// clears its writability until its next event.
fn write_some<D: Write>(dest: &mut D, bytes: &[u8], ready: &mut Readiness) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match dest.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.writable = false;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Shutting down the write half after the other side's end of stream.
trait HalfClose {
    fn shut_write(&self) -> io::Result<()>;
}

impl HalfClose for TcpStream {
    fn shut_write(&self) -> io::Result<()> {
        ignore_not_connected(self.shutdown(Shutdown::Write))
    }
}

impl HalfClose for UnixStream {
    fn shut_write(&self) -> io::Result<()> {
        ignore_not_connected(self.shutdown(Shutdown::Write))
    }
}

fn ignore_not_connected(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}
