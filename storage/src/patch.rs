//! Page patches: how a page write is logged when the page changed little.
//!
//! PostgreSQL's WAL is what this is for. Every commit rewrites the WAL's
//! last, partly filled 8 kB page, adding a few hundred bytes to it; logged
//! as whole pages, TPC-B wrote about four times the bytes patches need
//! (docs/storage-format.md, "Page patches"). So a write of a page whose
//! current record is in the same open log, and whose content the writer
//! still holds ([`RecentPages`]), is logged as the bytes that differ and the
//! offset of that record (record kind 5, see `record`). A page without such
//! a base is logged without its leading and trailing zeros when that is
//! smaller (a patch on zeros): a partly filled WAL page is mostly zeros.
//!
//! Reads assemble a patched page from its chain of records, all in the one
//! layer; chains are at most [`MAX_CHAIN`] patches long, then a page is
//! logged whole (or as a patch on zeros) again.
//!
//! Invariant: an entry of [`RecentPages`] holds exactly the content of the
//! record appended at its offset. Entries are made as records are encoded,
//! so a failed append must [`RecentPages::clear`] (its offsets will be
//! written again); the log's end only grows, so no other record ever takes
//! an entry's offset. Whether an entry is the page's *current* record is
//! the tree's to say: the caller passes the offset the tree holds.

use std::collections::{HashMap, VecDeque};

use crate::record;
use crate::{FileId, PageNo, PAGE_SIZE};

/// The longest chain of patches a read assembles (the whole page or patch
/// on zeros at its start not counted).
pub(crate) const MAX_CHAIN: u8 = 8;

/// A patch carries at most this many bytes; a page that changed more is
/// logged whole (it would save little, and lengthen the chain).
const MAX_PATCH_DATA: usize = PAGE_SIZE - 256;

/// Pages whose content is held for patching, the least recently written
/// dropped first. The hot case is one page (the WAL's last), rewritten at
/// every commit; data pages the kernel writes back between two commits come
/// and go around it.
const CAPACITY: usize = 32;

/// Writes of at most this many pages have all their pages remembered;
/// larger ones (writeback of many data pages) only their last page, which
/// is where a WAL write ends.
const REMEMBER_ALL_UP_TO: u64 = 2;

static ZEROS: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

struct Recent {
    offset: u64,
    /// Patches between this record and a self-contained one.
    depth: u8,
    data: Box<[u8]>,
}

/// The content of pages recently logged in one open log, by page.
#[derive(Default)]
pub(crate) struct RecentPages {
    pages: HashMap<(FileId, PageNo), Recent>,
    order: VecDeque<(FileId, PageNo)>,
}

/// Whether page `index` of a write of pages `first..=last` is remembered.
pub(crate) fn worth_remembering(first: u64, last: u64, index: u64) -> bool {
    last - first < REMEMBER_ALL_UP_TO || index == last
}

impl RecentPages {
    /// Whether the writer holds some content of `file`'s page `page`
    /// (cheap; the caller then asks the tree for the page's current record).
    pub fn holds(&self, file: FileId, page: PageNo) -> bool {
        self.pages.contains_key(&(file, page))
    }

