//! The first packets a client sends, before any message has a type byte:
//! SSLRequest, GSSENCRequest, CancelRequest and StartupMessage (protocol 3.0).
//!
//! [`parse_packet`] is a pure function over the bytes received so far: it
//! never panics, caps a packet at [`MAX_STARTUP_PACKET`] bytes, and accepts a
//! StartupMessage only when its layout is exactly right (every key and value
//! NUL-terminated, a final NUL, nothing after it, no duplicate keys, UTF-8).

use bytes::{BufMut, BytesMut};

use crate::client_error::ClientError;

/// The largest startup packet accepted (PostgreSQL's own limit).
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST_CODE: i32 = 80_877_103;
const GSSENC_REQUEST_CODE: i32 = 80_877_104;
const CANCEL_REQUEST_CODE: i32 = 80_877_102;
const PROTOCOL_3_0: i32 = 3 << 16;

/// The (process id, secret key) pair of a backend, from BackendKeyData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
}

impl CancelKey {
    /// The CancelRequest packet for this key.
    pub fn encode_request(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&16i32.to_be_bytes());
        out[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
        out[8..12].copy_from_slice(&self.pid.to_be_bytes());
        out[12..16].copy_from_slice(&self.secret.to_be_bytes());
        out
    }
}

/// The parameters of a protocol 3.0 StartupMessage, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartupParams {
    params: Vec<(String, String)>,
}

