//! The HTTP API: request/response types shared by the daemon and the client
//! (`api/types.rs`), and the server (`api/server.rs`) with its routes, its
//! authentication, its JSON body handling, its Prometheus metrics and the
//! hand-written OpenAPI document (`api/openapi.json`).

pub mod server;
pub mod types;
