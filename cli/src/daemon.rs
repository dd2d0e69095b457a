//! The daemon run by `offshoot up`: owns the store, the mounts, the computes,
//! the proxy and the API server. See docs/daemon.md.
//!
//! Startup, in order: lock the home (one daemon per home); create the layout
//! and secrets; find PostgreSQL; kill PostgreSQL processes and clean FUSE
//! mounts left by a crashed daemon;
//! open the store (which replays its logs); on first use create `main` with
//! initdb; bind the proxy and API listeners; start the proxy, the API server
//! and the background loops (`reapers`); write `daemon.json`.
//!
//! Shutdown (SIGINT/SIGTERM, or [`Daemon::shutdown`]), in order: signal every
//! task; the API and the proxy stop accepting, the proxy drains its
//! connections (bounded by its grace period); stop every PostgreSQL; unmount
//! every branch; remove `daemon.json`; release the home lock.

pub mod control;
pub mod disk_space;
mod init;
pub mod logging;
pub mod names;
mod orphans;
mod reapers;
pub mod router;
pub mod runtime;
mod wal;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use offshoot_compute::{PgBinaries, RunAs, Supervisor, SupervisorOptions};
use offshoot_proxy::{ProxyConfig, ProxyMetrics, TlsConfig};
use offshoot_storage::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::server::ApiState;
use crate::home::{DaemonInfo, Home};
use control::Control;
use runtime::Runtime;

pub use init::ROOT_BRANCH;

/// The proxy's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:55432";
/// The HTTP API's default address.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:55433";
/// The default idle timeout (scale to zero).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The default bound on waking a compute for a connection.
pub const DEFAULT_WAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// How `offshoot up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub home: Home,
    /// The proxy's address (port 0 lets the OS pick; daemon.json tells).
    pub listen: SocketAddr,
    /// The HTTP API's address (port 0 lets the OS pick).
    pub api_listen: SocketAddr,
    /// Stop a compute after this long without connections; zero means never.
    pub idle_timeout: Duration,
    /// One JSON object per log line instead of human-readable lines.
    pub log_json: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How long a connection waits for its branch's PostgreSQL to start.
    pub wake_timeout: Duration,
}

