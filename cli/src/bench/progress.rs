//! Progress lines on stderr for long steps: `[  12.3s] loading 1 GiB into main … done in 41.2s`.

use std::io::Write;
use std::time::{Duration, Instant};

/// The clock of one benchmark run; every line shows the time since it started.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    started: Instant,
}

/// A step in progress; [`Step::done`] ends its line with the time it took.
#[must_use = "finish a step with done()"]
pub struct Step {
    started: Instant,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            started: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn prefix(&self) -> String {
        format!("[{:>7.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// Prints a line on its own.
    pub fn note(&self, msg: &str) {
        eprintln!("{} {msg}", self.prefix());
    }

    /// Starts a step: prints `msg …` and leaves the line open for `done`.
    pub fn step(&self, msg: &str) -> Step {
        eprint!("{} {msg} … ", self.prefix());
        let _ = std::io::stderr().flush();
        Step {
            started: Instant::now(),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Step {
    pub fn done(self) {
        eprintln!("done in {:.1}s", self.started.elapsed().as_secs_f64());
    }

    /// Ends the line with a short result, e.g. `1523 tps`.
    pub fn done_with(self, what: &str) {
        eprintln!("{what} ({:.1}s)", self.started.elapsed().as_secs_f64());
    }
}
