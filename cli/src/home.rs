//! The offshoot home directory: where it is, its layout, its secrets, and
//! `daemon.json`.
//!
//! Layout (see docs/contracts.md):
//!
//! ```text
//! $OFFSHOOT_HOME/
//!   store/                 the page store
//!   logs/<branch-id>.log   PostgreSQL log per branch
//!   wal/<branch-id>/       the branch's WAL, beside the page store (its pg_wal links here)
//!   secrets/               0700: postgres.password, internal.password, api.token (0600)
//!   daemon.json            the running daemon's pid, addresses and version
//!
//! <runtime root>/          the home itself, or /run/offshoot/<hash> (see below)
//!   mnt/<branch-id>/       FUSE mount point per branch (by id: names can be renamed)
//!   wal/                   the home's wal/ (a bind mount when the runtime root is not the home)
//!   run/<branch-id>/       socket directory per running compute, and pg_hba.conf
//!   work/                  scratch space for tools (initdb's password file)
//! ```
//!
//! Runtime state must be reachable by PostgreSQL, which runs as the
//! unprivileged `postgres` user when the daemon is root. The default home of
//! root (`/root/.local/share/offshoot`) is not: `/root` is mode 0700. So when
//! the daemon runs as root and a directory above the home does not let other
//! users through, mount points, sockets and scratch space live in
//! `/run/offshoot/<hash of the home's absolute path>` (tmpfs, gone at reboot,
//! as runtime state should be); otherwise they live in the home.
//!
//! The home is found from `--home DIR`, else `OFFSHOOT_HOME`, else
//! `$XDG_DATA_HOME/offshoot`, else `~/.local/share/offshoot`.

mod daemon_info;
mod secrets;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use daemon_info::DaemonInfo;
pub use secrets::HomeSecrets;

use offshoot_storage::BranchId;

/// Errors about the home directory and the files in it.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error(
        "cannot find a home directory: set OFFSHOOT_HOME, XDG_DATA_HOME or HOME, or pass --home"
    )]
    NoHome,
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path} is empty")]
    EmptySecret { path: PathBuf },
}

impl HomeError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> HomeError {
        HomeError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The offshoot home: a directory and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
    runtime: PathBuf,
}

impl Home {
    /// The home at exactly `root` (no lookup).
    pub fn at(root: impl Into<PathBuf>) -> Home {
        let root = root.into();
        let runtime = if nix::unistd::Uid::effective().is_root() && !traversable_by_others(&root) {
            runtime_root_for(&root)
        } else {
            root.clone()
        };
        Home { root, runtime }
    }

    /// Where mount points, socket directories and scratch space live (see
    /// the module doc).
    pub fn runtime_root(&self) -> &Path {
        &self.runtime
    }

