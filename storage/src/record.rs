//! Log records: the framing every open layer uses, and the metadata
//! operations it carries.
//!
//! A frame is `u32 len | u32 crc32(payload) | payload` (little endian); the
//! payload starts with a kind byte:
//! - `1` page write: `file u64 | page u64 | data[PAGE_SIZE]`
//! - `2` zero page: `file u64 | page u64` (the page reads as zeros again)
//! - `3` metadata op: a JSON-encoded [`MetaOp`].
//! - `4` truncation inside a page: `file u64 | page u64 | data[PAGE_SIZE] |`
//!   JSON of the `SetAttr` op. One record holds both the new size and the
//!   page holding the new end (zeros past it), so no crash can separate
//!   them. It is read as a page record by the index.
//!
//! A length above [`MAX_PAYLOAD`] never occurs in a valid frame; sealing
//! writes `u32::MAX` there so a replay stops at the sealed sections.

use serde::{Deserialize, Serialize};

use crate::{FileId, FileKind, PageNo, PAGE_SIZE};

pub(crate) const FRAME_HEADER: usize = 8;
pub(crate) const KIND_PAGE: u8 = 1;
pub(crate) const KIND_ZERO: u8 = 2;
pub(crate) const KIND_META: u8 = 3;
pub(crate) const KIND_TRUNC: u8 = 4;
/// Payload bytes of a page record.
pub(crate) const PAGE_PAYLOAD: usize = 1 + 16 + PAGE_SIZE;
/// Bytes of a whole page record, frame included.
pub(crate) const PAGE_RECORD: usize = FRAME_HEADER + PAGE_PAYLOAD;
/// The largest payload a valid frame can have.
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;

/// A change of the file table, as logged. Times are nanoseconds since the
/// Unix epoch; names and targets are raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MetaOp {
    Create {
        parent: FileId,
        name: Vec<u8>,
        id: FileId,
        kind: FileKind,
        mode: u32,
        uid: u32,
        gid: u32,
        time: u64,
        target: Option<Vec<u8>>,
    },
    Unlink {
        parent: FileId,
        name: Vec<u8>,
        time: u64,
    },
    Rmdir {
        parent: FileId,
        name: Vec<u8>,
        time: u64,
    },
    Rename {
        parent: FileId,
        name: Vec<u8>,
        new_parent: FileId,
        new_name: Vec<u8>,
        no_replace: bool,
        time: u64,
    },
    SetAttr {
        id: FileId,
        size: Option<u64>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<u64>,
        mtime: Option<u64>,
        time: u64,
    },
    /// A write grew the file to `size`.
    Extend { id: FileId, size: u64, time: u64 },
    /// An orphan (nlink 0) is gone for good, with its pages.
    DropOrphan { id: FileId },
}

/// Appends a frame holding `payload_parts` to `buf`.
fn frame(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut hasher = crc32fast::Hasher::new();
    for p in parts {
        hasher.update(p);
    }
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&hasher.finalize().to_le_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
}

fn file_page(file: FileId, page: PageNo) -> [u8; 17] {
    let mut b = [0u8; 17];
    b[1..9].copy_from_slice(&file.0.to_le_bytes());
    b[9..17].copy_from_slice(&page.0.to_le_bytes());
    b
}

pub(crate) fn encode_page(buf: &mut Vec<u8>, file: FileId, page: PageNo, data: &[u8]) {
    debug_assert_eq!(data.len(), PAGE_SIZE);
    let mut head = file_page(file, page);
    head[0] = KIND_PAGE;
    frame(buf, &[&head, data]);
}

pub(crate) fn encode_zero(buf: &mut Vec<u8>, file: FileId, page: PageNo) {
    let mut head = file_page(file, page);
    head[0] = KIND_ZERO;
    frame(buf, &[&head]);
}

/// Encodes the op's JSON body (the part stored in a sealed meta section).
pub(crate) fn meta_body(op: &MetaOp) -> Vec<u8> {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_vec(op).unwrap_or_default()
}

pub(crate) fn encode_meta(buf: &mut Vec<u8>, body: &[u8]) {
    frame(buf, &[&[KIND_META], body]);
}

/// A truncation record: the op and the page holding the new end.
pub(crate) fn encode_trunc(
    buf: &mut Vec<u8>,
    file: FileId,
    page: PageNo,
    data: &[u8],
    body: &[u8],
) {
    debug_assert_eq!(data.len(), PAGE_SIZE);
    let mut head = file_page(file, page);
    head[0] = KIND_TRUNC;
    frame(buf, &[&head, data, body]);
}

pub(crate) fn decode_meta(body: &[u8]) -> Result<MetaOp, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad metadata op: {e}"))
}

/// A record read back from a log.
pub(crate) enum Record<'a> {
    Page {
        file: FileId,
        page: PageNo,
    },
    Zero {
        file: FileId,
        page: PageNo,
    },
    Meta(&'a [u8]),
    /// A truncation: the op's body and the page it carries.
    Trunc {
        file: FileId,
        page: PageNo,
        meta: &'a [u8],
    },
}

