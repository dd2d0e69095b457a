//! Every error the proxy itself sends to a client, as a PostgreSQL
//! `ErrorResponse` (severity FATAL). Each kind has a named constructor with a
//! fixed SQLSTATE; the message is chosen here, and internal details (paths,
//! I/O errors, control-plane reasons) are logged by the caller, never put on
//! the wire.

use bytes::{BufMut, BytesMut};

use crate::metrics::FailReason;
use crate::router::RouteError;
use crate::routing::BRANCH_NAME_RULE;

/// The SQLSTATEs the proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    /// 08P01 protocol_violation
    ProtocolViolation,
    /// 0A000 feature_not_supported
    FeatureNotSupported,
    /// 08004 sqlserver_rejected_establishment_of_sqlconnection
    RejectedConnection,
    /// 28000 invalid_authorization_specification
    InvalidAuthorization,
    /// 3D000 invalid_catalog_name
    InvalidCatalogName,
    /// 57P03 cannot_connect_now
    CannotConnectNow,
    /// 53100 disk_full
    DiskFull,
    /// XX000 internal_error
    Internal,
}

impl SqlState {
    pub fn code(self) -> &'static str {
        match self {
            SqlState::ProtocolViolation => "08P01",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::RejectedConnection => "08004",
            SqlState::InvalidAuthorization => "28000",
            SqlState::InvalidCatalogName => "3D000",
            SqlState::CannotConnectNow => "57P03",
            SqlState::DiskFull => "53100",
            SqlState::Internal => "XX000",
        }
    }
}

/// An error destined for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {message}", state.code())]
pub struct ClientError {
    state: SqlState,
    message: String,
    reason: FailReason,
}

/// How many branch names an unknown-branch message lists at most.
const MAX_LISTED_BRANCHES: usize = 20;

impl ClientError {
    fn new(state: SqlState, reason: FailReason, message: impl Into<String>) -> Self {
        ClientError {
            state,
            message: message.into(),
            reason,
        }
    }