    /// Finds the home: `explicit` (`--home`), else `OFFSHOOT_HOME`, else
    /// `$XDG_DATA_HOME/offshoot`, else `$HOME/.local/share/offshoot`.
    pub fn resolve(explicit: Option<&Path>) -> Result<Home, HomeError> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        resolve_from(
            explicit,
            var("OFFSHOOT_HOME"),
            var("XDG_DATA_HOME"),
            var("HOME"),
        )
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }
    pub fn mnt_dir(&self) -> PathBuf {
        self.runtime.join("mnt")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.runtime.join("run")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }
    pub fn daemon_json(&self) -> PathBuf {
        self.root.join("daemon.json")
    }
    /// Scratch space for tools (initdb's password file, …).
    pub fn work_dir(&self) -> PathBuf {
        self.runtime.join("work")
    }
    /// The branches' WAL directories, in the home.
    pub fn wal_root(&self) -> PathBuf {
        self.root.join("wal")
    }
    /// The same directory where PostgreSQL reaches it: the home's, or a bind
    /// mount of it under the runtime root.
    pub fn wal_root_for_postgres(&self) -> PathBuf {
        self.runtime.join("wal")
    }
    /// A branch's WAL directory, in the home.
    pub fn wal_dir(&self, id: BranchId) -> PathBuf {
        self.wal_root().join(id.0.to_string())
    }
    /// Where a branch's `pg_wal` link points.
    pub fn wal_link_target(&self, id: BranchId) -> PathBuf {
        self.wal_root_for_postgres().join(id.0.to_string())
    }
    /// The FUSE mount point of a branch.
    pub fn mountpoint(&self, id: BranchId) -> PathBuf {
        self.mnt_dir().join(id.0.to_string())
    }
    /// The socket directory of a branch's compute.
    pub fn socket_dir(&self, id: BranchId) -> PathBuf {
        self.run_dir().join(id.0.to_string())
    }
    /// The PostgreSQL log of a branch.
    pub fn log_file(&self, id: BranchId) -> PathBuf {
        self.logs_dir().join(format!("{}.log", id.0))
    }
    /// The offshoot-managed `pg_hba.conf` every compute uses.
    pub fn hba_file(&self) -> PathBuf {
        self.run_dir().join("pg_hba.conf")
    }

    /// Creates the directories of the layout (idempotent). `secrets/` gets
    /// mode 0700; the home, the runtime root, `mnt/`, `run/` and `work/` get
    /// 0711 so that PostgreSQL, running as another user, can reach its data
    /// directory, socket directory and hba file without being able to list
    /// anything.
    pub fn create_layout(&self) -> Result<(), HomeError> {
        let private = [self.store_dir(), self.logs_dir()];
        let mut traversable = vec![self.root.clone()];
        if self.runtime != self.root {
            if let Some(parent) = self.runtime.parent() {
                traversable.push(parent.to_path_buf());
            }
            traversable.push(self.runtime.clone());
        }
        traversable.extend([
            self.mnt_dir(),
            self.run_dir(),
            self.work_dir(),
            self.wal_root(),
        ]);
        if self.runtime != self.root {
            traversable.push(self.wal_root_for_postgres());
        }
        for dir in traversable.iter().chain(&private) {
            std::fs::create_dir_all(dir).map_err(|e| HomeError::io("create", dir, e))?;
        }
        for dir in &traversable {
            set_mode(dir, 0o711)?;
        }
        let secrets = self.secrets_dir();
        std::fs::create_dir_all(&secrets).map_err(|e| HomeError::io("create", &secrets, e))?;
        set_mode(&secrets, 0o700)
    }

    /// True once the store has been created here (the first `offshoot up` ran).
    pub fn is_initialised(&self) -> bool {
        self.root.join("initialised").exists()
    }

    /// Marks the home as initialised (the root branch holds a finished initdb).
    pub fn mark_initialised(&self) -> Result<(), HomeError> {
        let path = self.root.join("initialised");
        write_durably(&path, b"offshoot home v1\n", 0o644)
    }

    /// Loads the secrets, creating any that are missing.
    pub fn load_or_create_secrets(&self) -> Result<HomeSecrets, HomeError> {
        HomeSecrets::load_or_create(&self.secrets_dir())
    }

    /// Loads the secrets; an error if any is missing.
    pub fn load_secrets(&self) -> Result<HomeSecrets, HomeError> {
        HomeSecrets::load(&self.secrets_dir())
    }

    /// The API token alone (what the CLI needs).
    pub fn api_token(&self) -> Result<String, HomeError> {
        secrets::read_secret(&self.secrets_dir().join(secrets::API_TOKEN))
    }

    /// The running daemon's `daemon.json`, if there is one.
    pub fn read_daemon_info(&self) -> Result<Option<DaemonInfo>, HomeError> {
        DaemonInfo::read(&self.daemon_json())
    }
}

/// `/run/offshoot/<16 hex digits>`: a stable FNV-1a hash of the home's
/// absolute path, so that two homes never share runtime state and the same
/// home finds its stale mounts again after a crash.
fn runtime_root_for(home: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(home).unwrap_or_else(|_| home.to_path_buf());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in absolute.as_os_str().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    PathBuf::from("/run/offshoot").join(format!("{hash:016x}"))
}

