//! Layer files. A layer is one file `layer-<id as 16 hex digits>`: a
//! 24-byte header, then log records (see `record`). While open, records
//! are appended, and past them the file may hold a tail of written zeros
//! (see `timeline::OpenLog`); sealing writes a seal marker, the metadata-op
//! section, the sorted page index and a fixed-size footer right after the
//! last record, cuts the file at the footer's end, fsyncs, and from then on
//! the file is immutable and read through a read-only mapping.
//!
//! Invariant: a sealed layer file is never written, truncated or removed
//! while mapped; only open logs are ever truncated (a torn tail during
//! recovery before anything reads them, or the zeroed tail by the seal,
//! before the mapping).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::backend::{BackendFile, Mapping};
use crate::patch;
use crate::record::{self, PageBody, PAGE_RECORD};
use crate::{FileId, LayerId, PageNo, StoreError, PAGE_SIZE};

pub(crate) const LOG_MAGIC: &[u8; 8] = b"OSHLAYR\0";
pub(crate) const SEAL_MAGIC: &[u8; 8] = b"OSHSEAL\0";
/// The version new layers are written with. Version 2 added page patches
/// (record kind 5); a version 1 layer is read as it is, and an open log
/// of version 1 gets no patches (an older build would take one for a torn
/// record and cut the log there).
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The oldest version still read.
const OLDEST_VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 24;
pub(crate) const FOOTER_LEN: usize = 64;
/// Written where the next record's length would be, when sealing.
pub(crate) const SEAL_MARKER: u32 = u32::MAX;
/// Index entry offset meaning "this page is all zeros".
pub(crate) const ZERO_PAGE: u64 = u64::MAX;
const INDEX_ENTRY: usize = 24;

pub(crate) fn file_name(id: LayerId) -> String {
    format!("layer-{:016x}", id.0)
}

pub(crate) fn parse_name(name: &str) -> Option<LayerId> {
    let hex = name.strip_prefix("layer-")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
        .map(LayerId)
}

pub(crate) fn header(id: LayerId) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(LOG_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&id.0.to_le_bytes());
    h
}

/// Checks a layer's header; returns its format version.
pub(crate) fn check_header(h: &[u8], id: LayerId) -> Result<u32, String> {
    if h.len() < HEADER_LEN as usize || &h[0..8] != LOG_MAGIC {
        return Err("bad layer magic".into());
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!("unsupported layer format version {version}"));
    }
    if h[16..24] != id.0.to_le_bytes() {
        return Err("layer header names another layer".into());
    }
    Ok(version)
}

/// One layer file, open or sealed.
pub(crate) struct Layer {
    pub id: LayerId,
    pub name: String,
    pub file: Arc<dyn BackendFile>,
    map: OnceLock<Mapping>,
    /// While open: the end of its records (the zeroed tail past it is not
    /// content). 0 once sealed, or for a layer loaded sealed.
    open_end: AtomicU64,
}

impl Layer {
    pub fn new(id: LayerId, file: Arc<dyn BackendFile>) -> Layer {
        Layer {
            id,
            name: file_name(id),
            file,
            map: OnceLock::new(),
            open_end: AtomicU64::new(0),
        }
    }

    /// Records the end of an open log's records.
    pub fn set_open_end(&self, end: u64) {
        self.open_end.store(end, Ordering::Release);
    }

    /// The layer is sealed: its content is the whole file.
    pub fn set_sealed(&self) {
        self.open_end.store(0, Ordering::Release);
    }

    /// Switches reads to a mapping; only for sealed, fsynced layers.
    pub fn map_sealed(&self) -> io::Result<()> {
        if self.map.get().is_none() {
            let _ = self.map.set(self.file.map()?);
        }
        Ok(())
    }

    /// Bytes of content: the file's length once sealed; for an open log,
    /// the end of its records (the file may carry up to one zero-fill
    /// chunk more, see `StoreOptions::log_zero_chunk_bytes`).
    pub fn bytes_on_disk(&self) -> u64 {
        match self.open_end.load(Ordering::Acquire) {
            0 => self.file.len().unwrap_or(0),
            end => end,
        }
    }

    fn corrupted(&self, offset: u64, reason: &str) -> StoreError {
        StoreError::corrupted(format!("{} at offset {offset}: {reason}", self.name))
    }

