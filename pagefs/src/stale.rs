//! Finding and lazily unmounting FUSE mounts left behind by a daemon that
//! died, and the mount-table parsing this needs.
//!
//! `/proc/mounts` escapes space, tab, newline and backslash in paths as
//! three-digit octal (`\040`, `\011`, `\012`, `\134`); paths are unescaped
//! before they are compared.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::PagefsError;

const PROC_MOUNTS: &str = "/proc/mounts";

/// One line of a mount table: what we need of it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) source: String,
    pub(crate) mount_point: PathBuf,
    pub(crate) fs_type: String,
}

impl MountEntry {
    pub(crate) fn is_fuse(&self) -> bool {
        self.fs_type == "fuse" || self.fs_type.starts_with("fuse.") || self.fs_type == "fuseblk"
    }
}

/// Undoes the kernel's octal escapes (`\040` → space).
pub(crate) fn unescape(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

/// Parses a `/proc/mounts`-format table; malformed lines are skipped.
pub(crate) fn parse_mounts(table: &str) -> Vec<MountEntry> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            Some(MountEntry {
                source: unescape(source).to_string_lossy().into_owned(),
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: fs_type.to_owned(),
            })
        })
        .collect()
}

/// Detaches the mount at `path` now and lets the kernel finish it when the
/// last user goes (`umount2(MNT_DETACH)`, or `fusermount3 -u -z` when we may
/// not unmount ourselves).
pub(crate) fn lazy_unmount(path: &Path) -> Result<(), String> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => Ok(()), // not a mount point any more
        Err(errno) => {
            let output = Command::new("fusermount3")
                .args(["-u", "-q", "-z", "--"])
                .arg(path)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("umount2: {errno}; fusermount3: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "umount2: {errno}; fusermount3: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        }
    }
}

/// Lazily unmounts every FUSE mount at or below `dir`, deepest first, and
/// returns their mount points.
pub fn clean_stale_mounts(dir: &Path) -> Result<Vec<PathBuf>, PagefsError> {
    let table = std::fs::read_to_string(PROC_MOUNTS).map_err(|source| PagefsError::MountTable {
        path: PROC_MOUNTS.into(),
        source,
    })?;
    // `dir` itself is never a stale mount's inside, so resolving it is safe;
    // if it is one, compare the path as given.
    let base = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut stale: Vec<PathBuf> = parse_mounts(&table)
        .into_iter()
        .filter(|m| {
            m.is_fuse() && (m.mount_point.starts_with(&base) || m.mount_point.starts_with(dir))
        })
        .map(|m| m.mount_point)
        .collect();
    stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    stale.dedup();
    for path in &stale {
        tracing::warn!(path = %path.display(), "lazily unmounting stale FUSE mount");
        lazy_unmount(path).map_err(|reason| PagefsError::Unmount {
            path: path.clone(),
            reason,
        })?;
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(unescape(r"/tmp/a\040b"), OsString::from("/tmp/a b"));
        assert_eq!(unescape(r"/x\134y\011z"), OsString::from("/x\\y\tz"));
        assert_eq!(unescape(r"/trailing\04"), OsString::from(r"/trailing\04"));
        assert_eq!(unescape(r"/not\999octal"), OsString::from(r"/not\999octal"));
    }

    #[test]
    fn fuse_lines_are_recognised() {
        let table = "proc /proc proc rw 0 0\n\
                     offshoot:main /home/u/mnt/1\\040x fuse.offshoot rw,nosuid 0 0\n\
                     /dev/fuse /media fuse rw 0 0\n\
                     broken\n";
        let mounts = parse_mounts(table);
        assert_eq!(mounts.len(), 3);
        assert!(!mounts[0].is_fuse());
        assert!(mounts[1].is_fuse());
        assert_eq!(mounts[1].mount_point, PathBuf::from("/home/u/mnt/1 x"));
        assert_eq!(mounts[1].source, "offshoot:main");
        assert!(mounts[2].is_fuse());
    }
}
