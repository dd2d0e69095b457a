//! Wire-level tests of the proxy, in-process, against real PostgreSQL and
//! real clients (psql, tokio-postgres). Tests that start PostgreSQL are
//! named `pg_*` (run one at a time under nextest).

mod bench;
mod cancel;
mod connect;
mod handoff;
mod load;
mod negotiation;
mod refusals;
mod relay;
mod support;
mod tls;