impl StartupParams {
    /// Parameters from pairs (keys must be unique and non-empty; neither may
    /// contain NUL). Used by tests and by the rewriting in [`crate::routing`].
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        StartupParams { params: pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Replaces the value of `key` (keeping its position), or appends it.
    pub fn set(&mut self, key: &str, value: String) {
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.params.push((key.to_string(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.params.retain(|(k, _)| k != key);
    }

    /// The StartupMessage bytes (length, protocol 3.0, pairs, final NUL).
    pub fn encode(&self) -> BytesMut {
        let len = 4
            + 4
            + 1
            + self
                .params
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>();
        let mut out = BytesMut::with_capacity(len);
        out.put_i32(len as i32);
        out.put_i32(PROTOCOL_3_0);
        for (k, v) in &self.params {
            out.extend_from_slice(k.as_bytes());
            out.put_u8(0);
            out.extend_from_slice(v.as_bytes());
            out.put_u8(0);
        }
        out.put_u8(0);
        out
    }
}

/// One complete startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendPacket {
    SslRequest,
    GssEncRequest,
    Cancel(CancelKey),
    Startup(StartupParams),
}

/// Parses the packet at the start of `buf`: `Ok(None)` when more bytes are
/// needed, `Ok(Some((packet, consumed)))` when one is complete, `Err` when
/// the bytes can never form an acceptable packet.
pub fn parse_packet(buf: &[u8]) -> Result<Option<(FrontendPacket, usize)>, ClientError> {
    let Some(len_bytes) = buf.get(0..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if len < 8 {
        return Err(ClientError::invalid_packet_length(len.into()));
    }
    let len = len as usize;
    if len > MAX_STARTUP_PACKET {
        return Err(ClientError::packet_too_large(
            len as i64,
            MAX_STARTUP_PACKET,
        ));
    }
    let Some(packet) = buf.get(..len) else {
        return Ok(None);
    };
    let code = i32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let body = &packet[8..];
    let parsed = match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            if !body.is_empty() {
                return Err(ClientError::invalid_packet_length(len as i64));
            }
            if code == SSL_REQUEST_CODE {
                FrontendPacket::SslRequest
            } else {
                FrontendPacket::GssEncRequest
            }
        }
        CANCEL_REQUEST_CODE => {
            let Ok(key) = <[u8; 8]>::try_from(body) else {
                return Err(ClientError::invalid_packet_length(len as i64));
            };
            FrontendPacket::Cancel(CancelKey {
                pid: i32::from_be_bytes([key[0], key[1], key[2], key[3]]),
                secret: i32::from_be_bytes([key[4], key[5], key[6], key[7]]),
            })
        }
        PROTOCOL_3_0 => FrontendPacket::Startup(parse_params(body)?),
        other => {
            let major = (other as u32 >> 16) as u16;
            let minor = (other as u32 & 0xffff) as u16;
            return Err(ClientError::unsupported_protocol(major, minor));
        }
    };
    Ok(Some((parsed, len)))
}

/// Parses `key\0value\0…\0` exactly.
fn parse_params(body: &[u8]) -> Result<StartupParams, ClientError> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = body;
    loop {
        let (key, after_key) =
            split_cstr(rest).ok_or_else(|| ClientError::malformed_startup("missing terminator"))?;
        if key.is_empty() {
            if !after_key.is_empty() {
                return Err(ClientError::malformed_startup("bytes after the terminator"));
            }
            break;
        }
        let (value, after_value) = split_cstr(after_key)
            .ok_or_else(|| ClientError::malformed_startup("parameter without a value"))?;
        let key = std::str::from_utf8(key)
            .map_err(|_| ClientError::malformed_startup("parameter name is not UTF-8"))?;
        let value = std::str::from_utf8(value)
            .map_err(|_| ClientError::malformed_startup("parameter value is not UTF-8"))?;
        if params.iter().any(|(k, _)| k == key) {
            return Err(ClientError::malformed_startup("duplicate parameter"));
        }
        params.push((key.to_string(), value.to_string()));
        rest = after_value;
    }
    Ok(StartupParams { params })
}

/// Splits at the first NUL: (before, after).
fn split_cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = bytes.iter().position(|b| *b == 0)?;
    Some((&bytes[..nul], &bytes[nul + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> StartupParams {
        StartupParams::from_pairs(
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn startup_roundtrip() {
        let params = pairs(&[("user", "postgres.main"), ("database", "app")]);
        let bytes = params.encode();
        let (packet, used) = parse_packet(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(packet, FrontendPacket::Startup(params));
    }

    #[test]
    fn partial_packets_need_more() {
        let bytes = pairs(&[("user", "u")]).encode();
        for cut in 0..bytes.len() {
            assert_eq!(parse_packet(&bytes[..cut]).unwrap(), None, "cut {cut}");
        }
    }

    #[test]
    fn special_requests() {
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(
            parse_packet(&ssl).unwrap(),
            Some((FrontendPacket::SslRequest, 8))
        );
        let gss = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
        assert_eq!(
            parse_packet(&gss).unwrap(),
            Some((FrontendPacket::GssEncRequest, 8))
        );
        let key = CancelKey {
            pid: 4242,
            secret: -7,
        };
        assert_eq!(
            parse_packet(&key.encode_request()).unwrap(),
            Some((FrontendPacket::Cancel(key), 16))
        );
    }

    #[test]
    fn oversized_and_bad_versions_rejected() {
        let mut big = Vec::new();
        big.extend_from_slice(&10_001i32.to_be_bytes());
        big.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
        assert!(parse_packet(&big).is_err());
        let mut v2 = Vec::new();
        v2.extend_from_slice(&9i32.to_be_bytes());
        v2.extend_from_slice(&(2i32 << 16).to_be_bytes());
        v2.push(0);
        let err = parse_packet(&v2).unwrap_err();
        assert_eq!(err.state().code(), "0A000");
        let mut v32 = v2.clone();
        v32[4..8].copy_from_slice(&((3i32 << 16) | 2).to_be_bytes());
        assert!(parse_packet(&v32).is_err());
        assert!(parse_packet(&[0, 0, 0, 4]).is_err());
        assert!(parse_packet(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn malformed_params_rejected() {
        let mut bad = pairs(&[("user", "u")]).encode().to_vec();
        // Drop the final NUL but keep the length consistent.
        bad.pop();
        let n = bad.len() as i32;
        bad[0..4].copy_from_slice(&n.to_be_bytes());
        assert!(parse_packet(&bad).is_err());
        let dup = {
            let mut p = StartupParams::default();
            p.params.push(("user".into(), "a".into()));
            p.params.push(("user".into(), "b".into()));
            p.encode()
        };
        assert!(parse_packet(&dup).is_err());
    }
}
