//! The kernel's references to inodes, and when an unlinked inode's data may go.
//!
//! The kernel counts one reference per name it resolved (`lookup`, `create`,
//! `mkdir`, `symlink`, each `readdirplus` entry) and gives them back with
//! `forget`; each `open`/`create` is matched by one `release`. The store keeps
//! an unlinked (or replaced-by-rename) inode readable by id as an orphan; this
//! table calls for `Branch::release_orphan` once the inode is an orphan and
//! neither kind of reference is left. PostgreSQL relies on this: a backend
//! keeps reading a relation file that another backend has unlinked.
//!
//! It also remembers each directory's parent, for the `..` entry of readdir,
//! and whether a file has had a cached (not direct, see `dsync`) open since
//! the kernel learned it: then the kernel may hold pages of it, and a
//! direct write must invalidate them.
//! Off the read/write path but for synchronous writes (one lookup each):
//! otherwise only name operations, open and release take its lock.

use std::collections::HashMap;

use offshoot_storage::FileId;
use parking_lot::Mutex;

#[derive(Default)]
struct Refs {
    lookups: u64,
    opens: u64,
    orphan: bool,
    parent: Option<FileId>,
    cached_open: bool,
}

impl Refs {
    fn unused(&self) -> bool {
        self.lookups == 0 && self.opens == 0
    }
}

/// What a change of references asks of the caller.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Verdict {
    Keep,
    /// The last reference to an orphan is gone: release its data now.
    ReleaseOrphan,
}

#[derive(Default)]
pub(crate) struct Inodes {
    map: Mutex<HashMap<FileId, Refs>>,
}

impl Inodes {
    /// The kernel learned a name for `id` (one more lookup reference).
    /// `parent` is given for directories.
    pub(crate) fn looked_up(&self, id: FileId, parent: Option<FileId>) {
        let mut map = self.map.lock();
        let refs = map.entry(id).or_default();
        refs.lookups += 1;
        if parent.is_some() {
            refs.parent = parent;
        }
    }

    /// The kernel dropped `n` lookup references.
    pub(crate) fn forget(&self, id: FileId, n: u64) -> Verdict {
        let mut map = self.map.lock();
        let Some(refs) = map.get_mut(&id) else {
            return Verdict::Keep;
        };
        refs.lookups = refs.lookups.saturating_sub(n);
        Self::settle(&mut map, id)
    }

    /// One more open handle of `id`, direct or cached.
    pub(crate) fn opened(&self, id: FileId, direct: bool) {
        let mut map = self.map.lock();
        let refs = map.entry(id).or_default();
        refs.opens += 1;
        refs.cached_open |= !direct;
    }

    /// Whether `id` has had a cached open since the kernel learned it (and
    /// so may have pages in the kernel's cache).
    pub(crate) fn may_be_cached(&self, id: FileId) -> bool {
        self.map.lock().get(&id).is_some_and(|r| r.cached_open)
    }

    pub(crate) fn released(&self, id: FileId) -> Verdict {
        let mut map = self.map.lock();
        let Some(refs) = map.get_mut(&id) else {
            return Verdict::Keep;
        };
        refs.opens = refs.opens.saturating_sub(1);
        Self::settle(&mut map, id)
    }

    /// `id` lost its last name (unlink, or replaced by a rename).
    pub(crate) fn orphaned(&self, id: FileId) -> Verdict {
        let mut map = self.map.lock();
        match map.get_mut(&id) {
            Some(refs) => {
                refs.orphan = true;
                Self::settle(&mut map, id)
            }
            // The kernel holds no reference: nothing can reach it any more.
            None => Verdict::ReleaseOrphan,
        }
    }

    /// A directory moved under `parent`.
    pub(crate) fn reparented(&self, id: FileId, parent: FileId) {
        if let Some(refs) = self.map.lock().get_mut(&id) {
            refs.parent = Some(parent);
        }
    }

    /// The parent of a directory, when the kernel resolved it through us.
    pub(crate) fn parent(&self, id: FileId) -> Option<FileId> {
        self.map.lock().get(&id).and_then(|r| r.parent)
    }

    /// How many inodes the kernel holds references to (for tests and logs).
    pub(crate) fn tracked(&self) -> usize {
        self.map.lock().len()
    }

    fn settle(map: &mut HashMap<FileId, Refs>, id: FileId) -> Verdict {
        let Some(refs) = map.get(&id) else {
            return Verdict::Keep;
        };
        if !refs.unused() {
            return Verdict::Keep;
        }
        let orphan = refs.orphan;
        map.remove(&id);
        if orphan {
            Verdict::ReleaseOrphan
        } else {
            Verdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_released_after_last_forget_and_release() {
        let t = Inodes::default();
        let id = FileId(7);
        t.looked_up(id, None);
        t.looked_up(id, None);
        t.opened(id, false);
        assert_eq!(t.orphaned(id), Verdict::Keep);
        assert_eq!(t.forget(id, 2), Verdict::Keep, "still open");
        assert_eq!(t.released(id), Verdict::ReleaseOrphan);
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn unknown_orphan_is_released_at_once_and_live_inode_never() {
        let t = Inodes::default();
        assert_eq!(t.orphaned(FileId(9)), Verdict::ReleaseOrphan);
        t.looked_up(FileId(3), Some(FileId(1)));
        assert_eq!(t.parent(FileId(3)), Some(FileId(1)));
        assert_eq!(t.forget(FileId(3), 1), Verdict::Keep);
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn a_cached_open_is_remembered_until_the_kernel_lets_go() {
        let t = Inodes::default();
        let id = FileId(5);
        t.looked_up(id, None);
        t.opened(id, true);
        assert!(!t.may_be_cached(id), "direct opens cache nothing");
        t.opened(id, false);
        assert_eq!(t.released(id), Verdict::Keep);
        assert!(t.may_be_cached(id), "pages outlive the cached handle");
        assert_eq!(t.released(id), Verdict::Keep);
        assert_eq!(t.forget(id, 1), Verdict::Keep);
        // Gone from the kernel, and its pages with it.
        t.looked_up(id, None);
        assert!(!t.may_be_cached(id));
    }
}
