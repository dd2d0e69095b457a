//! The `offshoot_handoff` PostgreSQL module: which servers get it and how.
//!
//! The module (C, `handoff/offshoot_handoff.c`, built by `build.rs` against
//! the server headers of each PostgreSQL major version on the build machine)
//! lets a backend take over its client's TCP socket from the proxy once the
//! client has authenticated, so that a session's queries no longer pass
//! through a relay. It is embedded in the binary; `preload_setting` writes
//! it next to the hba file (readable by the PostgreSQL user) and returns the
//! `shared_preload_libraries` value that adds it to what the branch's own
//! configuration preloads. A server version without a module runs without
//! it, and the proxy relays its sessions as before. See docs/compute.md,
//! "Socket handoff", and docs/proxy.md.

use std::fs;
use std::path::{Path, PathBuf};

use crate::binaries::PgBinaries;
use crate::error::ComputeError;
use crate::process::command_as;
use crate::replace_file;
use crate::run_as::RunAs;

include!(concat!(env!("OUT_DIR"), "/handoff_modules.rs"));

const PRELOAD: &str = "shared_preload_libraries";

/// The module built for PostgreSQL `major`, if this binary has one.
pub fn module_for(major: u32) -> Option<&'static [u8]> {
    MODULES.iter().find(|(m, _)| *m == major).map(|(_, b)| *b)
}

/// The `shared_preload_libraries` setting that loads the handoff module
/// after the libraries `datadir`'s configuration names, with the module
/// written into `dir` first. `None` when there is no module for `major`.
pub(crate) fn preload_setting(
    bins: &PgBinaries,
    run_as: &RunAs,
    datadir: &Path,
    dir: &Path,
) -> Result<Option<String>, ComputeError> {
    let Some(module) = module_for(bins.version.major) else {
        return Ok(None);
    };
    let path = install(module, bins.version.major, dir)?;
    let configured = configured_preload(bins, run_as, datadir)?;
    Ok(Some(join_preload(&configured, &path)))
}

/// Writes `module` as `dir/offshoot_handoff-MAJOR-CRC.so` (mode 0644) unless
/// that file is already there; the name changes with the content, so a file
/// of that name is the right one.
fn install(module: &[u8], major: u32, dir: &Path) -> Result<PathBuf, ComputeError> {
    let name = format!(
        "offshoot_handoff-{major}-{:08x}.so",
        crc32fast::hash(module)
    );
    let path = dir.join(&name);
    if path.is_file() {
        return Ok(path);
    }
    // Several computes may start at once.
    replace_file::replace(&path, module, 0o644, None)?;
    Ok(path)
}

/// What the branch's configuration sets `shared_preload_libraries` to: read
/// from `postgresql.conf` and `postgresql.auto.conf`, or, when they include
/// other files, asked of `postgres -C`.
fn configured_preload(
    bins: &PgBinaries,
    run_as: &RunAs,
    datadir: &Path,
) -> Result<String, ComputeError> {
    let mut value = String::new();
    for file in ["postgresql.conf", "postgresql.auto.conf"] {
        let path = datadir.join(file);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ComputeError::io(format!("read {}", path.display()), e)),
        };
        match last_assignment(&text, PRELOAD) {
            Scan::Value(v) => value = v,
            Scan::Unset => {}
            Scan::Includes => return ask_postgres(bins, run_as, datadir),
        }
    }
    Ok(value)
}

fn ask_postgres(bins: &PgBinaries, run_as: &RunAs, datadir: &Path) -> Result<String, ComputeError> {
    let output = command_as(&bins.tool("postgres"), run_as, Path::new("/"))
        .arg("-C")
        .arg(PRELOAD)
        .arg("-D")
        .arg(datadir)
        .output()
        .map_err(|e| ComputeError::io("run postgres -C shared_preload_libraries", e))?;
    if !output.status.success() {
        return Err(ComputeError::ToolFailed {
            tool: "postgres -C shared_preload_libraries".to_owned(),
            status: output.status.to_string(),
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `configured` with the module appended (PostgreSQL's list syntax: the
/// module path double-quoted, inner quotes doubled).
fn join_preload(configured: &str, module: &Path) -> String {
    let module = format!("\"{}\"", module.display().to_string().replace('"', "\"\""));
    if configured.trim().is_empty() {
        module
    } else {
        format!("{}, {module}", configured.trim())
    }
}

/// What a configuration file says of one setting.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The value of its last assignment.
    Value(String),
    /// Not assigned.
    Unset,
    /// The file includes others: only PostgreSQL knows.
    Includes,
}

/// The last assignment of `name` in a `postgresql.conf`-syntax file.
fn last_assignment(text: &str, name: &str) -> Scan {
    let mut found = Scan::Unset;
    for line in text.lines() {
        let line = line.trim_start();
        let key_len = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(line.len());
        let (key, rest) = line.split_at(key_len);
        if key.is_empty() {
            continue;
        }
        if matches!(
            key.to_ascii_lowercase().as_str(),
            "include" | "include_dir" | "include_if_exists"
        ) {
            return Scan::Includes;
        }
        if !key.eq_ignore_ascii_case(name) {
            continue;
        }
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
        found = Scan::Value(parse_value(rest));
    }
    found
}

/// A value: a quoted string (`''` and `\'` are quotes inside it) or a bare
/// word, up to a comment.
fn parse_value(rest: &str) -> String {
    let Some(quoted) = rest.strip_prefix('\'') else {
        let end = rest
            .find(|c: char| c == '#' || c.is_whitespace())
            .unwrap_or(rest.len());
        return rest[..end].to_owned();
    };
    let mut value = String::new();
    let mut chars = quoted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => break,
            c => value.push(c),
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_assignment_wins_and_comments_are_ignored() {
        let conf = "#shared_preload_libraries = 'nope'\n\
                    shared_preload_libraries = 'pg_stat_statements'  # first\n\
                    work_mem = 4MB\n\
                    SHARED_PRELOAD_LIBRARIES 'auto_explain, pg_stat_statements'\n";
        assert_eq!(
            last_assignment(conf, PRELOAD),
            Scan::Value("auto_explain, pg_stat_statements".into())
        );
        assert_eq!(last_assignment("work_mem = 4MB\n", PRELOAD), Scan::Unset);
        assert_eq!(
            last_assignment("shared_preload_libraries=plain # c\n", PRELOAD),
            Scan::Value("plain".into())
        );
        assert_eq!(
            last_assignment("shared_preload_libraries = 'it''s'\n", PRELOAD),
            Scan::Value("it's".into())
        );
        assert_eq!(
            last_assignment("include_dir 'conf.d'\n", PRELOAD),
            Scan::Includes
        );
    }

    #[test]
    fn the_module_goes_after_what_is_configured() {
        let module = Path::new("/run/offshoot/offshoot_handoff-15-0.so");
        assert_eq!(
            join_preload("", module),
            "\"/run/offshoot/offshoot_handoff-15-0.so\""
        );
        assert_eq!(
            join_preload(" pg_stat_statements ", module),
            "pg_stat_statements, \"/run/offshoot/offshoot_handoff-15-0.so\""
        );
    }

    #[test]
    fn install_writes_once_readable_by_everyone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = install(b"module bytes", 15, dir.path()).unwrap();
        let second = install(b"module bytes", 15, dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(fs::read(&first).unwrap(), b"module bytes");
        let mode = fs::metadata(&first).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let other = install(b"other bytes", 15, dir.path()).unwrap();
        assert_ne!(first, other);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary files left"
        );
    }
}
