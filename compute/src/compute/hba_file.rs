//! The offshoot-managed `hba_file`: one file for every compute of a home,
//! rewritten (through a temporary file and a rename) before each start, so a
//! start always sees offshoot's current rules.
//!
//! Computes start concurrently (a burst of connections to twenty sleeping
//! branches starts twenty at once), so each write goes through a temporary
//! file of its own: with one shared temporary name, one start's rename took
//! the file from under another's, which then failed with "No such file or
//! directory" and refused its clients.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config;
use crate::error::ComputeError;
use crate::process::chown_to;
use crate::run_as::RunAs;

/// Writes offshoot's hba rules to `path` (mode 0600, owned by `run_as`),
/// replacing it atomically.
pub(super) fn write(path: &Path, run_as: &RunAs) -> Result<(), ComputeError> {
    let what = || format!("write hba file {}", path.display());
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| ComputeError::io(what(), e))?;
    }
    let tmp = temporary_name(path);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| ComputeError::io(what(), e))?;
        f.write_all(config::hba_contents().as_bytes())
            .map_err(|e| ComputeError::io(what(), e))?;
        chown_to(&tmp, run_as)?;
        fs::rename(&tmp, path).map_err(|e| ComputeError::io(what(), e))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// A temporary name beside `path` that no other write uses: this process's
/// id and a per-process sequence number.
fn temporary_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writes_all_succeed_and_leave_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pg_hba.conf");
        let run_as = RunAs::for_current_process().expect("run as");
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..200 {
                            write(&path, &run_as).expect("concurrent hba write");
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("writer thread");
            }
        });
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            config::hba_contents()
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["pg_hba.conf"], "temporary files left behind");
    }

    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run").join("pg_hba.conf");
        write(&path, &RunAs::for_current_process().expect("run as")).expect("write");
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
