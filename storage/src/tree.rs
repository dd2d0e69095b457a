//! The in-memory state of one timeline: its file table (inodes, directory
//! entries) and its fully materialized page index, both persistent maps
//! with structural sharing, so a fork is an O(1) clone and a page lookup
//! never walks ancestry. Nothing here touches the disk; the same `apply`
//! runs live and during recovery.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imbl::{HashMap, OrdMap, OrdSet};

use crate::layer::Layer;
use crate::record::MetaOp;
use crate::{DirEntry, FileAttr, FileId, FileKind, PageNo, StoreError, PAGE_SIZE};

/// Where a page's current contents live: a page record in a layer file.
#[derive(Clone)]
pub(crate) struct PageLoc {
    pub layer: Arc<Layer>,
    pub offset: u64,
}

/// The pages of one file.
pub(crate) type PageMap = OrdMap<PageNo, PageLoc>;

#[derive(Clone, Debug)]
pub(crate) struct Inode {
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    /// Directories: the directory holding this one (the root: itself).
    pub parent: FileId,
    pub target: Option<Arc<[u8]>>,
    pub children: OrdMap<OsString, FileId>,
}

/// A timeline's file table and page index.
#[derive(Clone)]
pub(crate) struct Tree {
    pub inodes: HashMap<FileId, Inode>,
    pub pages: HashMap<FileId, PageMap>,
    pub orphans: OrdSet<FileId>,
    pub next_id: u64,
}

pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

