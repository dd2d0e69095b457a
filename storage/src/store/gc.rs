//! Garbage collection and space accounting. A layer is readable by a branch
//! if it belongs to the branch's timeline, or to an ancestor timeline at or
//! before the fork point. `collect` trims dead timelines to the prefix live
//! descendants still read, commits that to the manifest, then deletes the
//! layer files nothing lists any more.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Catalog;
use crate::backend::Backend;
use crate::layer;
use crate::manifest::{Delta, ManifestState};
use crate::{GcReport, LayerId, StorageUsage, StoreError, TimelineId};

/// For each layer, the names of the branches that can read it.
fn readers(state: &ManifestState) -> HashMap<LayerId, BTreeSet<String>> {
    let mut out: HashMap<LayerId, BTreeSet<String>> = HashMap::new();
    for (name, b) in &state.branches {
        let mut at = Some((b.timeline, None::<u64>));
        while let Some((tid, limit)) = at {
            let Some(rec) = state.timelines.get(&tid) else {
                break;
            };
            let n = limit.unwrap_or(rec.layers.len() as u64) as usize;
            for id in rec.layers.iter().take(n) {
                out.entry(*id).or_default().insert(name.clone());
            }
            if limit.is_none() {
                if let Some(open) = rec.open {
                    out.entry(open).or_default().insert(name.clone());
                }
            }
            at = rec.ancestor.map(|(a, k)| (a, Some(k)));
        }
    }
    out
}

pub(super) fn collect(backend: &dyn Backend, cat: &mut Catalog) -> Result<GcReport, StoreError> {
    let live: BTreeSet<TimelineId> = cat.state.branches.values().map(|b| b.timeline).collect();
    // Needed prefix per dead timeline, from descendants (children have
    // larger ids, so one pass from the newest suffices).
    let mut need: BTreeMap<TimelineId, u64> = BTreeMap::new();
    for (tid, rec) in cat.state.timelines.iter().rev() {
        if !live.contains(tid) && !need.contains_key(tid) {
            continue;
        }
        if let Some((a, k)) = rec.ancestor {
            let n = need.entry(a).or_insert(0);
            *n = (*n).max(k);
        }
    }
    // Dead timelines: trim to the needed prefix, or forget.
    let mut deltas = Vec::new();
    let mut kept: BTreeSet<LayerId> = BTreeSet::new();
    let mut report = GcReport::default();
    for (tid, rec) in &cat.state.timelines {
        if live.contains(tid) {
            kept.extend(rec.layers.iter().chain(rec.open.iter()).copied());
            continue;
        }
        match need.get(tid) {
            Some(&n) => {
                kept.extend(rec.layers.iter().take(n as usize).copied());
                if rec.open.is_some() || rec.layers.len() as u64 > n {
                    deltas.push(Delta::TimelineRetired {
                        id: *tid,
                        keep: Some(n),
                    });
                }
            }
            None => {
                report.timelines_removed += 1;
                deltas.push(Delta::TimelineRetired {
                    id: *tid,
                    keep: None,
                });
            }
        }
    }
    let doomed: Vec<LayerId> = cat
        .layers
        .keys()
        .filter(|id| !kept.contains(id))
        .copied()
        .collect();
    if doomed.is_empty() && deltas.is_empty() {
        return Ok(report);
    }
    let Catalog { log, state, .. } = &mut *cat;
    log.commit(backend, state, &deltas)?;
    for id in doomed {
        if let Some(layer) = cat.layers.remove(&id) {
            report.bytes_removed += layer.bytes_on_disk();
        }
        match backend.remove(&layer::file_name(id)) {
            Ok(()) => report.layers_removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    backend.sync_dir()?;
    tracing::info!(?report, "garbage collection done");
    Ok(report)
}

pub(super) fn usage(cat: &Catalog) -> StorageUsage {
    let sizes: HashMap<LayerId, u64> = cat
        .layers
        .iter()
        .map(|(id, l)| (*id, l.bytes_on_disk()))
        .collect();
    let mut usage = StorageUsage {
        total_bytes: sizes.values().sum::<u64>() + cat.log.bytes(),
        owned_bytes: cat.state.branches.keys().map(|n| (n.clone(), 0)).collect(),
    };
    for (id, names) in readers(&cat.state) {
        if names.len() == 1 {
            if let Some(name) = names.into_iter().next() {
                *usage.owned_bytes.entry(name).or_default() += sizes.get(&id).copied().unwrap_or(0);
            }
        }
    }
    usage
}
