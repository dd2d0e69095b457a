//! A handle for file I/O on one branch's contents: the file-table
//! operations and page reads/writes the FUSE layer calls. Owns nothing on
//! disk itself; every change goes to the timeline's open log.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::patch;
use crate::record::{self, MetaOp};
use crate::store::Shared;
use crate::timeline::Timeline;
use crate::tree::{nanos, now, PageLoc};
use crate::{
    BranchId, DirEntry, FileAttr, FileId, FileKind, PageNo, RenameFlags, SetAttr, StatFs,
    StoreError, PAGE_SIZE,
};

const PS: u64 = PAGE_SIZE as u64;
const NAME_MAX: usize = 255;

/// File I/O on a branch. Cheap to clone; all methods take `&self` and may run
/// concurrently. Bound to the contents the branch had when it was opened:
/// after a reset or drop of the branch it answers `Err(Stale)`.
#[derive(Clone)]
pub struct Branch {
    id: BranchId,
    tl: Arc<Timeline>,
    shared: Arc<Shared>,
}

fn check_name(name: &OsStr) -> Result<Vec<u8>, StoreError> {
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() > NAME_MAX
        || b.contains(&b'/')
        || b.contains(&0)
        || b == b"."
        || b == b".."
    {
        return Err(StoreError::InvalidArgument(format!(
            "bad file name {name:?}"
        )));
    }
    Ok(b.to_vec())
}

fn is_zero(page: &[u8]) -> bool {
    page.iter().all(|&b| b == 0)
}

impl Branch {
    pub(crate) fn new(id: BranchId, tl: Arc<Timeline>, shared: Arc<Shared>) -> Branch {
        Branch { id, tl, shared }
    }

    pub fn id(&self) -> BranchId {
        self.id
    }

    pub fn lookup(&self, dir: FileId, name: &OsStr) -> Result<FileAttr, StoreError> {
        self.tl.check_live()?;
        let tree = self.tl.tree.read();
        let id = tree.lookup(dir, name)?;
        tree.attr(id)
    }

    pub fn getattr(&self, id: FileId) -> Result<FileAttr, StoreError> {
        self.tl.check_live()?;
        self.tl.tree.read().attr(id)
    }

    /// Changes attributes. A smaller size truncates (the page holding the
    /// new end keeps zeros past it, later pages are forgotten, so a later
    /// extend reads zeros); a larger one extends with zeros.
    pub fn setattr(&self, id: FileId, change: SetAttr) -> Result<FileAttr, StoreError> {
        self.tl.check_live()?;
        let mut w = self.tl.writer.lock();
        let (kind, old_size) = {
            let t = self.tl.tree.read();
            let i = t.inode(id)?;
            (i.kind, i.size)
        };
        if change.size.is_some() && kind != FileKind::File {
            return Err(if kind == FileKind::Directory {
                StoreError::IsADirectory
            } else {
                StoreError::InvalidArgument("size of a symlink".into())
            });
        }
        let op = MetaOp::SetAttr {
            id,
            size: change.size,
            mode: change.mode,
            uid: change.uid,
            gid: change.gid,
            atime: change.atime.map(nanos),
            mtime: change.mtime.map(nanos),
            time: now(),
        };
        // Truncation inside a stored page: the page's surviving prefix goes
        // into the same record as the new size.
        let tail = match change.size {
            Some(s) if s < old_size && s % PS != 0 => {
                let page = PageNo(s / PS);
                let loc = self.tl.tree.read().page(id, page).cloned();
                match loc {
                    Some(loc) => {
                        let mut scratch = std::mem::take(&mut w.scratch);
                        let res = self.shared.counters.check(loc.layer.read_page(
                            loc.offset,
                            id,
                            page,
                            0,
                            &mut scratch,
                        ));
                        scratch[(s % PS) as usize..].fill(0);
                        let keep = !is_zero(&scratch);
                        w.scratch = scratch;
                        res?;
                        keep.then_some(page)
                    }
                    None => None,
                }
            }
            _ => None,
        };
        match tail {
            Some(page) => {
                self.tl.truncate_with_page(&mut w, op, id, page)?;
                self.shared.counters.write(1, 0);
            }
            None => {
                self.tl.meta(&mut w, op)?;
            }
        }
        drop(w);
        self.shared.maybe_seal(&self.tl);
        self.tl.tree.read().attr(id)
    }

