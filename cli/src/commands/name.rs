//! Client-side check of branch names, so that a bad name fails before any
//! request with the rule in the message. The rule itself is the daemon's
//! ([`crate::daemon::names`]): one rule, checked on both sides.

use super::CommandError;
use crate::daemon::names;

/// `Ok(())` for a valid name, else a usage error (exit 2) that quotes the rule.
pub fn check(name: &str) -> Result<(), CommandError> {
    names::validate(name).map_err(|e| CommandError::Usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_name_is_a_usage_error_quoting_name_and_rule() {
        let err = check("a.b").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.starts_with("invalid branch name \"a.b\""), "{text}");
        assert!(text.contains("no dots"), "{text}");
        assert!(check("feature/login").is_ok());
    }
}
