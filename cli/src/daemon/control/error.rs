//! What a branch operation can fail with; each kind maps to one API error
//! code (docs/contracts.md).

use crate::api::types::ErrorCode;

/// A refused or failed branch operation. Nothing was changed unless the
/// variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request names something invalid (a bad name, a TTL and an expiry both, …).
    #[error("{0}")]
    Invalid(String),
    #[error("branch {0:?} does not exist")]
    NotFound(String),
    /// The name is taken, or the branch exists with another parent.
    #[error("{0}")]
    Conflict(String),
    #[error("branch {0:?} is protected; unprotect it first")]
    Protected(String),
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ControlError::Invalid(_) => ErrorCode::Invalid,
            ControlError::NotFound(_) => ErrorCode::NotFound,
            ControlError::Conflict(_) => ErrorCode::Conflict,
            ControlError::Protected(_) => ErrorCode::Protected,
            ControlError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A store error about branch `name`, kept typed where a caller can act on it.
    pub fn from_store(name: &str, e: offshoot_storage::StoreError) -> ControlError {
        use offshoot_storage::StoreError as E;
        match e {
            E::BranchNotFound(n) => ControlError::NotFound(n),
            E::BranchExists(n) => ControlError::Conflict(format!("branch {n:?} already exists")),
            E::NoParent(n) => ControlError::Invalid(format!(
                "branch {n:?} has no parent to reset from; name one with \"parent\""
            )),
            other => ControlError::Internal(format!("branch {name:?}: {other}")),
        }
    }
}

impl From<crate::daemon::names::InvalidName> for ControlError {
    fn from(e: crate::daemon::names::InvalidName) -> ControlError {
        ControlError::Invalid(e.to_string())
    }
}
