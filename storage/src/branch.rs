//! A handle for file I/O on one branch's contents.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    BranchId, DirEntry, FileAttr, FileId, FileKind, RenameFlags, SetAttr, StatFs, StoreError,
};

fn unsupported() -> StoreError {
    StoreError::Io(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// File I/O on a branch. Cheap to clone; all methods take `&self` and may run
/// concurrently.
#[derive(Clone)]
pub struct Branch {
    id: BranchId,
    _inner: Arc<()>,
}

impl Branch {
    pub fn id(&self) -> BranchId {
        self.id
    }
    pub fn lookup(&self, _dir: FileId, _name: &OsStr) -> Result<FileAttr, StoreError> {
        Err(unsupported())
    }
    pub fn getattr(&self, _id: FileId) -> Result<FileAttr, StoreError> {
        Err(unsupported())
    }
    pub fn setattr(&self, _id: FileId, _change: SetAttr) -> Result<FileAttr, StoreError> {
        Err(unsupported())
    }
    pub fn create(
        &self,
        _dir: FileId,
        _name: &OsStr,
        _kind: FileKind,
        _mode: u32,
        _uid: u32,
        _gid: u32,
    ) -> Result<FileAttr, StoreError> {
        Err(unsupported())
    }
    pub fn symlink(
        &self,
        _dir: FileId,
        _name: &OsStr,
        _target: &Path,
        _uid: u32,
        _gid: u32,
    ) -> Result<FileAttr, StoreError> {
        Err(unsupported())
    }
    pub fn readlink(&self, _id: FileId) -> Result<PathBuf, StoreError> {
        Err(unsupported())
    }
    pub fn unlink(&self, _dir: FileId, _name: &OsStr) -> Result<FileId, StoreError> {
        Err(unsupported())
    }
    pub fn rmdir(&self, _dir: FileId, _name: &OsStr) -> Result<(), StoreError> {
        Err(unsupported())
    }
    pub fn rename(
        &self,
        _dir: FileId,
        _name: &OsStr,
        _new_dir: FileId,
        _new_name: &OsStr,
        _flags: RenameFlags,
    ) -> Result<Option<FileId>, StoreError> {
        Err(unsupported())
    }
    pub fn readdir(&self, _dir: FileId) -> Result<Vec<DirEntry>, StoreError> {
        Err(unsupported())
    }
    pub fn read(&self, _id: FileId, _offset: u64, _buf: &mut [u8]) -> Result<usize, StoreError> {
        Err(unsupported())
    }
    pub fn write(&self, _id: FileId, _offset: u64, _data: &[u8]) -> Result<(), StoreError> {
        Err(unsupported())
    }
    pub fn release_orphan(&self, _id: FileId) -> Result<(), StoreError> {
        Err(unsupported())
    }
    pub fn sync(&self) -> Result<(), StoreError> {
        Err(unsupported())
    }
    pub fn statfs(&self) -> StatFs {
        StatFs {
            block_size: 8192,
            blocks: 0,
            blocks_free: 0,
            blocks_available: 0,
            files: 0,
            files_free: 0,
            name_max: 255,
        }
    }
}
