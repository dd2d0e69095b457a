//! The offshoot home directory: where it is, its layout, its secrets, and `daemon.json`.
