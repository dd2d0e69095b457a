//! The store: branches by name, their timelines, the manifest.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Backend, DiskBackend};
use crate::{Branch, BranchInfo, GcReport, StorageUsage, StoreError, StoreOptions};

fn unsupported() -> StoreError {
    StoreError::Io(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// The page store. Cheap to clone; Send + Sync.
#[derive(Clone)]
pub struct Store {
    _backend: Arc<dyn Backend>,
}

impl Store {
    /// Opens (creating if empty) the store in `dir`.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Store::open_with_backend(Arc::new(DiskBackend::new(dir)?), opts)
    }

    /// The same over an I/O backend.
    pub fn open_with_backend(
        backend: Arc<dyn Backend>,
        _opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        Ok(Store { _backend: backend })
    }

    pub fn create_branch(
        &self,
        _name: &str,
        _parent: Option<&str>,
    ) -> Result<BranchInfo, StoreError> {
        Err(unsupported())
    }

    pub fn drop_branch(&self, _name: &str) -> Result<(), StoreError> {
        Err(unsupported())
    }

    pub fn reset_branch(
        &self,
        _name: &str,
        _new_parent: Option<&str>,
    ) -> Result<BranchInfo, StoreError> {
        Err(unsupported())
    }

    pub fn rename_branch(&self, _old: &str, _new: &str) -> Result<BranchInfo, StoreError> {
        Err(unsupported())
    }

    pub fn set_annotation(
        &self,
        _name: &str,
        _key: &str,
        _value: Option<&str>,
    ) -> Result<BranchInfo, StoreError> {
        Err(unsupported())
    }

    pub fn branches(&self) -> Vec<BranchInfo> {
        Vec::new()
    }

    pub fn branch_info(&self, name: &str) -> Result<BranchInfo, StoreError> {
        Err(StoreError::BranchNotFound(name.to_string()))
    }

    pub fn branch(&self, name: &str) -> Result<Branch, StoreError> {
        Err(StoreError::BranchNotFound(name.to_string()))
    }

    pub fn gc(&self) -> Result<GcReport, StoreError> {
        Ok(GcReport::default())
    }

    pub fn usage(&self) -> StorageUsage {
        StorageUsage::default()
    }
}
