//! The store: branch names, the timelines they point at, the manifest, and
//! the layer files of every timeline. Branch-level changes (create, drop,
//! reset, rename, annotate, seal) take the catalog lock and are durable in
//! the manifest before they return; file I/O never takes the catalog lock.

mod gc;
mod recovery;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::backend::{Backend, DiskBackend};
use crate::layer::{self, Layer, SealInput};
use crate::manifest::{BranchRecord, Delta, ManifestLog, ManifestState};
use crate::metrics::Counters;
use crate::record::MetaOp;
use crate::timeline::{OpenLog, Timeline, Writer};
use crate::tree::{now, time, Tree};
use crate::{
    Branch, BranchInfo, GcReport, LayerId, StorageUsage, StoreError, StoreMetrics, StoreOptions,
    TimelineId,
};

/// State shared by the store and its branch handles.
pub(crate) struct Shared {
    backend: Arc<dyn Backend>,
    opts: StoreOptions,
    cat: Mutex<Catalog>,
    pub(crate) counters: Counters,
}

pub(crate) struct Catalog {
    state: ManifestState,
    log: ManifestLog,
    /// Timelines a branch name points at.
    live: HashMap<TimelineId, Arc<Timeline>>,
    /// Every layer the manifest lists.
    layers: HashMap<LayerId, Arc<Layer>>,
    /// Timelines that read a damaged sealed layer (found at open), with
    /// the reason: their branches answer `Corrupted`.
    broken: HashMap<TimelineId, String>,
}

/// A seal whose log is flushed and whose manifest delta is not yet
/// committed.
struct SealPlan {
    old: Arc<Layer>,
    new: Arc<Layer>,
    delta: Delta,
}

macro_rules! failpoint {
    ($shared:expr, $name:literal) => {
        #[cfg(feature = "testing")]
        $shared.opts.failpoints.check($name)?;
    };
}

/// The page store. Cheap to clone; Send + Sync.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// The store is closing: no open log may be zero-filled any more. A fill
/// still running on a background thread finishes its writes first; one not
/// yet started does nothing. Without this, a store reopened in the same
/// process could seal a log whose old fill then writes zeros past the new
/// footer.
impl Drop for Shared {
    fn drop(&mut self) {
        let cat = self.cat.get_mut();
        for tl in cat.live.values() {
            tl.writer.lock().log.close_tail();
        }
    }
}

impl Shared {
    pub(crate) fn seal_threshold(&self) -> u64 {
        self.opts.seal_threshold_bytes
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        let cat = self.cat.lock();
        cat.layers.values().map(|l| l.bytes_on_disk()).sum::<u64>() + cat.log.bytes()
    }

    /// Seals `tl`'s open log if it passed the threshold. Errors are logged:
    /// the log stays open and the next write tries again.
    pub(crate) fn maybe_seal(&self, tl: &Arc<Timeline>) {
        if tl.writer.lock().end <= self.opts.seal_threshold_bytes {
            return;
        }
        let mut cat = self.cat.lock();
        if tl.check_live().is_err() {
            return;
        }
        if let Err(e) = self.seal(&mut cat, tl) {
            tracing::error!(timeline = %tl.id, error = %e, "sealing the open layer failed");
        }
    }

    /// Creates an empty open log file. Neither its header nor its name is
    /// flushed here: the first `sync` of the log flushes both, and recovery
    /// treats a missing or never-flushed log as empty.
    fn create_log(&self, cat: &mut Catalog) -> Result<Arc<Layer>, StoreError> {
        let id = cat.state.alloc_layer();
        let name = layer::file_name(id);
        let file = self.backend.open(&name, true)?;
        file.set_len(0)?;
        file.write_all_at(&layer::header(id), 0)?;
        Ok(Arc::new(Layer::new(id, file)))
    }

