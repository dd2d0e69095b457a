//! Replacing a file that several compute starts may write at once (the hba
//! file, the handoff module): the new contents go into a temporary file of
//! this write's own beside the target, which is then renamed over it. A
//! reader sees the old file or the new one, never a part; concurrent writers
//! never share a temporary name (with one shared name, one start's rename
//! took the file from under another's, which then failed with "No such file
//! or directory" and refused its clients).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ComputeError;
use crate::process::chown_to;
use crate::run_as::RunAs;

/// Writes `contents` to `path` with `mode` (whatever the umask), owned by
/// `owner` when given, replacing what was there in one rename. A temporary
/// file left by a failed write is removed.
pub(crate) fn replace(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<&RunAs>,
) -> Result<(), ComputeError> {
    let tmp = temporary_name(path);
    let written = (|| {
        let io = |what: &str, e| ComputeError::io(format!("{what} {}", tmp.display()), e);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| io("create", e))?;
        file.write_all(contents).map_err(|e| io("write", e))?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| io("chmod", e))?;
        if let Some(owner) = owner {
            chown_to(&tmp, owner)?;
        }
        fs::rename(&tmp, path)
            .map_err(|e| ComputeError::io(format!("rename into {}", path.display()), e))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// A name beside `path` that no other write uses: a dot, the file's name,
/// this process's id and a per-process sequence number.
fn temporary_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// The process id in a name [`temporary_name`] made, if `name` is one.
fn writer_of(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let (seq, pid, target) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if target.is_empty() || !digits(seq) || !digits(pid) {
        return None;
    }
    pid.parse().ok()
}

/// Removes from `dir` the temporary files that another process's writes
/// left behind (a daemon killed in the middle of one) and returns their
/// paths. Only for the one process that writes in `dir` (the daemon that
/// holds its home's lock), before it starts any compute: a temporary file
/// of another process is then never a write in progress.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let own = std::process::id();
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(writer_of)
            .is_some_and(|pid| pid != own);
        if stale && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
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
                .map(|i| {
                    let (path, run_as) = (&path, &run_as);
                    s.spawn(move || {
                        let contents = format!("writer {i}\n");
                        for _ in 0..200 {
                            replace(path, contents.as_bytes(), 0o600, Some(run_as))
                                .expect("concurrent replace");
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("writer thread");
            }
        });
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("writer ") && text.lines().count() == 1,
            "one writer's whole contents, got {text:?}"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["pg_hba.conf"], "temporary files left behind");
    }

    #[test]
    fn stale_temporaries_of_other_processes_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let own = std::process::id();
        let stale = [
            format!(".pg_hba.conf.{}.0.tmp", own + 1),
            ".offshoot_handoff-15-0a1b2c3d.so.7.12.tmp".to_string(),
        ];
        let kept = [
            "pg_hba.conf".to_string(),
            format!(".pg_hba.conf.{own}.3.tmp"),
            ".notes.tmp".to_string(),
            ".pg_hba.conf.x.1.tmp".to_string(),
            "pg_hba.conf.12.1.tmp".to_string(),
        ];
        for name in stale.iter().chain(&kept) {
            fs::write(dir.path().join(name), b"").expect("write");
        }
        let mut removed: Vec<_> = remove_stale_temporaries(dir.path())
            .expect("remove")
            .into_iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let mut expected = stale.to_vec();
        expected.sort();
        assert_eq!(removed, expected);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected = kept.to_vec();
        expected.sort();
        assert_eq!(left, expected);
    }

    #[test]
    fn a_temporary_name_is_recognised_with_its_writer() {
        let tmp = temporary_name(Path::new("/run/pg_hba.conf"));
        let name = tmp.file_name().expect("name").to_str().expect("utf-8");
        assert_eq!(writer_of(name), Some(std::process::id()));
    }

    #[test]
    fn the_mode_holds_whatever_the_umask() {
        let dir = tempfile::tempdir().expect("tempdir");
        for mode in [0o600, 0o644] {
            let path = dir.path().join(format!("f{mode:o}"));
            replace(&path, b"x", mode, None).expect("replace");
            let got = fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(got & 0o777, mode);
        }
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Renaming a file over a non-empty directory fails.
        let target = dir.path().join("target");
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("inside"), b"").expect("write");
        assert!(replace(&target, b"x", 0o600, None).is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["target"]);
    }
}