    /// O_CREAT|O_EXCL semantics: `Err(AlreadyExists)` if the name exists.
    pub fn create(
        &self,
        dir: FileId,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<FileAttr, StoreError> {
        if kind == FileKind::Symlink {
            return Err(StoreError::InvalidArgument(
                "use symlink() for symlinks".into(),
            ));
        }
        self.create_inode(dir, name, kind, mode, uid, gid, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_inode(
        &self,
        dir: FileId,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
        uid: u32,
        gid: u32,
        target: Option<Vec<u8>>,
    ) -> Result<FileAttr, StoreError> {
        self.tl.check_live()?;
        let name = check_name(name)?;
        let mut w = self.tl.writer.lock();
        let id = FileId(self.tl.tree.read().next_id);
        let op = MetaOp::Create {
            parent: dir,
            name,
            id,
            kind,
            mode,
            uid,
            gid,
            time: now(),
            target,
        };
        self.tl.meta(&mut w, op)?;
        drop(w);
        self.tl.tree.read().attr(id)
    }

    pub fn symlink(
        &self,
        dir: FileId,
        name: &OsStr,
        target: &Path,
        uid: u32,
        gid: u32,
    ) -> Result<FileAttr, StoreError> {
        let target = target.as_os_str().as_bytes().to_vec();
        self.create_inode(dir, name, FileKind::Symlink, 0o777, uid, gid, Some(target))
    }

    pub fn readlink(&self, id: FileId) -> Result<PathBuf, StoreError> {
        self.tl.check_live()?;
        self.tl.tree.read().readlink(id)
    }

    /// Removes the name. A file stays readable and writable by id (nlink 0,
    /// an orphan) until `release_orphan`; returns its id.
    pub fn unlink(&self, dir: FileId, name: &OsStr) -> Result<FileId, StoreError> {
        self.tl.check_live()?;
        let mut w = self.tl.writer.lock();
        let id = self.tl.tree.read().lookup(dir, name)?;
        let op = MetaOp::Unlink {
            parent: dir,
            name: name.as_bytes().to_vec(),
            time: now(),
        };
        self.tl.meta(&mut w, op)?;
        Ok(id)
    }

    pub fn rmdir(&self, dir: FileId, name: &OsStr) -> Result<(), StoreError> {
        self.tl.check_live()?;
        let mut w = self.tl.writer.lock();
        let op = MetaOp::Rmdir {
            parent: dir,
            name: name.as_bytes().to_vec(),
            time: now(),
        };
        self.tl.meta(&mut w, op).map(|_| ())
    }

    /// Atomic; replaces an existing target (file over file, empty dir over
    /// dir) and returns it; a replaced file becomes an orphan like unlink's.
    pub fn rename(
        &self,
        dir: FileId,
        name: &OsStr,
        new_dir: FileId,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<Option<FileId>, StoreError> {
        self.tl.check_live()?;
        let new_name = check_name(new_name)?;
        let mut w = self.tl.writer.lock();
        let op = MetaOp::Rename {
            parent: dir,
            name: name.as_bytes().to_vec(),
            new_parent: new_dir,
            new_name,
            no_replace: flags.no_replace,
            time: now(),
        };
        self.tl.meta(&mut w, op)
    }

    /// Entries without `.` and `..`, sorted by name.
    pub fn readdir(&self, dir: FileId) -> Result<Vec<DirEntry>, StoreError> {
        self.tl.check_live()?;
        self.tl.tree.read().readdir(dir)
    }

    /// Short read at end of file; holes and never-written pages read as
    /// zeros. Takes no lock while reading page data.
    pub fn read(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        self.tl.check_live()?;
        let (size, pages) = {
            let t = self.tl.tree.read();
            let i = t.inode(id)?;
            if i.kind == FileKind::Directory {
                return Err(StoreError::IsADirectory);
            }
            (i.size, t.pages.get(&id).cloned())
        };
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let n = (size - offset).min(buf.len() as u64) as usize;
        let mut done = 0usize;
        let mut pages_read = 0u64;
        while done < n {
            let pos = offset + done as u64;
            let page = PageNo(pos / PS);
            let from = (pos % PS) as usize;
            let len = (PAGE_SIZE - from).min(n - done);
            let loc = pages.as_ref().and_then(|m| m.get(&page));
            let res = Timeline::read_page_from(loc, id, page, from, &mut buf[done..done + len]);
            self.shared.counters.check(res)?;
            done += len;
            pages_read += 1;
        }
        self.shared.counters.read(pages_read, n as u64);
        Ok(n)
    }

    /// Any offset and length; extends the size; writes past the end leave
    /// zero holes. Partial pages are read, modified and written whole.
    pub fn write(&self, id: FileId, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        self.tl.check_live()?;
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| StoreError::InvalidArgument("write past the largest offset".into()))?;
        let mut guard = self.tl.writer.lock();
        let w = &mut *guard;
        let size = {
            let t = self.tl.tree.read();
            let i = t.inode(id)?;
            match i.kind {
                FileKind::File => i.size,
                FileKind::Directory => return Err(StoreError::IsADirectory),
                FileKind::Symlink => {
                    return Err(StoreError::InvalidArgument("write to a symlink".into()))
                }
            }
        };
        if data.is_empty() {
            return Ok(());
        }
        let t_now = now();
        let extend = (end > size).then_some(MetaOp::Extend {
            id,
            size: end,
            time: t_now,
        });
        let start_len = w.buf.len();
        debug_assert_eq!(start_len, 0);
        let extend_body = extend.as_ref().map(record::meta_body);
        if let Some(body) = &extend_body {
            record::encode_meta(&mut w.buf, body);
        }
        // (page, record offset or None for a zero record)
        let mut pending = std::mem::take(&mut w.pending);
        pending.clear();
        let mut scratch = std::mem::take(&mut w.scratch);
        let (first, last) = (offset / PS, (end - 1) / PS);
        let res = (|| -> Result<(), StoreError> {
            for p in first..=last {
                let pstart = p * PS;
                let lo = (offset.max(pstart) - pstart) as usize;
                let hi = (end.min(pstart + PS) - pstart) as usize;
                let src = &data[(pstart + lo as u64 - offset) as usize
                    ..(pstart + hi as u64 - offset) as usize];
                let page = PageNo(p);
                let whole = lo == 0 && hi == PAGE_SIZE;
                // The page's current record, when the write needs it: to
                // fill in a partial page, or as a patch's base.
                let loc = (!whole || (w.patches && w.recent.holds(id, page)))
                    .then(|| self.tl.tree.read().page(id, page).cloned())
                    .flatten();
                let bytes: &[u8] = if whole {
                    src
                } else {
                    Timeline::read_page_from(loc.as_ref(), id, page, 0, &mut scratch)?;
                    scratch[lo..hi].copy_from_slice(src);
                    &scratch
                };
                let at = w.end + w.buf.len() as u64;
                if is_zero(bytes) {
                    if self.tl.tree.read().page(id, page).is_some() {
                        record::encode_zero(&mut w.buf, id, page);
                        pending.push((page, None));
                    }
                } else if w.patches {
                    let in_log = loc
                        .filter(|l| Arc::ptr_eq(&l.layer, &w.log.layer))
                        .map(|l| l.offset);
                    let remember = patch::worth_remembering(first, last, p);
                    w.recent
                        .encode(&mut w.buf, id, page, bytes, in_log, at, remember);
                    pending.push((page, Some(at)));
                } else {
                    record::encode_page(&mut w.buf, id, page, bytes);
                    pending.push((page, Some(at)));
                }
            }
            Ok(())
        })();
        w.scratch = scratch;
        let res = self.shared.counters.check(res);
        if let Err(e) = res.and_then(|()| w.flush_buf()) {
            w.buf.clear();
            // Offsets it remembered will be written again (see `patch`).
            w.recent.clear();
            return Err(e);
        }
        {
            let mut t = self.tl.tree.write();
            if let Some(op) = &extend {
                t.apply(op)?;
            } else if let Some(inode) = t.inodes.get_mut(&id) {
                inode.mtime = t_now;
            }
            for &(page, off) in &pending {
                let loc = off.map(|offset| PageLoc {
                    layer: w.log.layer.clone(),
                    offset,
                });
                t.set_page(id, page, loc);
            }
        }
        w.write_ahead();
        if let (Some(op), Some(body)) = (extend, extend_body) {
            w.note_meta(body, &op);
        }
        for &(page, off) in &pending {
            w.note_page(id, page, off);
        }
        self.shared
            .counters
            .write(pending.len() as u64, data.len() as u64);
        w.pending = pending;
        let over = w.end > self.shared.seal_threshold();
        drop(guard);
        if over {
            self.shared.maybe_seal(&self.tl);
        }
        Ok(())
    }

    /// Drops an orphan's pages for good. A no-op for an inode that still
    /// has a name or is already gone.
    pub fn release_orphan(&self, id: FileId) -> Result<(), StoreError> {
        self.tl.check_live()?;
        let mut w = self.tl.writer.lock();
        if !self.tl.tree.read().orphans.contains(&id) {
            return Ok(());
        }
        self.tl.meta(&mut w, MetaOp::DropOrphan { id }).map(|_| ())
    }

    /// When this returns Ok, every write and metadata change made to this
    /// branch before the call survives a crash. Concurrent calls share one
    /// device flush.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.tl.check_live()?;
        let start = std::time::Instant::now();
        let res = self.tl.sync();
        self.shared.counters.sync(start.elapsed());
        res
    }

    pub fn statfs(&self) -> StatFs {
        let used = self.shared.total_bytes() / PS;
        let files = self.tl.tree.read().inodes.len() as u64;
        let blocks = 1u64 << 32;
        StatFs {
            block_size: PAGE_SIZE as u32,
            blocks,
            blocks_free: blocks.saturating_sub(used),
            blocks_available: blocks.saturating_sub(used),
            files: files + (1 << 24),
            files_free: 1 << 24,
            name_max: NAME_MAX as u32,
        }
    }
}
