//! End-to-end tests live in `tests/tests/`; this library holds their shared
//! harness (starting a daemon on a temporary home, running psql/pgbench).
