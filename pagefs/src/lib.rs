//! The FUSE view: presents one branch of the page store as a directory that
//! PostgreSQL accepts as its data directory. Knows nothing of PostgreSQL.
//!
//! Work in progress: see `docs/contracts.md`.
