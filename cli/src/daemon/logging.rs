//! The daemon's log: `tracing-subscriber` to stderr, human-readable by
//! default or one JSON object per line, filtered by `RUST_LOG` (default
//! `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. A second call (tests starting several
/// daemons in one process) keeps the first subscriber.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // Err only means a subscriber is already installed.
    let _ = result;
}
