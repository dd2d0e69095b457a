//! The allowed-errors check: after a test, every ERROR, FATAL or PANIC line
//! in the PostgreSQL logs under `<home>/logs` must match a pattern the test
//! allowed explicitly; any other one fails the test. The daemon's own output
//! must not show a Rust panic.

use regex::Regex;
use std::path::{Path, PathBuf};

/// Errors every test accepts. A test that provokes an error (a bad query, a
/// wrong password, a cancelled statement) allows it by name.
///
/// - A fast shutdown (the daemon stopping, or a compute stopping when idle)
///   ends running autovacuum workers, which PostgreSQL logs as FATAL.
/// - The compute's readiness probe connects as the internal role while
///   PostgreSQL starts or recovers, which PostgreSQL logs as FATAL. Only for
///   that role: a client seeing it would mean the proxy routed too early.
pub const DEFAULT_ALLOWED: &[&str] = &[
    r"FATAL:  terminating autovacuum process due to administrator command",
    r"offshoot_system@\S+ FATAL:  the database system is (starting up|not yet accepting connections)",
];

/// A log line that no allowed pattern matched.
#[derive(Debug, Clone)]
pub struct UnexpectedLine {
    pub file: PathBuf,
    pub line: String,
}

fn severity_re() -> Regex {
    Regex::new(r"\b(ERROR|FATAL|PANIC):").expect("static regex")
}

/// Every regular file below `dir`, sorted.
pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// The ERROR/FATAL/PANIC lines of the logs under `dir` that match none of `allowed`.
pub fn unexpected_lines(dir: &Path, allowed: &[Regex]) -> Vec<UnexpectedLine> {
    let severity = severity_re();
    let mut bad = Vec::new();
    for file in log_files(dir) {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            if severity.is_match(line) && !allowed.iter().any(|a| a.is_match(line)) {
                bad.push(UnexpectedLine {
                    file: file.clone(),
                    line: line.to_string(),
                });
            }
        }
    }
    bad
}

/// Lines of the daemon's output that show a Rust panic.
pub fn daemon_panics(daemon_log: &Path) -> Vec<String> {
    std::fs::read(daemon_log)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .filter(|l| l.contains("panicked at"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_unlisted_errors_and_passes_allowed_ones() {
        let dir = std::env::temp_dir().join(format!("logcheck-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(
            dir.join("logs/1.log"),
            "2024-01-01 00:00:00 UTC [1] LOG:  database system is ready\n\
             2024-01-01 00:00:01 UTC [2] ERROR:  relation \"nope\" does not exist\n\
             2024-01-01 00:00:02 UTC [3] FATAL:  password authentication failed for user \"postgres\"\n\
             2024-01-01 00:00:03 UTC [4] STATEMENT:  select 1\n",
        )
        .unwrap();
        let allowed = vec![Regex::new("password authentication failed").unwrap()];
        let bad = unexpected_lines(&dir.join("logs"), &allowed);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].line.contains("does not exist"));
    }
}
