//! The branch-name rule, enforced by the daemon for every name it is given
//! (API requests and proxy connections). The CLI checks the same rule first so
//! that a bad name fails before any request.

/// The rule, as quoted in error messages.
pub const BRANCH_NAME_RULE: &str = "1 to 63 characters: ASCII letters, digits, '-', '_' and '/', \
     starting with a letter or digit, no '//' and no trailing '/' (no dots: the proxy \
     reads the branch from the user name after the last dot)";

const MAX_LEN: usize = 63;

/// A name that breaks [`BRANCH_NAME_RULE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid branch name {name:?}: a branch name is {BRANCH_NAME_RULE}")]
pub struct InvalidName {
    pub name: String,
}

/// `Ok(())` when `name` follows [`BRANCH_NAME_RULE`].
pub fn validate(name: &str) -> Result<(), InvalidName> {
    let bytes = name.as_bytes();
    let valid = match bytes.first() {
        None => false,
        Some(first) => {
            bytes.len() <= MAX_LEN
                && first.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
                && !name.contains("//")
                && !name.ends_with('/')
        }
    };
    if valid {
        Ok(())
    } else {
        Err(InvalidName {
            name: name.to_string(),
        })
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
            assert_eq!(validate(name), Ok(()), "{name}");
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
            "a\0b",
            &"x".repeat(64),
        ] {
            let err = validate(name).unwrap_err();
            assert!(err.to_string().contains("1 to 63 characters"), "{err}");
        }
    }
}