/// Parses the frame at the start of `bytes`: `Some((record, frame_len))`, or
/// `None` if it is torn, corrupt or not a record.
pub(crate) fn parse(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return None;
    }
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(FRAME_HEADER..FRAME_HEADER + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let ids = |p: &[u8]| -> Option<(FileId, PageNo)> {
        Some((
            FileId(u64::from_le_bytes(p.get(1..9)?.try_into().ok()?)),
            PageNo(u64::from_le_bytes(p.get(9..17)?.try_into().ok()?)),
        ))
    };
    let record = match payload[0] {
        KIND_PAGE if len == PAGE_PAYLOAD => {
            let (file, page) = ids(payload)?;
            Record::Page { file, page }
        }
        KIND_ZERO if len == 17 => {
            let (file, page) = ids(payload)?;
            Record::Zero { file, page }
        }
        KIND_META => Record::Meta(&payload[1..]),
        KIND_TRUNC if len > PAGE_PAYLOAD => {
            let (file, page) = ids(payload)?;
            Record::Trunc {
                file,
                page,
                meta: &payload[PAGE_PAYLOAD..],
            }
        }
        _ => return None,
    };
    Some((record, FRAME_HEADER + len))
}

/// The whole frame length of the page-carrying record whose first
/// `PAGE_RECORD` bytes are `head`: `PAGE_RECORD` for a page record, more
/// for a truncation record.
pub(crate) fn page_frame_len(head: &[u8]) -> Result<usize, &'static str> {
    if head.len() < PAGE_RECORD {
        return Err("short page record");
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    match head[FRAME_HEADER] {
        KIND_PAGE if len == PAGE_PAYLOAD => Ok(PAGE_RECORD),
        KIND_TRUNC if len > PAGE_PAYLOAD && len <= MAX_PAYLOAD => Ok(FRAME_HEADER + len),
        _ => Err("bad page record length"),
    }
}

/// Checks a page-carrying record (page write or truncation, the whole
/// frame) read back at a known location; returns the page data.
pub(crate) fn check_page(rec: &[u8], file: FileId, page: PageNo) -> Result<&[u8], &'static str> {
    let n = page_frame_len(rec)?;
    let crc = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
    let payload = rec.get(FRAME_HEADER..n).ok_or("short page record")?;
    if crc32fast::hash(payload) != crc {
        return Err("page record CRC mismatch");
    }
    if payload[1..9] != file.0.to_le_bytes() || payload[9..17] != page.0.to_le_bytes() {
        return Err("page record names another page");
    }
    Ok(&payload[17..PAGE_PAYLOAD])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_record_round_trips_and_detects_flips() {
        let mut buf = Vec::new();
        let data = vec![7u8; PAGE_SIZE];
        encode_page(&mut buf, FileId(3), PageNo(9), &data);
        assert_eq!(buf.len(), PAGE_RECORD);
        assert_eq!(check_page(&buf, FileId(3), PageNo(9)).unwrap(), &data[..]);
        assert!(check_page(&buf, FileId(3), PageNo(8)).is_err());
        assert!(matches!(
            parse(&buf),
            Some((Record::Page { .. }, PAGE_RECORD))
        ));
        buf[100] ^= 1;
        assert!(check_page(&buf, FileId(3), PageNo(9)).is_err());
        assert!(parse(&buf).is_none());
    }

    #[test]
    fn truncation_record_reads_as_its_page_and_its_op() {
        let op = MetaOp::SetAttr {
            id: FileId(3),
            size: Some(5000),
            mode: None,
            uid: None,
            gid: None,
            atime: None,
            mtime: None,
            time: 1,
        };
        let body = meta_body(&op);
        let mut data = vec![7u8; PAGE_SIZE];
        data[5000..].fill(0);
        let mut buf = Vec::new();
        encode_trunc(&mut buf, FileId(3), PageNo(0), &data, &body);
        assert_eq!(buf.len(), PAGE_RECORD + body.len());
        assert_eq!(page_frame_len(&buf[..PAGE_RECORD]).unwrap(), buf.len());
        assert_eq!(check_page(&buf, FileId(3), PageNo(0)).unwrap(), &data[..]);
        let Some((Record::Trunc { file, page, meta }, n)) = parse(&buf) else {
            panic!("truncation record did not parse");
        };
        assert_eq!((file, page, n), (FileId(3), PageNo(0), buf.len()));
        assert_eq!(decode_meta(meta).unwrap(), op);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(check_page(&buf, FileId(3), PageNo(0)).is_err());
        assert!(parse(&buf).is_none());
    }

    #[test]
    fn meta_record_round_trips() {
        let op = MetaOp::DropOrphan { id: FileId(5) };
        let mut buf = Vec::new();
        encode_meta(&mut buf, &meta_body(&op));
        let Some((Record::Meta(body), n)) = parse(&buf) else {
            panic!("meta record did not parse");
        };
        assert_eq!(n, buf.len());
        assert_eq!(decode_meta(body).unwrap(), op);
        assert!(parse(&buf[..buf.len() - 1]).is_none());
    }
}
