//! The HTTP client the commands use to reach the daemon.
