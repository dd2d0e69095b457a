//! Branch lifecycle: create, list, show, delete, reset, rename, protect,
//! expire, connection strings. Used by the HTTP API and by tests.
//!
//! Every change is made durable by the page store (branch metadata and
//! annotations) before the call returns, so an acknowledged change survives
//! a restart. Store changes end in a device flush and run on the blocking
//! pool, never on the async workers that relay connections. Operations that check and then act (create's "exists with the
//! same parent?", delete's "protected?") run one at a time under `ops`;
//! routing a connection never takes that lock, and no operation here waits
//! for a compute to start (reset starts a compute it stopped again in the
//! background, on a fresh mount of the new contents).

mod error;
pub mod view;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use offshoot_storage::{BranchInfo, Store, StoreError};

pub use error::ControlError;

use super::names;
use super::runtime::Runtime;
use super::wal;
use crate::api::types::{Branch, CreateBranchRequest};
use crate::home::Home;

/// An error of the WAL directories, which the caller cannot mend.
fn internal(e: anyhow::Error) -> ControlError {
    ControlError::Internal(format!("{e:#}"))
}

/// The parent of a branch created without one.
pub const DEFAULT_PARENT: &str = "main";
/// The role named in connection strings.
pub const DEFAULT_ROLE: &str = "postgres";
/// The database named in connection strings without one.
pub const DEFAULT_DATABASE: &str = "postgres";

/// The control plane of one daemon.
pub struct Control {
    home: Home,
    store: Store,
    runtime: Arc<Runtime>,
    postgres_password: String,
    proxy_addr: SocketAddr,
    ops: tokio::sync::Mutex<()>,
    gc: Arc<tokio::sync::Notify>,
}

impl Control {
    pub fn new(
        home: Home,
        store: Store,
        runtime: Arc<Runtime>,
        postgres_password: String,
        proxy_addr: SocketAddr,
    ) -> Control {
        Control {
            home,
            store,
            runtime,
            postgres_password,
            proxy_addr,
            ops: tokio::sync::Mutex::new(()),
            gc: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }
    pub fn home(&self) -> &Home {
        &self.home
    }
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }
    /// Notified after each delete; the GC loop waits on it.
    pub fn gc_notify(&self) -> Arc<tokio::sync::Notify> {
        self.gc.clone()
    }

    fn info(&self, name: &str) -> Result<BranchInfo, ControlError> {
        names::validate(name)?;
        self.store
            .branch_info(name)
            .map_err(|e| ControlError::from_store(name, e))
    }

    fn view(&self, info: &BranchInfo) -> Branch {
        let owned = self
            .store
            .usage()
            .owned_bytes
            .get(&info.name)
            .copied()
            .unwrap_or(0);
        view::view(info, self.runtime.state(info.id), owned)
    }

    /// The view of a branch just created. It owns exactly its open log
    /// (everything else it reads, its parent reads too), so this costs one
    /// lookup, where [`Store::usage`] walks every branch and layer: a create
    /// stays as fast with 1,000 branches as with one.
    fn view_new(&self, info: &BranchInfo) -> Branch {
        let owned = self.store.open_log_bytes(&info.name).unwrap_or(0);
        view::view(info, self.runtime.state(info.id), owned)
    }

