//! The copy-on-write page store.
//!
//! Owns everything offshoot writes to disk for branch contents: the manifest,
//! each branch's open layer (an append-only log) and the sealed, immutable
//! layer files. Knows nothing of FUSE, processes or sockets.
//!
//! Work in progress: see `docs/contracts.md` for the API this crate provides.
