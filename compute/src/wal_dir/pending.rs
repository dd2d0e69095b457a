//! Completing a child's WAL directory before its first start: its own copy
//! of the segment that was in use at the create, built from the parent's
//! bytes below the cut and the page its marker saved at the create.
//!
//! Crash-safe and idempotent: the segment is built under a temporary name,
//! made durable and renamed into place; the marker goes last. A completion
//! cut short by a crash is done again from the start at the next one
//! (PostgreSQL has not run on the directory in between).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::snapshot::sync_dir;
use super::{is_segment_name, CUT_MARKER, CUT_SOURCE};
use crate::error::ComputeError;
use crate::process::chown_to;
use crate::run_as::RunAs;

/// Builds the segment a pending cut in `dir` describes, owned by `run_as`.
/// Returns `false` when nothing was pending.
pub fn complete_pending(dir: &Path, run_as: &RunAs) -> Result<bool, ComputeError> {
    let marker = dir.join(CUT_MARKER);
    let source_path = dir.join(CUT_SOURCE);
    let bytes = match fs::read(&marker) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A completion that removed its marker and then stopped.
            remove_if_present(&source_path)?;
            return Ok(false);
        }
        Err(e) => return Err(ComputeError::io(format!("read {}", marker.display()), e)),
    };
    let (segment, cut, page) = parse_marker(&bytes, &marker)?;
    let mut source = File::open(&source_path)
        .map_err(|e| ComputeError::io(format!("open {}", source_path.display()), e))?;
    let len = source
        .metadata()
        .map_err(|e| ComputeError::io(format!("stat {}", source_path.display()), e))?
        .len();
    if cut + page.len() as u64 > len {
        return Err(bad(
            &marker,
            format!("the cut at {cut} and its page pass the segment's end ({len} bytes)"),
        ));
    }

    let building = dir.join(format!("{segment}.offshoot-tmp"));
    let target = dir.join(&segment);
    let what = |action: &str| format!("{action} {}", building.display());
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&building)
        .map_err(|e| ComputeError::io(what("create"), e))?;
    // Copied by the kernel (`copy_file_range`) where the file system can.
    std::io::copy(&mut (&mut source).take(cut), &mut out)
        .map_err(|e| ComputeError::io(what("copy into"), e))?;
    out.write_all_at(page, cut)
        .and_then(|()| out.set_len(len))
        .and_then(|()| out.sync_all())
        .map_err(|e| ComputeError::io(what("write"), e))?;
    chown_to(&building, run_as)?;
    fs::rename(&building, &target)
        .map_err(|e| ComputeError::io(format!("rename {}", building.display()), e))?;
    sync_dir(dir)?;
    fs::remove_file(&marker)
        .map_err(|e| ComputeError::io(format!("remove {}", marker.display()), e))?;
    sync_dir(dir)?;
    remove_if_present(&source_path)?;
    Ok(true)
}

/// The segment name, cut offset and saved page of a marker.
pub(super) fn parse_marker<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<(String, u64, &'a [u8]), ComputeError> {
    let malformed = || {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        bad(path, format!("malformed marker {head:?}"))
    };
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(malformed)?;
    let line = std::str::from_utf8(&bytes[..newline]).map_err(|_| malformed())?;
    let page = &bytes[newline + 1..];
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().map(str::parse::<u64>),
        words.next(),
    ) {
        (Some(segment), Some(Ok(cut)), None) if is_segment_name(segment) && !page.is_empty() => {
            Ok((segment.to_owned(), cut, page))
        }
        _ => Err(malformed()),
    }
}

fn remove_if_present(path: &Path) -> Result<(), ComputeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ComputeError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

fn bad(path: &Path, reason: String) -> ComputeError {
    ComputeError::BadWalDir {
        path: path.to_path_buf(),
        reason,
    }
}