    /// Runs a store change on the blocking pool: it ends in a device flush,
    /// which must not hold up the async workers relaying connections.
    async fn blocking<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let owned = name.to_string();
        self.blocking_control(name, move |store| {
            f(store).map_err(|e| ControlError::from_store(&owned, e))
        })
        .await
    }

    /// [`Self::blocking`] for a change that also does more than the store's.
    async fn blocking_control<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&Store) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ControlError::Internal(format!("branch {name:?}: store task: {e}")))?
    }

    /// Every branch, sorted by name.
    pub fn list(&self) -> Vec<Branch> {
        let usage = self.store.usage();
        self.store
            .branches()
            .iter()
            .map(|info| {
                let owned = usage.owned_bytes.get(&info.name).copied().unwrap_or(0);
                view::view(info, self.runtime.state(info.id), owned)
            })
            .collect()
    }

    pub fn show(&self, name: &str) -> Result<Branch, ControlError> {
        Ok(self.view(&self.info(name)?))
    }

    /// Creates a branch, or returns it with `false` when it already exists
    /// with the same parent. A different parent is a conflict naming both.
    pub async fn create(&self, req: &CreateBranchRequest) -> Result<(Branch, bool), ControlError> {
        names::validate(&req.name)?;
        let parent = req.parent.as_deref().unwrap_or(DEFAULT_PARENT);
        names::validate(parent)?;
        let expires_at = match (req.ttl_seconds, req.expires_at.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ControlError::Invalid(
                    "give ttl_seconds or expires_at, not both".into(),
                ))
            }
            (Some(0), None) => {
                return Err(ControlError::Invalid(
                    "ttl_seconds must be at least 1".into(),
                ))
            }
            (Some(ttl), None) => Some(SystemTime::now() + Duration::from_secs(ttl)),
            (None, Some(text)) => Some(view::parse_rfc3339(text).map_err(ControlError::Invalid)?),
            (None, None) => None,
        };

        let _ops = self.ops.lock().await;
        if let Ok(existing) = self.store.branch_info(&req.name) {
            return match existing.parent.as_deref() {
                Some(p) if p == parent => Ok((self.view(&existing), false)),
                Some(p) => Err(ControlError::Conflict(format!(
                    "branch {:?} already exists with parent {p:?}, not {parent:?}",
                    req.name
                ))),
                None => Err(ControlError::Conflict(format!(
                    "branch {:?} already exists with no parent (a root branch or one whose parent \
                     was deleted), not with parent {parent:?}",
                    req.name
                ))),
            };
        }
        let Ok(parent_info) = self.store.branch_info(parent) else {
            return Err(ControlError::NotFound(parent.to_string()));
        };
        if req.checkpoint_parent == Some(true) {
            self.runtime
                .checkpoint_before_copy(parent_info.id, parent)
                .await;
        }

        // The annotations are part of the create's one durable commit: a
        // crash never leaves the branch without its TTL or protection.
        let mut annotations = BTreeMap::new();
        if let Some(t) = expires_at {
            annotations.insert(view::EXPIRES_AT.to_string(), view::rfc3339(t));
        }
        if req.protected == Some(true) {
            annotations.insert(view::PROTECTED.to_string(), "true".to_string());
        }
        let (name, parent_name) = (req.name.clone(), parent.to_string());
        let (home, run_as, parent_id) = (
            self.home.clone(),
            self.runtime.run_as().clone(),
            parent_info.id,
        );
        let info = self
            .blocking_control(&req.name, move |store| {
                // The WAL is cut after the store's create, so that it holds
                // what every page of the store's copy was written after.
                let wal = wal::begin_copy(&home, parent_id, &run_as).map_err(internal)?;
                let info = store
                    .create_branch_annotated(&name, Some(&parent_name), annotations)
                    .map_err(|e| ControlError::from_store(&name, e))?;
                if let Some(wal) = wal {
                    if let Err(e) = wal::finish_copy(&home, wal, info.id) {
                        if let Err(drop) = store.drop_branch(&name) {
                            tracing::error!(branch = %name, error = %drop, "dropping a branch whose WAL could not be made");
                        }
                        return Err(internal(e));
                    }
                }
                Ok(info)
            })
            .await?;
        tracing::info!(branch = %req.name, parent, id = info.id.0, "branch created");
        Ok((self.view_new(&info), true))
    }

    /// Deletes a branch (refused when protected): stops its compute, unmounts
    /// it and drops its metadata; its children live on. Space is reclaimed by
    /// the GC loop afterwards. Returns the branch as it was.
    pub async fn delete(&self, name: &str) -> Result<Branch, ControlError> {
        let _ops = self.ops.lock().await;
        let info = self.info(name)?;
        if view::is_protected(&info) {
            return Err(ControlError::Protected(name.to_string()));
        }
        let before = self.view(&info);
        let owned = name.to_string();
        let (_, dropped) = self
            .runtime
            .while_stopped(info.id, || {
                self.blocking(name, move |store| store.drop_branch(&owned))
            })
            .await;
        dropped?;
        wal::remove(&self.home, info.id);
        self.runtime.forget(info.id);
        for dir in [self.home.mountpoint(info.id), self.home.socket_dir(info.id)] {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %dir.display(), error = %e, "removing branch directory");
                }
            }
        }
        self.gc.notify_one();
        tracing::info!(branch = name, id = info.id.0, "branch deleted");
        Ok(before)
    }

    /// Replaces the branch's contents with its parent's (or `parent`'s)
    /// current state. Refused when protected. A compute that was running is
    /// started again on the new contents, from a fresh mount. Name,
    /// connection string and password stay the same.
    pub async fn reset(&self, name: &str, parent: Option<&str>) -> Result<Branch, ControlError> {
        if let Some(p) = parent {
            names::validate(p)?;
        }
        let _ops = self.ops.lock().await;
        let info = self.info(name)?;
        if view::is_protected(&info) {
            return Err(ControlError::Protected(name.to_string()));
        }
        match parent {
            Some(p) if p == name => {
                return Err(ControlError::Invalid(format!(
                    "branch {name:?} cannot be reset from itself"
                )))
            }
            Some(p) => {
                self.info(p)?;
            }
            None if info.parent.is_none() => {
                return Err(ControlError::Invalid(format!(
                    "branch {name:?} has no parent to reset from; name one with \"parent\""
                )))
            }
            None => {}
        }
        let (owned, new_parent) = (name.to_string(), parent.map(str::to_string));
        let source = parent.or(info.parent.as_deref()).unwrap_or_default();
        let source_id = self.info(source)?.id;
        let (home, run_as, id) = (self.home.clone(), self.runtime.run_as().clone(), info.id);
        let (was_running, result) = self
            .runtime
            .while_stopped(info.id, || {
                self.blocking_control(name, move |store| {
                    let wal = wal::begin_copy(&home, source_id, &run_as).map_err(internal)?;
                    store
                        .reset_branch(&owned, new_parent.as_deref())
                        .map_err(|e| ControlError::from_store(&owned, e))?;
                    wal::remove(&home, id);
                    if let Some(wal) = wal {
                        wal::finish_copy(&home, wal, id).map_err(internal)?;
                    }
                    Ok(())
                })
            })
            .await;
        result?;
        if was_running {
            self.runtime.start_detached(info.id, name.to_string());
        }
        self.gc.notify_one();
        tracing::info!(
            branch = name,
            from = parent.or(info.parent.as_deref()),
            was_running,
            "branch reset"
        );
        self.show(name)
    }

    /// Renames a branch. Its mount and socket directories are by id, so a
    /// running compute keeps running; the old name no longer routes.
    pub async fn rename(&self, name: &str, new_name: &str) -> Result<Branch, ControlError> {
        names::validate(new_name)?;
        let _ops = self.ops.lock().await;
        self.info(name)?;
        if self.store.branch_info(new_name).is_ok() {
            return Err(ControlError::Conflict(format!(
                "branch {new_name:?} already exists"
            )));
        }
        let (old, new) = (name.to_string(), new_name.to_string());
        let info = self
            .blocking(name, move |store| store.rename_branch(&old, &new))
            .await?;
        tracing::info!(from = name, to = new_name, id = info.id.0, "branch renamed");
        Ok(self.view(&info))
    }

    /// Protects a branch from delete and reset, or lifts that.
    pub async fn set_protected(&self, name: &str, protected: bool) -> Result<Branch, ControlError> {
        let _ops = self.ops.lock().await;
        self.info(name)?;
        let owned = name.to_string();
        let info = self
            .blocking(name, move |store| {
                store.set_annotation(&owned, view::PROTECTED, protected.then_some("true"))
            })
            .await?;
        tracing::info!(branch = name, protected, "branch protection changed");
        Ok(self.view(&info))
    }

    /// The URI to connect to `name` through the proxy.
    pub fn connection_string(
        &self,
        name: &str,
        database: Option<&str>,
    ) -> Result<String, ControlError> {
        self.info(name)?;
        Ok(connection_uri(
            self.proxy_addr,
            name,
            &self.postgres_password,
            database.unwrap_or(DEFAULT_DATABASE),
        ))
    }

    /// Deletes every unprotected branch whose expiry has passed. Returns the
    /// names deleted.
    pub async fn expire(&self, now: SystemTime) -> Vec<String> {
        let due: Vec<BranchInfo> = self
            .store
            .branches()
            .into_iter()
            .filter(|b| view::expires_at(b).is_some_and(|t| t <= now))
            .collect();
        let mut deleted = Vec::new();
        for info in due {
            if view::is_protected(&info) {
                tracing::debug!(branch = %info.name, "expired but protected: kept");
                continue;
            }
            match self.delete(&info.name).await {
                Ok(_) => {
                    tracing::info!(branch = %info.name, expired_at = ?view::expires_at(&info).map(view::rfc3339), "deleted expired branch");
                    deleted.push(info.name);
                }
                Err(ControlError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(branch = %info.name, error = %e, "deleting expired branch")
                }
            }
        }
        deleted
    }
}

/// `postgresql://postgres.BRANCH:PASSWORD@HOST:PORT/DB`, with the user,
/// password and database percent-encoded. An unspecified listen address
/// (`0.0.0.0`, `::`) is shown as loopback.
pub fn connection_uri(proxy: SocketAddr, branch: &str, password: &str, database: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| {
        const SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        utf8_percent_encode(s, SET).to_string()
    };
    let host = match proxy.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!(
        "postgresql://{}:{}@{host}:{}/{}",
        enc(&format!("{DEFAULT_ROLE}.{branch}")),
        enc(password),
        proxy.port(),
        enc(database)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_uri_encodes_and_shows_loopback() {
        let uri = connection_uri("0.0.0.0:55432".parse().unwrap(), "feature/x", "p@ss", "app");
        assert_eq!(
            uri,
            "postgresql://postgres.feature%2Fx:p%40ss@127.0.0.1:55432/app"
        );
        let uri = connection_uri("[::1]:5".parse().unwrap(), "main", "pw", "postgres");
        assert_eq!(uri, "postgresql://postgres.main:pw@[::1]:5/postgres");
    }
}
