//! The daemon's log: `tracing-subscriber` to stderr, human-readable by
//! default or one JSON object per line, filtered by `RUST_LOG` (default
//! [`DEFAULT_FILTER`]).

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset: `info`, except fuser's reply path.
/// Under load the kernel interrupts requests whose answer is already on its
/// way (a backend that gave up waiting, a cancelled read-ahead); fuser then
/// logs "Failed to send FUSE reply: ENOENT" at error level for the late
/// answer, which is harmless and would drown real errors.
pub const DEFAULT_FILTER: &str = "info,fuser::reply=off";

/// The filter: `RUST_LOG` when set and valid, else [`DEFAULT_FILTER`].
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// Installs the global subscriber. A second call (tests starting several
/// daemons in one process) keeps the first subscriber.
pub fn init(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_default_filter_drops_fuser_reply_errors_only() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::try_new(DEFAULT_FILTER).expect("valid directives"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "fuser::reply", "Failed to send FUSE reply: ENOENT");
            tracing::error!(target: "fuser::session", "a real fuser error");
            tracing::info!(target: "offshoot::daemon", "an info line");
            tracing::debug!(target: "offshoot::daemon", "a debug line");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("Failed to send FUSE reply"), "{text}");
        assert!(text.contains("a real fuser error"), "{text}");
        assert!(text.contains("an info line"), "{text}");
        assert!(!text.contains("a debug line"), "{text}");
    }
}
