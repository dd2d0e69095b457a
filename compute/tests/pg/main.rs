//! Integration tests that run real PostgreSQL from plain temporary
//! directories (no FUSE). Every test is named `pg_*` so that nextest runs them
//! one at a time, and kills every process under its directory on the way out,
//! pass or fail.

mod support;

mod cluster;
mod discovery;
mod supervise;
