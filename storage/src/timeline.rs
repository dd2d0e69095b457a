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
use crate::patch::RecentPages;
use crate::record::{self, MetaOp};
use crate::tree::{PageLoc, Tree};
use crate::{FileId, PageNo, StoreError, TimelineId};

/// What zero-filling writes at a time. Static, so no fill allocates and
/// zeroes a buffer of its own (on Linux its pages are the kernel's one zero
/// page, which stays in the CPU's cache); small, because a buffered write
/// holds the file's inode lock for its whole length and the appends of
/// commits wait on that lock: at 64 KiB an append waits tens of
/// microseconds behind a fill, not the better part of a millisecond.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Records appended between two starts of their writeback (see
/// [`Writer::write_ahead`]): PostgreSQL's `checkpoint_flush_after`.
const WRITE_AHEAD_BYTES: u64 = 256 << 10;

/// The open log's durability state, shared by concurrent `sync` callers,
/// and its zero-filled tail.
pub(crate) struct OpenLog {
    pub layer: Arc<Layer>,
    /// A new log's name is made durable by the first flush, not at creation
    /// (keeps branch creation to one or two device flushes).
    backend: Arc<dyn Backend>,
    name_durable: AtomicBool,
    written: AtomicU64,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    /// End of the bytes known written in the file (records or zeros).
    /// Changed only under `tail`; appends that stay below it need no lock.
    zeroed: AtomicU64,
    /// Taken by zero-filling, by appends past `zeroed`, and by sealing.
    tail: Mutex<Tail>,
    /// Bytes zero-filled at a time; 0: never.
    zero_chunk: u64,
    /// Zero-fill on the syncing thread instead of a background one.
    fill_inline: bool,
    /// A zero-fill is due or running (at most one at a time).
    filling: AtomicBool,
    /// End of the records whose cached pages were released (written only
    /// by the fill, which runs once at a time).
    released: AtomicU64,
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    flushing: bool,
    failed: bool,
}

struct Tail {
    /// Sealing has begun: no more zeros may be written.
    closed: bool,
}

