//! `daemon.json`: written by a running daemon once its proxy and API listen,
//! removed on shutdown. The CLI reads it to find the API (and tells "daemon
//! not running" apart from "daemon unreachable" with `is_alive`).

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{write_durably, HomeError};

/// What a running daemon publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    /// Where the PostgreSQL proxy listens.
    pub proxy_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub api_addr: SocketAddr,
    /// The offshoot version of the daemon.
    pub version: String,
}

impl DaemonInfo {
    /// Reads `path`; `Ok(None)` if it does not exist.
    pub fn read(path: &Path) -> Result<Option<DaemonInfo>, HomeError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(HomeError::io("read", path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| HomeError::Malformed {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Writes `path` atomically (temporary file and rename), mode 0644.
    pub fn write(&self, path: &Path) -> Result<(), HomeError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| HomeError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_durably(path, &bytes, 0o644)
    }

    /// Removes `path`; a missing file is fine.
    pub fn remove(path: &Path) -> Result<(), HomeError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HomeError::io("remove", path, e)),
        }
    }

    /// Whether a process with the recorded pid still exists.
    pub fn is_alive(&self) -> bool {
        let Ok(pid) = i32::try_from(self.pid) else {
            return false;
        };
        // Signal 0 checks for existence and permission without sending anything.
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            Ok(()) => true,
            Err(nix::errno::Errno::EPERM) => true,
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_info_round_trips_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        assert_eq!(DaemonInfo::read(&path).unwrap(), None);
        let info = DaemonInfo {
            pid: std::process::id(),
            proxy_addr: "127.0.0.1:55432".parse().unwrap(),
            api_addr: "127.0.0.1:55433".parse().unwrap(),
            version: "0.1.0".into(),
        };
        info.write(&path).unwrap();
        let read = DaemonInfo::read(&path).unwrap().unwrap();
        assert_eq!(read, info);
        assert!(read.is_alive());
        DaemonInfo::remove(&path).unwrap();
        assert_eq!(DaemonInfo::read(&path).unwrap(), None);
        DaemonInfo::remove(&path).unwrap();
    }

    #[test]
    fn malformed_daemon_json_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            DaemonInfo::read(&path),
            Err(HomeError::Malformed { .. })
        ));
    }
}
