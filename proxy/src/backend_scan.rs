//! Watches the compute's messages to the client during authentication, until
//! the first ReadyForQuery (or ErrorResponse), to learn the BackendKeyData
//! that CancelRequests will name. The bytes themselves are forwarded as they
//! arrive; this only follows message boundaries. After the scan is done, the
//! relay copies bytes with no parsing at all.

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
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), &'static str> {
        while !data.is_empty() && self.state == ScanState::Authenticating {
            if self.remaining == 0 && self.header_len < 5 {
                let take = (5 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len < 5 {
                    return Ok(());
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
                self.remaining = len as usize - 4;
                self.collecting_key = self.header[0] == b'K';
                self.key_body.clear();
                if self.remaining == 0 {
                    self.finish_message();
                }
                continue;
            }
            let take = self.remaining.min(data.len());
            if self.collecting_key {
                self.key_body.extend_from_slice(&data[..take]);
            }
            self.remaining -= take;
            data = &data[take..];
            if self.remaining == 0 {
                self.finish_message();
            }
        }
        Ok(())
    }

    fn finish_message(&mut self) {
        match self.header[0] {
            b'K' => {
                if let Ok(body) = <[u8; 8]>::try_from(self.key_body.as_slice()) {
                    self.key = Some(CancelKey {
                        pid: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        secret: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    });
                }
            }
            b'Z' => self.state = ScanState::Ready,
            b'E' => self.state = ScanState::Refused,
            _ => {}
        }
        self.header_len = 0;
        self.collecting_key = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

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
                scan.feed(piece).unwrap();
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
