//! Client-side check of branch names, so that a bad name fails before any
//! request with the rule in the message. The daemon checks the same rule.

use super::CommandError;

/// The rule, as quoted in error messages.
pub const BRANCH_NAME_RULE: &str = "1 to 63 characters: ASCII letters, digits, '-', '_' and '/', \
     starting with a letter or digit, no '//' and no trailing '/' (no dots: the proxy \
     reads the branch from the user name after the last dot)";

const MAX_LEN: usize = 63;

/// Whether `name` is a valid branch name.
pub fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    bytes.len() <= MAX_LEN
        && first.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
        && !name.contains("//")
        && !name.ends_with('/')
}

/// `Ok(())` for a valid name, else a usage error that quotes the rule.
pub fn check(name: &str) -> Result<(), CommandError> {
    if is_valid(name) {
        Ok(())
    } else {
        Err(CommandError::Usage(format!(
            "invalid branch name {name:?}: a branch name is {BRANCH_NAME_RULE}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for name in [
            "main",
            "pr-42",
            "feature/login",
            "a",
            "A_1",
            &"x".repeat(63),
        ] {
            assert!(is_valid(name), "{name}");
        }
    }

    #[test]
    fn rejects_dots_spaces_and_bad_edges() {
        for name in [
            "",
            "a.b",
            "-x",
            "/x",
            "x/",
            "a//b",
            "a b",
            "ünï",
            "_x",
            &"x".repeat(64),
        ] {
            assert!(!is_valid(name), "{name}");
        }
    }

    #[test]
    fn the_error_quotes_name_and_rule() {
        let err = check("a.b").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.starts_with("invalid branch name \"a.b\""), "{text}");
        assert!(text.contains("no dots"), "{text}");
    }
}