    /// Reads the page record at `offset`, checks it, and copies bytes
    /// `[from, from + out.len())` of the page into `out`. A patch is
    /// assembled from its chain first (see `patch`).
    pub fn read_page(
        &self,
        offset: u64,
        file: FileId,
        page: PageNo,
        from: usize,
        out: &mut [u8],
    ) -> Result<(), StoreError> {
        debug_assert!(from + out.len() <= PAGE_SIZE);
        self.with_record(offset, file, page, |body| match body {
            PageBody::Whole(data) => {
                out.copy_from_slice(&data[from..from + out.len()]);
                Ok(())
            }
            patch => {
                let mut whole = [0u8; PAGE_SIZE];
                self.assemble(offset, patch, file, page, &mut whole, 0)?;
                out.copy_from_slice(&whole[from..from + out.len()]);
                Ok(())
            }
        })
    }

    /// Writes into `out` the page that `body`, the record at `offset`,
    /// holds; `depth`: patches already followed to get here.
    fn assemble(
        &self,
        offset: u64,
        body: PageBody<'_>,
        file: FileId,
        page: PageNo,
        out: &mut [u8; PAGE_SIZE],
        depth: u8,
    ) -> Result<(), StoreError> {
        match body {
            PageBody::Whole(data) => out.copy_from_slice(data),
            PageBody::Patch { base, lo, data } => {
                match base {
                    None => out.fill(0),
                    Some(base) if base < offset && depth < patch::MAX_CHAIN => {
                        self.with_record(base, file, page, |body| {
                            self.assemble(base, body, file, page, out, depth + 1)
                        })?;
                    }
                    Some(_) => return Err(self.corrupted(offset, "bad patch base")),
                }
                out[lo..lo + data.len()].copy_from_slice(data);
            }
        }
        Ok(())
    }

    /// Reads and checks the page-carrying record at `offset` and hands
    /// what it holds to `f`.
    fn with_record<R>(
        &self,
        offset: u64,
        file: FileId,
        page: PageNo,
        f: impl FnOnce(PageBody<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let check =
            |rec| record::check_page(rec, file, page).map_err(|r| self.corrupted(offset, r));
        if let Some(map) = self.map.get() {
            let start = offset as usize;
            let past_end = || self.corrupted(offset, "page record past end of layer");
            let head = map
                .get(start..start.saturating_add(record::FRAME_HEADER + 1))
                .ok_or_else(past_end)?;
            let n = record::page_frame_len(head).map_err(|r| self.corrupted(offset, r))?;
            let rec = map
                .get(start..start.saturating_add(n))
                .ok_or_else(past_end)?;
            return f(check(rec)?);
        }
        // One read for a page record or a patch; a patch may end closer to
        // the file's end than a page record would.
        let mut rec = [0u8; PAGE_RECORD];
        let n = match self.file.read_exact_at(&mut rec, offset) {
            Ok(()) => record::page_frame_len(&rec).map_err(|r| self.corrupted(offset, r))?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let head = &mut rec[..record::FRAME_HEADER + 1];
                self.file.read_exact_at(head, offset)?;
                let n = record::page_frame_len(head).map_err(|r| self.corrupted(offset, r))?;
                if n > PAGE_RECORD {
                    return Err(self.corrupted(offset, "page record past end of layer"));
                }
                self.file.read_exact_at(&mut rec[..n], offset)?;
                n
            }
            Err(e) => return Err(e.into()),
        };
        if n <= PAGE_RECORD {
            return f(check(&rec[..n])?);
        }
        // A truncation record: the page is followed by the op.
        let mut whole = vec![0u8; n];
        self.file.read_exact_at(&mut whole, offset)?;
        f(check(&whole)?)
    }
}

/// What sealing needs from an open log.
pub(crate) struct SealInput<'a> {
    /// End of the last record.
    pub data_end: u64,
    /// Metadata op bodies, in log order.
    pub meta: &'a [Vec<u8>],
    /// The layer's net page map: record offset or `ZERO_PAGE`.
    pub index: &'a BTreeMap<(FileId, PageNo), u64>,
}

/// Builds the bytes sealing appends at `data_end`.
pub(crate) fn seal_tail(input: &SealInput<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + input.index.len() * INDEX_ENTRY + FOOTER_LEN + 1024);
    out.extend_from_slice(&SEAL_MARKER.to_le_bytes());
    let meta_off = input.data_end + out.len() as u64;
    let meta_start = out.len();
    out.extend_from_slice(&(input.meta.len() as u32).to_le_bytes());
    for body in input.meta {
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
    let meta_crc = crc32fast::hash(&out[meta_start..]);
    let meta_len = (out.len() - meta_start) as u64;
    let index_off = input.data_end + out.len() as u64;
    let index_start = out.len();
    for ((file, page), off) in input.index {
        out.extend_from_slice(&file.0.to_le_bytes());
        out.extend_from_slice(&page.0.to_le_bytes());
        out.extend_from_slice(&off.to_le_bytes());
    }
    let index_crc = crc32fast::hash(&out[index_start..]);
    let index_len = (out.len() - index_start) as u64;
    let footer_start = out.len();
    out.extend_from_slice(SEAL_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&meta_crc.to_le_bytes());
    out.extend_from_slice(&input.data_end.to_le_bytes());
    out.extend_from_slice(&meta_off.to_le_bytes());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&index_off.to_le_bytes());
    out.extend_from_slice(&index_len.to_le_bytes());
    out.extend_from_slice(&index_crc.to_le_bytes());
    let footer_crc = crc32fast::hash(&out[footer_start..]);
    out.extend_from_slice(&footer_crc.to_le_bytes());
    debug_assert_eq!(out.len() - footer_start, FOOTER_LEN);
    out
}

