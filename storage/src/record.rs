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
//! - `5` page patch (format version 2): `file u64 | page u64 | base u64 |
//!   lo u16 | data[n]`: the page reads as the page record at offset `base`
//!   of the same log (or as zeros if `base` is `u64::MAX`), with bytes
//!   `[lo, lo + n)` replaced by `data`. See [`crate::patch`].
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
pub(crate) const KIND_PATCH: u8 = 5;
/// Payload bytes of a patch record before its data.
pub(crate) const PATCH_HEAD: usize = 1 + 16 + 8 + 2;
/// The smallest page-carrying frame (a patch carrying no bytes).
pub(crate) const MIN_PAGE_FRAME: usize = FRAME_HEADER + PATCH_HEAD;
/// A patch's `base` when the page it changes is all zeros.
pub(crate) const NO_BASE: u64 = u64::MAX;
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

/// A patch record: the page is the one at `base` (or zeros) with `data`
/// written at `lo`.
pub(crate) fn encode_patch(
    buf: &mut Vec<u8>,
    file: FileId,
    page: PageNo,
    base: Option<u64>,
    lo: usize,
    data: &[u8],
) {
    debug_assert!(lo + data.len() <= PAGE_SIZE);
    let mut head = [0u8; PATCH_HEAD];
    head[..17].copy_from_slice(&file_page(file, page));
    head[0] = KIND_PATCH;
    head[17..25].copy_from_slice(&base.unwrap_or(NO_BASE).to_le_bytes());
    head[25..27].copy_from_slice(&(lo as u16).to_le_bytes());
    frame(buf, &[&head, data]);
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
    /// A patch on the page record at `base` of the same log (`None`: on a
    /// page of zeros).
    Patch {
        file: FileId,
        page: PageNo,
        base: Option<u64>,
    },
}

/// The page a page-carrying record holds, as read back.
pub(crate) enum PageBody<'a> {
    /// The whole page.
    Whole(&'a [u8]),
    /// The page at `base` (`None`: zeros) with `data` at `lo`.
    Patch {
        base: Option<u64>,
        lo: usize,
        data: &'a [u8],
    },
}

/// `(base, lo, data)` of a patch payload, if its fields are consistent.
fn patch_fields(payload: &[u8]) -> Option<(Option<u64>, usize, &[u8])> {
    let base = u64::from_le_bytes(payload.get(17..25)?.try_into().ok()?);
    let lo = u16::from_le_bytes(payload.get(25..27)?.try_into().ok()?) as usize;
    let data = payload.get(PATCH_HEAD..)?;
    (lo + data.len() <= PAGE_SIZE).then_some(((base != NO_BASE).then_some(base), lo, data))
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
        KIND_PATCH if len >= PATCH_HEAD => {
            let (file, page) = ids(payload)?;
            let (base, _, _) = patch_fields(payload)?;
            Record::Patch { file, page, base }
        }
        _ => return None,
    };
    Some((record, FRAME_HEADER + len))
}

/// The whole frame length of the page-carrying record whose frame starts
/// `head` (at least [`FRAME_HEADER`] + 1 bytes): `PAGE_RECORD` for a page
/// record, more for a truncation record, less for a patch.
pub(crate) fn page_frame_len(head: &[u8]) -> Result<usize, &'static str> {
    if head.len() <= FRAME_HEADER {
        return Err("short page record");
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    match head[FRAME_HEADER] {
        KIND_PAGE if len == PAGE_PAYLOAD => Ok(PAGE_RECORD),
        KIND_TRUNC if len > PAGE_PAYLOAD && len <= MAX_PAYLOAD => Ok(FRAME_HEADER + len),
        KIND_PATCH if (PATCH_HEAD..=PATCH_HEAD + PAGE_SIZE).contains(&len) => {
            Ok(FRAME_HEADER + len)
        }
        _ => Err("bad page record length"),
    }
}

/// Checks a page-carrying record (page write, truncation or patch: the
/// whole frame) read back at a known location; returns the page it holds.
pub(crate) fn check_page(
    rec: &[u8],
    file: FileId,
    page: PageNo,
) -> Result<PageBody<'_>, &'static str> {
    let n = page_frame_len(rec)?;
    let crc = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
    let payload = rec.get(FRAME_HEADER..n).ok_or("short page record")?;
    if crc32fast::hash(payload) != crc {
        return Err("page record CRC mismatch");
    }
    if payload.get(1..9) != Some(&file.0.to_le_bytes()[..])
        || payload.get(9..17) != Some(&page.0.to_le_bytes()[..])
    {
        return Err("page record names another page");
    }
    if payload[0] == KIND_PATCH {
        let (base, lo, data) = patch_fields(payload).ok_or("patch past the end of its page")?;
        return Ok(PageBody::Patch { base, lo, data });
    }
    Ok(PageBody::Whole(&payload[17..PAGE_PAYLOAD]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(body: Result<PageBody<'_>, &'static str>) -> Vec<u8> {
        match body.expect("a valid page record") {
            PageBody::Whole(data) => data.to_vec(),
            PageBody::Patch { .. } => panic!("a patch where a whole page was written"),
        }
    }

    #[test]
    fn page_record_round_trips_and_detects_flips() {
        let mut buf = Vec::new();
        let data = vec![7u8; PAGE_SIZE];
        encode_page(&mut buf, FileId(3), PageNo(9), &data);
        assert_eq!(buf.len(), PAGE_RECORD);
        assert_eq!(whole(check_page(&buf, FileId(3), PageNo(9))), data);
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
        assert_eq!(whole(check_page(&buf, FileId(3), PageNo(0))), data);
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

    #[test]
    fn patch_record_round_trips_and_detects_flips() {
        for base in [Some(4096u64), None] {
            let mut buf = Vec::new();
            encode_patch(&mut buf, FileId(3), PageNo(9), base, 100, &[5u8; 40]);
            assert_eq!(buf.len(), MIN_PAGE_FRAME + 40);
            assert_eq!(page_frame_len(&buf[..FRAME_HEADER + 1]).unwrap(), buf.len());
            let Ok(PageBody::Patch { base: b, lo, data }) = check_page(&buf, FileId(3), PageNo(9))
            else {
                panic!("patch did not read back as one");
            };
            assert_eq!((b, lo, data), (base, 100, &[5u8; 40][..]));
            assert!(matches!(
                parse(&buf),
                Some((Record::Patch { file: FileId(3), page: PageNo(9), base: b }, n)) if b == base && n == buf.len()
            ));
            assert!(check_page(&buf, FileId(3), PageNo(8)).is_err());
            let mut flipped = buf.clone();
            flipped[FRAME_HEADER + 20] ^= 1;
            assert!(check_page(&flipped, FileId(3), PageNo(9)).is_err());
            assert!(parse(&flipped).is_none());
        }
    }

    #[test]
    fn patch_past_its_page_is_refused() {
        let mut buf = Vec::new();
        encode_patch(
            &mut buf,
            FileId(3),
            PageNo(9),
            None,
            PAGE_SIZE - 10,
            &[1u8; 10],
        );
        assert!(
            parse(&buf).is_some(),
            "a patch that ends at the page's end is valid"
        );
        // The same bytes claiming to start one byte later (CRC recomputed).
        let mut payload = buf[FRAME_HEADER..].to_vec();
        payload[25..27].copy_from_slice(&((PAGE_SIZE - 9) as u16).to_le_bytes());
        let mut bad = Vec::new();
        frame(&mut bad, &[&payload]);
        assert!(parse(&bad).is_none());
        assert!(check_page(&bad, FileId(3), PageNo(9)).is_err());
    }
}
