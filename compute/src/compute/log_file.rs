//! A branch's log file as offshoot writes to it: PostgreSQL's stderr, with
//! offshoot's own notes (`---- offshoot: … ----`) between its lines.
//!
//! A note always starts a line. When the log ends part-way through a line
//! (PostgreSQL was killed mid-write, or a full disk cut its write short),
//! the cut line is ended with [`CUT_MARK`] first, so that the cut is
//! visible and the note is not read as the end of PostgreSQL's message.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Ends a line of the log that was cut short before offshoot writes a note.
const CUT_MARK: &str = " [offshoot: line cut short]";

/// Opens (creating, mode 0640) the log at `path` for appending.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Appends the note `---- offshoot: {msg} ----` on a line of its own.
pub(crate) fn append_note(log: &mut File, msg: &str) -> io::Result<()> {
    let mut text = String::new();
    if ends_mid_line(log)? {
        text.push_str(CUT_MARK);
        text.push('\n');
    }
    text.push_str(&format!("---- offshoot: {msg} ----\n"));
    log.write_all(text.as_bytes())
}

/// Whether the log's last byte is something other than a newline.
fn ends_mid_line(log: &File) -> io::Result<bool> {
    let len = log.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    log.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_after(existing: &[u8], notes: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        std::fs::write(&path, existing).unwrap();
        for msg in notes {
            append_note(&mut open(&path).unwrap(), msg).unwrap();
        }
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn a_note_in_a_new_log_is_its_first_line() {
        assert_eq!(
            log_after(b"", &["starting"]),
            "---- offshoot: starting ----\n"
        );
    }

    #[test]
    fn a_note_after_a_whole_line_follows_it_unmarked() {
        assert_eq!(
            log_after(b"LOG:  ready\n", &["stopping", "starting"]),
            "LOG:  ready\n---- offshoot: stopping ----\n---- offshoot: starting ----\n"
        );
    }

    #[test]
    fn a_cut_line_is_marked_and_the_note_starts_a_new_line() {
        assert_eq!(
            log_after(b"LOG:  ready\nPANIC:  could not wri", &["restarting"]),
            format!(
                "LOG:  ready\nPANIC:  could not wri{CUT_MARK}\n---- offshoot: restarting ----\n"
            )
        );
    }
}