/// True if every existing directory on the way to `path` lets other users
/// through (`o+x`). Components that do not exist yet are created 0711.
fn traversable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .filter_map(|dir| std::fs::metadata(dir).ok())
        .all(|meta| meta.mode() & 0o001 != 0)
}

fn resolve_from(
    explicit: Option<&Path>,
    offshoot_home: Option<std::ffi::OsString>,
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<Home, HomeError> {
    if let Some(dir) = explicit {
        return Ok(Home::at(dir));
    }
    if let Some(dir) = offshoot_home {
        return Ok(Home::at(PathBuf::from(dir)));
    }
    if let Some(dir) = xdg_data_home {
        return Ok(Home::at(PathBuf::from(dir).join("offshoot")));
    }
    if let Some(dir) = home {
        return Ok(Home::at(PathBuf::from(dir).join(".local/share/offshoot")));
    }
    Err(HomeError::NoHome)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), HomeError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| HomeError::io("chmod", path, e))
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, with `mode`.
pub(crate) fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<(), HomeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| HomeError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| HomeError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| HomeError::io("rename", path, e))?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_roots_are_distinct_per_home_and_stable() {
        let a = runtime_root_for(Path::new("/root/.local/share/offshoot"));
        let b = runtime_root_for(Path::new("/var/lib/offshoot"));
        assert_ne!(a, b);
        assert_eq!(
            a,
            runtime_root_for(Path::new("/root/.local/share/offshoot"))
        );
        assert!(a.starts_with("/run/offshoot"), "{}", a.display());
        let root_mode = std::fs::metadata("/root").map(|m| m.permissions().mode());
        if nix::unistd::Uid::effective().is_root() && root_mode.is_ok_and(|m| m & 0o001 == 0) {
            // Root's default home: /root does not let postgres through.
            let home = Home::at("/root/.local/share/offshoot");
            assert_eq!(home.runtime_root(), a.as_path());
            assert!(home.mnt_dir().starts_with("/run/offshoot"));
            assert!(home.store_dir().starts_with("/root"));
        }
        // A home everyone can reach keeps its runtime state inside.
        let tmp = tempfile::tempdir().unwrap();
        let mut perms = std::fs::metadata(tmp.path()).unwrap().permissions();
        perms.set_mode(0o711);
        std::fs::set_permissions(tmp.path(), perms).unwrap();
        let home = Home::at(tmp.path().join("h"));
        assert_eq!(home.runtime_root(), home.root());
    }

    #[test]
    fn resolve_prefers_explicit_then_env_then_xdg_then_home() {
        let p = |s: &str| Some(std::ffi::OsString::from(s));
        let explicit = resolve_from(Some(Path::new("/x")), p("/o"), p("/d"), p("/h")).unwrap();
        assert_eq!(explicit.root(), Path::new("/x"));
        let env = resolve_from(None, p("/o"), p("/d"), p("/h")).unwrap();
        assert_eq!(env.root(), Path::new("/o"));
        let xdg = resolve_from(None, None, p("/d"), p("/h")).unwrap();
        assert_eq!(xdg.root(), Path::new("/d/offshoot"));
        let home = resolve_from(None, None, None, p("/h")).unwrap();
        assert_eq!(home.root(), Path::new("/h/.local/share/offshoot"));
        assert!(matches!(
            resolve_from(None, None, None, None),
            Err(HomeError::NoHome)
        ));
    }

    #[test]
    fn layout_creates_private_secrets_dir() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("h"));
        home.create_layout().unwrap();
        for d in [
            home.store_dir(),
            home.mnt_dir(),
            home.run_dir(),
            home.logs_dir(),
        ] {
            assert!(d.is_dir(), "{} missing", d.display());
        }
        let mode = std::fs::metadata(home.secrets_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(home.root()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o711);
        assert_eq!(
            home.mountpoint(BranchId(7)),
            home.runtime_root().join("mnt/7")
        );
        assert_eq!(home.log_file(BranchId(7)), dir.path().join("h/logs/7.log"));
        assert!(!home.is_initialised());
        home.mark_initialised().unwrap();
        assert!(home.is_initialised());
    }
}