    fn open_log(&self, layer: Arc<Layer>) -> Writer {
        let end = layer::HEADER_LEN;
        let chunk = self.opts.log_zero_chunk_bytes;
        let inline = self.opts.log_zero_fill_inline;
        let log = OpenLog::new(layer, self.backend.clone(), end, end, false, chunk, inline);
        Writer::new(Arc::new(log), end, true)
    }

    /// First half of a seal of `tl`'s open log, under its append lock `w`:
    /// writes marker, meta section, index and footer after the last record,
    /// cuts the zeroed tail past them, flushes the log (its one fdatasync),
    /// and creates the next open log (no flush). The
    /// caller commits the returned delta and then calls `finish_seal`.
    /// `None`: nothing was appended since the last seal, nothing to do.
    fn prepare_seal(
        &self,
        cat: &mut Catalog,
        tl: &Timeline,
        w: &mut Writer,
    ) -> Result<Option<SealPlan>, StoreError> {
        if w.records == 0 {
            return Ok(None);
        }
        let old = w.log.layer.clone();
        let tail = layer::seal_tail(&SealInput {
            data_end: w.end,
            meta: &w.meta,
            index: &w.index,
        });
        w.log.close_tail();
        old.file.write_all_at(&tail, w.end)?;
        let len = w.end + tail.len() as u64;
        if old.file.len()? > len {
            old.file.set_len(len)?;
        }
        w.log.flush()?;
        failpoint!(self, "seal-before-manifest");
        let new = self.create_log(cat)?;
        let delta = Delta::LayerSealed {
            timeline: tl.id,
            layer: old.id,
            open: new.id,
        };
        Ok(Some(SealPlan { old, new, delta }))
    }

    /// Second half of a seal, once its delta is durable: switches the
    /// timeline to the new log and reads the sealed one through a mapping.
    fn finish_seal(&self, cat: &mut Catalog, tl: &Timeline, w: &mut Writer, plan: SealPlan) {
        cat.layers.insert(plan.new.id, plan.new.clone());
        *w = self.open_log(plan.new);
        plan.old.set_sealed();
        if let Err(e) = plan.old.map_sealed() {
            // Reads fall back to positional reads of the file.
            tracing::warn!(layer = %plan.old.name, error = %e, "mapping a sealed layer failed");
        }
        self.counters.seal();
        tracing::debug!(timeline = %tl.id, layer = %plan.old.name, "sealed layer");
    }

    /// Seals the open log of `tl` (if it holds any record) and starts a new
    /// one: one flush of the log, one of the manifest.
    fn seal(&self, cat: &mut Catalog, tl: &Arc<Timeline>) -> Result<(), StoreError> {
        let mut w = tl.writer.lock();
        let Some(plan) = self.prepare_seal(cat, tl, &mut w)? else {
            return Ok(());
        };
        let Catalog { log, state, .. } = &mut *cat;
        log.commit(&*self.backend, state, std::slice::from_ref(&plan.delta))?;
        self.finish_seal(cat, tl, &mut w, plan);
        Ok(())
    }