    /// Appends to `buf` the record of `file`'s page `page` now holding
    /// `bytes` (not all zeros): a patch on the page's record at `current`
    /// (its offset in this log, as the tree has it) if its content is held,
    /// else a patch on zeros, else the whole page, whichever the rules
    /// allow and is smallest. `remember`: keep `bytes` as the content of the
    /// record, which will be at `at`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &mut self,
        buf: &mut Vec<u8>,
        file: FileId,
        page: PageNo,
        bytes: &[u8],
        current: Option<u64>,
        at: u64,
        remember: bool,
    ) {
        debug_assert_eq!(bytes.len(), PAGE_SIZE);
        let patch = current
            .and_then(|offset| {
                self.pages
                    .get(&(file, page))
                    .filter(|r| r.offset == offset && r.depth < MAX_CHAIN)
            })
            .and_then(|base| small_change(&base.data, bytes).map(|range| (base, range)));
        let mut depth = 0;
        match patch {
            Some((base, (lo, hi))) => {
                record::encode_patch(buf, file, page, Some(base.offset), lo, &bytes[lo..hi]);
                depth = base.depth + 1;
            }
            None => match small_change(&ZEROS, bytes) {
                Some((lo, hi)) => record::encode_patch(buf, file, page, None, lo, &bytes[lo..hi]),
                None => record::encode_page(buf, file, page, bytes),
            },
        }
        if remember {
            self.remember(file, page, at, depth, bytes);
        } else {
            self.forget(file, page);
        }
    }

    fn remember(&mut self, file: FileId, page: PageNo, offset: u64, depth: u8, bytes: &[u8]) {
        if let Some(r) = self.pages.get_mut(&(file, page)) {
            r.offset = offset;
            r.depth = depth;
            r.data.copy_from_slice(bytes);
            // Least recently written goes first: data pages written back
            // between two commits must not push out the WAL's last page.
            self.order.retain(|k| *k != (file, page));
            self.order.push_back((file, page));
            return;
        }
        if self.pages.len() >= CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.pages.remove(&old);
            }
        }
        self.order.push_back((file, page));
        let data = bytes.to_vec().into_boxed_slice();
        self.pages.insert(
            (file, page),
            Recent {
                offset,
                depth,
                data,
            },
        );
    }

    fn forget(&mut self, file: FileId, page: PageNo) {
        if self.pages.remove(&(file, page)).is_some() {
            self.order.retain(|k| *k != (file, page));
        }
    }

    /// Drops every entry (after a failed append).
    pub fn clear(&mut self) {
        self.pages.clear();
        self.order.clear();
    }
}

/// The range `[lo, hi)` outside which `new` equals `old`, if it is small
/// enough for a patch.
fn small_change(old: &[u8], new: &[u8]) -> Option<(usize, usize)> {
    let lo = first_difference(old, new);
    let hi = if lo == new.len() {
        lo
    } else {
        new.len() - first_difference_from_end(old, new)
    };
    (hi - lo <= MAX_PATCH_DATA).then_some((lo, hi))
}

/// Compares in 64-byte blocks (each a `memcmp`), then bytes.
const BLOCK: usize = 64;

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let mut i = 0;
    while i + BLOCK <= a.len() && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < a.len() && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Count of equal bytes at the end of `a` and `b`.
