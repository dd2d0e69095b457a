//! PostgreSQL per branch: finds the binaries, runs `initdb`, starts and stops
//! one unmodified `postgres` per running branch and restarts it after a crash.
//!
//! Work in progress: see `docs/contracts.md`.
