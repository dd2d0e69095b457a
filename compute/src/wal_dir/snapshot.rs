//! A child's WAL directory made from its parent's at branch create: hard
//! links for what never changes, a cut for the segment in use.
//!
//! Two steps around the page store's create, so that the WAL the child gets
//! reaches at least as far as every data page the store's snapshot holds
//! (PostgreSQL flushes a page's WAL before it writes the page):
//!
//! 1. [`WalSnapshot::begin`], before: links every shared file of the parent
//!    into a staging directory. A checkpoint finishing during the create may
//!    remove segments the child's recovery needs; the links keep them.
//! 2. [`WalSnapshot::finish`], after: links what appeared since, finds the
//!    segment in use and its last written page, keeps that page and a link
//!    to the segment aside, drops links to segments not written yet, and
//!    renames the staging directory into place, durably.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{is_segment_name, is_shared_name, CUT_MARKER, CUT_SOURCE};
use crate::error::ComputeError;
use crate::process::chown_to;
use crate::run_as::RunAs;

/// PostgreSQL's default WAL page size, used when a segment's first page does
/// not say otherwise.
const DEFAULT_PAGE_SIZE: u64 = 8192;
/// Where the long header of a segment's first page keeps the page size
/// (`xlp_xlog_blcksz`, after the 24-byte short header, the system identifier
/// and the segment size).
const PAGE_SIZE_OFFSET: u64 = 36;

/// A child's WAL directory being made; see the module doc.
#[derive(Debug)]
pub struct WalSnapshot {
    parent: PathBuf,
    staging: PathBuf,
    run_as: RunAs,
    linked: BTreeSet<String>,
    finished: bool,
}

impl Drop for WalSnapshot {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

impl WalSnapshot {
    /// Starts a child's WAL directory from `parent`'s in `staging` (on the
    /// same file system; replaced if it exists), owned by `run_as`. Dropped
    /// before [`Self::finish`], it removes the staging directory.
    pub fn begin(parent: &Path, staging: &Path, run_as: &RunAs) -> Result<Self, ComputeError> {
        let staging = staging.to_path_buf();
        if staging.exists() {
            fs::remove_dir_all(&staging)
                .map_err(|e| ComputeError::io(format!("remove {}", staging.display()), e))?;
        }
        make_private_dir(&staging, run_as)?;
        let mut snapshot = WalSnapshot {
            parent: parent.to_path_buf(),
            staging,
            run_as: run_as.clone(),
            linked: BTreeSet::new(),
            finished: false,
        };
        snapshot.link_new()?;
        Ok(snapshot)
    }

    /// Completes the child's WAL directory and renames it to `child` (which
    /// must not exist). Call after the page store's create. Returns the name
    /// of the segment cut, if one was.
    pub fn finish(mut self, child: &Path) -> Result<Option<String>, ComputeError> {
        let cut = if self.linked.contains(CUT_MARKER) && self.parent.join(CUT_MARKER).exists() {
            // The parent has not started since it was made (its cut is
            // completed before its first start), so it wrote nothing the
            // store's create could hold: the child takes its cut over.
            self.keep_pending_cut()?;
            None
        } else {
            self.link_new()?;
            self.drop_stale_cut()?;
            self.cut_segment_in_use()?
        };
        sync_dir(&self.staging)?;
        fs::rename(&self.staging, child).map_err(|e| {
            ComputeError::io(
                format!("rename {} to {}", self.staging.display(), child.display()),
                e,
            )
        })?;
        self.finished = true;
        if let Some(dir) = child.parent() {
            sync_dir(dir)?;
        }
        Ok(cut)
    }