fn first_difference_from_end(a: &[u8], b: &[u8]) -> usize {
    let n = a.len();
    let mut k = 0;
    while k + BLOCK <= n && a[n - k - BLOCK..n - k] == b[n - k - BLOCK..n - k] {
        k += BLOCK;
    }
    while k < n && a[n - k - 1] == b[n - k - 1] {
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{check_page, PageBody};

    fn page_with(runs: &[(usize, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; PAGE_SIZE];
        for &(at, bytes) in runs {
            p[at..at + bytes.len()].copy_from_slice(bytes);
        }
        p
    }

    #[test]
    fn change_range_is_exact_at_block_edges() {
        let old = page_with(&[(0, &[1u8; 300])]);
        for (at, len) in [
            (0, 1),
            (63, 2),
            (64, 64),
            (100, 1),
            (PAGE_SIZE - 1, 1),
            (4000, 129),
        ] {
            let mut new = old.clone();
            for b in &mut new[at..at + len] {
                *b ^= 0x5a;
            }
            assert_eq!(
                small_change(&old, &new),
                Some((at, at + len)),
                "at {at} len {len}"
            );
        }
        assert_eq!(small_change(&old, &old), Some((PAGE_SIZE, PAGE_SIZE)));
        let all_new = vec![9u8; PAGE_SIZE];
        assert_eq!(small_change(&old, &all_new), None);
    }

    fn body(buf: &[u8]) -> (Option<u64>, usize, usize) {
        match check_page(buf, FileId(1), PageNo(2)).unwrap() {
            PageBody::Whole(_) => (None, 0, PAGE_SIZE + 1),
            PageBody::Patch { base, lo, data } => (base, lo, data.len()),
        }
    }

    #[test]
    fn a_growing_wal_page_is_logged_as_its_new_bytes() {
        let mut recent = RecentPages::default();
        let (f, p) = (FileId(1), PageNo(2));
        let first = page_with(&[(0, &[7u8; 200])]);
        let mut buf = Vec::new();
        recent.encode(&mut buf, f, p, &first, None, 1000, true);
        assert_eq!(body(&buf), (None, 0, 200), "first write: a patch on zeros");
        let second = page_with(&[(0, &[7u8; 200]), (200, &[8u8; 150])]);
        buf.clear();
        recent.encode(&mut buf, f, p, &second, Some(1000), 2000, true);
        assert_eq!(
            body(&buf),
            (Some(1000), 200, 150),
            "then only what it added"
        );
        // The tree says the page's current record is elsewhere: no base.
        buf.clear();
        recent.encode(&mut buf, f, p, &second, Some(1500), 3000, true);
        assert_eq!(body(&buf).0, None);
    }

    #[test]
    fn chains_end_after_max_chain_patches() {
        let mut recent = RecentPages::default();
        let (f, p) = (FileId(1), PageNo(2));
        let mut page = page_with(&[(0, &[1u8; 100])]);
        let mut buf = Vec::new();
        let mut at = 100u64;
        recent.encode(&mut buf, f, p, &page, None, at, true);
        let mut bases = Vec::new();
        for i in 0..2 * MAX_CHAIN as usize + 2 {
            page[100 + i] = 3;
            buf.clear();
            recent.encode(&mut buf, f, p, &page, Some(at), at + 100, true);
            bases.push(body(&buf).0.is_some());
            at += 100;
        }
        let chain = MAX_CHAIN as usize;
        assert!(bases[..chain].iter().all(|&b| b), "{bases:?}");
        assert!(
            !bases[chain],
            "a chain ends after {MAX_CHAIN} patches: {bases:?}"
        );
        assert!(
            bases[chain + 1..2 * chain + 1].iter().all(|&b| b),
            "{bases:?}"
        );
    }

    #[test]
    fn a_page_of_data_is_logged_whole_and_cleared_entries_are_not_bases() {
        let mut recent = RecentPages::default();
        let (f, p) = (FileId(1), PageNo(2));
        let full: Vec<u8> = (0..PAGE_SIZE).map(|i| (i % 251) as u8 + 1).collect();
        let mut buf = Vec::new();
        recent.encode(&mut buf, f, p, &full, None, 500, true);
        assert_eq!(buf.len(), record::PAGE_RECORD);
        recent.clear();
        let mut next = full.clone();
        next[10] = 0;
        buf.clear();
        recent.encode(&mut buf, f, p, &next, Some(500), 9000, false);
        assert_eq!(
            buf.len(),
            record::PAGE_RECORD,
            "no entry after clear: logged whole"
        );
        assert!(!recent.holds(f, p), "not remembered when asked not to");
    }

    #[test]
    fn capacity_is_bounded() {
        let mut recent = RecentPages::default();
        let page = page_with(&[(0, &[1u8; 10])]);
        let mut buf = Vec::new();
        for i in 0..3 * CAPACITY as u64 {
            recent.encode(&mut buf, FileId(1), PageNo(i), &page, None, i, true);
        }
        assert_eq!(recent.pages.len(), CAPACITY);
        assert_eq!(recent.order.len(), CAPACITY);
        assert!(recent.holds(FileId(1), PageNo(3 * CAPACITY as u64 - 1)));
        assert!(!recent.holds(FileId(1), PageNo(0)));
    }

    #[test]
    fn a_page_rewritten_often_outlives_many_written_once() {
        let mut recent = RecentPages::default();
        let page = page_with(&[(0, &[1u8; 10])]);
        let mut buf = Vec::new();
        let hot = (FileId(9), PageNo(0));
        recent.encode(&mut buf, hot.0, hot.1, &page, None, 0, true);
        for i in 1..10 * CAPACITY as u64 {
            recent.encode(&mut buf, FileId(1), PageNo(i), &page, None, i, true);
            if i % 4 == 0 {
                assert!(
                    recent.holds(hot.0, hot.1),
                    "hot page pushed out by page {i}"
                );
                recent.encode(&mut buf, hot.0, hot.1, &page, None, i, true);
            }
        }
        assert_eq!(recent.order.len(), CAPACITY);
    }

    #[test]
    fn worth_remembering_small_writes_and_the_last_page() {
        assert!(worth_remembering(5, 5, 5));
        assert!(worth_remembering(5, 6, 5));
        assert!(!worth_remembering(5, 9, 5));
        assert!(worth_remembering(5, 9, 9));
    }
}
