//! The snapshot and its completion on synthetic segments: a parent that
//! keeps writing after the create, a checkpoint removing segments during it,
//! a segment made ahead of time, a child of a child never started, and a
//! completion cut short.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::*;
use crate::run_as::RunAs;

const PAGE: usize = 8192;
const SEGMENT_PAGES: usize = 16;
const SEG1: &str = "000000010000000000000001";
const SEG2: &str = "000000010000000000000002";
const SEG3: &str = "000000010000000000000003";

fn me() -> RunAs {
    RunAs {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        name: "test".into(),
    }
}

/// A page as PostgreSQL would write it: a non-zero magic, then `fill`.
fn page(fill: u8) -> Vec<u8> {
    let mut p = vec![fill; PAGE];
    p[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    // Long header's page size on every page: harmless, and page 0 needs it.
    p[36..40].copy_from_slice(&(PAGE as u32).to_le_bytes());
    p
}

/// A segment with its first `written` pages written (page i filled with
/// `base + i`), the rest zeros, as a zero-filled new segment.
fn make_segment(dir: &Path, name: &str, written: usize, base: u8) {
    let f = fs::File::create(dir.join(name)).unwrap();
    f.set_len((SEGMENT_PAGES * PAGE) as u64).unwrap();
    for i in 0..written {
        f.write_all_at(&page(base + i as u8), (i * PAGE) as u64)
            .unwrap();
    }
}

fn write_page(dir: &Path, name: &str, index: usize, fill: u8) {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(name))
        .unwrap();
    f.write_all_at(&page(fill), (index * PAGE) as u64).unwrap();
}

fn staging(child: &Path) -> std::path::PathBuf {
    child.with_extension("new")
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap()
}

