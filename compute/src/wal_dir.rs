//! A branch's WAL directory beside the page store.
//!
//! A cluster made by offshoot keeps its WAL outside the data directory: its
//! `pg_wal` is a symbolic link (made by `initdb --waldir`) to a directory of
//! its own on the home's file system. PostgreSQL writes and flushes its WAL
//! there as it does natively, without a FUSE round trip per commit; the data
//! files stay in the page store (docs/compute.md, "The WAL beside the page
//! store").
//!
//! What this module owns is how a child branch gets its parent's WAL at
//! create without copying it ([`WalSnapshot`]), and how that becomes a
//! directory PostgreSQL can write before the child's first start
//! ([`complete_pending`]). It rests on two facts of PostgreSQL's WAL:
//!
//! - with `wal_recycle = off` ([`settings`]) a segment file is never reused
//!   for another segment, and the bytes below a segment's write position
//!   never change: finished segments can be shared as hard links;
//! - WAL pages are written in order and a page never written reads as zeros
//!   (segments are zero-filled or sparse when made), so the written part of
//!   the segment in use is a prefix of whole pages.
//!
//! The segment in use is not shared: the child gets a hard link to it as its
//! *source*, the cut (the offset of the last written page) and a copy of that
//! last page as it was at the create, in one marker file. At the child's first start,
//! [`complete_pending`] builds the child's own segment from the source's bytes
//! below the cut and the saved page. Whatever the parent writes after the
//! create lands above the cut or in that last page after it was saved, so
//! the child never sees it; everything the parent had flushed before the
//! create is below the cut or in the saved page. The child's crash recovery
//! finds the end of the WAL where the copied records end.

mod pending;
mod snapshot;

pub use pending::complete_pending;
pub use snapshot::WalSnapshot;

/// Where `initdb --waldir` puts the link, in the data directory.
pub const LINK_NAME: &str = "pg_wal";

/// The marker of a WAL directory whose segment in use is still to be built:
/// a line `SEGMENT CUT`, then the segment's last written page as it was at
/// the create (one file, one flush).
const CUT_MARKER: &str = "offshoot-cut";
/// A hard link to the parent's segment that was in use at the create.
const CUT_SOURCE: &str = "offshoot-cut.source";

/// Per-start settings of a compute whose WAL is beside the page store.
pub fn settings() -> Vec<(String, String)> {
    [
        // Hard links to finished segments are shared with children: a
        // recycled segment would be overwritten under them.
        ("wal_recycle", "off"),
        // New segments are zero-filled, as natively, so that the flush of a
        // commit does not also allocate the file's blocks.
        ("wal_init_zero", "on"),
        // The native default on Linux.
        ("wal_sync_method", "fdatasync"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// True for a WAL segment's file name: 24 upper-case hex digits.
fn is_segment_name(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

/// True for the files a child shares with its parent as hard links: segments,
/// timeline history and backup labels (never changed once written), and a
/// pending cut of a parent that has not started yet.
fn is_shared_name(name: &str) -> bool {
    is_segment_name(name)
        || name.ends_with(".history")
        || name.ends_with(".backup")
        || matches!(name, CUT_MARKER | CUT_SOURCE)
}

#[cfg(test)]
mod tests;
