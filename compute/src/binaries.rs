//! Finding PostgreSQL's binaries.
//!
//! Order (first directory holding both `postgres` and `initdb` wins):
//! 1. `OFFSHOOT_PG_BIN` — when set, it is the only place looked at: an
//!    explicit choice is never silently replaced by another installation;
//! 2. `pg_config --bindir` (`pg_config` found on `PATH`);
//! 3. `/usr/lib/postgresql/<version>/bin`, newest version first (numeric
//!    order, so 16 before 9.6);
//! 4. every `PATH` directory that holds `postgres`.
//!
//! Discovery reads its inputs from a [`DiscoverySources`] value so that it
//! can be tested without touching the process environment.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::ComputeError;

/// Binaries offshoot cannot work without.
pub const REQUIRED_TOOLS: &[&str] = &["postgres", "initdb"];
/// Binaries some commands use (import, benchmarks, shells); reported when missing.
pub const OPTIONAL_TOOLS: &[&str] = &["psql", "pgbench", "pg_dump", "pg_restore"];
/// The oldest PostgreSQL major version offshoot runs.
pub const MIN_MAJOR: u32 = 13;
/// The command a user runs to install PostgreSQL on Debian and Ubuntu.
pub const INSTALL_HINT: &str = "apt-get install postgresql";

/// A PostgreSQL version as `postgres --version` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgVersion {
    /// Major version (15 for 15.4).
    pub major: u32,
    /// The whole line, e.g. `postgres (PostgreSQL) 15.4 (Debian 15.4-1)`.
    pub full: String,
}

/// A PostgreSQL installation offshoot can run.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// Directory holding `postgres`, `initdb` and the client tools.
    pub bindir: PathBuf,
    pub version: PgVersion,
    /// Optional tools (see [`OPTIONAL_TOOLS`]) not present in `bindir`.
    pub missing_optional: Vec<String>,
    /// Built with LZ4 (`pg_config --configure` in `bindir` lists
    /// `--with-lz4`); false when that cannot be told.
    pub lz4: bool,
}

impl PgBinaries {
    /// Finds PostgreSQL from the process environment (see the module doc).
    pub fn discover() -> Result<PgBinaries, ComputeError> {
        Self::discover_in(&DiscoverySources::from_env())
    }

    /// Finds PostgreSQL from explicitly given sources.
    pub fn discover_in(sources: &DiscoverySources) -> Result<PgBinaries, ComputeError> {
        let mut report = DiscoveryReport {
            looked: Vec::new(),
            explicit: sources.pg_bin_env.is_some(),
        };
        for (source, dir) in candidates(sources, &mut report) {
            match check_dir(&dir) {
                Ok(bins) => {
                    tracing::debug!(bindir = %bins.bindir.display(), version = %bins.version.full, %source, "found PostgreSQL");
                    return Ok(bins);
                }
                Err(problem) => report.looked.push(Looked {
                    source,
                    dir: Some(dir),
                    problem,
                }),
            }
        }
        Err(ComputeError::BinariesNotFound(report))
    }

