//! The `offshoot` control plane: the home directory, the daemon (`offshoot up`)
//! that wires storage, pagefs, compute and proxy together, its HTTP API, and
//! the commands that call it.

pub mod api;
pub mod bench;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod home;
pub mod output;
