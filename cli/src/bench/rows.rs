//! The benchmark's rows, one module each, and the copy methods they share.
//!
//! 1. `copy`: full copy of a database of each size (and loading the data).
//! 2. `ready`: copy ready to answer its first query.
//! 3. and 4. `throughput`: pgbench TPC-B and `-S` on a branch vs native, on
//!    the sockets (storage) and through the proxy vs loopback TCP.
//! 5. `storage`: bytes a copy takes after updating 1% of the accounts.
//! 6. `many`: creating many branches.
//! 7. `wake`: first query after scale to zero vs native cold start.

pub mod copy;
pub mod many;
pub mod methods;
pub mod ready;
pub mod storage;
pub mod throughput;
pub mod wake;
