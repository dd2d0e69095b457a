//! Recovery (`Store::open`): reads the manifest, opens every layer it lists,
//! removes files it does not list, and rebuilds each needed timeline's tree
//! in ancestry order. A child starts from an O(1) snapshot of its
//! ancestor's tree taken right after the fork-point layer; sealed layers
//! contribute their metadata ops and page index (their page data is not
//! read); a live timeline's open log is replayed record by record up to the
//! first bytes that are not a valid record, where it is cut unless all that
//! follows is its zeroed tail. Orphans (nlink 0) are dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::Catalog;
use crate::backend::Backend;
use crate::layer::{self, Layer, ZERO_PAGE};
use crate::manifest::{ManifestLog, MANIFEST};
use crate::record::{self, MetaOp, Record};
use crate::timeline::{OpenLog, Timeline, Writer};
use crate::tree::{PageLoc, Tree};
use crate::{FileId, LayerId, PageNo, StoreError, StoreOptions, TimelineId};

pub(super) fn recover(
    backend: &Arc<dyn Backend>,
    opts: &StoreOptions,
) -> Result<Catalog, StoreError> {
    let (log, state) = ManifestLog::open(&**backend, opts.manifest_compact_bytes)?;
    let open_logs: BTreeSet<LayerId> = state.timelines.values().filter_map(|t| t.open).collect();

    // Open every listed layer; remove what the manifest does not list
    // (a log created just before a crash, a stale temporary manifest).
    let mut layers: HashMap<LayerId, Arc<Layer>> = HashMap::new();
    for rec in state.timelines.values() {
        for id in rec.layers.iter().chain(rec.open.iter()) {
            // A log never flushed may be missing after a crash: it was empty.
            let create = open_logs.contains(id);
            let file = backend.open(&layer::file_name(*id), create).map_err(|e| {
                StoreError::corrupted(format!(
                    "{} listed in the manifest: {e}",
                    layer::file_name(*id)
                ))
            })?;
            layers.insert(*id, Arc::new(Layer::new(*id, file)));
        }
    }
    let mut removed_any = false;
    for name in backend.list()? {
        let listed = layer::parse_name(&name).is_some_and(|id| layers.contains_key(&id));
        if name != MANIFEST && !listed {
            tracing::info!(file = %name, "removing a file the manifest does not list");
            backend.remove(&name)?;
            removed_any = true;
        }
    }
    if removed_any {
        backend.sync_dir()?;
    }

    // Which prefix of each timeline is needed, and where children fork.
    let live: BTreeSet<TimelineId> = state.branches.values().map(|b| b.timeline).collect();
    let mut need: BTreeMap<TimelineId, u64> = BTreeMap::new();
    for t in &live {
        let rec = state
            .timelines
            .get(t)
            .ok_or_else(|| StoreError::corrupted(format!("{MANIFEST}: timeline {t} missing")))?;
        need.insert(*t, rec.layers.len() as u64);
    }
    let mut forks: BTreeSet<(TimelineId, u64)> = BTreeSet::new();
    for (tid, rec) in state.timelines.iter().rev() {
        if !need.contains_key(tid) {
            continue;
        }
        if let Some((a, k)) = rec.ancestor {
            let n = need.entry(a).or_insert(0);
            *n = (*n).max(k);
            forks.insert((a, k));
        }
    }

    let mut snapshots: HashMap<(TimelineId, u64), Tree> = HashMap::new();
    let mut timelines = HashMap::new();
    // Timelines that read a damaged sealed layer, with the reason; their
    // branches answer `Corrupted`, every other branch opens.
    let mut broken: HashMap<TimelineId, String> = HashMap::new();
    'timelines: for (tid, n) in &need {
        let rec = &state.timelines[tid];
        let mut tree = match rec.ancestor {
            Some(key) => match snapshots.get(&key) {
                Some(t) => t.clone(),
                None => match broken.get(&key.0) {
                    // The fork point lies past the ancestor's damaged layer
                    // (earlier fork points have their snapshot).
                    Some(why) => {
                        let why = why.clone();
                        tracing::error!(
                            timeline = %tid,
                            reason = %why,
                            "timeline reads a damaged layer of its ancestor: its branches will answer EIO"
                        );
                        broken.insert(*tid, why);
                        continue 'timelines;
                    }
                    _ => {
                        return Err(StoreError::corrupted(format!(
                            "{MANIFEST}: timeline {tid} forks from unknown point {key:?}"
                        )))
                    }
                },
            },
            None => Tree::new_root(rec.root_time),
        };
        if forks.contains(&(*tid, 0)) {
            snapshots.insert((*tid, 0), tree.clone());
        }
        if *n > rec.layers.len() as u64 {
            return Err(StoreError::corrupted(format!(
                "{MANIFEST}: timeline {tid} has fewer layers than a child reads"
            )));
        }
        for (i, id) in rec.layers.iter().take(*n as usize).enumerate() {
            let layer = &layers[id];
            if let Err(e) = load_sealed(&mut tree, layer) {
                let StoreError::Corrupted { what } = e else {
                    return Err(e);
                };
                tracing::error!(
                    timeline = %tid,
                    layer = %layer.name,
                    reason = %what,
                    "sealed layer is damaged: branches reading it will answer EIO, the others open"
                );
                broken.insert(*tid, what);
                continue 'timelines;
            }
            if forks.contains(&(*tid, i as u64 + 1)) {
                snapshots.insert((*tid, i as u64 + 1), tree.clone());
            }
        }
        if live.contains(tid) {
            let open = rec.open.ok_or_else(|| {
                StoreError::corrupted(format!("{MANIFEST}: live timeline {tid} has no open log"))
            })?;
            let writer = replay_open(&mut tree, &layers[&open], backend, opts)?;
            let tl = Arc::new(Timeline::new(*tid, tree, writer));
            drop_orphans(&tl)?;
            timelines.insert(*tid, tl);
        }
    }
    Ok(Catalog {
        state,
        log,
        live: timelines,
        layers,
        broken,
    })
}

