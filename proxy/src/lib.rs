//! The wire-protocol proxy: one TCP endpoint for every branch.
//!
//! Work in progress: see `docs/contracts.md`.
