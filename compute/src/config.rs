//! What offshoot writes into a cluster's configuration.
//!
//! - `postgresql.conf` gets a block appended by [`crate::initdb`]: settings
//!   that hold for every branch (inherited by branches, since they are pages of
//!   the data directory like any other file).
//! - The `hba_file` lives outside the data directory and is rewritten by
//!   offshoot at every start: SCRAM for every role, over the local socket
//!   only. There is no TCP listener, so there are no `host` lines.
//! - Per-start settings (`-c` on the postmaster command line) name the socket
//!   directory, the hba file and the port, and keep the log in English on
//!   stderr (an imported cluster may say otherwise); they win over the file.

use std::path::Path;

/// The port number in the socket's name (`.s.PGSQL.5432`); nothing listens on TCP.
pub const SOCKET_PORT: u16 = 5432;

/// The marker line opening offshoot's block in `postgresql.conf`.
pub(crate) const CONF_MARKER: &str = "# ---- offshoot settings (managed; edit with care) ----";

/// The block appended to `postgresql.conf` after `initdb`.
pub(crate) fn postgresql_conf_block() -> String {
    let lines = [
        CONF_MARKER,
        "# No TCP listener: clients come through the offshoot proxy to the unix socket.",
        "listen_addresses = ''",
        "# The socket is in a private 0700 directory; only its owner connects.",
        "unix_socket_permissions = 0700",
        "password_encryption = 'scram-sha-256'",
        "# Many branches run side by side: PostgreSQL's default memory, no more.",
        "shared_buffers = 128MB",
        "max_connections = 100",
        "# Durability comes from PostgreSQL's own fsyncs through to the page store.",
        "fsync = on",
        "synchronous_commit = on",
        "full_page_writes = on",
        "# One log per branch: stderr goes to the file offshoot opened for it.",
        "logging_collector = off",
        "log_destination = 'stderr'",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        "# hba_file, unix_socket_directories and port are given at every start.",
        "",
    ];
    let mut s = String::from("\n");
    s.push_str(&lines.join("\n"));
    s
}

/// The contents of the offshoot-managed `hba_file`.
pub(crate) fn hba_contents() -> &'static str {
    "# Managed by offshoot; rewritten at every start.\n\
     # Local socket only (no TCP listener); SCRAM for every role.\n\
     local all all scram-sha-256\n"
}

/// Per-start settings for the postmaster command line, for a server of
/// major version `major`, built with LZ4 when `lz4`.
pub(crate) fn start_settings(
    socket_dir: &Path,
    hba_file: &Path,
    major: u32,
    lz4: bool,
) -> Vec<(String, String)> {
    let mut settings = vec![
        ("listen_addresses".to_owned(), String::new()),
        (
            "unix_socket_directories".to_owned(),
            socket_dir.display().to_string(),
        ),
        ("hba_file".to_owned(), hba_file.display().to_string()),
        ("port".to_owned(), SOCKET_PORT.to_string()),
        // The log is offshoot's: English, on stderr (readiness reads it).
        ("lc_messages".to_owned(), "C".to_owned()),
        ("logging_collector".to_owned(), "off".to_owned()),
        ("log_destination".to_owned(), "stderr".to_owned()),
        // On pagefs a WAL write that carries O_DSYNC goes around the page
        // cache and is one FUSE request that the page store makes durable,
        // where write + fdatasync take two (docs/compute.md).
        ("wal_sync_method".to_owned(), "open_datasync".to_owned()),
        // A new segment is a hole in the page store; zero-filling it would
        // write 16 MB into the store for nothing.
        ("wal_init_zero".to_owned(), "off".to_owned()),
        // With `open_datasync` every WAL write is a flush, and a backend
        // that finds no free WAL buffer writes one page at a time itself:
        // a bulk load (COPY, CREATE INDEX, a restore) paid a round trip and
        // a store flush per 8 kB. PostgreSQL's own choice for 128 MB of
        // shared buffers is 4 MB; with 16 MB (its largest automatic value)
        // the WAL writer writes ahead in large pieces and `pgbench -i -s 68`
        // takes 10 s instead of 23 (docs/compute.md). Commits are unchanged.
        ("wal_buffers".to_owned(), "16MB".to_owned()),
    ];
    // Crash recovery (every first start of a branch, and every start after a
    // crash) begins by making the whole data directory durable. The default,
    // `fsync`, opens and fsyncs every file of the cluster one by one, each a
    // round trip through FUSE to the page store; `syncfs` asks the kernel to
    // write back the mount's dirty pages in one call. That is enough here:
    // a branch's files are one append log in the page store, so the first
    // fsync recovery itself issues (its end-of-recovery checkpoint) makes
    // every earlier write of the branch durable, whichever file it touched.
    // See docs/compute.md. The setting exists from PostgreSQL 14 on.
    if major >= 14 {
        settings.push(("recovery_init_sync_method".to_owned(), "syncfs".to_owned()));
    }
    // Every WAL byte crosses FUSE and is kept in the branch's log in the page
    // store. After each checkpoint the first change to a page writes the
    // whole page into the WAL; compressed with LZ4 those images take about
    // half the bytes (TPC-B: 12 kB of FUSE writes per transaction instead of
    // 19, docs/compute.md) for little CPU. PostgreSQL has LZ4 for the WAL
    // from 15 on, when built with it.
    if major >= 15 && lz4 {
        settings.push(("wal_compression".to_owned(), "lz4".to_owned()));
    }
    settings
}

/// `C.UTF-8` when this system's C library has it, else `C`.
pub(crate) fn initdb_locale() -> &'static str {
    let available = ["/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"]
        .iter()
        .any(|p| Path::new(p).exists());
    if available {
        "C.UTF-8"
    } else {
        "C"
    }
}
