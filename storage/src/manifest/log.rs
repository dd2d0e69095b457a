//! The file `MANIFEST`: a snapshot of the whole [`ManifestState`] followed
//! by an append-only log of delta batches.
//!
//! Layout (format version 2): a 16-byte header (`OSHMANIF`, u32 version,
//! u32 zero), then frames `u32 len | u32 crc32(payload) | payload`, each
//! payload a kind byte (`1` snapshot, `2` delta batch) and JSON. The first
//! frame is a snapshot; recovery = that snapshot + every later batch in
//! order, up to the first frame that is torn or fails its CRC, where the
//! file is cut. A commit appends one batch frame and fdatasyncs once. Once
//! the deltas pass both a size threshold and the snapshot's own size, the
//! file is compacted: the current state is
//! written as a lone snapshot to `MANIFEST.tmp`, fsynced, renamed over
//! `MANIFEST`, and the directory fsynced. Version 1 files (a log of whole
//! snapshots) are read and compacted into version 2 at open.

use std::sync::Arc;

use super::{Delta, ManifestState};
use crate::backend::{Backend, BackendFile};
use crate::StoreError;

pub(crate) const MANIFEST: &str = "MANIFEST";
const TMP: &str = "MANIFEST.tmp";
const MAGIC: &[u8; 8] = b"OSHMANIF";
const VERSION: u32 = 2;
const HEADER: usize = 16;
const KIND_SNAPSHOT: u8 = 1;
const KIND_DELTAS: u8 = 2;

/// The open manifest file.
pub(crate) struct ManifestLog {
    file: Arc<dyn BackendFile>,
    end: u64,
    /// Where the snapshot frame ends (the delta log starts).
    snapshot_end: u64,
    compact_bytes: u64,
    /// A write or flush failed, or a compaction stopped half way: the file's
    /// state is unknown, so the next commit rewrites the whole manifest.
    must_compact: bool,
}

