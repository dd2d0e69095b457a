//! CancelRequest routing. A CancelRequest arrives on a fresh connection and
//! names only (pid, secret key); the proxy learns which compute owns that key
//! from the BackendKeyData each relayed session receives, and keeps the pair
//! in [`CancelMap`] for as long as that session lives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::startup::CancelKey;

/// (pid, secret) → the Unix socket of the compute that issued it.
#[derive(Debug, Default)]
pub(crate) struct CancelMap {
    inner: Mutex<HashMap<CancelKey, PathBuf>>,
}

impl CancelMap {
    /// Records `key` until the returned guard is dropped.
    pub(crate) fn register(self: &Arc<Self>, key: CancelKey, socket: &Path) -> CancelRegistration {
        self.inner.lock().insert(key, socket.to_path_buf());
        CancelRegistration {
            map: Arc::clone(self),
            key,
        }
    }

    pub(crate) fn lookup(&self, key: &CancelKey) -> Option<PathBuf> {
        self.inner.lock().get(key).cloned()
    }
}

/// Removes its key from the map when the session ends.
pub(crate) struct CancelRegistration {
    map: Arc<CancelMap>,
    key: CancelKey,
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        self.map.inner.lock().remove(&self.key);
    }
}

/// Sends the CancelRequest to the compute and waits for it to close the
/// connection (PostgreSQL answers nothing), bounded by `timeout`.
pub(crate) async fn forward_cancel(
    socket: &Path,
    key: CancelKey,
    timeout: Duration,
) -> std::io::Result<()> {
    let send = async {
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_all(&key.encode_request()).await?;
        let mut sink = [0u8; 64];
        while stream.read(&mut sink).await? != 0 {}
        Ok(())
    };
    tokio::time::timeout(timeout, send).await.map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "cancel request timed out")
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_lives_with_its_guard() {
        let map = Arc::new(CancelMap::default());
        let key = CancelKey { pid: 1, secret: 2 };
        let guard = map.register(key, Path::new("/run/a"));
        assert_eq!(map.lookup(&key), Some(PathBuf::from("/run/a")));
        drop(guard);
        assert_eq!(map.lookup(&key), None);
    }
}
