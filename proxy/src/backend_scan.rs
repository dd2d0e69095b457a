//! Watches the compute's messages to the client during authentication, until
//! the first ReadyForQuery (or ErrorResponse), to learn the BackendKeyData
//! that CancelRequests will name. The bytes themselves are forwarded as they
//! arrive; this only follows message boundaries. After the scan is done, the
//! relay copies bytes with no parsing at all.
//!
//! A compute with offshoot's handoff module asks for the client's socket with
//! a message of its own, `'O' int32(12) int32(pid) int32(cancel key)`, sent
//! once the password is checked; it is for the proxy, never forwarded
//! (docs/proxy.md, "Socket handoff").

use crate::startup::CancelKey;

/// What the scan has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanState {
    /// Still in the authentication phase.
    Authenticating,
    /// ReadyForQuery seen: the session is up.
    Ready,
    /// ErrorResponse seen before ReadyForQuery: the compute refused.
    Refused,
}

/// The type byte of the compute's handoff request.
pub(crate) const HANDOFF_REQUEST: u8 = b'O';

/// What one chunk of server bytes holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Bytes at the start of the chunk that go to the client (all of it,
    /// unless a handoff request begins in it).
    pub(crate) forward: usize,
    /// A complete handoff request, with the session's cancel key.
    pub(crate) handoff: Option<CancelKey>,
}

/// Incremental scanner over the server→client byte stream.
#[derive(Debug)]
pub(crate) struct BackendScanner {
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message body not yet seen.
    remaining: usize,
    /// The body of a BackendKeyData being collected.
    key_body: Vec<u8>,
    collecting_key: bool,
    state: ScanState,
    key: Option<CancelKey>,
    /// Inside a handoff request: its bytes are not the client's.
    in_handoff: bool,
}

/// Larger messages cannot occur before ReadyForQuery from a sane server.
const MAX_AUTH_PHASE_MESSAGE: usize = 1 << 20;

impl BackendScanner {
    pub(crate) fn new() -> Self {
        BackendScanner {
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            key_body: Vec::with_capacity(8),
            collecting_key: false,
            state: ScanState::Authenticating,
            key: None,
            in_handoff: false,
        }
    }

    pub(crate) fn state(&self) -> ScanState {
        self.state
    }

    pub(crate) fn cancel_key(&self) -> Option<CancelKey> {
        self.key
    }

    /// Follows `data`; stops looking once Ready or Refused.
    /// Err when the stream cannot be a PostgreSQL server's.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Fed, &'static str> {
        let mut at = 0;
        let mut forward = if self.in_handoff { 0 } else { data.len() };
        let mut handoff = None;
        while at < data.len() && self.state == ScanState::Authenticating {
            if handoff.is_some() {
                return Err("the compute sent bytes after its handoff request");
            }
            if self.remaining == 0 && self.header_len < 5 {
                if self.header_len == 0 && data[at] == HANDOFF_REQUEST {
                    self.in_handoff = true;
                    forward = at;
                }
                let take = (5 - self.header_len).min(data.len() - at);
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&data[at..at + take]);
                self.header_len += take;
                at += take;
                if self.header_len < 5 {
                    break;
                }
                let len = i32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                if !(4..=MAX_AUTH_PHASE_MESSAGE as i32).contains(&len) {
                    return Err("invalid message length from the compute");
                }
                if self.in_handoff && len != 12 {
                    return Err("invalid handoff request from the compute");
                }
                self.remaining = len as usize - 4;
                self.collecting_key = matches!(self.header[0], b'K' | HANDOFF_REQUEST);
                self.key_body.clear();
                if self.remaining == 0 {
                    handoff = self.finish_message();
                }
                continue;
            }
            let take = self.remaining.min(data.len() - at);
            if self.collecting_key {
                self.key_body.extend_from_slice(&data[at..at + take]);
            }
            self.remaining -= take;
            at += take;
            if self.remaining == 0 {
                handoff = self.finish_message();
            }
        }
        Ok(Fed { forward, handoff })
    }

    /// Ends the current message; returns the key of a handoff request.
    fn finish_message(&mut self) -> Option<CancelKey> {
        let key = <[u8; 8]>::try_from(self.key_body.as_slice())
            .ok()
            .map(|body| CancelKey {
                pid: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                secret: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            });
        let mut handoff = None;
        match self.header[0] {
            b'K' => self.key = key,
            HANDOFF_REQUEST => {
                self.key = key;
                handoff = key;
                self.in_handoff = false;
            }
            b'Z' => self.state = ScanState::Ready,
            b'E' => self.state = ScanState::Refused,
            _ => {}
        }
        self.header_len = 0;
        self.collecting_key = false;
        handoff
    }
}

/// A protocol message `tag int32(len) body`, for tests of the scanners.
#[cfg(test)]
pub(crate) fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(msg(b'R', &0i32.to_be_bytes()));
        s.extend(msg(b'S', b"server_version\x0015\x00"));
        let mut key = 777i32.to_be_bytes().to_vec();
        key.extend_from_slice(&(-5i32).to_be_bytes());
        s.extend(msg(b'K', &key));
        s.extend(msg(b'Z', b"I"));
        s.extend(msg(b'T', b"garbage after ready is never parsed"));
        s
    }

    #[test]
    fn finds_key_in_any_chunking() {
        let stream = session();
        for chunk in 1..stream.len() {
            let mut scan = BackendScanner::new();
            for piece in stream.chunks(chunk) {
                let fed = scan.feed(piece).unwrap();
                assert_eq!(fed.forward, piece.len());
                assert_eq!(fed.handoff, None);
            }
            assert_eq!(scan.state(), ScanState::Ready, "chunk {chunk}");
            assert_eq!(
                scan.cancel_key(),
                Some(CancelKey {
                    pid: 777,
                    secret: -5
                })
            );
        }
    }

    #[test]
    fn a_handoff_request_is_found_and_never_forwarded() {
        let mut stream = msg(b'R', &11i32.to_be_bytes());
        let before = stream.len();
        let mut body = 4242i32.to_be_bytes().to_vec();
        body.extend_from_slice(&(-9i32).to_be_bytes());
        stream.extend(msg(HANDOFF_REQUEST, &body));
        let want = CancelKey {
            pid: 4242,
            secret: -9,
        };
        for chunk in 1..=stream.len() {
            let mut scan = BackendScanner::new();
            let (mut forwarded, mut found) = (0, None);
            for piece in stream.chunks(chunk) {
                let fed = scan.feed(piece).unwrap();
                forwarded += fed.forward;
                found = found.or(fed.handoff);
            }
            assert_eq!(forwarded, before, "chunk {chunk}");
            assert_eq!(found, Some(want), "chunk {chunk}");
            assert_eq!(scan.cancel_key(), Some(want));
            assert_eq!(scan.state(), ScanState::Authenticating);
        }
        let mut trailing = stream.clone();
        trailing.push(b'R');
        assert!(BackendScanner::new().feed(&trailing).is_err());
        let bad = msg(HANDOFF_REQUEST, &[0; 4]);
        assert!(BackendScanner::new().feed(&bad).is_err());
    }

    #[test]
    fn error_ends_the_scan() {
        let mut scan = BackendScanner::new();
        scan.feed(&msg(b'E', b"SFATAL\0\0")).unwrap();
        assert_eq!(scan.state(), ScanState::Refused);
        assert_eq!(scan.cancel_key(), None);
    }

    #[test]
    fn bad_length_is_an_error() {
        let mut scan = BackendScanner::new();
        assert!(scan.feed(&[b'R', 0, 0, 0, 1]).is_err());
    }
}