/// The sections of a sealed layer, read back and checked.
pub(crate) struct Sealed {
    pub meta: Vec<Vec<u8>>,
    /// Sorted `(file, page, offset or ZERO_PAGE)`.
    pub index: Vec<(FileId, PageNo, u64)>,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads the footer, metadata section and index of a sealed layer (not its
/// page data).
pub(crate) fn read_sealed(layer: &Layer) -> Result<Sealed, StoreError> {
    let len = layer.file.len()?;
    let bad = |off: u64, why: &str| layer.corrupted(off, why);
    if len < HEADER_LEN + FOOTER_LEN as u64 {
        return Err(bad(0, "sealed layer too short"));
    }
    let mut head = [0u8; HEADER_LEN as usize];
    layer.file.read_exact_at(&mut head, 0)?;
    check_header(&head, layer.id).map_err(|r| bad(0, &r))?;
    let foot_off = len - FOOTER_LEN as u64;
    let mut f = [0u8; FOOTER_LEN];
    layer.file.read_exact_at(&mut f, foot_off)?;
    if &f[0..8] != SEAL_MAGIC {
        return Err(bad(foot_off, "bad footer magic"));
    }
    if crc32fast::hash(&f[..60]) != u32_at(&f, 60) {
        return Err(bad(foot_off, "footer CRC mismatch"));
    }
    let version = u32_at(&f, 8);
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(bad(
            foot_off,
            &format!("unsupported format version {version}"),
        ));
    }
    let meta_crc = u32_at(&f, 12);
    let data_end = u64_at(&f, 16);
    let meta_off = u64_at(&f, 24);
    let meta_len = u64_at(&f, 32);
    let index_off = u64_at(&f, 40);
    let index_len = u64_at(&f, 48);
    let index_crc = u32_at(&f, 56);
    let consistent = data_end >= HEADER_LEN
        && meta_off == data_end + 4
        && index_off == meta_off + meta_len
        && index_off + index_len == foot_off
        && index_len % INDEX_ENTRY as u64 == 0;
    if !consistent {
        return Err(bad(foot_off, "footer offsets inconsistent"));
    }
    let mut meta_bytes = vec![0u8; meta_len as usize];
    layer.file.read_exact_at(&mut meta_bytes, meta_off)?;
    if crc32fast::hash(&meta_bytes) != meta_crc {
        return Err(bad(meta_off, "metadata section CRC mismatch"));
    }
    let mut index_bytes = vec![0u8; index_len as usize];
    layer.file.read_exact_at(&mut index_bytes, index_off)?;
    if crc32fast::hash(&index_bytes) != index_crc {
        return Err(bad(index_off, "index section CRC mismatch"));
    }
    let mut meta = Vec::new();
    let short = || bad(meta_off, "metadata section truncated");
    let count = meta_bytes
        .get(0..4)
        .map(|_| u32_at(&meta_bytes, 0))
        .ok_or_else(short)?;
    let mut at = 4usize;
    for _ in 0..count {
        let n = meta_bytes
            .get(at..at + 4)
            .map(|_| u32_at(&meta_bytes, at))
            .ok_or_else(short)? as usize;
        let body = meta_bytes.get(at + 4..at + 4 + n).ok_or_else(short)?;
        meta.push(body.to_vec());
        at += 4 + n;
    }
    let index = index_bytes
        .chunks_exact(INDEX_ENTRY)
        .map(|e| (FileId(u64_at(e, 0)), PageNo(u64_at(e, 8)), u64_at(e, 16)))
        .collect::<Vec<_>>();
    for &(_, _, off) in &index {
        if off != ZERO_PAGE && (off < HEADER_LEN || off + record::MIN_PAGE_FRAME as u64 > data_end)
        {
            return Err(bad(index_off, "index entry points outside the data"));
        }
    }
    Ok(Sealed { meta, index })
}
