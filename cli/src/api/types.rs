//! The JSON shapes of the HTTP API (docs/contracts.md "The HTTP API"), shared
//! by the daemon's server and the CLI's client. Requests reject unknown
//! fields; timestamps are RFC 3339 strings.

use serde::{Deserialize, Serialize};

/// The API version prefix of every route but `/metrics`.
pub const API_PREFIX: &str = "/v1";

/// Whether a branch's PostgreSQL is running: the compute crate's own state.
pub use offshoot_compute::ComputeState;

/// A branch as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub id: u64,
    pub name: String,
    pub parent: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub state: ComputeState,
    /// Bytes of layers only this branch can read.
    pub owned_bytes: u64,
    /// RFC 3339, or null when the branch never expires.
    pub expires_at: Option<String>,
    pub protected: bool,
}

/// `GET /v1/branches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchList {
    pub branches: Vec<Branch>,
}

/// `POST /v1/branches`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBranchRequest {
    pub name: String,
    /// Defaults to `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Deleted this many seconds after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Deleted at this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    /// Checkpoint the parent first if it is running and has written more
    /// than 16 MiB of WAL since its last checkpoint, so that the new branch
    /// starts without replaying that WAL (the create waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_parent: Option<bool>,
}

/// The answer to `POST /v1/branches`: 201 with `created: true`, or 200 with
/// `created: false` when the branch already existed with the same parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBranchResponse {
    pub branch: Branch,
    pub created: bool,
}

/// `POST /v1/branches/{name}/reset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBranchRequest {
    /// Reset from this branch instead of the branch's own parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// `POST /v1/branches/{name}/rename`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameBranchRequest {
    pub new_name: String,
}

/// `GET /v1/branches/{name}/connection-string`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionString {
    pub uri: String,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub home: String,
    pub proxy_addr: String,
    pub api_addr: String,
    pub postgres_version: String,
    pub branches: u64,
    pub computes_running: u64,
    pub storage_bytes: u64,
    /// Bytes the daemon can still write on the disk under the page store;
    /// `null` when it cannot be measured (or from a daemon that predates it).
    #[serde(default)]
    pub disk_free_bytes: Option<u64>,
}

/// The `code` of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no or a wrong bearer token.
    Unauthorized,
    /// 404: no such branch (or route).
    NotFound,
    /// 409: the name is taken, or the branch exists with another parent.
    Conflict,
    /// 409: the branch is protected from delete and reset.
    Protected,
    /// 400, 405, 413 or 422: the request is malformed, uses a method the route
    /// does not answer, is too large or names something invalid.
    Invalid,
    /// 500.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Protected => "protected",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Internal => "internal",
        }
    }
}

/// `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// The path of a branch's routes, with the name percent-encoded (`/` as `%2F`).
pub fn branch_path(name: &str) -> String {
    format!("{API_PREFIX}/branches/{}", encode_path_segment(name))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode_path_segment(segment: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(segment, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_rejects_unknown_fields() {
        let ok: CreateBranchRequest =
            serde_json::from_str(r#"{"name":"a","parent":"main","ttl_seconds":5}"#).unwrap();
        assert_eq!(ok.parent.as_deref(), Some("main"));
        assert_eq!(ok.ttl_seconds, Some(5));
        let err = serde_json::from_str::<CreateBranchRequest>(r#"{"name":"a","colour":"red"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn branch_serialises_with_contract_field_names() {
        let b = Branch {
            id: 2,
            name: "feature/x".into(),
            parent: Some("main".into()),
            created_at: "2024-01-01T00:00:00Z".into(),
            state: ComputeState::Stopped,
            owned_bytes: 0,
            expires_at: None,
            protected: false,
        };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["state"], "stopped");
        assert!(v["expires_at"].is_null());
        assert_eq!(v["parent"], "main");
        let e = serde_json::to_value(ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::NotFound,
                message: "m".into(),
            },
        })
        .unwrap();
        assert_eq!(e["error"]["code"], "not_found");
    }

    #[test]
    fn branch_path_encodes_slashes() {
        assert_eq!(branch_path("feature/x"), "/v1/branches/feature%2Fx");
        assert_eq!(branch_path("a-b_c"), "/v1/branches/a-b_c");
    }
}
