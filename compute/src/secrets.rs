//! The two passwords offshoot owns: the `postgres` superuser's (handed to
//! users in connection strings) and the internal role's (used by offshoot
//! over the private socket only).
//!
//! On disk, in a directory of mode 0700 (the daemon's `secrets/`):
//! - `postgres.password`  — one line, mode 0600;
//! - `internal.password`  — one line, mode 0600.
//!
//! Files are created with `O_EXCL` and fsynced (with their directory) before
//! use, so a crash never leaves a cluster initialised with a password that was
//! not kept.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::Rng;

use crate::error::ComputeError;

pub const POSTGRES_PASSWORD_FILE: &str = "postgres.password";
pub const INTERNAL_PASSWORD_FILE: &str = "internal.password";
/// Length of generated passwords: 24 characters of a 64-symbol alphabet (144 bits).
pub const PASSWORD_LEN: usize = 24;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The passwords of the `postgres` superuser and of [`crate::INTERNAL_ROLE`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    pub postgres_password: String,
    pub internal_password: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

impl Secrets {
    /// Two fresh random passwords.
    pub fn generate() -> Secrets {
        Secrets {
            postgres_password: generate_password(),
            internal_password: generate_password(),
        }
    }

    /// Reads both passwords from `dir`, creating whichever is missing (and
    /// `dir` itself, mode 0700).
    pub fn load_or_create(dir: &Path) -> Result<Secrets, ComputeError> {
        ensure_private_dir(dir)?;
        Ok(Secrets {
            postgres_password: load_or_create_one(dir, POSTGRES_PASSWORD_FILE)?,
            internal_password: load_or_create_one(dir, INTERNAL_PASSWORD_FILE)?,
        })
    }
}

/// A random URL-safe password of [`PASSWORD_LEN`] characters.
pub fn generate_password() -> String {
    let mut rng = rand::thread_rng();
    (0..PASSWORD_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn ensure_private_dir(dir: &Path) -> Result<(), ComputeError> {
    let what = || format!("create secrets directory {}", dir.display());
    fs::create_dir_all(dir).map_err(|e| ComputeError::io(what(), e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| ComputeError::io(what(), e))
}

fn load_or_create_one(dir: &Path, name: &str) -> Result<String, ComputeError> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let value = text.trim();
            if value.is_empty() {
                return Err(ComputeError::BadSecret {
                    path,
                    reason: "file is empty".to_owned(),
                });
            }
            if value.contains(['\'', '\\', '\n']) {
                return Err(ComputeError::BadSecret {
                    path,
                    reason: "contains a quote, backslash or line break".to_owned(),
                });
            }
            Ok(value.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = generate_password();
            write_new_secret(&path, &value)?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ComputeError::io(format!("fsync {}", dir.display()), e))?;
            Ok(value)
        }
        Err(e) => Err(ComputeError::io(format!("read {}", path.display()), e)),
    }
}

fn write_new_secret(path: &Path, value: &str) -> Result<(), ComputeError> {
    let what = || format!("write {}", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ComputeError::io(what(), e))?;
    writeln!(file, "{value}").map_err(|e| ComputeError::io(what(), e))?;
    file.sync_all().map_err(|e| ComputeError::io(what(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_url_safe_and_distinct() {
        let a = Secrets::generate();
        assert_eq!(a.postgres_password.len(), PASSWORD_LEN);
        assert!(a
            .postgres_password
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a.postgres_password, a.internal_password);
        assert_ne!(a.postgres_password, Secrets::generate().postgres_password);
    }

    #[test]
    fn load_or_create_persists_with_private_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("secrets");
        let first = Secrets::load_or_create(&dir).expect("create");
        let second = Secrets::load_or_create(&dir).expect("load");
        assert_eq!(first, second);
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
        assert_eq!(mode(&dir), Some(0o700));
        assert_eq!(mode(&dir.join(POSTGRES_PASSWORD_FILE)), Some(0o600));
        assert_eq!(mode(&dir.join(INTERNAL_PASSWORD_FILE)), Some(0o600));
        assert!(!format!("{first:?}").contains(&first.postgres_password));
    }

    #[test]
    fn empty_secret_file_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join(POSTGRES_PASSWORD_FILE), "\n").expect("write");
        let err = Secrets::load_or_create(tmp.path()).expect_err("empty file");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
