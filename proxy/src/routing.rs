//! Which branch and role a StartupMessage names, and the StartupMessage the
//! compute receives instead.
//!
//! A branch can be named three ways, all of which must agree when several
//! are given:
//! - the user name `ROLE.BRANCH`, split at the last dot (`user` becomes ROLE);
//! - `options` holding `-c offshoot.branch=BRANCH` (or `-coffshoot.branch=…`,
//!   `--offshoot.branch=…`), removed from the forwarded options;
//! - a startup parameter `offshoot.branch` (drivers that send arbitrary
//!   parameters), removed before forwarding.
//!
//! No branch is an error: there is never a silent default.

mod options;

use crate::client_error::ClientError;
use crate::startup::StartupParams;

pub use options::{split_branch_option, OptionsSplit};

/// The branch-name rule, as shown to users.
pub const BRANCH_NAME_RULE: &str =
    "1-63 characters from a-z A-Z 0-9 - _ /, not starting with - or /";

/// The startup parameter (and GUC-style option) that names a branch.
pub const BRANCH_PARAM: &str = "offshoot.branch";

/// Where a connection goes and what the compute receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub branch: String,
    pub role: String,
    /// The StartupMessage parameters to send to the compute.
    pub forwarded: StartupParams,
}

/// True when `name` satisfies [`BRANCH_NAME_RULE`].
pub fn is_valid_branch_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && !matches!(bytes[0], b'-' | b'/')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
}

/// Decides the branch and rewrites the parameters. Refuses reserved roles
/// before anything else is looked at.
pub fn resolve(params: &StartupParams, reserved_roles: &[String]) -> Result<Target, ClientError> {
    let user = params.get("user").ok_or_else(ClientError::missing_user)?;
    let (role, user_branch) = match user.rfind('.') {
        Some(dot) => (&user[..dot], Some(&user[dot + 1..])),
        None => (user, None),
    };
    if role.is_empty() {
        return Err(ClientError::missing_user());
    }
    if reserved_roles.iter().any(|r| r == role || r == user) {
        return Err(ClientError::reserved_role(role));
    }

    let options = params.get("options").map(split_branch_option).transpose()?;
    let mut named: Vec<&str> = Vec::new();
    named.extend(user_branch);
    if let Some(split) = &options {
        named.extend(split.branch.as_deref());
    }
    named.extend(params.get(BRANCH_PARAM));
    let Some(&branch) = named.first() else {
        return Err(ClientError::no_branch());
    };
    if let Some(other) = named.iter().find(|n| **n != branch) {
        return Err(ClientError::conflicting_branches(branch, other));
    }
    if !is_valid_branch_name(branch) {
        return Err(ClientError::invalid_branch_name(branch));
    }
    let branch = branch.to_string();

    let mut forwarded = params.clone();
    forwarded.set("user", role.to_string());
    forwarded.remove(BRANCH_PARAM);
    // The proxy alone offers the socket handoff.
    forwarded.remove(crate::handoff::OFFER_PARAM);
    if let Some(split) = options {
        if split.remaining.is_empty() {
            forwarded.remove("options");
        } else {
            forwarded.set("options", split.remaining);
        }
    }
    Ok(Target {
        branch,
        role: role.to_string(),
        forwarded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> StartupParams {
        StartupParams::from_pairs(
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn reserved() -> Vec<String> {
        vec!["offshoot_system".to_string()]
    }

    #[test]
    fn user_suffix_names_the_branch() {
        let t = resolve(
            &params(&[("user", "postgres.feature-x"), ("database", "app")]),
            &reserved(),
        )
        .unwrap();
        assert_eq!(t.branch, "feature-x");
        assert_eq!(t.role, "postgres");
        assert_eq!(
            t.forwarded,
            params(&[("user", "postgres"), ("database", "app")])
        );
        // Split at the last dot: roles may hold dots.
        let t = resolve(&params(&[("user", "jane.doe.pr/12")]), &reserved()).unwrap();
        assert_eq!((t.role.as_str(), t.branch.as_str()), ("jane.doe", "pr/12"));
    }

    #[test]
    fn options_name_the_branch_and_are_stripped() {
        let t = resolve(
            &params(&[
                ("user", "postgres"),
                (
                    "options",
                    "-c search_path=x -c offshoot.branch=main --work_mem=4MB",
                ),
            ]),
            &reserved(),
        )
        .unwrap();
        assert_eq!(t.branch, "main");
        assert_eq!(
            t.forwarded.get("options"),
            Some("-c search_path=x --work_mem=4MB")
        );
        let t = resolve(
            &params(&[
                ("user", "postgres.main"),
                ("options", "--offshoot.branch=main"),
            ]),
            &reserved(),
        )
        .unwrap();
        assert_eq!(t.forwarded.get("options"), None);
        let t = resolve(
            &params(&[("user", "postgres"), ("offshoot.branch", "dev")]),
            &reserved(),
        )
        .unwrap();
        assert_eq!(t.branch, "dev");
        assert_eq!(t.forwarded.get("offshoot.branch"), None);
    }

    #[test]
    fn refusals() {
        let code = |p: &[(&str, &str)]| resolve(&params(p), &reserved()).unwrap_err();
        assert_eq!(code(&[("user", "postgres")]), ClientError::no_branch());
        assert_eq!(
            code(&[("user", "postgres.a"), ("options", "-c offshoot.branch=b")]),
            ClientError::conflicting_branches("a", "b")
        );
        assert_eq!(
            code(&[("user", "postgres.-x")]),
            ClientError::invalid_branch_name("-x")
        );
        assert_eq!(
            code(&[("user", "postgres.")]),
            ClientError::invalid_branch_name("")
        );
        assert_eq!(
            code(&[("user", "offshoot_system.main")]),
            ClientError::reserved_role("offshoot_system")
        );
        assert_eq!(code(&[("database", "x")]), ClientError::missing_user());
        assert_eq!(code(&[("user", ".main")]), ClientError::missing_user());
    }

    #[test]
    fn branch_name_rule() {
        for ok in ["main", "pr-12", "feature/x_y", "A9", &"a".repeat(63)] {
            assert!(is_valid_branch_name(ok), "{ok}");
        }
        for bad in ["", "-a", "/a", "a.b", "a b", "é", &"a".repeat(64), "a\0"] {
            assert!(!is_valid_branch_name(bad), "{bad:?}");
        }
    }
}
