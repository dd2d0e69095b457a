//! The OS user PostgreSQL runs as. PostgreSQL refuses to run as root, so a
//! daemon running as root runs it as the `postgres` user; otherwise it runs as
//! the daemon's own user.

use nix::unistd::{geteuid, Gid, Uid, User};

use crate::error::ComputeError;

/// The OS user PostgreSQL runs as: the current user, or `postgres` when we are root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

impl RunAs {
    /// `postgres` when the process is root, else the current (effective) user.
    pub fn for_current_process() -> Result<RunAs, ComputeError> {
        let euid = geteuid();
        if euid.is_root() {
            let user = User::from_name("postgres")
                .map_err(|e| ComputeError::io("look up the `postgres` OS user", e.into()))?
                .ok_or(ComputeError::NoPostgresUser)?;
            return Ok(RunAs::from_user(&user));
        }
        match User::from_uid(euid) {
            Ok(Some(user)) => Ok(RunAs::from_user(&user)),
            // A uid with no passwd entry (containers) still works.
            _ => Ok(RunAs {
                uid: euid.as_raw(),
                gid: nix::unistd::getegid().as_raw(),
                name: euid.to_string(),
            }),
        }
    }

    fn from_user(user: &User) -> RunAs {
        RunAs {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: user.name.clone(),
        }
    }

    /// True when spawning as this user means switching user (we are root and
    /// it is someone else).
    pub fn needs_switch(&self) -> bool {
        geteuid().is_root() && self.uid != 0
    }

    pub(crate) fn nix_uid(&self) -> Uid {
        Uid::from_raw(self.uid)
    }

    pub(crate) fn nix_gid(&self) -> Gid {
        Gid::from_raw(self.gid)
    }
}
