//! The FUSE operations: each kernel request becomes calls on one
//! `offshoot_storage::Branch`.
//!
//! FUSE inode numbers are the store's `FileId`s (the root is 1 in both), so
//! they are distinct and stable for the life of an inode. Requests arrive on
//! several threads at once (see `mount`); every method here takes `&self`
//! and the store handles concurrency, so a `fsync` waiting for the disk
//! holds one thread while reads and writes of other backends go on.
//!
//! What each answer promises, and why:
//! - `fsync`/`fsyncdir` really call `Branch::sync()` and fail only if it
//!   fails. Answering ENOSYS would make the kernel treat every later fsync
//!   as a success without asking (silent loss).
//! - A file opened with `O_DSYNC` or `O_SYNC` is opened with direct I/O,
//!   and a write with those flags is answered only once `Branch::sync()`
//!   has made it durable: PostgreSQL's WAL write reaches us as it made it,
//!   and a commit is one round trip (see `dsync`).
//! - Extended attributes are answered ENOSYS once, so the kernel stops
//!   asking for `security.capability` before each write.
//! - Unlinked inodes stay readable through open files; their data goes at
//!   the last `forget`/`release` (see `inodes`).
//! - With the writeback cache the kernel owns file size and mtime while it
//!   holds dirty pages; writes only ever extend the store's size, and size
//!   changes come as `setattr` after the kernel has waited for in-flight
//!   writes, so the two views agree once the cache is written back.

mod attr;
mod caps;
mod dirs;
mod dsync;
mod inodes;

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use offshoot_storage::{Branch, FileAttr, FileId, FileKind, SetAttr, StoreError};
use parking_lot::RwLock;

pub use caps::{Negotiated, MAX_REQUEST};

use attr::{errno, file_id, file_type, fuse_attr, ino, TTL};
use dirs::{DirHandles, Entry};
use inodes::{Inodes, Verdict};

use crate::metrics::Counters;

const GENERATION: Generation = Generation(0);