pub(crate) fn time(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

pub(crate) fn now() -> u64 {
    nanos(SystemTime::now())
}

/// Number of pages needed to hold `size` bytes.
pub(crate) fn pages_for(size: u64) -> u64 {
    size.div_ceil(PAGE_SIZE as u64)
}

fn name_of(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

impl Tree {
    /// A file table holding only an empty root directory.
    pub fn new_root(created: u64) -> Tree {
        let mut inodes = HashMap::new();
        inodes.insert(
            FileId::ROOT,
            Inode {
                kind: FileKind::Directory,
                size: 0,
                mode: 0o700,
                uid: 0,
                gid: 0,
                nlink: 2,
                atime: created,
                mtime: created,
                ctime: created,
                parent: FileId::ROOT,
                target: None,
                children: OrdMap::new(),
            },
        );
        Tree {
            inodes,
            pages: HashMap::new(),
            orphans: OrdSet::new(),
            next_id: FileId::ROOT.0 + 1,
        }
    }

    pub fn inode(&self, id: FileId) -> Result<&Inode, StoreError> {
        self.inodes.get(&id).ok_or(StoreError::NotFound)
    }

    fn inode_mut(&mut self, id: FileId) -> Result<&mut Inode, StoreError> {
        self.inodes.get_mut(&id).ok_or(StoreError::NotFound)
    }

    fn dir(&self, id: FileId) -> Result<&Inode, StoreError> {
        let inode = self.inode(id)?;
        if inode.kind != FileKind::Directory {
            return Err(StoreError::NotADirectory);
        }
        Ok(inode)
    }

    pub fn attr(&self, id: FileId) -> Result<FileAttr, StoreError> {
        let i = self.inode(id)?;
        Ok(FileAttr {
            id,
            kind: i.kind,
            size: i.size,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            nlink: i.nlink,
            atime: time(i.atime),
            mtime: time(i.mtime),
            ctime: time(i.ctime),
        })
    }

    pub fn lookup(&self, dir: FileId, name: &OsStr) -> Result<FileId, StoreError> {
        self.dir(dir)?
            .children
            .get(name)
            .copied()
            .ok_or(StoreError::NotFound)
    }

    pub fn readdir(&self, dir: FileId) -> Result<Vec<DirEntry>, StoreError> {
        let d = self.dir(dir)?;
        let mut out = Vec::with_capacity(d.children.len());
        for (name, id) in d.children.iter() {
            let kind = self.inode(*id)?.kind;
            out.push(DirEntry {
                name: name.clone(),
                id: *id,
                kind,
            });
        }
        Ok(out)
    }

    pub fn readlink(&self, id: FileId) -> Result<PathBuf, StoreError> {
        match &self.inode(id)?.target {
            Some(t) => Ok(PathBuf::from(OsStr::from_bytes(t))),
            None => Err(StoreError::InvalidArgument("not a symlink".into())),
        }
    }

    /// The location of a page, if it is stored.
    pub fn page(&self, file: FileId, page: PageNo) -> Option<&PageLoc> {
        self.pages.get(&file)?.get(&page)
    }

    pub fn set_page(&mut self, file: FileId, page: PageNo, loc: Option<PageLoc>) {
        match loc {
            Some(loc) => {
                self.pages.entry(file).or_default().insert(page, loc);
            }
            None => {
                if let Some(map) = self.pages.get_mut(&file) {
                    map.remove(&page);
                }
            }
        }
    }

    /// Forgets every page at or past `first`.
    fn cut_pages(&mut self, file: FileId, first: u64) {
        if let Some(map) = self.pages.get_mut(&file) {
            if map.range(PageNo(first)..).next().is_some() {
                // `split` keeps the keys below `first` on the left.
                let (left, _) = map.split(&PageNo(first));
                *map = left;
            }
        }
    }

    fn drop_inode(&mut self, id: FileId) {
        self.inodes.remove(&id);
        self.pages.remove(&id);
        self.orphans.remove(&id);
    }

    /// Removes a name's link to `id`; files become orphans, the rest go.
    fn unlink_inode(&mut self, id: FileId, t: u64) -> Result<(), StoreError> {
        let inode = self.inode_mut(id)?;
        inode.ctime = t;
        if inode.kind == FileKind::File {
            inode.nlink = 0;
            self.orphans.insert(id);
        } else {
            self.drop_inode(id);
        }
        Ok(())
    }

    /// The page a truncating op cuts inside (its bytes past the new end
    /// are gone), given the tree before the op.
    pub fn cut_boundary(&self, op: &MetaOp) -> Option<(FileId, PageNo)> {
        match op {
            MetaOp::SetAttr {
                id, size: Some(s), ..
            } => {
                let old = self.inodes.get(id)?.size;
                (*s < old && *s % PAGE_SIZE as u64 != 0)
                    .then_some((*id, PageNo(*s / PAGE_SIZE as u64)))
            }
            _ => None,
        }
    }

    /// Validates and applies one metadata op. Returns the inode a rename
    /// replaced, if any.
    pub fn apply(&mut self, op: &MetaOp) -> Result<Option<FileId>, StoreError> {
        match op {
            MetaOp::Create {
                parent,
                name,
                id,
                kind,
                mode,
                uid,
                gid,
                time: t,
                target,
            } => {
                let name = name_of(name);
                if self.dir(*parent)?.children.contains_key(&name) {
                    return Err(StoreError::AlreadyExists);
                }
                if self.inodes.contains_key(id) || id.0 < self.next_id {
                    return Err(StoreError::InvalidArgument(format!("inode {id} reused")));
                }
                self.next_id = id.0 + 1;
                self.inodes.insert(
                    *id,
                    Inode {
                        kind: *kind,
                        size: target.as_ref().map_or(0, |t| t.len() as u64),
                        mode: *mode & 0o7777,
                        uid: *uid,
                        gid: *gid,
                        nlink: if *kind == FileKind::Directory { 2 } else { 1 },
                        atime: *t,
                        mtime: *t,
                        ctime: *t,
                        parent: *parent,
                        target: target.as_ref().map(|t| Arc::from(t.as_slice())),
                        children: OrdMap::new(),
                    },
                );
                let dir = self.inode_mut(*parent)?;
                dir.children.insert(name, *id);
                dir.mtime = *t;
                dir.ctime = *t;
                Ok(None)
            }
            MetaOp::Unlink {
                parent,
                name,
                time: t,
            } => {
                let name = name_of(name);
                let id = self.lookup(*parent, &name)?;
                if self.inode(id)?.kind == FileKind::Directory {
                    return Err(StoreError::IsADirectory);
                }
                let dir = self.inode_mut(*parent)?;
                dir.children.remove(&name);
                dir.mtime = *t;
                dir.ctime = *t;
                self.unlink_inode(id, *t)?;
                Ok(None)
            }
            MetaOp::Rmdir {
                parent,
                name,
                time: t,
            } => {
                let name = name_of(name);
                let id = self.lookup(*parent, &name)?;
                let victim = self.dir(id)?;
                if !victim.children.is_empty() {
                    return Err(StoreError::NotEmpty);
                }
                let dir = self.inode_mut(*parent)?;
                dir.children.remove(&name);
                dir.mtime = *t;
                dir.ctime = *t;
                self.drop_inode(id);
                Ok(None)
            }
            MetaOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
                no_replace,
                time: t,
            } => self.rename(*parent, name, *new_parent, new_name, *no_replace, *t),
            MetaOp::SetAttr {
                id,
                size,
                mode,
                uid,
                gid,
                atime,
                mtime,
                time: t,
            } => {
                let inode = self.inode_mut(*id)?;
                if let Some(size) = size {
                    if inode.kind != FileKind::File {
                        return Err(StoreError::IsADirectory);
                    }
                    let old = inode.size;
                    inode.size = *size;
                    inode.mtime = *t;
                    if *size < old {
                        // The page holding the new end goes too: the same
                        // record carries its surviving prefix, if any.
                        self.cut_pages(*id, *size / PAGE_SIZE as u64);
                    }
                }
                let inode = self.inode_mut(*id)?;
                if let Some(mode) = mode {
                    inode.mode = *mode & 0o7777;
                }
                if let Some(uid) = uid {
                    inode.uid = *uid;
                }
                if let Some(gid) = gid {
                    inode.gid = *gid;
                }
                if let Some(a) = atime {
                    inode.atime = *a;
                }
                if let Some(m) = mtime {
                    inode.mtime = *m;
                }
                inode.ctime = *t;
                Ok(None)
            }
            MetaOp::Extend { id, size, time: t } => {
                let inode = self.inode_mut(*id)?;
                if inode.kind != FileKind::File {
                    return Err(StoreError::IsADirectory);
                }
                inode.size = inode.size.max(*size);
                inode.mtime = *t;
                Ok(None)
            }
            MetaOp::DropOrphan { id } => {
                if !self.orphans.contains(id) {
                    return Err(StoreError::InvalidArgument(format!(
                        "inode {id} is not an orphan"
                    )));
                }
                self.drop_inode(*id);
                Ok(None)
            }
        }
    }

    fn rename(
        &mut self,
        parent: FileId,
        name: &[u8],
        new_parent: FileId,
        new_name: &[u8],
        no_replace: bool,
        t: u64,
    ) -> Result<Option<FileId>, StoreError> {
        let name = name_of(name);
        let new_name = name_of(new_name);
        let id = self.lookup(parent, &name)?;
        self.dir(new_parent)?;
        let kind = self.inode(id)?.kind;
        if kind == FileKind::Directory {
            // A directory cannot move below itself.
            let mut at = new_parent;
            loop {
                if at == id {
                    return Err(StoreError::InvalidArgument(
                        "cannot move a directory into itself".into(),
                    ));
                }
                let up = self.inode(at)?.parent;
                if up == at {
                    break;
                }
                at = up;
            }
        }
        let replaced = match self.dir(new_parent)?.children.get(&new_name).copied() {
            None => None,
            Some(old) if old == id => return Ok(None),
            Some(_) if no_replace => return Err(StoreError::AlreadyExists),
            Some(old) => {
                let old_inode = self.inode(old)?;
                match (kind, old_inode.kind) {
                    (FileKind::Directory, FileKind::Directory)
                        if !old_inode.children.is_empty() =>
                    {
                        return Err(StoreError::NotEmpty);
                    }
                    (FileKind::Directory, FileKind::Directory) => {}
                    (FileKind::Directory, _) => return Err(StoreError::NotADirectory),
                    (_, FileKind::Directory) => return Err(StoreError::IsADirectory),
                    _ => {}
                }
                Some(old)
            }
        };
        let src = self.inode_mut(parent)?;
        src.children.remove(&name);
        src.mtime = t;
        src.ctime = t;
        let dst = self.inode_mut(new_parent)?;
        dst.children.insert(new_name, id);
        dst.mtime = t;
        dst.ctime = t;
        let moved = self.inode_mut(id)?;
        moved.ctime = t;
        if kind == FileKind::Directory {
            moved.parent = new_parent;
        }
        if let Some(old) = replaced {
            self.unlink_inode(old, t)?;
            // Only files linger as orphans; report what was replaced.
            return Ok(Some(old));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(t: &mut Tree, parent: FileId, name: &str, kind: FileKind) -> FileId {
        let id = FileId(t.next_id);
        t.apply(&MetaOp::Create {
            parent,
            name: name.as_bytes().to_vec(),
            id,
            kind,
            mode: 0o600,
            uid: 1,
            gid: 2,
            time: 5,
            target: None,
        })
        .unwrap();
        id
    }

    #[test]
    fn rename_over_existing_file_orphans_the_target() {
        let mut t = Tree::new_root(0);
        let a = create(&mut t, FileId::ROOT, "a", FileKind::File);
        let b = create(&mut t, FileId::ROOT, "b", FileKind::File);
        let replaced = t
            .rename(FileId::ROOT, b"a", FileId::ROOT, b"b", false, 9)
            .unwrap();
        assert_eq!(replaced, Some(b));
        assert_eq!(t.lookup(FileId::ROOT, OsStr::new("b")).unwrap(), a);
        assert!(t.lookup(FileId::ROOT, OsStr::new("a")).is_err());
        assert!(t.orphans.contains(&b));
        assert_eq!(t.attr(b).unwrap().nlink, 0);
    }

    #[test]
    fn rmdir_of_non_empty_directory_fails() {
        let mut t = Tree::new_root(0);
        let d = create(&mut t, FileId::ROOT, "d", FileKind::Directory);
        create(&mut t, d, "f", FileKind::File);
        let op = MetaOp::Rmdir {
            parent: FileId::ROOT,
            name: b"d".to_vec(),
            time: 1,
        };
        assert!(matches!(t.apply(&op), Err(StoreError::NotEmpty)));
        let mv = t.rename(FileId::ROOT, b"d", d, b"x", false, 1);
        assert!(matches!(mv, Err(StoreError::InvalidArgument(_))));
    }

    #[test]
    fn fork_is_isolated() {
        let mut parent = Tree::new_root(0);
        create(&mut parent, FileId::ROOT, "a", FileKind::File);
        let mut child = parent.clone();
        create(&mut child, FileId::ROOT, "b", FileKind::File);
        assert!(parent.lookup(FileId::ROOT, OsStr::new("b")).is_err());
        assert_eq!(child.readdir(FileId::ROOT).unwrap().len(), 2);
        assert!(child.next_id > parent.next_id);
    }
}
