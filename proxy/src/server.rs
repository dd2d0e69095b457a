//! The accept loop and graceful shutdown.
//!
//! `serve` accepts until `shutdown` resolves, spawning one task per
//! connection (TCP_NODELAY set). On shutdown it stops accepting (the
//! listener is dropped, so new connections are refused by the kernel), lets
//! open connections finish for up to `shutdown_grace`, then aborts the rest
//! and returns; the daemon stops the computes after that.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::cancel::CancelMap;
use crate::config::ProxyConfig;
use crate::connection::{handle_client, Shared};
use crate::error::ProxyError;
use crate::router::Router;
use crate::tls;

/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves clients on `listener` until `shutdown` resolves, then drains.
/// Fails only on setup (TLS files); per-connection errors are answered on
/// the wire and counted in [`crate::ProxyMetrics`].
pub async fn serve(
    listener: TcpListener,
    config: ProxyConfig,
    router: Arc<dyn Router>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProxyError> {
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let grace = config.shutdown_grace;
    let shared = Arc::new(Shared {
        config,
        router,
        tls,
        cancels: Arc::new(CancelMap::default()),
    });
    info!(addr = ?listener.local_addr().ok(), tls = shared.tls.is_some(), "proxy listening");
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(%peer, error = %e, "set TCP_NODELAY");
                    }
                    tasks.spawn(handle_client(stream, peer, Arc::clone(&shared)));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    info!(open = tasks.len(), grace = ?grace, "proxy stopped accepting; draining connections");
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            open = tasks.len(),
            "grace period over; closing the remaining connections"
        );
        tasks.shutdown().await;
    }
    info!("proxy stopped");
    Ok(())
}
