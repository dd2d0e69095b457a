//! Typed identifiers for the nouns of the page store. Never bare integers
//! across the API.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// User-visible branch identity; survives reset and rename.
    BranchId
);
id_type!(
    /// An inode number. Never reused within a lineage.
    FileId
);
id_type!(
    /// A page number inside a file (byte offset / `PAGE_SIZE`).
    PageNo
);
id_type!(
    /// A layer (one file on disk: an open log, later sealed).
    LayerId
);
id_type!(
    /// A position in a sequence of changes.
    Seq
);
id_type!(
    /// A timeline: the chain of layers a branch name currently points at.
    TimelineId
);

impl FileId {
    /// The root directory of every branch.
    pub const ROOT: FileId = FileId(1);
}
