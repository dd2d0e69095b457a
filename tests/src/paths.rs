//! Where the binaries under test are: the `offshoot` binary and the
//! PostgreSQL client tools (psql, pgbench).

use std::path::{Path, PathBuf};

/// The `offshoot` binary: `$OFFSHOOT_BIN`, else `release/offshoot` in
/// `$CARGO_TARGET_DIR`, in the target dir this test binary was built into, or
/// in `<workspace>/target`. Panics with the build command when none exists.
pub fn offshoot_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OFFSHOOT_BIN") {
        return PathBuf::from(bin);
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release/offshoot"));
    }
    // The test executable lives in <target>/<profile>/deps/.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("offshoot"));
            if let Some(target) = profile_dir.parent() {
                candidates.push(target.join("release/offshoot"));
            }
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    candidates.push(workspace.join("target/release/offshoot"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the offshoot binary is missing (looked at {candidates:?}); \
                 build it with `cargo build --release -p offshoot` or set OFFSHOOT_BIN"
            )
        })
}

/// The PostgreSQL bin directory: `$OFFSHOOT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` that has psql and pgbench.
pub fn pg_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OFFSHOOT_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("psql").is_file() && bin.join("pgbench").is_file()).then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d).unwrap_or_else(|| {
        panic!("no /usr/lib/postgresql/*/bin with psql and pgbench; run scripts/install-deps.sh")
    })
}

pub fn pg_tool(name: &str) -> PathBuf {
    pg_bindir().join(name)
}
