//! The HTTP client the commands use to reach the daemon: blocking HTTP/1.1 on
//! loopback (no async runtime on the command path), the API address from the
//! home's `daemon.json` and the bearer token from `secrets/api.token`.
//!
//! Every call is one request and one JSON answer. Error bodies
//! (`{"error": {"code", "message"}}`) become [`ClientError::Api`]; a missing
//! `daemon.json`, a dead pid or a refused connection become
//! [`ClientError::NotRunning`] / [`ClientError::Unreachable`].

mod endpoints;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::home::{Home, HomeError};

/// How long a connection to the loopback API may take before the daemon
/// counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// An upper bound for one call (a reset or delete may stop a compute first).
const CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// Why a call to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon runs for this home (no `daemon.json`, or its process is gone).
    #[error("the offshoot daemon is not running for {} ({reason}); start it with `offshoot up`", home.display())]
    NotRunning { home: PathBuf, reason: String },
    /// `daemon.json` names an address nobody answers on.
    #[error("cannot reach the offshoot daemon at {addr}: {reason}; is `offshoot up` running?")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The daemon answered with an error body.
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The daemon answered something that is not the documented shape.
    #[error("unexpected answer from the daemon to {what}: {reason}")]
    Protocol { what: String, reason: String },
    /// The home's files could not be read.
    #[error(transparent)]
    Home(#[from] HomeError),
}

impl ClientError {
    /// True for an API error with the given `code` (`not_found`, `conflict`, …).
    pub fn is_code(&self, wanted: &str) -> bool {
        matches!(self, ClientError::Api { code, .. } if code == wanted)
    }
}

/// A connection to one daemon's HTTP API.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    addr: SocketAddr,
    token: String,
}

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Delete,
}

impl Client {
    /// The client for the daemon of `home`: reads `daemon.json` and the API token.
    /// Does not touch the network.
    pub fn for_home(home: &Home) -> Result<Client, ClientError> {
        let not_running = |reason: &str| ClientError::NotRunning {
            home: home.root().to_path_buf(),
            reason: reason.to_string(),
        };
        let info = match home.read_daemon_info()? {
            Some(info) => info,
            None if home.root().is_dir() => return Err(not_running("no daemon.json")),
            None => return Err(not_running("the home directory does not exist")),
        };
        if !info.is_alive() {
            return Err(not_running(&format!(
                "daemon.json names pid {}, which has exited",
                info.pid
            )));
        }
        let token = home.api_token().map_err(|e| match e {
            HomeError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                not_running("no API token in secrets/")
            }
            other => ClientError::Home(other),
        })?;
        Ok(Client::new(info.api_addr, token))
    }

    /// A client for the API at `addr` with the bearer `token`.
    pub fn new(addr: SocketAddr, token: String) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(CALL_TIMEOUT))
            .max_redirects(0)
            .user_agent(concat!("offshoot/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: config.into(),
            addr,
            token,
        }
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// One request with an optional JSON body; decodes a 2xx answer as `T`.
    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let auth = format!("Bearer {}", self.token);
        let what = format!("{method:?} {path}").to_uppercase();
        let result = match (method, body) {
            (Method::Get, _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (Method::Delete, _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            (Method::Post, Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body),
            (Method::Post, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let mut response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol {
            what,
            reason: e.to_string(),
        })
    }

    fn transport_error(&self, error: ureq::Error) -> ClientError {
        ClientError::Unreachable {
            addr: self.addr,
            reason: error.to_string(),
        }
    }
}

/// Decodes `{"error": {"code", "message"}}`; anything else keeps the status and text.
fn api_error(status: u16, text: &str) -> ClientError {
    let parsed: Option<(String, String)> = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            Some((
                error.get("code")?.as_str()?.to_string(),
                error.get("message")?.as_str()?.to_string(),
            ))
        });
    match parsed {
        Some((code, message)) => ClientError::Api {
            status,
            code,
            message,
        },
        None => ClientError::Api {
            status,
            code: if status == 404 {
                "not_found"
            } else {
                "internal"
            }
            .to_string(),
            message: format!("the daemon answered HTTP {status}: {}", text.trim()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_code_and_message() {
        let e = api_error(
            404,
            r#"{"error":{"code":"not_found","message":"branch \"x\" does not exist"}}"#,
        );
        assert!(e.is_code("not_found"));
        assert_eq!(e.to_string(), "branch \"x\" does not exist");
    }

    #[test]
    fn a_body_without_the_error_shape_still_reports_status() {
        let e = api_error(502, "bad gateway");
        assert!(e.is_code("internal"));
        assert_eq!(e.to_string(), "the daemon answered HTTP 502: bad gateway");
        assert!(api_error(404, "").is_code("not_found"));
    }

    #[test]
    fn a_home_without_daemon_json_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let err = Client::for_home(&Home::at(dir.path())).unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
        assert!(err.to_string().contains("offshoot up"), "{err}");
        let missing = Client::for_home(&Home::at(dir.path().join("nope"))).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
    }

    #[test]
    fn a_refused_connection_is_unreachable() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let client = Client::new(port, "t".into());
        let err = client
            .call::<serde_json::Value>(Method::Get, "/v1/status", None::<&()>)
            .unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    }
}