impl UpOptions {
    /// The defaults for `home`.
    pub fn new(home: Home) -> UpOptions {
        UpOptions {
            home,
            listen: DEFAULT_LISTEN.parse().expect("constant address"),
            api_listen: DEFAULT_API_LISTEN.parse().expect("constant address"),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            log_json: false,
            tls_cert: None,
            tls_key: None,
            wake_timeout: DEFAULT_WAKE_TIMEOUT,
        }
    }
}

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn up(opts: UpOptions) -> anyhow::Result<()> {
    logging::init(opts.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("offshoot")
        .build()
        .context("start the async runtime")?;
    rt.block_on(async move {
        let daemon = Daemon::start(opts).await?;
        daemon.print_banner();
        wait_for_signal().await?;
        tracing::info!("shutting down");
        daemon.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// A running daemon.
pub struct Daemon {
    info: DaemonInfo,
    control: Arc<Control>,
    shutdown: watch::Sender<bool>,
    proxy: JoinHandle<()>,
    api: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    proxy_grace: Duration,
    postgres_password: String,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Daemon {
    /// Starts everything and returns once the proxy and the API listen.
    pub async fn start(opts: UpOptions) -> anyhow::Result<Daemon> {
        let home = opts.home.clone();
        home.create_layout()?;
        let lock = lock_home(&home)?;
        let secrets = home.load_or_create_secrets()?;
        let bins = PgBinaries::discover()?;
        let run_as = RunAs::for_current_process()?;
        check_reachable(&home, &run_as)?;

        let mnt_dir = home.mnt_dir();
        // Their postmaster.pid files stay behind: the compute crate removes
        // such a stale file before each start.
        tokio::task::spawn_blocking(move || orphans::kill_orphan_postmasters(&mnt_dir))
            .await
            .context("orphan scan task")?;
        let cleaned =
            offshoot_pagefs::clean_stale_mounts(&home.mnt_dir()).context("clean stale mounts")?;
        for path in cleaned {
            tracing::warn!(path = %path.display(), "unmounted a stale mount left by an earlier daemon");
        }
        // Before any compute starts: a write of the hba file or the handoff
        // module cut short by a kill leaves its temporary file.
        let stale = offshoot_compute::remove_stale_temporaries(&home.run_dir())
            .with_context(|| format!("clean {}", home.run_dir().display()))?;
        for path in stale {
            tracing::info!(path = %path.display(), "removed a temporary file left by an earlier daemon");
        }
        wal::expose(&home)?;
        if std::path::Path::new(offshoot_pagefs::URING_PARAMETER).exists()
            && !offshoot_pagefs::kernel_offers_uring()
        {
            tracing::info!(
                "branches are served over /dev/fuse; FUSE over io_uring makes commits faster: \
                 echo Y > {} (as root)",
                offshoot_pagefs::URING_PARAMETER
            );
        }
        let store_dir = home.store_dir();
        let store =
            tokio::task::spawn_blocking(move || Store::open(&store_dir, StoreOptions::default()))
                .await
                .context("open store task")?
                .with_context(|| {
                    format!("open the page store in {}", home.store_dir().display())
                })?;
        let compute_secrets = offshoot_compute::Secrets {
            postgres_password: secrets.postgres_password.clone(),
            internal_password: secrets.internal_password.clone(),
        };
        init::initialise(&home, &store, &bins, &run_as, &compute_secrets).await?;
        let live: Vec<_> = store.branches().iter().map(|b| b.id).collect();
        wal::remove_orphans(&home, &live);

        let proxy_listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listen on {} (proxy)", opts.listen))?;
        let api_listener = TcpListener::bind(opts.api_listen)
            .await
            .with_context(|| format!("listen on {} (HTTP API)", opts.api_listen))?;
        let proxy_addr = proxy_listener.local_addr().context("proxy address")?;
        let api_addr = api_listener.local_addr().context("API address")?;

        let postgres_version = bins.version.full.clone();
        let supervisor =
            Supervisor::new(bins, run_as, compute_secrets, SupervisorOptions::default());
        let runtime = Arc::new(Runtime::new(
            home.clone(),
            store.clone(),
            supervisor,
            opts.wake_timeout,
        ));
        let control = Arc::new(Control::new(
            home.clone(),
            store,
            runtime,
            secrets.postgres_password.clone(),
            proxy_addr,
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);

        let proxy_metrics = Arc::new(ProxyMetrics::default());
        let proxy_config = ProxyConfig {
            listen: proxy_addr,
            tls: match (opts.tls_cert, opts.tls_key) {
                (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
                (None, None) => None,
                _ => anyhow::bail!("TLS needs both a certificate and a key"),
            },
            route_timeout: opts.wake_timeout + Duration::from_secs(5),
            metrics: proxy_metrics.clone(),
            ..ProxyConfig::default()
        };
        let proxy_grace = proxy_config.shutdown_grace;
        let router = Arc::new(router::DaemonRouter::new(control.clone()));
        let proxy = tokio::spawn({
            let rx = shutdown_rx.clone();
            async move {
                let stop = wait_true(rx);
                if let Err(e) =
                    offshoot_proxy::serve(proxy_listener, proxy_config, router, stop).await
                {
                    tracing::error!(error = %e, "proxy stopped");
                }
            }
        });

        let info = DaemonInfo {
            pid: std::process::id(),
            proxy_addr,
            api_addr,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let api_state = Arc::new(ApiState::new(
            control.clone(),
            secrets.api_token.clone(),
            info.clone(),
            postgres_version,
            proxy_metrics,
        ));
        let api = tokio::spawn({
            let rx = shutdown_rx.clone();
            async move {
                if let Err(e) =
                    crate::api::server::serve(api_listener, api_state, wait_true(rx)).await
                {
                    tracing::error!(error = %e, "HTTP API stopped");
                }
            }
        });
        let loops = reapers::spawn(control.clone(), opts.idle_timeout, shutdown_rx);

        info.write(&home.daemon_json())?;
        tracing::info!(proxy = %proxy_addr, api = %api_addr, home = %home.root().display(), "offshoot is up");
        Ok(Daemon {
            info,
            control,
            shutdown,
            proxy,
            api,
            loops,
            proxy_grace,
            postgres_password: secrets.postgres_password,
            _lock: lock,
        })
    }

    /// What `daemon.json` says.
    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }

    /// The connection string of `main`.
    pub fn main_uri(&self) -> String {
        control::connection_uri(
            self.info.proxy_addr,
            ROOT_BRANCH,
            &self.postgres_password,
            control::DEFAULT_DATABASE,
        )
    }

    /// Prints how to connect. A stdout that cannot be written (closed, on a
    /// full disk) is logged and otherwise ignored: `println!` would panic,
    /// and the daemon serves as well without its banner.
    fn print_banner(&self) {
        let banner = format!(
            "offshoot {} is up\n  home   {}\n  proxy  {}\n  API    http://{}\n\
             connect to main with:\n  psql '{}'\n\
             other branches: postgres.BRANCH as the user name; Ctrl-C stops the daemon\n",
            self.info.version,
            self.control.home().root().display(),
            self.info.proxy_addr,
            self.info.api_addr,
            self.main_uri()
        );
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(banner.as_bytes()).and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "could not print the banner on stdout");
        }
    }

    /// Stops accepting, drains the proxy (bounded), stops every PostgreSQL,
    /// unmounts every branch and removes `daemon.json`.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let bound = self.proxy_grace + Duration::from_secs(5);
        if tokio::time::timeout(bound, self.proxy).await.is_err() {
            tracing::warn!("proxy did not drain in time");
        }
        if tokio::time::timeout(Duration::from_secs(10), self.api)
            .await
            .is_err()
        {
            tracing::warn!("HTTP API did not stop in time");
        }
        for task in self.loops {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.control.runtime().shutdown().await;
        wal::unexpose(self.control.home());
        if let Err(e) = DaemonInfo::remove(&self.control.home().daemon_json()) {
            tracing::warn!(error = %e, "removing daemon.json");
        }
        tracing::info!("offshoot stopped");
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Takes the home's exclusive lock: one daemon per home.
fn lock_home(home: &Home) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = home.root().join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        let running = home
            .read_daemon_info()
            .ok()
            .flatten()
            .map(|i| format!(" (pid {}, API {})", i.pid, i.api_addr))
            .unwrap_or_default();
        anyhow::anyhow!(
            "another offshoot daemon is running on {}{running}: {e}",
            home.root().display()
        )
    })
}

/// When PostgreSQL runs as another user, every directory above the runtime
/// root (mount points, sockets) must let it through, or it cannot reach its
/// data directory.
fn check_reachable(home: &Home, run_as: &RunAs) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !run_as.needs_switch() {
        return Ok(());
    }
    let root = home
        .runtime_root()
        .canonicalize()
        .with_context(|| format!("resolve {}", home.runtime_root().display()))?;
    for dir in root.ancestors() {
        let meta = std::fs::metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
        let mode = meta.mode();
        let passes = mode & 0o001 != 0
            || (meta.uid() == run_as.uid && mode & 0o100 != 0)
            || (meta.gid() == run_as.gid && mode & 0o010 != 0);
        if !passes {
            anyhow::bail!(
                "PostgreSQL runs as user {:?} and cannot reach {}: {} has mode {:o}. \
                 Use a home such as /var/lib/offshoot (--home or OFFSHOOT_HOME), or `chmod o+x {}`",
                run_as.name,
                root.display(),
                dir.display(),
                mode & 0o7777,
                dir.display()
            );
        }
    }
    Ok(())
}
