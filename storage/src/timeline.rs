//! A timeline: the in-memory tree of one chain of layers plus its open log,
//! which it owns on disk (the one `layer-*` file not yet sealed). Appends
//! go through one per-timeline lock; reads take the tree's read lock only
//! long enough to copy a page location, and read page data without locks.
//! `sync` implements group commit over the open log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::backend::{Backend, BackendFile};
use crate::layer::{Layer, ZERO_PAGE};
use crate::record::{self, MetaOp};
use crate::tree::{PageLoc, Tree};
use crate::{FileId, PageNo, StoreError, TimelineId};

/// The open log's durability state, shared by concurrent `sync` callers.
pub(crate) struct OpenLog {
    pub layer: Arc<Layer>,
    /// A new log's name is made durable by the first flush, not at creation
    /// (keeps branch creation to one or two device flushes).
    backend: Arc<dyn Backend>,
    name_durable: AtomicBool,
    written: AtomicU64,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    flushing: bool,
    failed: bool,
}

impl OpenLog {
    pub fn new(layer: Arc<Layer>, backend: Arc<dyn Backend>, end: u64, synced: bool) -> OpenLog {
        OpenLog {
            layer,
            backend,
            name_durable: AtomicBool::new(synced),
            written: AtomicU64::new(end),
            sync: Mutex::new(SyncState {
                synced: if synced { end } else { 0 },
                ..Default::default()
            }),
            synced_cv: Condvar::new(),
        }
    }

    fn file(&self) -> &Arc<dyn BackendFile> {
        &self.layer.file
    }