fn ino(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

fn parent_with_three_segments(root: &Path) -> std::path::PathBuf {
    let parent = root.join("parent");
    fs::create_dir_all(parent.join("archive_status")).unwrap();
    fs::create_dir_all(parent.join("summaries")).unwrap();
    fs::write(
        parent.join("archive_status").join(format!("{SEG1}.done")),
        b"",
    )
    .unwrap();
    make_segment(&parent, SEG1, SEGMENT_PAGES, 10);
    make_segment(&parent, SEG2, 4, 50);
    make_segment(&parent, SEG3, 0, 0);
    parent
}

#[test]
fn the_child_keeps_the_wal_written_before_the_create_and_nothing_after() {
    let root = tempfile::tempdir().unwrap();
    let parent = parent_with_three_segments(root.path());
    let child = root.path().join("child");
    let at_create = read(&parent, SEG2);

    let snapshot = WalSnapshot::begin(&parent, &staging(&child), &me()).unwrap();
    let cut = snapshot.finish(&child).unwrap();
    assert_eq!(cut.as_deref(), Some(SEG2));

    // The parent goes on: rewrites its last page with more records, fills
    // the next pages, and starts the segment made ahead of time.
    write_page(&parent, SEG2, 3, 99);
    write_page(&parent, SEG2, 4, 98);
    write_page(&parent, SEG3, 0, 97);

    assert!(complete_pending(&child, &me()).unwrap());
    assert_eq!(read(&child, SEG2), at_create, "the child's segment in use");
    assert_eq!(
        ino(&child.join(SEG1)),
        ino(&parent.join(SEG1)),
        "finished segments are shared"
    );
    assert_ne!(
        ino(&child.join(SEG2)),
        ino(&parent.join(SEG2)),
        "the segment in use is not"
    );
    assert!(
        !child.join(SEG3).exists(),
        "a segment not written at the create is not the child's"
    );
    assert!(child.join("archive_status").is_dir());
    assert!(
        child.join("summaries").is_dir(),
        "the parent's subdirectories, empty"
    );
    assert_eq!(
        fs::read_dir(child.join("archive_status")).unwrap().count(),
        0
    );
    for leftover in [CUT_MARKER, CUT_SOURCE] {
        assert!(!child.join(leftover).exists(), "{leftover} left behind");
    }
    assert!(
        !complete_pending(&child, &me()).unwrap(),
        "nothing pending the second time"
    );
}

#[test]
fn segments_removed_during_the_create_stay_with_the_child() {
    let root = tempfile::tempdir().unwrap();
    let parent = parent_with_three_segments(root.path());
    let child = root.path().join("child");
    let snapshot = WalSnapshot::begin(&parent, &staging(&child), &me()).unwrap();
    // A checkpoint finishes and removes the old segment; the parent moves
    // on to the next segment, which it had made ahead of time.
    let seg1 = read(&parent, SEG1);
    fs::remove_file(parent.join(SEG1)).unwrap();
    write_page(&parent, SEG2, 4, 60);
    write_page(&parent, SEG3, 0, 61);
    snapshot.finish(&child).unwrap();
    complete_pending(&child, &me()).unwrap();

    assert_eq!(read(&child, SEG1), seg1);
    assert_eq!(
        read(&child, SEG2),
        read(&parent, SEG2),
        "finished by the create: shared whole"
    );
    assert_eq!(read(&child, SEG3)[..PAGE], page(61)[..]);
    assert!(read(&child, SEG3)[PAGE..].iter().all(|b| *b == 0));
}

#[test]
fn a_child_of_a_child_never_started_takes_its_cut_over() {
    let root = tempfile::tempdir().unwrap();
    let parent = parent_with_three_segments(root.path());
    let child = root.path().join("child");
    let grandchild = root.path().join("grandchild");
    let at_create = read(&parent, SEG2);
    WalSnapshot::begin(&parent, &staging(&child), &me())
        .unwrap()
        .finish(&child)
        .unwrap();
    write_page(&parent, SEG2, 3, 99);

    let cut = WalSnapshot::begin(&child, &staging(&grandchild), &me())
        .unwrap()
        .finish(&grandchild)
        .unwrap();
    assert_eq!(cut, None, "the child's own cut is taken over");
    assert!(complete_pending(&grandchild, &me()).unwrap());
    assert!(complete_pending(&child, &me()).unwrap());
    assert_eq!(read(&grandchild, SEG2), at_create);
    assert_eq!(read(&child, SEG2), at_create);
    assert_ne!(ino(&child.join(SEG2)), ino(&grandchild.join(SEG2)));
}

#[test]
fn a_completion_cut_short_is_done_again() {
    let root = tempfile::tempdir().unwrap();
    let parent = parent_with_three_segments(root.path());
    let child = root.path().join("child");
    let at_create = read(&parent, SEG2);
    WalSnapshot::begin(&parent, &staging(&child), &me())
        .unwrap()
        .finish(&child)
        .unwrap();
    // A first completion died after writing part of its temporary file and
    // after renaming a wrong segment into place.
    fs::write(child.join(format!("{SEG2}.offshoot-tmp")), b"half").unwrap();
    fs::write(child.join(SEG2), b"wrong").unwrap();
    assert!(complete_pending(&child, &me()).unwrap());
    assert_eq!(read(&child, SEG2), at_create);
    assert!(!child.join(format!("{SEG2}.offshoot-tmp")).exists());
}

#[test]
fn a_snapshot_never_finished_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let parent = parent_with_three_segments(root.path());
    let child = root.path().join("child");
    drop(WalSnapshot::begin(&parent, &staging(&child), &me()).unwrap());
    assert!(!staging(&child).exists());
    assert!(!child.exists());
    assert!(parent.join(SEG2).exists());
}

#[test]
fn a_malformed_marker_is_an_error_that_names_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    fs::write(dir.join(CUT_MARKER), "not a segment\n").unwrap();
    let err = complete_pending(dir, &me()).unwrap_err().to_string();
    assert!(
        err.contains(CUT_MARKER) && err.contains("malformed"),
        "{err}"
    );
}

#[test]
fn segment_names_are_24_upper_hex_digits() {
    assert!(is_segment_name("000000010000000000000001"));
    assert!(is_segment_name("00000002000000A1000000FF"));
    assert!(!is_segment_name("00000001000000000000001"));
    assert!(!is_segment_name("000000010000000000000001.partial"));
    assert!(!is_segment_name("00000001000000000000000a"));
    assert!(!is_segment_name("archive_status"));
    assert!(is_shared_name("00000002.history"));
    assert!(!is_shared_name("xlogtemp.1234"));
}
