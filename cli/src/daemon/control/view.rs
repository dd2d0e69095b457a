//! The control plane's annotations on a branch (stored durably by the page
//! store with the branch's metadata) and the API view of a branch.
//!
//! Annotations: `offshoot.expires_at` (RFC 3339, UTC) and
//! `offshoot.protected` (`true`; absent means unprotected).

use std::time::SystemTime;

use offshoot_storage::BranchInfo;

use crate::api::types::{Branch, ComputeState};

pub const EXPIRES_AT: &str = "offshoot.expires_at";
pub const PROTECTED: &str = "offshoot.protected";

pub fn is_protected(info: &BranchInfo) -> bool {
    info.annotations.get(PROTECTED).map(String::as_str) == Some("true")
}

/// The branch's expiry, if it has one that parses.
pub fn expires_at(info: &BranchInfo) -> Option<SystemTime> {
    let text = info.annotations.get(EXPIRES_AT)?;
    match humantime::parse_rfc3339_weak(text) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(branch = %info.name, value = %text, error = %e, "ignoring unreadable expiry");
            None
        }
    }
}

/// RFC 3339 with seconds, UTC (`2030-01-01T00:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 time in UTC (`Z`), as the API accepts it.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("expires_at {text:?} is not an RFC 3339 UTC time such as 2030-01-01T00:00:00Z: {e}")
    })
}

/// The API view of a branch that owns `owned_bytes` of storage.
pub fn view(info: &BranchInfo, state: ComputeState, owned_bytes: u64) -> Branch {
    Branch {
        id: info.id.0,
        name: info.name.clone(),
        parent: info.parent.clone(),
        created_at: rfc3339(info.created_at),
        state,
        owned_bytes,
        expires_at: expires_at(info).map(rfc3339),
        protected: is_protected(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_round_trips_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let text = rfc3339(t);
        assert_eq!(text, "2030-03-17T17:46:40Z");
        assert_eq!(parse_rfc3339(&text).unwrap(), t);
        assert!(parse_rfc3339("tomorrow").unwrap_err().contains("RFC 3339"));
    }
}