    /// Makes the log's bytes and its name durable.
    pub fn flush(&self) -> std::io::Result<()> {
        self.file().sync_data()?;
        if !self.name_durable.load(Ordering::Acquire) {
            self.backend.sync_dir()?;
            self.name_durable.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Makes every byte written before the call durable. Concurrent callers
    /// share one flush. After a failed flush every later sync fails too:
    /// what the kernel dropped cannot be flushed again.
    pub fn sync(&self) -> Result<(), StoreError> {
        let target = self.written.load(Ordering::Acquire);
        let mut st = self.sync.lock();
        loop {
            if st.failed {
                return Err(StoreError::Io(std::io::Error::other(
                    "an earlier flush of this log failed",
                )));
            }
            if st.synced >= target {
                return Ok(());
            }
            if st.flushing {
                self.synced_cv.wait(&mut st);
                continue;
            }
            st.flushing = true;
            let upto = self.written.load(Ordering::Acquire);
            drop(st);
            let res = self.flush();
            st = self.sync.lock();
            st.flushing = false;
            match res {
                Ok(()) => st.synced = st.synced.max(upto),
                Err(e) => {
                    st.failed = true;
                    tracing::error!(layer = %self.layer.name, error = %e, "flush of open log failed");
                }
            }
            self.synced_cv.notify_all();
        }
    }
}

/// The append side of a timeline; held under the append lock.
pub(crate) struct Writer {
    pub log: Arc<OpenLog>,
    pub end: u64,
    pub records: u64,
    /// Metadata op bodies of this log, in order (for the sealed section).
    pub meta: Vec<Vec<u8>>,
    /// The log's net page map (for the sealed index).
    pub index: BTreeMap<(FileId, PageNo), u64>,
    pub buf: Vec<u8>,
    pub scratch: Box<[u8]>,
    /// Pages a write is about to index (reused, not reallocated per call).
    pub pending: Vec<(PageNo, Option<u64>)>,
}

impl Writer {
    pub fn new(log: Arc<OpenLog>, end: u64) -> Writer {
        Writer {
            log,
            end,
            records: 0,
            meta: Vec::new(),
            index: BTreeMap::new(),
            buf: Vec::new(),
            scratch: vec![0u8; crate::PAGE_SIZE].into_boxed_slice(),
            pending: Vec::new(),
        }
    }

    /// Appends `self.buf` to the log.
    pub fn flush_buf(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.log.file().write_all_at(&self.buf, self.end)?;
        self.end += self.buf.len() as u64;
        self.log.written.store(self.end, Ordering::Release);
        if self.buf.capacity() > 8 << 20 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Ok(())
    }

    /// Keeps the sealed-index bookkeeping in step with a metadata op.
    pub fn note_meta(&mut self, body: Vec<u8>, op: &MetaOp) {
        match op {
            MetaOp::SetAttr {
                id, size: Some(s), ..
            } => {
                let first = crate::tree::pages_for(*s);
                let doomed: Vec<_> = self
                    .index
                    .range((*id, PageNo(first))..=(*id, PageNo(u64::MAX)))
                    .map(|(k, _)| *k)
                    .collect();
                for k in doomed {
                    self.index.remove(&k);
                }
            }
            MetaOp::DropOrphan { id } => {
                let doomed: Vec<_> = self
                    .index
                    .range((*id, PageNo(0))..=(*id, PageNo(u64::MAX)))
                    .map(|(k, _)| *k)
                    .collect();
                for k in doomed {
                    self.index.remove(&k);
                }
            }
            _ => {}
        }
        self.meta.push(body);
        self.records += 1;
    }

    pub fn note_page(&mut self, file: FileId, page: PageNo, offset: Option<u64>) {
        self.index.insert((file, page), offset.unwrap_or(ZERO_PAGE));
        self.records += 1;
    }
}

/// One timeline in memory.
pub(crate) struct Timeline {
    pub id: TimelineId,
    pub tree: RwLock<Tree>,
    pub writer: Mutex<Writer>,
    /// Set when no branch name points here any more: handles are stale.
    pub retired: AtomicBool,
}

impl Timeline {
    pub fn new(id: TimelineId, tree: Tree, writer: Writer) -> Timeline {
        Timeline {
            id,
            tree: RwLock::new(tree),
            writer: Mutex::new(writer),
            retired: AtomicBool::new(false),
        }
    }

    pub fn check_live(&self) -> Result<(), StoreError> {
        if self.retired.load(Ordering::Acquire) {
            return Err(StoreError::Stale);
        }
        Ok(())
    }

    /// Logs and applies one metadata op. The op is validated against a
    /// clone of the tree first, so a refused op writes nothing.
    pub fn meta(&self, w: &mut Writer, op: MetaOp) -> Result<Option<FileId>, StoreError> {
        let mut next = self.tree.read().clone();
        let cut = next.cut_boundary(&op);
        let out = next.apply(&op)?;
        let body = record::meta_body(&op);
        record::encode_meta(&mut w.buf, &body);
        if let Err(e) = w.flush_buf() {
            w.buf.clear();
            return Err(e);
        }
        w.note_meta(body, &op);
        if let Some((file, page)) = cut {
            // The page holding the new end reads as zeros from here on.
            w.note_page(file, page, None);
        }
        *self.tree.write() = next;
        Ok(out)
    }

    /// Logs and applies a truncation inside a page as one record that also
    /// carries that page (`w.scratch`, zeros past the new end), so no crash
    /// or failed write can leave the cut bytes readable.
    pub fn truncate_with_page(
        &self,
        w: &mut Writer,
        op: MetaOp,
        file: FileId,
        page: PageNo,
    ) -> Result<(), StoreError> {
        let mut next = self.tree.read().clone();
        next.apply(&op)?;
        let body = record::meta_body(&op);
        let off = w.end;
        {
            let Writer { buf, scratch, .. } = &mut *w;
            record::encode_trunc(buf, file, page, scratch, &body);
        }
        if let Err(e) = w.flush_buf() {
            w.buf.clear();
            return Err(e);
        }
        next.set_page(
            file,
            page,
            Some(PageLoc {
                layer: w.log.layer.clone(),
                offset: off,
            }),
        );
        w.note_meta(body, &op);
        w.note_page(file, page, Some(off));
        *self.tree.write() = next;
        Ok(())
    }

    pub fn sync(&self) -> Result<(), StoreError> {
        let log = self.writer.lock().log.clone();
        log.sync()
    }

    /// Reads `out.len()` bytes of page `page` of `file` starting at byte
    /// `from` within the page; unstored pages read as zeros.
    pub fn read_page_from(
        loc: Option<&PageLoc>,
        file: FileId,
        page: PageNo,
        from: usize,
        out: &mut [u8],
    ) -> Result<(), StoreError> {
        match loc {
            None => {
                out.fill(0);
                Ok(())
            }
            Some(loc) => loc.layer.read_page(loc.offset, file, page, from, out),
        }
    }
}