    /// Forks a new timeline off `parent`'s current state (or a fresh root)
    /// and commits it with `more` (the branch-level deltas of the caller,
    /// given the new timeline's id) as one manifest batch. Costs: the
    /// parent's seal (one log flush, skipped when nothing was appended
    /// since its last seal) and one manifest flush. Nothing here is O(number
    /// of branches, layers or pages) but the seal's index of the parent's
    /// unsealed pages.
    fn fork(
        &self,
        cat: &mut Catalog,
        parent: Option<&Arc<Timeline>>,
        more: impl FnOnce(TimelineId) -> Vec<Delta>,
    ) -> Result<Arc<Timeline>, StoreError> {
        let created = now();
        let mut deltas = Vec::with_capacity(3);
        let mut guard = parent.map(|p| p.writer.lock());
        let (ancestor, tree, plan) = match (parent, guard.as_deref_mut()) {
            (Some(p), Some(w)) => {
                let sealed = cat
                    .state
                    .timelines
                    .get(&p.id)
                    .map(|r| r.layers.len() as u64);
                let sealed = sealed.ok_or_else(|| {
                    StoreError::corrupted(format!("timeline {} not in manifest", p.id))
                })?;
                let plan = self.prepare_seal(cat, p, w)?;
                if let Some(plan) = &plan {
                    deltas.push(plan.delta.clone());
                }
                let count = sealed + u64::from(plan.is_some());
                (Some((p.id, count)), p.tree.read().clone(), plan)
            }
            _ => (None, Tree::new_root(created), None),
        };
        let open = self.create_log(cat)?;
        let id = cat.state.alloc_timeline();
        deltas.push(Delta::TimelineCreated {
            id,
            ancestor,
            open: open.id,
            root_time: created,
        });
        deltas.extend(more(id));
        let Catalog { log, state, .. } = &mut *cat;
        log.commit(&*self.backend, state, &deltas)?;
        if let (Some(p), Some(w), Some(plan)) = (parent, guard.as_deref_mut(), plan) {
            self.finish_seal(cat, p, w, plan);
        }
        drop(guard);
        self.start_timeline(cat, id, tree, open)
    }

    /// Brings a forked timeline to life: orphans of the parent (files open
    /// only in the parent's processes) are dropped from the child.
    fn start_timeline(
        &self,
        cat: &mut Catalog,
        id: TimelineId,
        tree: Tree,
        open: Arc<Layer>,
    ) -> Result<Arc<Timeline>, StoreError> {
        let orphans: Vec<_> = tree.orphans.iter().copied().collect();
        cat.layers.insert(open.id, open.clone());
        let writer = self.open_log(open);
        let tl = Arc::new(Timeline::new(id, tree, writer));
        {
            let mut w = tl.writer.lock();
            for id in orphans {
                tl.meta(&mut w, MetaOp::DropOrphan { id })?;
            }
        }
        cat.live.insert(id, tl.clone());
        Ok(tl)
    }

    /// Makes `deltas` durable and applies them to the catalog's state.
    fn commit(&self, cat: &mut Catalog, deltas: &[Delta]) -> Result<(), StoreError> {
        let Catalog { log, state, .. } = cat;
        log.commit(&*self.backend, state, deltas)
    }

    fn info(state: &ManifestState, name: &str) -> Result<BranchInfo, StoreError> {
        let rec = state
            .branches
            .get(name)
            .ok_or_else(|| StoreError::BranchNotFound(name.to_string()))?;
        Ok(BranchInfo {
            id: rec.id,
            name: name.to_string(),
            parent: rec
                .parent
                .and_then(|p| state.branch_name(p))
                .map(str::to_string),
            created_at: time(rec.created_at),
            reset_at: rec.reset_at.map(time),
            annotations: rec.annotations.clone(),
        })
    }

    fn live_timeline(cat: &Catalog, name: &str) -> Result<Arc<Timeline>, StoreError> {
        let rec = cat
            .state
            .branches
            .get(name)
            .ok_or_else(|| StoreError::BranchNotFound(name.to_string()))?;
        if let Some(why) = cat.broken.get(&rec.timeline) {
            return Err(StoreError::Corrupted {
                what: format!("branch {name:?} reads a damaged layer: {why}"),
            });
        }
        cat.live.get(&rec.timeline).cloned().ok_or_else(|| {
            StoreError::corrupted(format!("timeline {} of {name:?} not loaded", rec.timeline))
        })
    }
}

fn check_branch_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(StoreError::InvalidArgument(format!(
            "bad branch name {name:?}"
        )));
    }
    Ok(())
}

