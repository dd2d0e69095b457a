//! What a command can fail with, and the exit code each failure maps to
//! (docs/contracts.md): 1 any error, 2 usage, 3 not found, 4 daemon not
//! running or unreachable.

use std::path::PathBuf;

use crate::client::ClientError;
use crate::home::HomeError;

/// Exit codes of the `offshoot` binary.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const DAEMON_NOT_RUNNING: u8 = 4;
}

/// A failed command; its `Display` is the one line printed after `offshoot: `.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Arguments that parse but make no sense (a bad branch name, …).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Writing the result failed (a closed pipe is handled by the caller).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A program we hand over to (psql) could not be started.
    #[error("cannot run {}: {source}", program.display())]
    Exec {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The daemon (`offshoot up`) stopped with an error.
    #[error("{0:#}")]
    Daemon(anyhow::Error),
}

impl CommandError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage(_) => exit::USAGE,
            CommandError::Client(ClientError::NotRunning { .. })
            | CommandError::Client(ClientError::Unreachable { .. }) => exit::DAEMON_NOT_RUNNING,
            CommandError::Client(e) if e.is_code("not_found") => exit::NOT_FOUND,
            _ => exit::ERROR,
        }
    }

    /// True when the output pipe was closed by the reader (`| head -1`): not an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CommandError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> CommandError {
        CommandError::Client(ClientError::Api {
            status: 400,
            code: code.into(),
            message: "m".into(),
        })
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(api("not_found").exit_code(), 3);
        assert_eq!(api("conflict").exit_code(), 1);
        assert_eq!(api("protected").exit_code(), 1);
        assert_eq!(CommandError::Usage("u".into()).exit_code(), 2);
        let not_running = CommandError::Client(ClientError::NotRunning {
            home: "/h".into(),
            reason: "r".into(),
        });
        assert_eq!(not_running.exit_code(), 4);
        let unreachable = CommandError::Client(ClientError::Unreachable {
            addr: "127.0.0.1:1".parse().unwrap(),
            reason: "refused".into(),
        });
        assert_eq!(unreachable.exit_code(), 4);
    }

    #[test]
    fn only_a_closed_pipe_is_silent() {
        let pipe = CommandError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        let full = CommandError::Output(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(!full.is_broken_pipe());
        assert_eq!(full.exit_code(), 1);
    }
}