fn frame(out: &mut Vec<u8>, kind: u8, json: &[u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(json);
    out.extend_from_slice(&(json.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(json);
}

fn header(version: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h
}

/// Frames after the header: `(payload, end offset)` of each valid one,
/// stopping at the first torn or corrupt frame.
fn frames(bytes: &[u8]) -> Vec<(&[u8], usize)> {
    let mut out = Vec::new();
    let mut at = HEADER;
    while let Some(h) = bytes.get(at..at + 8) {
        let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let Some(body) = bytes.get(at + 8..at + 8 + n) else {
            break;
        };
        if n == 0 || crc32fast::hash(body) != crc {
            break;
        }
        at += 8 + n;
        out.push((body, at));
    }
    out
}

fn corrupt(why: &str) -> StoreError {
    StoreError::corrupted(format!("{MANIFEST}: {why}"))
}

impl ManifestLog {
    /// Opens the manifest, creating an empty one if the store is new.
    pub fn open(
        backend: &dyn Backend,
        compact_bytes: u64,
    ) -> Result<(ManifestLog, ManifestState), StoreError> {
        let exists = backend.list()?.iter().any(|n| n == MANIFEST);
        if !exists {
            let state = ManifestState::default();
            let log = ManifestLog::rewrite(backend, &state, compact_bytes)?;
            return Ok((log, state));
        }
        let file = backend.open(MANIFEST, false)?;
        let len = file.len()?;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)?;
        if bytes.len() < HEADER || &bytes[0..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let frames = frames(&bytes);
        let (mut state, end) = match version {
            1 => {
                // Every frame is a whole JSON snapshot; the last one wins.
                let (body, end) = frames.last().ok_or_else(|| corrupt("no valid record"))?;
                let state: ManifestState = serde_json::from_slice(body)
                    .map_err(|e| corrupt(&format!("bad manifest record: {e}")))?;
                (state, *end)
            }
            VERSION => replay(&frames)?,
            v => return Err(corrupt(&format!("unsupported format version {v}"))),
        };
        state.reindex();
        if version != VERSION {
            tracing::info!(
                from = version,
                to = VERSION,
                "upgrading the manifest format"
            );
            let log = ManifestLog::rewrite(backend, &state, compact_bytes)?;
            return Ok((log, state));
        }
        if (end as u64) < len {
            tracing::warn!(offset = end, len, "cutting torn tail of the manifest");
            file.set_len(end as u64)?;
            file.sync_data()?;
        }
        let snapshot_end = frames.first().map_or(HEADER, |f| f.1) as u64;
        let log = ManifestLog {
            file,
            end: end as u64,
            snapshot_end,
            compact_bytes,
            must_compact: false,
        };
        Ok((log, state))
    }

    /// Writes `state` as a lone snapshot to a temporary file and renames it
    /// over `MANIFEST` (write, fsync, rename, fsync directory).
    fn rewrite(
        backend: &dyn Backend,
        state: &ManifestState,
        compact_bytes: u64,
    ) -> Result<ManifestLog, StoreError> {
        let _ = backend.remove(TMP);
        let file = backend.open(TMP, true)?;
        let mut bytes = header(VERSION).to_vec();
        // Plain data with string keys: serializing cannot fail.
        frame(
            &mut bytes,
            KIND_SNAPSHOT,
            &serde_json::to_vec(state).unwrap_or_default(),
        );
        file.write_all_at(&bytes, 0)?;
        file.sync_data()?;
        backend.rename(TMP, MANIFEST)?;
        backend.sync_dir()?;
        Ok(ManifestLog {
            file,
            end: bytes.len() as u64,
            snapshot_end: bytes.len() as u64,
            compact_bytes,
            must_compact: false,
        })
    }

    /// Makes `deltas` durable as one batch, then applies them to `state`.
    /// On error `state` is unchanged. One fdatasync, plus a compaction now
    /// and then (amortized: it runs once per `compact_bytes` of deltas).
    pub fn commit(
        &mut self,
        backend: &dyn Backend,
        state: &mut ManifestState,
        deltas: &[Delta],
    ) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        if self.must_compact {
            let mut next = state.clone();
            for d in deltas {
                next.apply(d);
            }
            *self = ManifestLog::rewrite(backend, &next, self.compact_bytes).inspect_err(|e| {
                tracing::error!(error = %e, "rewriting the manifest failed");
            })?;
            *state = next;
            return Ok(());
        }
        let mut rec = Vec::with_capacity(256);
        // Plain data with string keys: serializing cannot fail.
        frame(
            &mut rec,
            KIND_DELTAS,
            &serde_json::to_vec(deltas).unwrap_or_default(),
        );
        let res = self
            .file
            .write_all_at(&rec, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = res {
            // What reached the disk is unknown: never append after it.
            self.must_compact = true;
            return Err(e.into());
        }
        self.end += rec.len() as u64;
        for d in deltas {
            state.apply(d);
        }
        // Compact once the deltas outweigh both the threshold and the
        // snapshot itself, so rewrites stay amortized O(1) per commit
        // however large the state grows.
        let deltas_len = self.end - self.snapshot_end;
        if deltas_len > self.compact_bytes.max(self.snapshot_end) {
            match ManifestLog::rewrite(backend, state, self.compact_bytes) {
                Ok(log) => *self = log,
                Err(e) => {
                    // The batch is durable in the old file; retry next time.
                    tracing::warn!(error = %e, "manifest compaction failed; retrying at the next commit");
                    self.must_compact = true;
                }
            }
        }
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.end
    }
}

/// Version 2: the first frame is a snapshot, the rest delta batches.
fn replay(frames: &[(&[u8], usize)]) -> Result<(ManifestState, usize), StoreError> {
    let mut state: Option<ManifestState> = None;
    let mut end = HEADER;
    for (i, (payload, at)) in frames.iter().enumerate() {
        let (kind, json) = payload
            .split_first()
            .ok_or_else(|| corrupt("empty frame"))?;
        match (*kind, state.as_mut()) {
            (KIND_SNAPSHOT, _) => {
                let s = serde_json::from_slice(json)
                    .map_err(|e| corrupt(&format!("bad snapshot in frame {i}: {e}")))?;
                state = Some(s);
            }
            (KIND_DELTAS, Some(s)) => {
                let deltas: Vec<Delta> = serde_json::from_slice(json)
                    .map_err(|e| corrupt(&format!("bad delta batch in frame {i}: {e}")))?;
                for d in &deltas {
                    s.apply(d);
                }
            }
            (KIND_DELTAS, None) => return Err(corrupt("delta batch before any snapshot")),
            (k, _) => return Err(corrupt(&format!("unknown frame kind {k} in frame {i}"))),
        }
        end = *at;
    }
    let state = state.ok_or_else(|| corrupt("no valid snapshot"))?;
    Ok((state, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[test]
    fn a_version_1_manifest_is_read_and_upgraded() {
        let backend = MemoryBackend::new();
        let mut state = ManifestState::default();
        state.alloc_branch();
        state.alloc_layer();
        let json = serde_json::to_vec(&state).unwrap();
        // Version 1: header, then frames whose body is a bare snapshot.
        let mut bytes = header(1).to_vec();
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        bytes.extend_from_slice(&json);
        let file = backend.open(MANIFEST, true).unwrap();
        file.write_all_at(&bytes, 0).unwrap();
        let (_, got) = ManifestLog::open(&backend, 1 << 20).unwrap();
        assert_eq!((got.next_branch, got.next_layer), (1, 1));
        let version = backend
            .with_bytes(MANIFEST, |d| u32::from_le_bytes([d[8], d[9], d[10], d[11]]))
            .unwrap();
        assert_eq!(version, VERSION);
        let (_, again) = ManifestLog::open(&backend, 1 << 20).unwrap();
        assert_eq!((again.next_branch, again.next_layer), (1, 1));
    }
}