    /// Links every shared file of the parent not linked yet (a file the
    /// parent removed meanwhile is skipped), and makes the parent's
    /// subdirectories, empty (`archive_status`, and `summaries` from
    /// PostgreSQL 17 on): their files are the parent's.
    fn link_new(&mut self) -> Result<(), ComputeError> {
        let entries = fs::read_dir(&self.parent)
            .map_err(|e| ComputeError::io(format!("list {}", self.parent.display()), e))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| ComputeError::io(format!("list {}", self.parent.display()), e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let dir = self.staging.join(&name);
                if !dir.exists() {
                    make_private_dir(&dir, &self.run_as)?;
                }
                continue;
            }
            if !is_shared_name(&name) || self.linked.contains(&name) {
                continue;
            }
            match fs::hard_link(entry.path(), self.staging.join(&name)) {
                Ok(()) => {
                    self.linked.insert(name);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ComputeError::io(
                        format!("link {} into {}", name, self.staging.display()),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    /// Keeps the parent's pending cut, and drops any link to its segment
    /// in use or later: linked while the parent was starting, those are
    /// being written by it.
    fn keep_pending_cut(&mut self) -> Result<(), ComputeError> {
        let marker = self.staging.join(CUT_MARKER);
        let bytes = fs::read(&marker)
            .map_err(|e| ComputeError::io(format!("read {}", marker.display()), e))?;
        let (segment, _, _) = super::pending::parse_marker(&bytes, &marker)?;
        let later: Vec<String> = self
            .linked
            .iter()
            .filter(|n| is_segment_name(n) && n.as_str() >= segment.as_str())
            .cloned()
            .collect();
        for name in later {
            remove(&self.staging.join(&name))?;
            self.linked.remove(&name);
        }
        Ok(())
    }

    /// Drops a pending cut linked in [`Self::begin`] from a parent that has
    /// started since (its own segment now carries what the cut described).
    fn drop_stale_cut(&mut self) -> Result<(), ComputeError> {
        for name in [CUT_MARKER, CUT_SOURCE] {
            if self.linked.remove(name) {
                remove(&self.staging.join(name))?;
            }
        }
        Ok(())
    }

    /// Finds the newest written segment, keeps its last written page and a
    /// link to it aside as the cut, and drops links to segments after it.
    fn cut_segment_in_use(&mut self) -> Result<Option<String>, ComputeError> {
        let segments: Vec<String> = self
            .linked
            .iter()
            .filter(|n| is_segment_name(n))
            .cloned()
            .collect();
        let mut in_use = None;
        for name in segments.iter().rev() {
            let path = self.staging.join(name);
            if page_written(&open(&path)?, 0, &path)? {
                in_use = Some(name.clone());
                break;
            } else {
                // Made ahead of time and not written yet: the parent will
                // write it, so it must not be shared.
                remove(&path)?;
                self.linked.remove(name);
            }
        }
        let Some(name) = in_use else {
            return Ok(None);
        };
        let path = self.staging.join(&name);
        let file = open(&path)?;
        let page_size = page_size(&file, &path)?;
        let len = file
            .metadata()
            .map_err(|e| ComputeError::io(format!("stat {}", path.display()), e))?
            .len();
        let last = last_written_page(&file, len / page_size, page_size, &path)?;
        let cut = last * page_size;
        let mut page = vec![0u8; page_size as usize];
        read_at(&file, &mut page, cut, &path)?;

        let source = self.staging.join(CUT_SOURCE);
        fs::rename(&path, &source)
            .map_err(|e| ComputeError::io(format!("rename {}", path.display()), e))?;
        let mut marker = format!("{name} {cut}\n").into_bytes();
        marker.extend_from_slice(&page);
        write_durably(&self.staging.join(CUT_MARKER), &marker)?;
        Ok(Some(name))
    }
}

/// The page size the segment's first page gives, else PostgreSQL's default.
fn page_size(file: &File, path: &Path) -> Result<u64, ComputeError> {
    let mut raw = [0u8; 4];
    read_at(file, &mut raw, PAGE_SIZE_OFFSET, path)?;
    let size = u64::from(u32::from_le_bytes(raw));
    Ok(
        if size.is_power_of_two() && (1024..=65536).contains(&size) {
            size
        } else {
            DEFAULT_PAGE_SIZE
        },
    )
}

/// The index of the last written page among `pages`: the written pages are
/// a prefix, and the first is written.
fn last_written_page(
    file: &File,
    pages: u64,
    page_size: u64,
    path: &Path,
) -> Result<u64, ComputeError> {
    let (mut written, mut unwritten) = (0u64, pages);
    while unwritten - written > 1 {
        let mid = written + (unwritten - written) / 2;
        if page_written(file, mid * page_size, path)? {
            written = mid;
        } else {
            unwritten = mid;
        }
    }
    Ok(written)
}

/// True when the page at `offset` has a header (its magic number is never 0).
fn page_written(file: &File, offset: u64, path: &Path) -> Result<bool, ComputeError> {
    let mut magic = [0u8; 2];
    read_at(file, &mut magic, offset, path)?;
    Ok(magic != [0, 0])
}

fn read_at(file: &File, buf: &mut [u8], offset: u64, path: &Path) -> Result<(), ComputeError> {
    file.read_exact_at(buf, offset)
        .map_err(|e| ComputeError::io(format!("read {} at {offset}", path.display()), e))
}

fn open(path: &Path) -> Result<File, ComputeError> {
    File::open(path).map_err(|e| ComputeError::io(format!("open {}", path.display()), e))
}

fn remove(path: &Path) -> Result<(), ComputeError> {
    fs::remove_file(path).map_err(|e| ComputeError::io(format!("remove {}", path.display()), e))
}

/// A directory only `run_as` can enter (PostgreSQL checks its WAL's mode).
fn make_private_dir(dir: &Path, run_as: &RunAs) -> Result<(), ComputeError> {
    fs::create_dir(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
        .map_err(|e| ComputeError::io(format!("create {}", dir.display()), e))?;
    chown_to(dir, run_as)
}

fn write_durably(path: &Path, data: &[u8]) -> Result<(), ComputeError> {
    let mut file = File::create(path)
        .map_err(|e| ComputeError::io(format!("create {}", path.display()), e))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| ComputeError::io(format!("write {}", path.display()), e))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), ComputeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ComputeError::io(format!("sync {}", dir.display()), e))
}
