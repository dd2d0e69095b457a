//! The manifest: the file `MANIFEST`, which says which branches exist, which
//! timeline each points at, and each timeline's ancestry and layers.
//!
//! Layout: a 16-byte header (`OSHMANIF`, u32 format version, u32 zero), then
//! frames `u32 len | u32 crc32(body) | body`, each body a JSON snapshot of the
//! whole [`ManifestState`]. The last valid frame wins; a torn tail is cut off
//! at open. Every change appends a frame and fdatasyncs before the call
//! returns. Once the file passes a size threshold it is rewritten: the
//! current state goes into `MANIFEST.tmp`, which is fsynced and renamed over
//! `MANIFEST`, and the directory is fsynced.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendFile};
use crate::{BranchId, LayerId, StoreError, TimelineId};

pub(crate) const MANIFEST: &str = "MANIFEST";
const TMP: &str = "MANIFEST.tmp";
const MAGIC: &[u8; 8] = b"OSHMANIF";
const VERSION: u32 = 1;
const HEADER: u64 = 16;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ManifestState {
    pub next_branch: u64,
    pub next_timeline: u64,
    pub next_layer: u64,
    pub branches: BTreeMap<String, BranchRecord>,
    pub timelines: BTreeMap<TimelineId, TimelineRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BranchRecord {
    pub id: BranchId,
    pub parent: Option<BranchId>,
    pub timeline: TimelineId,
    pub created_at: u64,
    pub reset_at: Option<u64>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TimelineRecord {
    /// The timeline this one forked from, and how many of its sealed
    /// layers it reads.
    pub ancestor: Option<(TimelineId, u64)>,
    /// Sealed layers, oldest first.
    pub layers: Vec<LayerId>,
    /// The open log; `None` once the timeline is dead and its log reclaimed.
    pub open: Option<LayerId>,
    /// Creation time of the root directory (root timelines).
    pub root_time: u64,
}

impl ManifestState {
    pub fn alloc_layer(&mut self) -> LayerId {
        self.next_layer += 1;
        LayerId(self.next_layer)
    }

    pub fn alloc_timeline(&mut self) -> TimelineId {
        self.next_timeline += 1;
        TimelineId(self.next_timeline)
    }

    pub fn alloc_branch(&mut self) -> BranchId {
        self.next_branch += 1;
        BranchId(self.next_branch)
    }

    pub fn branch_name(&self, id: BranchId) -> Option<&str> {
        self.branches
            .iter()
            .find(|(_, b)| b.id == id)
            .map(|(n, _)| n.as_str())
    }
}

/// The open manifest file.
pub(crate) struct ManifestLog {
    file: Arc<dyn BackendFile>,
    end: u64,
    compact_bytes: u64,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn header() -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

fn encode(state: &ManifestState) -> Vec<u8> {
    // Plain data with string keys: serializing cannot fail.
    serde_json::to_vec(state).unwrap_or_default()
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
        let corrupt = |why: &str| StoreError::corrupted(format!("{MANIFEST}: {why}"));
        if bytes.len() < HEADER as usize || &bytes[0..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != VERSION {
            return Err(corrupt(&format!("unsupported format version {version}")));
        }
        let mut at = HEADER as usize;
        let mut last = None;
        while let Some(h) = bytes.get(at..at + 8) {
            let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let Some(body) = bytes.get(at + 8..at + 8 + n) else {
                break;
            };
            if crc32fast::hash(body) != crc {
                break;
            }
            last = Some(body);
            at += 8 + n;
        }
        let state: ManifestState = match last {
            Some(body) => serde_json::from_slice(body)
                .map_err(|e| corrupt(&format!("bad manifest record: {e}")))?,
            None => return Err(corrupt("no valid record")),
        };
        if (at as u64) < len {
            tracing::warn!(offset = at, len, "cutting torn tail of the manifest");
            file.set_len(at as u64)?;
            file.sync_data()?;
        }
        Ok((
            ManifestLog {
                file,
                end: at as u64,
                compact_bytes,
            },
            state,
        ))
    }

    fn rewrite(
        backend: &dyn Backend,
        state: &ManifestState,
        compact_bytes: u64,
    ) -> Result<ManifestLog, StoreError> {
        let _ = backend.remove(TMP);
        let file = backend.open(TMP, true)?;
        let mut bytes = header().to_vec();
        bytes.extend_from_slice(&frame(&encode(state)));
        file.write_all_at(&bytes, 0)?;
        file.sync_data()?;
        backend.rename(TMP, MANIFEST)?;
        backend.sync_dir()?;
        Ok(ManifestLog {
            file,
            end: bytes.len() as u64,
            compact_bytes,
        })
    }

    /// Makes `state` the durable manifest.
    pub fn commit(
        &mut self,
        backend: &dyn Backend,
        state: &ManifestState,
    ) -> Result<(), StoreError> {
        if self.end > self.compact_bytes {
            *self = ManifestLog::rewrite(backend, state, self.compact_bytes)?;
            return Ok(());
        }
        let rec = frame(&encode(state));
        self.file.write_all_at(&rec, self.end)?;
        self.file.sync_data()?;
        self.end += rec.len() as u64;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.end
    }
}