thread_local! {
    /// Per-thread read buffer, so a read allocates nothing.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One mounted branch, as a FUSE session sees it: a cheap handle on the
/// branch's shared state, so the `/dev/fuse` session, the io_uring queues
/// and the session that serves their rarer requests (see `uring`) all act
/// on one set of inodes, handles and counters.
#[derive(Clone)]
pub(crate) struct PageFs {
    core: Arc<Core>,
}

impl std::ops::Deref for PageFs {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

/// The state of one mounted branch, shared by every session serving it.
pub(crate) struct Core {
    branch: Branch,
    inodes: Inodes,
    dirs: DirHandles,
    /// Writes take it shared; `fallocate` takes it exclusively so that
    /// "extend to at least N" cannot race with a write that extends further.
    size_lock: RwLock<()>,
    negotiated: Arc<OnceLock<Negotiated>>,
    /// Set once the session exists; invalidates cached pages (`dsync`).
    notifier: Arc<OnceLock<Notifier>>,
    counters: Arc<Counters>,
    /// Ask the kernel for FUSE over io_uring at `FUSE_INIT`.
    want_uring: bool,
    /// What the kernel offered at the first `FUSE_INIT`, for the session
    /// that starts after it (see `uring::cold`).
    offered: OnceLock<Offered>,
}

/// What the kernel offered at `FUSE_INIT`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offered {
    pub(crate) capabilities: fuser::InitFlags,
    pub(crate) abi: fuser::Version,
}

impl PageFs {
    pub(crate) fn new(
        branch: Branch,
        negotiated: Arc<OnceLock<Negotiated>>,
        notifier: Arc<OnceLock<Notifier>>,
        counters: Arc<Counters>,
        want_uring: bool,
    ) -> PageFs {
        PageFs {
            core: Arc::new(Core {
                branch,
                inodes: Inodes::default(),
                dirs: DirHandles::default(),
                size_lock: RwLock::new(()),
                negotiated,
                notifier,
                counters,
                want_uring,
                offered: OnceLock::new(),
            }),
        }
    }
}

impl Core {
    /// What the kernel offered at `FUSE_INIT`, once it has.
    pub(crate) fn offered(&self) -> Option<Offered> {
        self.offered.get().copied()
    }

    /// Reads up to `buf.len()` bytes of `ino` at `offset` into `buf`.
    pub(crate) fn read_into(
        &self,
        ino: INodeNo,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Errno> {
        match self.branch.read(file_id(ino), offset, buf) {
            Ok(n) => {
                self.counters.read(n);
                Ok(n)
            }
            Err(err) => Err(self.errno("read", &err)),
        }
    }

    /// Writes `data` to `ino` at `offset`; a write with `O_DSYNC`/`O_SYNC`
    /// in `open_flags` is durable when this returns (see `dsync`).
    pub(crate) fn write_at(
        &self,
        ino: INodeNo,
        offset: u64,
        data: &[u8],
        open_flags: i32,
    ) -> Result<u32, Errno> {
        tracing::trace!(ino = ino.0, offset, len = data.len(), "write");
        let sync = dsync::wants_sync(open_flags);
        // Only synchronous writes are timed: the clock stays off the path
        // of every other write.
        let arrived = sync.then(Instant::now);
        let _shared = self.size_lock.read();
        let id = file_id(ino);
        let written = self.branch.write(id, offset, data);
        let durable = match written {
            Ok(()) if sync => {
                if self.inodes.may_be_cached(id) {
                    dsync::invalidate(self.notifier.get(), ino, offset, data.len());
                }
                self.timed_sync()
            }
            other => other,
        };
        match durable {
            Ok(()) => {
                self.counters.write(data.len());
                if let Some(arrived) = arrived {
                    self.counters.sync_write(arrived.elapsed());
                }
                Ok(data.len() as u32)
            }
            Err(err) => Err(self.errno("write", &err)),
        }
    }

    /// Makes every write to the branch so far durable (`fsync`, `fsyncdir`).
    pub(crate) fn sync_branch(&self, op: &'static str) -> Result<(), Errno> {
        self.timed_sync().map_err(|err| self.errno(op, &err))
    }

    /// Records a name the kernel now holds and answers with its entry.
    fn entry(&self, parent: FileId, attr: &FileAttr, reply: ReplyEntry) {
        self.note_lookup(parent, attr);
        reply.entry(&TTL, &fuse_attr(attr), GENERATION);
    }

    fn note_lookup(&self, parent: FileId, attr: &FileAttr) {
        let dir_parent = (attr.kind == FileKind::Directory).then_some(parent);
        self.inodes.looked_up(attr.id, dir_parent);
    }

    fn settle(&self, id: FileId, verdict: Verdict) {
        if verdict == Verdict::ReleaseOrphan {
            tracing::debug!(id = id.0, "releasing orphan");
            if let Err(err) = self.branch.release_orphan(id) {
                let _ = errno("release_orphan", &err);
            }
        }
    }

    fn create_file(
        &self,
        req: &Request,
        parent: FileId,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr, StoreError> {
        let perm = mode & !umask & 0o7777;
        self.branch
            .create(parent, name, kind, perm, req.uid(), req.gid())
    }

    fn listing(&self, dir: FileId) -> Result<Vec<Entry>, StoreError> {
        let listed = self.branch.readdir(dir)?;
        let parent = if dir == FileId::ROOT {
            dir
        } else {
            self.inodes.parent(dir).unwrap_or(dir)
        };
        let mut entries = Vec::with_capacity(listed.len() + 2);
        for (name, id) in [(".", dir), ("..", parent)] {
            entries.push(Entry {
                name: name.into(),
                id,
                kind: FileKind::Directory,
            });
        }
        entries.extend(listed.into_iter().map(|e| Entry {
            name: e.name,
            id: e.id,
            kind: e.kind,
        }));
        Ok(entries)
    }

    fn sync(&self, op: &'static str, reply: ReplyEmpty) {
        match self.sync_branch(op) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    /// `Branch::sync`, counted in the metrics as one fsync.
    fn timed_sync(&self) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.branch.sync();
        self.counters.fsync(start.elapsed());
        result
    }

    /// Counts an open of `id` with open flags `flags` and says how the
    /// kernel is to cache it: synchronous opens not at all (see `dsync`),
    /// every other across opens.
    fn open_flags(&self, id: FileId, flags: i32) -> FopenFlags {
        let direct = dsync::wants_sync(flags);
        self.inodes.opened(id, direct);
        match direct {
            true => FopenFlags::FOPEN_DIRECT_IO,
            false => FopenFlags::FOPEN_KEEP_CACHE,
        }
    }

    /// Answers with the entry of a name `op` found or made in `parent`, or
    /// with the errno of its failure.
    fn reply_entry(
        &self,
        op: &'static str,
        parent: FileId,
        result: Result<FileAttr, StoreError>,
        reply: ReplyEntry,
    ) {
        match result {
            Ok(attr) => self.entry(parent, &attr, reply),
            Err(err) => reply.error(self.errno(op, &err)),
        }
    }

    /// Answers with the attributes `op` returned, or with the errno of its
    /// failure.
    fn reply_attr(&self, op: &'static str, result: Result<FileAttr, StoreError>, reply: ReplyAttr) {
        match result {
            Ok(attr) => reply.attr(&TTL, &fuse_attr(&attr)),
            Err(err) => reply.error(self.errno(op, &err)),
        }
    }

    /// Answers that `op` succeeded, or with the errno of its failure.
    fn reply_empty(&self, op: &'static str, result: Result<(), StoreError>, reply: ReplyEmpty) {
        match result {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(self.errno(op, &err)),
        }
    }

    /// The errno for `err`, counting real failures.
    fn errno(&self, op: &'static str, err: &StoreError) -> Errno {
        if matches!(
            err,
            StoreError::Io(_) | StoreError::Corrupted { .. } | StoreError::Stale
        ) {
            self.counters.error();
        }
        errno(op, err)
    }
}

fn is_dot(name: &OsStr) -> bool {
    name == "." || name == ".."
}

impl Filesystem for PageFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = self.offered.set(Offered {
            capabilities: config.capabilities(),
            abi: config.kernel_abi(),
        });
        let negotiated = caps::negotiate(config, self.want_uring)?;
        let _ = self.negotiated.set(negotiated);
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::debug!(inodes = self.inodes.tracked(), "FUSE session ended");
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        tracing::debug!(parent = parent.0, ?name, "lookup");
        let result = self.branch.lookup(file_id(parent), name);
        self.reply_entry("lookup", file_id(parent), result, reply);
    }

    // `batch_forget` is left to fuser's default, which calls this per inode
    // (fuser 0.18 does not export the type its signature names).
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let id = file_id(ino);
        self.settle(id, self.inodes.forget(id, nlookup));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let result = self.branch.getattr(file_id(ino));
        self.reply_attr("getattr", result, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        tracing::debug!(ino = ino.0, ?mode, ?uid, ?gid, ?size, "setattr");
        self.counters.setattr();
        let change = SetAttr {
            size,
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            atime: atime.map(attr::time),
            mtime: mtime.map(attr::time),
        };
        let id = file_id(ino);
        // The kernel also sends ctime alone (writeback of times): the
        // store keeps ctime itself, so that is a plain getattr.
        let result = if change == SetAttr::default() {
            self.branch.getattr(id)
        } else {
            self.branch.setattr(id, change)
        };
        self.reply_attr("setattr", result, reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.branch.readlink(file_id(ino)) {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(err) => reply.error(self.errno("readlink", &err)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        tracing::debug!(parent = parent.0, ?name, mode, "mknod");
        if mode & libc::S_IFMT != libc::S_IFREG {
            // Only regular files: no devices, fifos or sockets.
            return reply.error(Errno::EPERM);
        }
        let parent = file_id(parent);
        let result = self.create_file(req, parent, name, FileKind::File, mode, umask);
        self.reply_entry("mknod", parent, result, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        tracing::debug!(parent = parent.0, ?name, mode, "mkdir");
        let parent = file_id(parent);
        let result = self.create_file(req, parent, name, FileKind::Directory, mode, umask);
        self.reply_entry("mkdir", parent, result, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tracing::debug!(parent = parent.0, ?name, "unlink");
        let result = self
            .branch
            .unlink(file_id(parent), name)
            .map(|id| self.settle(id, self.inodes.orphaned(id)));
        self.reply_empty("unlink", result, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tracing::debug!(parent = parent.0, ?name, "rmdir");
        let result = self.branch.rmdir(file_id(parent), name);
        self.reply_empty("rmdir", result, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        tracing::debug!(parent = parent.0, ?link_name, ?target, "symlink");
        let parent = file_id(parent);
        let result = self
            .branch
            .symlink(parent, link_name, target, req.uid(), req.gid());
        self.reply_entry("symlink", parent, result, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        tracing::debug!(
            parent = parent.0,
            ?name,
            newparent = newparent.0,
            ?newname,
            "rename"
        );
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let store_flags = offshoot_storage::RenameFlags {
            no_replace: flags.contains(RenameFlags::RENAME_NOREPLACE),
        };
        let (from, to) = (file_id(parent), file_id(newparent));
        let result = self
            .branch
            .rename(from, name, to, newname, store_flags)
            .map(|replaced| {
                if let Some(id) = replaced {
                    self.settle(id, self.inodes.orphaned(id));
                }
                if from != to {
                    if let Ok(moved) = self.branch.lookup(to, newname) {
                        self.inodes.reparented(moved.id, to);
                    }
                }
            });
        self.reply_empty("rename", result, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        tracing::debug!(ino = ino.0, ?newname, "link: hard links are not supported");
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // Nothing per handle: I/O goes by inode. The page cache stays valid
        // across opens because every change comes through this mount.
        reply.opened(FileHandle(0), self.open_flags(file_id(ino), flags.0));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        tracing::trace!(ino = ino.0, offset, size, "read");
        READ_BUF.with_borrow_mut(|buf| {
            let size = size as usize;
            if buf.len() < size {
                buf.resize(size, 0);
            }
            match self.read_into(ino, offset, &mut buf[..size]) {
                Ok(n) => reply.data(&buf[..n]),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.write_at(ino, offset, data, flags.0) {
            Ok(n) => reply.written(n),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a durability point; fsync is.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let id = file_id(ino);
        self.settle(id, self.inodes.released(id));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        tracing::debug!(ino = ino.0, datasync, "fsync");
        self.sync("fsync", reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.listing(file_id(ino)) {
            Ok(entries) => {
                let fh = self.dirs.insert(entries);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(err) => reply.error(self.errno("opendir", &err)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(entries) = self.dirs.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(ino(e.id), i as u64 + 1, file_type(e.kind), &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        dir: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(entries) = self.dirs.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            let attr = match self.branch.getattr(e.id) {
                Ok(attr) => attr,
                // Removed since opendir: leave it out.
                Err(StoreError::NotFound) => continue,
                Err(err) => return reply.error(self.errno("readdirplus", &err)),
            };
            if reply.add(
                ino(e.id),
                i as u64 + 1,
                &e.name,
                &TTL,
                &fuse_attr(&attr),
                GENERATION,
            ) {
                break;
            }
            // The kernel takes a lookup reference for each entry but the dots.
            if !is_dot(&e.name) {
                self.note_lookup(file_id(dir), &attr);
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.remove(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        tracing::debug!(ino = ino.0, datasync, "fsyncdir");
        self.sync("fsyncdir", reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.branch.statfs();
        reply.statfs(
            s.blocks,
            s.blocks_free,
            s.blocks_available,
            s.files,
            s.files_free,
            s.block_size,
            s.name_max,
            s.block_size,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // ENOSYS once and the kernel stops asking (security.capability is
        // otherwise looked up before every write).
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        tracing::debug!(parent = parent.0, ?name, mode, flags, "create");
        let parent = file_id(parent);
        let created = match self.create_file(req, parent, name, FileKind::File, mode, umask) {
            // The kernel saw no such name; if the store has one anyway and
            // O_EXCL was not asked, open it as open(2) would.
            Err(StoreError::AlreadyExists) if flags & libc::O_EXCL == 0 => self
                .branch
                .lookup(parent, name)
                .and_then(|attr| match flags & libc::O_TRUNC != 0 && attr.size > 0 {
                    true => self.branch.setattr(
                        attr.id,
                        SetAttr {
                            size: Some(0),
                            ..SetAttr::default()
                        },
                    ),
                    false => Ok(attr),
                }),
            other => other,
        };
        match created {
            Ok(attr) => {
                self.note_lookup(parent, &attr);
                let open_flags = self.open_flags(attr.id, flags);
                reply.created(
                    &TTL,
                    &fuse_attr(&attr),
                    GENERATION,
                    FileHandle(0),
                    open_flags,
                );
            }
            Err(err) => reply.error(self.errno("create", &err)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        tracing::debug!(ino = ino.0, offset, length, mode, "fallocate");
        if mode != 0 {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        let Some(end) = offset.checked_add(length) else {
            return reply.error(Errno::EFBIG);
        };
        let id = file_id(ino);
        // Pages are not preallocated (unwritten pages read as zeros and cost
        // nothing); only the size grows, and never shrinks.
        let _exclusive = self.size_lock.write();
        let result = self.branch.getattr(id).and_then(|attr| {
            if end > attr.size {
                self.branch.setattr(
                    id,
                    SetAttr {
                        size: Some(end),
                        ..SetAttr::default()
                    },
                )?;
            }
            Ok(())
        });
        self.reply_empty("fallocate", result, reply);
    }
}
