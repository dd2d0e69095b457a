//! Socket handoff: once a client has authenticated, the compute's backend
//! takes the client's TCP socket over and the session runs without a relay.
//!
//! The proxy offers it (startup parameter `offshoot.handoff=on`) to plain-TCP
//! clients that sent nothing after their StartupMessage. A compute with
//! offshoot's handoff module then sends, after checking the password, a
//! request the [`crate::backend_scan`] recognises; the proxy answers one byte
//! on the Unix socket: `Y` with the client socket attached (SCM_RIGHTS), or
//! `N` to keep relaying. A compute without the module never asks, and the
//! session is relayed as before.
//!
//! The one thing that makes the handoff safe is [`ClientGate`]: during
//! authentication the proxy reads exactly one client message per server
//! turn and never past its end, so when the request comes every byte the
//! client sent afterwards is still in the TCP socket, for the backend to
//! read. After the handoff the proxy keeps the Unix socket (the backend
//! holds it open, unread, until it exits: its end is the session's end) and
//! a descriptor of the client socket, only to shut it down if the proxy is
//! stopped. See docs/proxy.md, "Socket handoff".

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::UnixStream;

/// The startup parameter that offers the handoff to the compute.
pub(crate) const OFFER_PARAM: &str = "offshoot.handoff";

/// Bounds client reads during authentication to one message per server turn.
#[derive(Debug)]
pub(crate) struct ClientGate {
    /// The server spoke since the client's last complete message.
    may_send: bool,
    header: [u8; 5],
    header_len: usize,
    /// Body bytes of the current message not yet read.
    remaining: usize,
}

impl ClientGate {
    /// The client's StartupMessage was its turn: it waits for the server.
    pub(crate) fn new() -> Self {
        ClientGate {
            may_send: false,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        }
    }

    fn mid_message(&self) -> bool {
        self.header_len > 0 || self.remaining > 0
    }

    /// How many bytes the next client read may take (0: do not read).
    pub(crate) fn read_limit(&self, buffer: usize) -> usize {
        if self.header_len > 0 && self.header_len < 5 {
            5 - self.header_len
        } else if self.remaining > 0 {
            self.remaining.min(buffer)
        } else if self.may_send {
            5
        } else {
            0
        }
    }

    /// Follows bytes read from the client (at most `read_limit` of them).
    pub(crate) fn client_sent(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining == 0 {
                let take = (5 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len == 5 {
                    let len = i32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]);
                    // A length below 4 is the compute's to reject.
                    self.remaining = usize::try_from(len).unwrap_or(0).saturating_sub(4);
                    self.header_len = 0;
                    if self.remaining == 0 {
                        self.may_send = false;
                    }
                }
            } else {
                let take = self.remaining.min(data.len());
                self.remaining -= take;
                data = &data[take..];
                if self.remaining == 0 {
                    self.may_send = false;
                }
            }
        }
    }

    /// The client was sent server bytes: it may answer with one message.
    pub(crate) fn server_spoke(&mut self) {
        self.may_send = true;
    }

    /// No client message is half read: the socket can change hands.
    pub(crate) fn at_boundary(&self) -> bool {
        !self.mid_message()
    }
}

/// Answers the compute's request: `Y` with `client` attached.
pub(crate) async fn give(server: &UnixStream, client: RawFd) -> io::Result<()> {
    answer(server, b'Y', Some(client)).await
}

/// Answers the compute's request: `N`, keep relaying.
pub(crate) async fn decline(server: &UnixStream) -> io::Result<()> {
    answer(server, b'N', None).await
}

async fn answer(server: &UnixStream, byte: u8, fd: Option<RawFd>) -> io::Result<()> {
    let fds: Vec<RawFd> = fd.into_iter().collect();
    loop {
        server.writable().await?;
        let sent = server.try_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(std::slice::from_ref(&byte))];
            let rights = [ControlMessage::ScmRights(&fds)];
            let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
            sendmsg::<()>(
                server.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(io::Error::from)
        });
        match sent {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The client socket after the handoff: shut down when dropped, so that a
/// proxy that stops (or a connection task that is cancelled) ends the
/// session instead of leaving it to the backend alone.
pub(crate) struct HandedOff(pub(crate) std::net::TcpStream);

impl Drop for HandedOff {
    fn drop(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// Waits until the backend that took the session exits (its end of the Unix
/// socket closes). Anything it sends there is discarded.
pub(crate) async fn wait_session_end(server: &mut UnixStream) {
    let mut sink = [0u8; 256];
    while let Ok(n) = server.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend_scan::msg;

    /// Reads as the connection does: at most `read_limit` at a time.
    fn read_all(gate: &mut ClientGate, mut input: &[u8]) -> usize {
        let mut read = 0;
        loop {
            let limit = gate.read_limit(8);
            if limit == 0 || input.is_empty() {
                return read;
            }
            let take = limit.min(input.len());
            gate.client_sent(&input[..take]);
            input = &input[take..];
            read += take;
        }
    }

    #[test]
    fn one_message_per_server_turn_and_never_past_it() {
        let first = msg(b'p', b"client-first-message");
        let mut pipelined = first.clone();
        pipelined.extend(msg(b'Q', b"SELECT 1\0"));

        let mut gate = ClientGate::new();
        assert_eq!(
            read_all(&mut gate, &pipelined),
            0,
            "the server has not spoken"
        );
        gate.server_spoke();
        assert_eq!(read_all(&mut gate, &pipelined), first.len());
        assert!(gate.at_boundary());
        assert_eq!(gate.read_limit(8), 0);
        gate.server_spoke();
        assert_eq!(
            read_all(&mut gate, &pipelined[first.len()..]),
            pipelined.len() - first.len()
        );
    }

    #[test]
    fn a_half_read_message_is_not_a_boundary() {
        let m = msg(b'p', b"abcdef");
        let mut gate = ClientGate::new();
        gate.server_spoke();
        gate.client_sent(&m[..3]);
        assert!(!gate.at_boundary());
        gate.client_sent(&m[3..7]);
        assert!(!gate.at_boundary());
        gate.client_sent(&m[7..]);
        assert!(gate.at_boundary());
        assert_eq!(gate.read_limit(8), 0);
    }
}