impl OpenLog {
    /// A log whose records end at `end` and whose file holds written bytes
    /// (records, then zeros) up to `zeroed`.
    pub fn new(
        layer: Arc<Layer>,
        backend: Arc<dyn Backend>,
        end: u64,
        zeroed: u64,
        synced: bool,
        zero_chunk: u64,
        fill_inline: bool,
    ) -> OpenLog {
        layer.set_open_end(end);
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
            zeroed: AtomicU64::new(zeroed.max(end)),
            tail: Mutex::new(Tail { closed: false }),
            zero_chunk,
            fill_inline,
            filling: AtomicBool::new(false),
            released: AtomicU64::new(0),
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

    /// Writes `data` at `at`, the log's end, and publishes the new end.
    /// Below the zeroed end no lock is needed (zero-filling only writes
    /// past it); past it, the write waits for a fill in progress.
    fn append(&self, data: &[u8], at: u64) -> std::io::Result<u64> {
        let end = at + data.len() as u64;
        let _tail = (end > self.zeroed.load(Ordering::Acquire)).then(|| self.tail.lock());
        self.file().write_all_at(data, at)?;
        self.written.store(end, Ordering::Release);
        self.layer.set_open_end(end);
        Ok(end)
    }

    /// Starts writing records `[from, to)` to the device without waiting
    /// (see [`Writer::write_ahead`]).
    fn start_writeback(&self, from: u64, to: u64) {
        if let Err(e) = self.file().start_writeback(from, to - from) {
            tracing::debug!(layer = %self.layer.name, error = %e, "starting writeback of the open log");
        }
    }

    /// Stops zero-filling for good (sealing is about to write the tail
    /// sections and cut the file at their end).
    pub fn close_tail(&self) {
        self.tail.lock().closed = true;
    }

    /// Makes every byte written before the call durable. Concurrent callers
    /// share one flush. After a failed flush every later sync fails too:
    /// what the kernel dropped cannot be flushed again. The caller that
    /// flushed then has the log zero-filled ahead of its end if it came
    /// near the zeroed end: on a background thread, so that the `sync`
    /// (a commit, for PostgreSQL) does not wait for it, unless the store
    /// was opened with `log_zero_fill_inline`.
    pub fn sync(self: &Arc<Self>) -> Result<(), StoreError> {
        if self.sync_inner()? && self.fill_due() && !self.filling.swap(true, Ordering::AcqRel) {
            if self.fill_inline {
                self.zero_ahead();
            } else {
                let log = self.clone();
                let spawned = std::thread::Builder::new()
                    .name("log-zero-fill".into())
                    .spawn(move || log.zero_ahead());
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "no thread for zero-filling; filling inline");
                    self.zero_ahead();
                }
            }
        }
        Ok(())
    }

    /// `Ok(true)` if this caller ran a flush.
    fn sync_inner(&self) -> Result<bool, StoreError> {
        let target = self.written.load(Ordering::Acquire);
        let mut st = self.sync.lock();
        let mut flushed = false;
        loop {
            if st.failed {
                return Err(StoreError::Io(std::io::Error::other(
                    "an earlier flush of this log failed",
                )));
            }
            if st.synced >= target {
                return Ok(flushed);
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
                Ok(()) => {
                    st.synced = st.synced.max(upto);
                    flushed = true;
                }
                Err(e) => {
                    st.failed = true;
                    tracing::error!(layer = %self.layer.name, error = %e, "flush of open log failed");
                }
            }
            self.synced_cv.notify_all();
        }
    }

    /// The log holds records and its end is within half a chunk of the
    /// zeroed end.
    fn fill_due(&self) -> bool {
        let written = self.written.load(Ordering::Acquire);
        self.zero_chunk > 0
            && written > crate::layer::HEADER_LEN
            && written + self.zero_chunk / 2 > self.zeroed.load(Ordering::Acquire)
    }

    /// Zero-fills the next chunk past the zeroed end and flushes it, then
    /// lets the next fill be scheduled. Appends below the zeroed end go on
    /// meanwhile.
    fn zero_ahead(&self) {
        if let Err(e) = self.fill() {
            tracing::warn!(layer = %self.layer.name, error = %e, "zero-filling the open log failed");
        }
        self.filling.store(false, Ordering::Release);
    }

    fn fill(&self) -> std::io::Result<()> {
        // `written` is read under the tail lock: an append past the zeroed
        // end holds it, so no record lies past `start` while zeros go there.
        // Records below `written` are in the file before the flush below.
        let written = {
            let tail = self.tail.lock();
            if tail.closed {
                return Ok(());
            }
            let written = self.written.load(Ordering::Acquire);
            let start = self.zeroed.load(Ordering::Acquire).max(written);
            let end = start + self.zero_chunk;
            let mut at = start;
            while at < end {
                let n = (end - at).min(ZEROS.len() as u64);
                self.file().write_all_at(&ZEROS[..n as usize], at)?;
                at += n;
            }
            self.zeroed.store(end, Ordering::Release);
            written
        };
        // The new length becomes durable here, once, instead of in the
        // `sync`s that will write over these zeros. A failure here may have
        // dropped appended records too: the log fails like a failed flush.
        if let Err(e) = self.file().sync_data() {
            self.sync.lock().failed = true;
            return Err(e);
        }
        self.release_durable(written);
        Ok(())
    }

    /// Lets the OS free the cached pages of records below `durable`, all
    /// flushed, except the last chunk's worth. They are a second copy: a
    /// mount serves its own writes from the kernel's cache of the mount,
    /// and reads that miss it read the device. Kept, the log's cache only
    /// grows, and every new page a zero-fill writes is fresh memory, which
    /// in a virtual machine can cost several times the copy itself (see
    /// docs/benchmarks.md, "Open log pages released"); released, the next
    /// fill reuses the pages just freed.
    ///
    /// The OS frees only whole folios (up to 2 MiB, aligned to their size)
    /// inside the range, so each call starts again at the 2 MiB boundary
    /// below where the last one stopped: the folio it cut through goes now.
    fn release_durable(&self, durable: u64) {
        const LARGEST_FOLIO: u64 = 2 << 20;
        let from = self.released.load(Ordering::Acquire) & !(LARGEST_FOLIO - 1);
        let to = durable.saturating_sub(self.zero_chunk);
        if to <= self.released.load(Ordering::Acquire) {
            return;
        }
        match self.file().release_cached(from, to - from) {
            Ok(()) => self.released.store(to, Ordering::Release),
            Err(e) => {
                tracing::debug!(layer = %self.layer.name, error = %e, "releasing cached log pages")
            }
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
    /// Whether this log may hold patch records (its format version has
    /// them), and the page content they are made against.
    pub patches: bool,
    pub recent: RecentPages,
    /// End of the records whose writeback was started (`write_ahead`).
    written_ahead: u64,
}

impl Writer {
    pub fn new(log: Arc<OpenLog>, end: u64, patches: bool) -> Writer {
        Writer {
            patches,
            recent: RecentPages::default(),
            written_ahead: end,
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
        self.end = self.log.append(&self.buf, self.end)?;
        if self.buf.capacity() > 8 << 20 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Ok(())
    }

    /// Once [`WRITE_AHEAD_BYTES`] of records were appended since the last
    /// time, starts their writeback to the device. The kernel writes a
    /// mount's dirty data pages back in bursts (every few seconds, all that
    /// expired), and without this the next commit's flush would write a
    /// burst's records itself, with the commit waiting; started here, the
    /// device works on them while commits go on, the way PostgreSQL spreads
    /// its checkpoint writes (`checkpoint_flush_after`).
    pub fn write_ahead(&mut self) {
        if self.end >= self.written_ahead + WRITE_AHEAD_BYTES {
            self.log.start_writeback(self.written_ahead, self.end);
            self.written_ahead = self.end;
        }
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
