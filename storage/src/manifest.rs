//! The manifest's contents: which branches exist, which timeline each
//! points at, and each timeline's ancestry and layers ([`ManifestState`]),
//! and the small changes ([`Delta`]) every branch-level operation commits.
//! The file that holds them (`MANIFEST`, a snapshot followed by a log of
//! delta batches) is owned by [`log`].

mod log;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{BranchId, LayerId, TimelineId};

pub(crate) use log::{ManifestLog, MANIFEST};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ManifestState {
    pub next_branch: u64,
    pub next_timeline: u64,
    pub next_layer: u64,
    pub branches: BTreeMap<String, BranchRecord>,
    pub timelines: BTreeMap<TimelineId, TimelineRecord>,
    /// Branch names by id (derived, not stored).
    #[serde(skip)]
    names: HashMap<BranchId, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BranchRecord {
    pub id: BranchId,
    pub parent: Option<BranchId>,
    pub timeline: TimelineId,
    pub created_at: u64,
    pub reset_at: Option<u64>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TimelineRecord {
    /// The timeline this one forked from, and how many of its sealed
    /// layers it reads.
    pub ancestor: Option<(TimelineId, u64)>,
    /// Sealed layers, oldest first.
    pub layers: Vec<LayerId>,
    /// The open log; `None` once the timeline is dead and its log reclaimed.
    pub open: Option<LayerId>,
    /// Creation time of the root directory (root timelines).
    pub root_time: u64,
}

/// One change of the manifest. A commit is a batch of deltas, written as
/// one frame: all of them are durable or none is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Delta {
    BranchCreated {
        name: String,
        branch: BranchRecord,
    },
    BranchDropped {
        name: String,
    },
    BranchRenamed {
        old: String,
        new: String,
    },
    /// The name now points at a fresh timeline forked off `parent`.
    BranchReset {
        name: String,
        timeline: TimelineId,
        parent: Option<BranchId>,
        reset_at: u64,
    },
    Annotated {
        name: String,
        key: String,
        value: Option<String>,
    },
    /// The timeline's open log `layer` is sealed; `open` is its new log.
    LayerSealed {
        timeline: TimelineId,
        layer: LayerId,
        open: LayerId,
    },
    TimelineCreated {
        id: TimelineId,
        ancestor: Option<(TimelineId, u64)>,
        open: LayerId,
        root_time: u64,
    },
    /// No branch points at the timeline any more: keep only its first
    /// `keep` sealed layers (descendants read them), or forget it.
    TimelineRetired {
        id: TimelineId,
        keep: Option<u64>,
    },
}

impl ManifestState {
    pub fn alloc_layer(&mut self) -> LayerId {
        self.next_layer += 1;
        LayerId(self.next_layer)
    }

    pub fn alloc_timeline(&mut self) -> TimelineId {
        self.next_timeline += 1;
        TimelineId(self.next_timeline)
    }

    pub fn alloc_branch(&mut self) -> BranchId {
        self.next_branch += 1;
        BranchId(self.next_branch)
    }

    /// O(1): a derived index.
    pub fn branch_name(&self, id: BranchId) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    /// Rebuilds derived indexes after a snapshot is loaded.
    fn reindex(&mut self) {
        self.names = self
            .branches
            .iter()
            .map(|(n, b)| (b.id, n.clone()))
            .collect();
    }

    /// Applies one delta. Deltas are checked by the operation that makes
    /// them; one that names something missing changes nothing.
    pub fn apply(&mut self, d: &Delta) {
        match d {
            Delta::BranchCreated { name, branch } => {
                self.next_branch = self.next_branch.max(branch.id.0);
                self.names.insert(branch.id, name.clone());
                self.branches.insert(name.clone(), branch.clone());
            }
            Delta::BranchDropped { name } => {
                if let Some(b) = self.branches.remove(name) {
                    self.names.remove(&b.id);
                }
            }
            Delta::BranchRenamed { old, new } => {
                if let Some(b) = self.branches.remove(old) {
                    self.names.insert(b.id, new.clone());
                    self.branches.insert(new.clone(), b);
                }
            }
            Delta::BranchReset {
                name,
                timeline,
                parent,
                reset_at,
            } => {
                if let Some(b) = self.branches.get_mut(name) {
                    b.timeline = *timeline;
                    b.parent = *parent;
                    b.reset_at = Some(*reset_at);
                }
            }
            Delta::Annotated { name, key, value } => {
                if let Some(b) = self.branches.get_mut(name) {
                    match value {
                        Some(v) => b.annotations.insert(key.clone(), v.clone()),
                        None => b.annotations.remove(key),
                    };
                }
            }
            Delta::LayerSealed {
                timeline,
                layer,
                open,
            } => {
                self.next_layer = self.next_layer.max(open.0).max(layer.0);
                if let Some(t) = self.timelines.get_mut(timeline) {
                    t.layers.push(*layer);
                    t.open = Some(*open);
                }
            }
            Delta::TimelineCreated {
                id,
                ancestor,
                open,
                root_time,
            } => {
                self.next_timeline = self.next_timeline.max(id.0);
                self.next_layer = self.next_layer.max(open.0);
                self.timelines.insert(
                    *id,
                    TimelineRecord {
                        ancestor: *ancestor,
                        layers: Vec::new(),
                        open: Some(*open),
                        root_time: *root_time,
                    },
                );
            }
            Delta::TimelineRetired { id, keep } => match keep {
                Some(n) => {
                    if let Some(t) = self.timelines.get_mut(id) {
                        t.layers.truncate(*n as usize);
                        t.open = None;
                    }
                }
                None => {
                    self.timelines.remove(id);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_keep_the_name_index_in_step() {
        let mut s = ManifestState::default();
        let id = s.alloc_branch();
        let rec = BranchRecord {
            id,
            parent: None,
            timeline: TimelineId(1),
            created_at: 0,
            reset_at: None,
            annotations: BTreeMap::new(),
        };
        s.apply(&Delta::BranchCreated {
            name: "a".into(),
            branch: rec,
        });
        assert_eq!(s.branch_name(id), Some("a"));
        s.apply(&Delta::BranchRenamed {
            old: "a".into(),
            new: "b".into(),
        });
        assert_eq!(s.branch_name(id), Some("b"));
        assert!(s.branches.contains_key("b") && !s.branches.contains_key("a"));
        s.apply(&Delta::BranchDropped { name: "b".into() });
        assert_eq!(s.branch_name(id), None);
    }
}
