//! Builds the `offshoot_handoff` PostgreSQL module (`handoff/offshoot_handoff.c`)
//! once for every PostgreSQL major version whose server headers are on this
//! machine (Debian's `postgresql-server-dev-N`, under
//! `/usr/include/postgresql/N/server`, or the directory named by
//! `OFFSHOOT_PG_INCLUDE`), and writes `handoff_modules.rs` into `OUT_DIR`: a
//! table of (major version, module bytes) that `src/handoff.rs` embeds.
//!
//! A version without headers gets no module; its computes run without it and
//! the proxy relays their sessions (docs/compute.md, "Socket handoff").

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const SOURCE: &str = "handoff/offshoot_handoff.c";
const DEBIAN_INCLUDES: &str = "/usr/include/postgresql";
const SUPPORTED: std::ops::RangeInclusive<u32> = 15..=17;

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed={DEBIAN_INCLUDES}");
    println!("cargo:rerun-if-env-changed=OFFSHOOT_PG_INCLUDE");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut modules: Vec<(u32, PathBuf)> = Vec::new();
    for include in server_include_dirs() {
        let Some(major) = major_version(&include) else {
            continue;
        };
        if !SUPPORTED.contains(&major) || modules.iter().any(|(m, _)| *m == major) {
            continue;
        }
        let module = out.join(format!("offshoot_handoff-{major}.so"));
        match compile(&include, &module) {
            Ok(()) => modules.push((major, module)),
            Err(e) => println!(
                "cargo:warning=offshoot_handoff for PostgreSQL {major} not built ({e}); \
                 its sessions will be relayed by the proxy"
            ),
        }
    }
    if modules.is_empty() {
        println!(
            "cargo:warning=no PostgreSQL server headers found (install postgresql-server-dev-15 \
             and libkrb5-dev): the proxy will relay every session instead of handing it off"
        );
    }

    let mut table = String::from(
        "/// (PostgreSQL major version, the offshoot_handoff module built for it).\n\
         pub(crate) const MODULES: &[(u32, &[u8])] = &[\n",
    );
    for (major, module) in &modules {
        table.push_str(&format!(
            "    ({major}, include_bytes!({:?})),\n",
            module.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(out.join("handoff_modules.rs"), table).expect("write handoff_modules.rs");
}

/// Candidate `server` include directories, the explicit one first.
fn server_include_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("OFFSHOOT_PG_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(entries) = fs::read_dir(DEBIAN_INCLUDES) {
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path().join("server"))
            .filter(|p| p.join("postgres.h").is_file())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    dirs
}

/// `PG_MAJORVERSION_NUM` from the headers' `pg_config.h`.
fn major_version(include: &Path) -> Option<u32> {
    let config = fs::read_to_string(include.join("pg_config.h")).ok()?;
    config.lines().find_map(|line| {
        line.strip_prefix("#define PG_MAJORVERSION_NUM ")
            .and_then(|v| v.trim().parse().ok())
    })
}

fn compile(include: &Path, module: &Path) -> Result<(), String> {
    let compiler = cc::Build::new().extra_warnings(false).get_compiler();
    let output = compiler
        .to_command()
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror"])
        .args(["-Wmissing-prototypes", "-Wdeclaration-after-statement"])
        .args(["-fno-strict-aliasing", "-fwrapv"])
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(module)
        .arg(SOURCE)
        .output()
        .map_err(|e| format!("run the C compiler: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first_error = stderr
            .lines()
            .find(|l| l.contains("error") || l.contains("warning"))
            .unwrap_or("the C compiler failed");
        Err(first_error.to_owned())
    }
}
