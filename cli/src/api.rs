//! The HTTP API: request/response types shared by the daemon and the client (`api/types.rs`), and the server routes (`api/server.rs`).