    pub fn state(&self) -> SqlState {
        self.state
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn reason(&self) -> FailReason {
        self.reason
    }

    // ---- startup-phase protocol errors (08P01 / 0A000) ----

    pub fn invalid_packet_length(len: i64) -> Self {
        Self::new(
            SqlState::ProtocolViolation,
            FailReason::Protocol,
            format!("invalid length of startup packet: {len}"),
        )
    }

    pub fn packet_too_large(len: i64, max: usize) -> Self {
        Self::new(
            SqlState::ProtocolViolation,
            FailReason::Protocol,
            format!("startup packet of {len} bytes is larger than the limit of {max} bytes"),
        )
    }

    pub fn malformed_startup(what: &str) -> Self {
        Self::new(
            SqlState::ProtocolViolation,
            FailReason::Protocol,
            format!("invalid startup packet layout: {what}"),
        )
    }

    pub fn unsupported_protocol(major: u16, minor: u16) -> Self {
        Self::new(
            SqlState::FeatureNotSupported,
            FailReason::Protocol,
            format!(
                "unsupported frontend protocol {major}.{minor}: the offshoot proxy supports 3.0"
            ),
        )
    }

    pub fn unencrypted_data_after_ssl_request() -> Self {
        Self::new(
            SqlState::ProtocolViolation,
            FailReason::Protocol,
            "received unencrypted data after SSL request",
        )
    }

    pub fn unencrypted_data_after_gssenc_request() -> Self {
        Self::new(
            SqlState::ProtocolViolation,
            FailReason::Protocol,
            "received unencrypted data after GSSAPI encryption request",
        )
    }

    pub fn duplicate_negotiation(what: &str) -> Self {
        Self::new(
            SqlState::ProtocolViolation,
            FailReason::Protocol,
            format!("duplicate {what} request"),
        )
    }

    pub fn startup_timeout() -> Self {
        Self::new(
            SqlState::ProtocolViolation,
            FailReason::StartupTimeout,
            "timeout while waiting for the startup packet",
        )
    }

    // ---- routing (08004 / 3D000 / 28000) ----

    pub fn no_branch() -> Self {
        Self::new(
            SqlState::RejectedConnection,
            FailReason::NoBranch,
            "no branch named: connect as user \"ROLE.BRANCH\" (e.g. postgres.main) \
             or pass options=-c offshoot.branch=BRANCH",
        )
    }

    pub fn conflicting_branches(first: &str, second: &str) -> Self {
        Self::new(
            SqlState::RejectedConnection,
            FailReason::NoBranch,
            format!(
                "conflicting branches named: \"{first}\" and \"{second}\"; \
                 name the branch once, in the user name (ROLE.BRANCH) or in options=-c offshoot.branch=BRANCH"
            ),
        )
    }

    pub fn invalid_branch_name(name: &str) -> Self {
        Self::new(
            SqlState::InvalidCatalogName,
            FailReason::InvalidBranch,
            format!("invalid branch name \"{name}\": a branch name is {BRANCH_NAME_RULE}"),
        )
    }

    pub fn unknown_branch(name: &str, known: &[String]) -> Self {
        let list = if known.is_empty() {
            "(none)".to_string()
        } else if known.len() > MAX_LISTED_BRANCHES {
            format!(
                "{}, … and {} more",
                known[..MAX_LISTED_BRANCHES].join(", "),
                known.len() - MAX_LISTED_BRANCHES
            )
        } else {
            known.join(", ")
        };
        Self::new(
            SqlState::InvalidCatalogName,
            FailReason::UnknownBranch,
            format!("branch \"{name}\" does not exist; branches: {list}"),
        )
    }

    pub fn branch_deleting(name: &str) -> Self {
        Self::new(
            SqlState::InvalidCatalogName,
            FailReason::UnknownBranch,
            format!("branch \"{name}\" is being deleted"),
        )
    }

    pub fn missing_user() -> Self {
        Self::new(
            SqlState::InvalidAuthorization,
            FailReason::Auth,
            "no PostgreSQL user name specified in startup packet",
        )
    }

    pub fn reserved_role(role: &str) -> Self {
        Self::new(
            SqlState::InvalidAuthorization,
            FailReason::Auth,
            format!("role \"{role}\" is reserved for offshoot and cannot log in through the proxy"),
        )
    }

    // ---- compute (57P03) and internal (XX000) ----

    pub fn compute_start_failed(branch: &str) -> Self {
        Self::new(
            SqlState::CannotConnectNow,
            FailReason::ComputeUnavailable,
            format!("the compute of branch \"{branch}\" could not be started; see the offshoot daemon log"),
        )
    }

    pub fn compute_start_failed_disk_full(branch: &str) -> Self {
        Self::new(
            SqlState::DiskFull,
            FailReason::ComputeUnavailable,
            format!(
                "the compute of branch \"{branch}\" could not be started: the disk under \
                 offshoot's page store is full; free some space, then connect again"
            ),
        )
    }

    pub fn compute_wake_timeout(branch: &str) -> Self {
        Self::new(
            SqlState::CannotConnectNow,
            FailReason::ComputeUnavailable,
            format!("the compute of branch \"{branch}\" is starting and was not ready in time; try again"),
        )
    }

    pub fn compute_unreachable(branch: &str) -> Self {
        Self::new(
            SqlState::CannotConnectNow,
            FailReason::ComputeUnavailable,
            format!("could not connect to the compute of branch \"{branch}\"; try again"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            SqlState::Internal,
            FailReason::Internal,
            "internal error in the offshoot proxy; see the daemon log",
        )
    }

    /// The client-facing form of a control-plane refusal for `branch`.
    /// The caller logs `err` (it may hold internal details).
    pub fn from_route_error(branch: &str, err: &RouteError) -> Self {
        match err {
            RouteError::UnknownBranch { name, known } => Self::unknown_branch(name, known),
            RouteError::InvalidName { name, .. } => Self::invalid_branch_name(name),
            RouteError::Deleting(name) => Self::branch_deleting(name),
            RouteError::WakeFailed { .. } => Self::compute_start_failed(branch),
            RouteError::WakeTimeout { .. } => Self::compute_wake_timeout(branch),
            RouteError::DiskFull { .. } => Self::compute_start_failed_disk_full(branch),
            RouteError::Internal(_) => Self::internal(),
        }
    }

    /// The `ErrorResponse` message bytes.
    pub fn encode(&self) -> BytesMut {
        let mut body = BytesMut::with_capacity(64 + self.message.len());
        for (tag, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', self.state.code()),
            (b'M', self.message.as_str()),
        ] {
            body.put_u8(tag);
            // A NUL would end the field early: never in our fixed messages,
            // but names come from the client.
            body.extend(value.bytes().filter(|b| *b != 0));
            body.put_u8(0);
        }
        body.put_u8(0);
        let mut out = BytesMut::with_capacity(body.len() + 5);
        out.put_u8(b'E');
        out.put_i32((body.len() + 4) as i32);
        out.extend_from_slice(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_layout() {
        let e = ClientError::reserved_role("offshoot_system");
        let bytes = e.encode();
        assert_eq!(bytes[0], b'E');
        let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len + 1, bytes.len());
        let text = String::from_utf8_lossy(&bytes[5..]);
        assert!(text.contains("SFATAL\0VFATAL\0C28000\0M"), "{text:?}");
        assert!(bytes.ends_with(b"\0\0"));
    }

    #[test]
    fn unknown_branch_lists_known() {
        let e = ClientError::unknown_branch("feature-x", &["main".into(), "pr-12".into()]);
        assert_eq!(
            e.message(),
            "branch \"feature-x\" does not exist; branches: main, pr-12"
        );
        assert_eq!(e.state().code(), "3D000");
        let many: Vec<String> = (0..25).map(|i| format!("b{i}")).collect();
        let e = ClientError::unknown_branch("x", &many);
        assert!(
            e.message().ends_with("b19, … and 5 more"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn internal_details_stay_off_the_wire() {
        let err = RouteError::WakeFailed {
            name: "main".into(),
            reason: "/secret/path: permission denied".into(),
        };
        let e = ClientError::from_route_error("main", &err);
        assert_eq!(e.state(), SqlState::CannotConnectNow);
        assert!(!e.message().contains("/secret"));
        let e = ClientError::from_route_error("main", &RouteError::Internal("boom".into()));
        assert!(!e.message().contains("boom"));
    }

    #[test]
    fn a_full_disk_is_named_with_postgres_own_sqlstate() {
        let err = RouteError::DiskFull {
            name: "main".into(),
            reason: "/secret/path: PANIC".into(),
        };
        let e = ClientError::from_route_error("main", &err);
        assert_eq!(e.state().code(), "53100");
        assert!(e.message().contains("disk"), "{}", e.message());
        assert!(!e.message().contains("/secret"));
    }
}
