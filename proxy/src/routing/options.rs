//! The `options` startup parameter: command-line switches for the backend,
//! split on whitespace with backslash escapes (as PostgreSQL's
//! `pg_split_opts`). Finds and removes the `offshoot.branch` setting while
//! keeping every other switch byte for byte.

use crate::client_error::ClientError;

/// The branch named in `options` (if any) and the options to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsSplit {
    pub branch: Option<String>,
    pub remaining: String,
}

/// One whitespace-separated word: its raw text and its unescaped value.
struct Word<'a> {
    raw: &'a str,
    value: String,
}

fn words(options: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut chars = options.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_ascii_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return out;
        };
        let mut value = String::new();
        let mut end = start;
        while let Some((i, c)) = chars.next_if(|(_, c)| !c.is_ascii_whitespace()) {
            end = i + c.len_utf8();
            if c == '\\' {
                if let Some((j, escaped)) = chars.next() {
                    end = j + escaped.len_utf8();
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        out.push(Word {
            raw: &options[start..end],
            value,
        });
    }
}

/// `name=value` where name is `offshoot.branch` (case-insensitive, as GUC
/// names are): the value.
fn branch_setting(setting: &str) -> Option<&str> {
    let (name, value) = setting.split_once('=')?;
    name.eq_ignore_ascii_case(super::BRANCH_PARAM)
        .then_some(value)
}

/// Splits `options` into the branch it names and the rest.
pub fn split_branch_option(options: &str) -> Result<OptionsSplit, ClientError> {
    let words = words(options);
    let mut kept: Vec<&str> = Vec::new();
    let mut branch: Option<String> = None;
    let mut found = |value: &str| -> Result<(), ClientError> {
        match &branch {
            Some(prev) if prev != value => Err(ClientError::conflicting_branches(prev, value)),
            _ => {
                branch = Some(value.to_string());
                Ok(())
            }
        }
    };
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if word.value == "-c" {
            match words.get(i + 1) {
                Some(next) => {
                    match branch_setting(&next.value) {
                        Some(v) => found(v)?,
                        None => kept.extend([word.raw, next.raw]),
                    }
                    i += 2;
                }
                None => {
                    kept.push(word.raw);
                    i += 1;
                }
            }
            continue;
        }
        let setting = word
            .value
            .strip_prefix("--")
            .or_else(|| word.value.strip_prefix("-c"));
        match setting.and_then(branch_setting) {
            Some(v) => found(v)?,
            None => kept.push(word.raw),
        }
        i += 1;
    }
    Ok(OptionsSplit {
        branch,
        remaining: kept.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (Option<String>, String) {
        let r = split_branch_option(s).unwrap();
        (r.branch, r.remaining)
    }

    #[test]
    fn forms() {
        assert_eq!(
            split("-c offshoot.branch=main"),
            (Some("main".into()), "".into())
        );
        assert_eq!(
            split("-coffshoot.branch=main"),
            (Some("main".into()), "".into())
        );
        assert_eq!(
            split("--offshoot.branch=main"),
            (Some("main".into()), "".into())
        );
        assert_eq!(
            split("-c Offshoot.Branch=dev"),
            (Some("dev".into()), "".into())
        );
    }

    #[test]
    fn others_kept_intact() {
        assert_eq!(
            split("  -c a\\ b=1   -c offshoot.branch=x  --geqo=off -c"),
            (Some("x".into()), "-c a\\ b=1 --geqo=off -c".into())
        );
        assert_eq!(
            split("-c statement_timeout=5s"),
            (None, "-c statement_timeout=5s".into())
        );
        assert_eq!(split(""), (None, "".into()));
    }

    #[test]
    fn escaped_value_and_conflicts() {
        assert_eq!(
            split("-c offshoot.branch=a\\b"),
            (Some("ab".into()), "".into())
        );
        assert!(split_branch_option("-c offshoot.branch=a --offshoot.branch=b").is_err());
        assert_eq!(
            split("-c offshoot.branch=a --offshoot.branch=a"),
            (Some("a".into()), "".into())
        );
    }
}
