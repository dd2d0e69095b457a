//! Binary discovery against this machine's installation.

use offshoot_compute::{ComputeError, DiscoverySources, PgBinaries};

#[test]
fn pg_discover_finds_the_installed_binaries() {
    let bins = PgBinaries::discover().expect("PostgreSQL is installed here");
    assert!(bins.tool("postgres").is_file());
    assert!(bins.tool("initdb").is_file());
    assert!(bins.version.major >= 13, "{:?}", bins.version);
    assert!(
        bins.version.full.contains(&bins.version.major.to_string()),
        "{:?}",
        bins.version
    );
    // Debian's packages (the layout `/usr/lib/postgresql/<major>/bin`) are
    // built with LZ4, which computes use for WAL compression.
    if bins.bindir.starts_with("/usr/lib/postgresql") {
        assert!(bins.lz4, "{} reported no LZ4", bins.bindir.display());
    }
}

#[test]
fn pg_discover_with_empty_override_names_what_is_missing() {
    let empty = tempfile::tempdir().expect("tempdir");
    let sources = DiscoverySources {
        pg_bin_env: Some(empty.path().to_path_buf()),
        ..DiscoverySources::from_env()
    };
    let err = PgBinaries::discover_in(&sources).expect_err("empty directory");
    assert!(matches!(err, ComputeError::BinariesNotFound(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("missing postgres, initdb"), "{text}");
    assert!(text.contains("OFFSHOOT_PG_BIN"), "{text}");
    assert!(text.contains(&empty.path().display().to_string()), "{text}");
    assert!(text.contains("apt-get install postgresql"), "{text}");
}

#[test]
fn pg_discover_with_partial_override_names_the_missing_one() {
    let bins = PgBinaries::discover().expect("PostgreSQL is installed here");
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(bins.tool("postgres"), dir.path().join("postgres"))
        .expect("symlink");
    let sources = DiscoverySources {
        pg_bin_env: Some(dir.path().to_path_buf()),
        ..DiscoverySources::from_env()
    };
    let text = PgBinaries::discover_in(&sources)
        .expect_err("no initdb")
        .to_string();
    assert!(text.contains("missing initdb"), "{text}");
    assert!(!text.contains("missing postgres"), "{text}");
}