    /// Path of a tool in the installation (`psql`, `pgbench`, `pg_dump`, …).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// Where discovery looks; [`DiscoverySources::from_env`] gives the real ones.
#[derive(Debug, Clone)]
pub struct DiscoverySources {
    /// Value of `OFFSHOOT_PG_BIN`.
    pub pg_bin_env: Option<PathBuf>,
    /// Value of `PATH` (used to find `pg_config` and `postgres`).
    pub path: Option<OsString>,
    /// Root of versioned installations, `/usr/lib/postgresql`.
    pub system_root: PathBuf,
}

impl DiscoverySources {
    pub fn from_env() -> Self {
        DiscoverySources {
            pg_bin_env: std::env::var_os("OFFSHOOT_PG_BIN")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            path: std::env::var_os("PATH"),
            system_root: PathBuf::from("/usr/lib/postgresql"),
        }
    }
}

/// Every place discovery looked and what was wrong there.
#[derive(Debug, Clone)]
pub struct DiscoveryReport {
    pub looked: Vec<Looked>,
    /// `OFFSHOOT_PG_BIN` was set, so nothing else was searched.
    pub explicit: bool,
}

/// One place discovery looked at.
#[derive(Debug, Clone)]
pub struct Looked {
    /// Which rule produced it: `OFFSHOOT_PG_BIN`, `pg_config --bindir`, …
    pub source: String,
    pub dir: Option<PathBuf>,
    /// What was missing or wrong.
    pub problem: String,
}

impl fmt::Display for DiscoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "PostgreSQL not found: offshoot needs the server binaries {} (PostgreSQL {MIN_MAJOR} or newer). Looked in:",
            REQUIRED_TOOLS.join(" and ")
        )?;
        for l in &self.looked {
            match &l.dir {
                Some(d) => writeln!(f, "  - {} ({}): {}", l.source, d.display(), l.problem)?,
                None => writeln!(f, "  - {}: {}", l.source, l.problem)?,
            }
        }
        if self.explicit {
            writeln!(
                f,
                "OFFSHOOT_PG_BIN is set, so no other place was searched; fix it or unset it."
            )?;
        }
        write!(
            f,
            "Install PostgreSQL (Debian/Ubuntu: `{INSTALL_HINT}`) or set OFFSHOOT_PG_BIN to the directory that holds `postgres` and `initdb`."
        )
    }
}

/// Directories to try, in order; places that yield no directory at all are
/// recorded in `report` directly.
fn candidates(sources: &DiscoverySources, report: &mut DiscoveryReport) -> Vec<(String, PathBuf)> {
    if let Some(dir) = &sources.pg_bin_env {
        return vec![("OFFSHOOT_PG_BIN".to_owned(), dir.clone())];
    }
    let path_dirs: Vec<PathBuf> = sources
        .path
        .as_ref()
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let mut out = Vec::new();

    match find_in(&path_dirs, "pg_config") {
        None => report.looked.push(Looked {
            source: "pg_config --bindir".to_owned(),
            dir: None,
            problem: "pg_config not found on PATH".to_owned(),
        }),
        Some(pg_config) => match pg_config_bindir(&pg_config) {
            Ok(dir) => out.push(("pg_config --bindir".to_owned(), dir)),
            Err(problem) => report.looked.push(Looked {
                source: format!("{} --bindir", pg_config.display()),
                dir: None,
                problem,
            }),
        },
    }

    let versioned = versioned_bindirs(&sources.system_root);
    if versioned.is_empty() {
        report.looked.push(Looked {
            source: format!("{}/*/bin", sources.system_root.display()),
            dir: None,
            problem: "no versions installed".to_owned(),
        });
    }
    for dir in versioned {
        out.push((format!("{}/*/bin", sources.system_root.display()), dir));
    }

    let on_path: Vec<PathBuf> = path_dirs
        .iter()
        .filter(|d| is_executable(&d.join("postgres")))
        .cloned()
        .collect();
    if on_path.is_empty() {
        let shown = sources
            .path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "<unset>".to_owned());
        report.looked.push(Looked {
            source: "PATH".to_owned(),
            dir: None,
            problem: format!("no directory holds `postgres` (PATH={shown})"),
        });
    }
    for dir in on_path {
        out.push(("PATH".to_owned(), dir));
    }
    out
}

fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

fn pg_config_bindir(pg_config: &Path) -> Result<PathBuf, String> {
    let out = Command::new(pg_config)
        .arg("--bindir")
        .output()
        .map_err(|e| format!("could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if dir.is_empty() {
        return Err("printed no directory".to_owned());
    }
    Ok(PathBuf::from(dir))
}

/// `<root>/<version>/bin` for every installed version, newest first.
fn versioned_bindirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let key = name
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, p)| p).collect()
}