fn load_sealed(tree: &mut Tree, layer: &Arc<Layer>) -> Result<(), StoreError> {
    let sealed = layer::read_sealed(layer)?;
    for body in &sealed.meta {
        let op = record::decode_meta(body)
            .map_err(|e| StoreError::corrupted(format!("{}: {e}", layer.name)))?;
        tree.apply(&op).map_err(|e| {
            StoreError::corrupted(format!(
                "{}: metadata op {op:?} does not apply: {e}",
                layer.name
            ))
        })?;
    }
    for (file, page, off) in sealed.index {
        let loc = (off != ZERO_PAGE).then(|| PageLoc {
            layer: layer.clone(),
            offset: off,
        });
        tree.set_page(file, page, loc);
    }
    layer.map_sealed()?;
    Ok(())
}

/// Replays an open log into `tree`. The log ends at the first bytes that
/// are not a valid record: if everything from there on is zeros (the
/// zeroed tail), it is kept as such; otherwise (a torn record, a seal whose
/// manifest update never happened) the file is cut there.
fn replay_open(
    tree: &mut Tree,
    layer: &Arc<Layer>,
    backend: &Arc<dyn Backend>,
    opts: &StoreOptions,
) -> Result<Writer, StoreError> {
    let mut len = layer.file.len()?;
    let mut bytes = vec![0u8; len as usize];
    layer.file.read_exact_at(&mut bytes, 0)?;
    let head = &bytes[..bytes.len().min(layer::HEADER_LEN as usize)];
    if head.len() < layer::HEADER_LEN as usize || head.iter().all(|&b| b == 0) {
        // Created but never flushed (a flush writes the header first):
        // the log held nothing durable. Start it afresh.
        let header = layer::header(layer.id);
        layer.file.set_len(0)?;
        layer.file.write_all_at(&header, 0)?;
        layer.file.sync_data()?;
        backend.sync_dir()?;
        bytes = header.to_vec();
        len = layer::HEADER_LEN;
    }
    let version = layer::check_header(&bytes, layer.id)
        .map_err(|e| StoreError::corrupted(format!("{} at offset 0: {e}", layer.name)))?;
    let mut at = layer::HEADER_LEN as usize;
    let mut pending = Vec::new();
    while let Some((rec, n)) = record::parse(&bytes[at..]) {
        match rec {
            Record::Page { file, page } => {
                let loc = PageLoc {
                    layer: layer.clone(),
                    offset: at as u64,
                };
                tree.set_page(file, page, Some(loc));
                pending.push(Ok((file, page, Some(at as u64))));
            }
            Record::Patch { file, page, base } => {
                // A patch is made against the page's record before it in
                // this log, or against zeros.
                if let Some(base) = base {
                    let current = tree.page(file, page);
                    if !current.is_some_and(|l| Arc::ptr_eq(&l.layer, layer) && l.offset == base) {
                        return Err(StoreError::corrupted(format!(
                            "{} at offset {at}: patch of a page whose record is not at {base}",
                            layer.name
                        )));
                    }
                }
                let loc = PageLoc {
                    layer: layer.clone(),
                    offset: at as u64,
                };
                tree.set_page(file, page, Some(loc));
                pending.push(Ok((file, page, Some(at as u64))));
            }
            Record::Zero { file, page } => {
                tree.set_page(file, page, None);
                pending.push(Ok((file, page, None)));
            }
            Record::Meta(body) => {
                let op = apply_logged(tree, body, layer, at)?;
                let cut = op.1;
                pending.push(Err((body.to_vec(), op.0)));
                if let Some((file, page)) = cut {
                    pending.push(Ok((file, page, None)));
                }
            }
            Record::Trunc { file, page, meta } => {
                let (op, _) = apply_logged(tree, meta, layer, at)?;
                let loc = PageLoc {
                    layer: layer.clone(),
                    offset: at as u64,
                };
                tree.set_page(file, page, Some(loc));
                pending.push(Err((meta.to_vec(), op)));
                pending.push(Ok((file, page, Some(at as u64))));
            }
        }
        at += n;
    }
    let end = at as u64;
    let rest = &bytes[at..];
    let zeroed = if at > layer::HEADER_LEN as usize && rest.iter().all(|&b| b == 0) {
        // A zeroed tail (possibly not all durable: a later `sync` makes
        // the length durable with the records written over it).
        len
    } else {
        if end < len {
            tracing::warn!(layer = %layer.name, offset = at, len, "cutting torn tail of open log");
            layer.file.set_len(end)?;
            layer.file.sync_data()?;
        }
        end
    };
    let log = OpenLog::new(
        layer.clone(),
        backend.clone(),
        end,
        zeroed,
        true,
        opts.log_zero_chunk_bytes,
        opts.log_zero_fill_inline,
    );
    let mut w = Writer::new(Arc::new(log), end, version >= 2);
    for p in pending {
        match p {
            Ok((file, page, off)) => w.note_page(file, page, off),
            Err((body, op)) => w.note_meta(body, &op),
        }
    }
    Ok(w)
}

/// Decodes and applies one logged op; returns it and the page it cuts
/// inside, if it truncates.
#[allow(clippy::type_complexity)]
fn apply_logged(
    tree: &mut Tree,
    body: &[u8],
    layer: &Layer,
    at: usize,
) -> Result<(MetaOp, Option<(FileId, PageNo)>), StoreError> {
    let op = record::decode_meta(body)
        .map_err(|e| StoreError::corrupted(format!("{} at offset {at}: {e}", layer.name)))?;
    let cut = tree.cut_boundary(&op);
    tree.apply(&op).map_err(|e| {
        StoreError::corrupted(format!(
            "{} at offset {at}: op {op:?} does not apply: {e}",
            layer.name
        ))
    })?;
    Ok((op, cut))
}

/// Drops every inode with nlink 0: nothing can have it open after a restart.
fn drop_orphans(tl: &Arc<Timeline>) -> Result<(), StoreError> {
    let orphans: Vec<_> = tl.tree.read().orphans.iter().copied().collect();
    if orphans.is_empty() {
        return Ok(());
    }
    let mut w = tl.writer.lock();
    for id in orphans {
        tl.meta(&mut w, MetaOp::DropOrphan { id })?;
    }
    Ok(())
}
