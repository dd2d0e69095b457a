//! The files in `secrets/` (0700): `postgres.password` (the `postgres`
//! superuser's password, the one users connect with), `internal.password`
//! (offshoot's reserved role, used over the private socket only) and
//! `api.token` (the HTTP API's bearer token). Each is one line, mode 0600,
//! generated on first use and never rewritten afterwards.

use std::path::Path;

use rand::distributions::Alphanumeric;
use rand::Rng;

use super::{write_durably, HomeError};

pub(crate) const POSTGRES_PASSWORD: &str = "postgres.password";
pub(crate) const INTERNAL_PASSWORD: &str = "internal.password";
pub(crate) const API_TOKEN: &str = "api.token";

/// The three secrets of a home.
#[derive(Clone, PartialEq, Eq)]
pub struct HomeSecrets {
    pub postgres_password: String,
    pub internal_password: String,
    pub api_token: String,
}

impl std::fmt::Debug for HomeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HomeSecrets { .. }")
    }
}

impl HomeSecrets {
    /// Reads every secret in `dir`, generating (and durably writing) any missing one.
    pub fn load_or_create(dir: &Path) -> Result<HomeSecrets, HomeError> {
        Ok(HomeSecrets {
            postgres_password: read_or_create(&dir.join(POSTGRES_PASSWORD), 32)?,
            internal_password: read_or_create(&dir.join(INTERNAL_PASSWORD), 32)?,
            api_token: read_or_create(&dir.join(API_TOKEN), 48)?,
        })
    }

    /// Reads every secret in `dir`; a missing one is an error.
    pub fn load(dir: &Path) -> Result<HomeSecrets, HomeError> {
        Ok(HomeSecrets {
            postgres_password: read_secret(&dir.join(POSTGRES_PASSWORD))?,
            internal_password: read_secret(&dir.join(INTERNAL_PASSWORD))?,
            api_token: read_secret(&dir.join(API_TOKEN))?,
        })
    }
}

/// Reads one secret file: its first line, without surrounding whitespace.
pub(crate) fn read_secret(path: &Path) -> Result<String, HomeError> {
    let text = std::fs::read_to_string(path).map_err(|e| HomeError::io("read", path, e))?;
    let value = text.trim().to_string();
    if value.is_empty() {
        return Err(HomeError::EmptySecret {
            path: path.to_path_buf(),
        });
    }
    Ok(value)
}

fn read_or_create(path: &Path, len: usize) -> Result<String, HomeError> {
    match std::fs::metadata(path) {
        Ok(_) => read_secret(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = generate(len);
            write_durably(path, format!("{value}\n").as_bytes(), 0o600)?;
            Ok(value)
        }
        Err(e) => Err(HomeError::io("stat", path, e)),
    }
}

/// A random alphanumeric string (safe in URLs, config files and shells).
fn generate(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = HomeSecrets::load_or_create(dir.path()).unwrap();
        assert_eq!(first.postgres_password.len(), 32);
        assert_eq!(first.api_token.len(), 48);
        assert_ne!(first.postgres_password, first.internal_password);
        for name in [POSTGRES_PASSWORD, INTERNAL_PASSWORD, API_TOKEN] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let again = HomeSecrets::load_or_create(dir.path()).unwrap();
        assert_eq!(first, again);
        assert_eq!(HomeSecrets::load(dir.path()).unwrap(), first);
    }

    #[test]
    fn missing_or_empty_secret_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(HomeSecrets::load(dir.path()).is_err());
        std::fs::write(dir.path().join(API_TOKEN), "\n").unwrap();
        assert!(matches!(
            read_secret(&dir.path().join(API_TOKEN)),
            Err(HomeError::EmptySecret { .. })
        ));
    }
}
