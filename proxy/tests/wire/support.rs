//! Test support: a real PostgreSQL 15 per test (`postgres`), a fake control
//! plane (`FakeRouter`), a proxy running in-process (`ProxyHarness`) and a
//! `psql` runner that captures what a user would see.

pub mod postgres;
pub mod proxy;
pub mod psql;

pub use postgres::{PgOptions, PgServer, PASSWORD};
pub use proxy::{FakeRouter, ProxyHarness};
pub use psql::psql;