impl Store {
    /// Opens (creating if empty) the store in `dir`; replays open logs, cuts
    /// torn tails, drops orphaned inodes.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Store::open_with_backend(Arc::new(DiskBackend::new(dir)?), opts)
    }

    /// The same over an I/O backend.
    pub fn open_with_backend(
        backend: Arc<dyn Backend>,
        opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        let cat = recovery::recover(&backend, &opts)?;
        Ok(Store {
            shared: Arc::new(Shared {
                backend,
                opts,
                cat: Mutex::new(cat),
                counters: Counters::default(),
            }),
        })
    }

    /// Creates a branch: a root (`parent: None`) with an empty root
    /// directory, or a fork of `parent`'s current contents (O(1): seals the
    /// parent's open layer and shares its index and file table).
    pub fn create_branch(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<BranchInfo, StoreError> {
        self.create_branch_annotated(name, parent, BTreeMap::new())
    }

    /// [`Store::create_branch`] with the branch's first annotations, made
    /// durable in the same manifest commit as the branch: after a crash the
    /// branch exists with all of them, or not at all.
    pub fn create_branch_annotated(
        &self,
        name: &str,
        parent: Option<&str>,
        annotations: BTreeMap<String, String>,
    ) -> Result<BranchInfo, StoreError> {
        check_branch_name(name)?;
        let sh = &self.shared;
        let mut cat = sh.cat.lock();
        if cat.state.branches.contains_key(name) {
            return Err(StoreError::BranchExists(name.to_string()));
        }
        let (parent_tl, parent_id) = match parent {
            Some(p) => (
                Some(Shared::live_timeline(&cat, p)?),
                cat.state.branches.get(p).map(|r| r.id),
            ),
            None => (None, None),
        };
        let id = cat.state.alloc_branch();
        sh.fork(&mut cat, parent_tl.as_ref(), |timeline| {
            vec![Delta::BranchCreated {
                name: name.to_string(),
                branch: BranchRecord {
                    id,
                    parent: parent_id,
                    timeline,
                    created_at: now(),
                    reset_at: None,
                    annotations,
                },
            }]
        })?;
        Shared::info(&cat.state, name)
    }

    /// Removes the branch's metadata at once (durably). Children live on.
    /// Space comes back at `gc()`.
    pub fn drop_branch(&self, name: &str) -> Result<(), StoreError> {
        let sh = &self.shared;
        let mut cat = sh.cat.lock();
        let timeline = cat
            .state
            .branches
            .get(name)
            .map(|r| r.timeline)
            .ok_or_else(|| StoreError::BranchNotFound(name.to_string()))?;
        let delta = Delta::BranchDropped {
            name: name.to_string(),
        };
        sh.commit(&mut cat, &[delta])?;
        if let Some(tl) = cat.live.remove(&timeline) {
            tl.retired.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Replaces the branch's contents with the current state of
    /// `new_parent` (default: its own parent), as metadata. Keeps the
    /// BranchId, name and annotations; old handles become stale.
    pub fn reset_branch(
        &self,
        name: &str,
        new_parent: Option<&str>,
    ) -> Result<BranchInfo, StoreError> {
        let sh = &self.shared;
        let mut cat = sh.cat.lock();
        let rec = cat
            .state
            .branches
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::BranchNotFound(name.to_string()))?;
        let parent_name = match new_parent {
            Some(p) => p.to_string(),
            None => rec
                .parent
                .and_then(|p| cat.state.branch_name(p))
                .map(str::to_string)
                .ok_or_else(|| StoreError::NoParent(name.to_string()))?,
        };
        if parent_name == name {
            return Err(StoreError::InvalidArgument(
                "a branch cannot be reset to itself".into(),
            ));
        }
        let parent_tl = Shared::live_timeline(&cat, &parent_name)?;
        let parent_id = cat.state.branches.get(&parent_name).map(|r| r.id);
        let tl = sh.fork(&mut cat, Some(&parent_tl), |timeline| {
            vec![Delta::BranchReset {
                name: name.to_string(),
                timeline,
                parent: parent_id,
                reset_at: now(),
            }]
        })?;
        debug_assert_eq!(
            cat.state.branches.get(name).map(|b| b.timeline),
            Some(tl.id)
        );
        if let Some(old) = cat.live.remove(&rec.timeline) {
            old.retired.store(true, Ordering::Release);
        }
        Shared::info(&cat.state, name)
    }

    pub fn rename_branch(&self, old: &str, new: &str) -> Result<BranchInfo, StoreError> {
        check_branch_name(new)?;
        let sh = &self.shared;
        let mut cat = sh.cat.lock();
        if old != new && cat.state.branches.contains_key(new) {
            return Err(StoreError::BranchExists(new.to_string()));
        }
        if !cat.state.branches.contains_key(old) {
            return Err(StoreError::BranchNotFound(old.to_string()));
        }
        if old != new {
            let delta = Delta::BranchRenamed {
                old: old.to_string(),
                new: new.to_string(),
            };
            sh.commit(&mut cat, &[delta])?;
        }
        Shared::info(&cat.state, new)
    }

    /// Free-form durable key/value pairs per branch; `None` removes the key.
    pub fn set_annotation(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<BranchInfo, StoreError> {
        let sh = &self.shared;
        let mut cat = sh.cat.lock();
        if !cat.state.branches.contains_key(name) {
            return Err(StoreError::BranchNotFound(name.to_string()));
        }
        let delta = Delta::Annotated {
            name: name.to_string(),
            key: key.to_string(),
            value: value.map(str::to_string),
        };
        sh.commit(&mut cat, &[delta])?;
        Shared::info(&cat.state, name)
    }

    /// Every branch, sorted by name.
    pub fn branches(&self) -> Vec<BranchInfo> {
        let cat = self.shared.cat.lock();
        cat.state
            .branches
            .keys()
            .filter_map(|n| Shared::info(&cat.state, n).ok())
            .collect()
    }

    pub fn branch_info(&self, name: &str) -> Result<BranchInfo, StoreError> {
        Shared::info(&self.shared.cat.lock().state, name)
    }

    /// A handle for file I/O on the branch's current contents.
    pub fn branch(&self, name: &str) -> Result<Branch, StoreError> {
        let cat = self.shared.cat.lock();
        let tl = Shared::live_timeline(&cat, name)?;
        let id = cat
            .state
            .branches
            .get(name)
            .map(|r| r.id)
            .ok_or_else(|| StoreError::BranchNotFound(name.to_string()))?;
        Ok(Branch::new(id, tl, self.shared.clone()))
    }

    /// Deletes layer files no live branch can read; returns what it reclaimed.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let sh = &self.shared;
        let mut cat = sh.cat.lock();
        gc::collect(&*sh.backend, &mut cat)
    }

    /// Counters since the store was opened (page reads and writes, bytes,
    /// syncs and their latency, seals, corrupted reads). Lock-free.
    pub fn metrics(&self) -> StoreMetrics {
        self.shared.counters.snapshot()
    }

    /// Bytes on disk of the branch's open log. A branch that nothing has
    /// been forked from owns at least this; a branch just created owns
    /// exactly this (everything else it reads, its parent reads too). Unlike
    /// [`Store::usage`], costs one lookup, not a walk of every branch.
    pub fn open_log_bytes(&self, name: &str) -> Result<u64, StoreError> {
        let cat = self.shared.cat.lock();
        let rec = cat
            .state
            .branches
            .get(name)
            .ok_or_else(|| StoreError::BranchNotFound(name.to_string()))?;
        let open = cat.state.timelines.get(&rec.timeline).and_then(|t| t.open);
        Ok(open
            .and_then(|id| cat.layers.get(&id))
            .map_or(0, |l| l.bytes_on_disk()))
    }

    /// Bytes on disk in all, and per branch the bytes of layers only it can read.
    pub fn usage(&self) -> StorageUsage {
        gc::usage(&self.shared.cat.lock())
    }
}