/// Checks one directory: required tools present, `postgres --version` parses
/// and is recent enough. The error says what is missing.
fn check_dir(dir: &Path) -> Result<PgBinaries, String> {
    if !dir.is_dir() {
        return Err("not a directory".to_owned());
    }
    let missing: Vec<&str> = REQUIRED_TOOLS
        .iter()
        .copied()
        .filter(|t| !is_executable(&dir.join(t)))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing {}", missing.join(", ")));
    }
    let version = postgres_version(&dir.join("postgres"))?;
    if version.major < MIN_MAJOR {
        return Err(format!(
            "{} is too old (need {MIN_MAJOR} or newer)",
            version.full
        ));
    }
    let missing_optional = OPTIONAL_TOOLS
        .iter()
        .filter(|t| !is_executable(&dir.join(t)))
        .map(|t| (*t).to_owned())
        .collect();
    Ok(PgBinaries {
        bindir: dir.to_path_buf(),
        version,
        missing_optional,
        lz4: built_with_lz4(dir),
    })
}

/// Whether the installation in `dir` was built with LZ4, from its
/// `pg_config --configure`. An installation without `pg_config` (Debian
/// ships it with the client package) counts as built without it.
fn built_with_lz4(dir: &Path) -> bool {
    Command::new(dir.join("pg_config"))
        .arg("--configure")
        .output()
        .is_ok_and(|out| out.status.success() && configure_has_lz4(&out.stdout))
}

/// Whether `pg_config --configure` output lists `--with-lz4`.
fn configure_has_lz4(configure: &[u8]) -> bool {
    String::from_utf8_lossy(configure)
        .split_whitespace()
        .any(|arg| arg.trim_matches('\'') == "--with-lz4")
}

fn postgres_version(postgres: &Path) -> Result<PgVersion, String> {
    let out = Command::new(postgres)
        .arg("--version")
        .output()
        .map_err(|e| format!("could not run `postgres --version`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`postgres --version` exited with {}", out.status));
    }
    let full = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    parse_version(&full).ok_or_else(|| format!("cannot parse version from {full:?}"))
}

/// Parses `postgres (PostgreSQL) 15.4 (Debian 15.4-1)` or `… 17beta1`.
pub(crate) fn parse_version(line: &str) -> Option<PgVersion> {
    let rest = line.split("(PostgreSQL)").nth(1)?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().ok()?;
    Some(PgVersion {
        major,
        full: line.to_owned(),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = parse_version("postgres (PostgreSQL) 15.4 (Debian 15.4-1.pgdg120+1)");
        assert_eq!(v.map(|v| v.major), Some(15));
        let v = parse_version("postgres (PostgreSQL) 17beta1");
        assert_eq!(v.map(|v| v.major), Some(17));
        assert!(parse_version("something else 15.4").is_none());
    }

    #[test]
    fn reads_lz4_from_configure() {
        let debian = b"'--build=x86_64-linux-gnu' '--with-icu' '--with-lz4' '--with-zstd'\n";
        assert!(configure_has_lz4(debian));
        assert!(!configure_has_lz4(
            b"'--with-icu' '--with-lz4x' '--without-readline'"
        ));
        assert!(!configure_has_lz4(b""));
    }

    #[test]
    fn versioned_dirs_sort_numerically() {
        let root = tempfile::tempdir().expect("tempdir");
        for v in ["9.6", "16", "10", "not-a-version"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).expect("mkdir");
        }
        let got: Vec<String> = versioned_bindirs(root.path())
            .iter()
            .map(|p| {
                p.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(got, ["16", "10", "9.6"]);
    }

    #[test]
    fn empty_everywhere_names_every_place() {
        let empty = tempfile::tempdir().expect("tempdir");
        let sources = DiscoverySources {
            pg_bin_env: None,
            path: Some(empty.path().as_os_str().to_owned()),
            system_root: empty.path().join("nope"),
        };
        let err = PgBinaries::discover_in(&sources)
            .expect_err("nothing to find")
            .to_string();
        assert!(err.contains("pg_config not found on PATH"), "{err}");
        assert!(err.contains("no versions installed"), "{err}");
        assert!(err.contains("no directory holds `postgres`"), "{err}");
        assert!(err.contains(INSTALL_HINT), "{err}");
    }
}
