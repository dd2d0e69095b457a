//! One compute per branch: started once however many callers ask, stopped on
//! request, restarted after a crash.
//!
//! The [`Supervisor`] keeps a slot per key (the daemon uses the branch id).
//! Each slot that is not stopped has one task, its *slot loop*
//! (`supervisor/slot.rs`), which owns the [`crate::Compute`] and publishes
//! its state on a watch channel:
//!
//! - **slot loop — purpose:** start PostgreSQL, then wait for whichever comes
//!   first: a stop request (graceful stop, slot becomes `stopped`) or the
//!   postmaster's exit without being asked (a crash). After a crash it kills
//!   what is left of the process group, logs a line (tracing and the branch's
//!   log file) and restarts after a backoff. **Period:** event driven (no
//!   polling); restart delays are `restart_backoff_initial`, doubled after
//!   each consecutive failure up to `restart_backoff_max`. A compute that ran
//!   for `stable_after` resets the count; after `max_restarts` consecutive
//!   failures the slot is `failed` until the next `ensure_running`.
//!
//! A stop marks the slot as stopping at once: an `ensure_running` arriving
//! meanwhile waits for the stop to finish and starts a fresh compute, instead
//! of returning the one going away.
//!
//! There is no idle loop here: the daemon records use with [`Supervisor::touch`]
//! (the proxy's leases), asks [`Supervisor::idle`] which computes have not
//! been used for its timeout, and calls [`Supervisor::stop`] on them.
//!
//! Shutdown: [`Supervisor::shutdown`] refuses new starts and stops every
//! compute in parallel; dropping every handle makes each slot loop stop its
//! compute gracefully; a runtime torn down mid-flight drops the computes,
//! which kills them (no orphan `postgres`).

mod slot;

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::binaries::PgBinaries;
use crate::compute::ComputeSpec;
use crate::error::ComputeError;
use crate::run_as::RunAs;
use crate::secrets::Secrets;

/// Timeouts and restart policy.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// Bound on one start (spawn until the first login).
    pub ready_timeout: Duration,
    /// Fast-shutdown wait before escalating (see [`crate::Compute::stop`]).
    pub stop_timeout: Duration,
    /// Delay before the first restart after a crash.
    pub restart_backoff_initial: Duration,
    /// Largest delay between restarts.
    pub restart_backoff_max: Duration,
    /// Consecutive failed restarts (crash or failed start) before giving up.
    pub max_restarts: u32,
    /// A compute that ran this long before crashing starts a fresh count.
    pub stable_after: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(30),
            restart_backoff_initial: Duration::from_millis(200),
            restart_backoff_max: Duration::from_secs(30),
            max_restarts: 5,
            stable_after: Duration::from_secs(60),
        }
    }
}

/// What a branch's compute is doing (the HTTP API's `state`, serialised in
/// snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeState {
    Stopped,
    Starting,
    Running,
    Failed,
}

impl ComputeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ComputeState::Stopped => "stopped",
            ComputeState::Starting => "starting",
            ComputeState::Running => "running",
            ComputeState::Failed => "failed",
        }
    }
}

impl Display for ComputeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a running compute can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningCompute {
    pub pid: u32,
    /// Directory holding the socket (libpq's `host=`).
    pub socket_dir: PathBuf,
    /// `<socket_dir>/.s.PGSQL.5432`.
    pub socket_path: PathBuf,
    pub log_file: PathBuf,
    /// From the start's beginning until the server was ready, for this start.
    pub startup_time: Duration,
}

/// A slot's state as its loop publishes it.
#[derive(Debug, Clone)]
enum Status {
    Starting,
    Running(RunningCompute),
    Failed(String),
    Stopped,
}

/// A stop request to a slot loop.
struct StopRequest {
    reply: oneshot::Sender<Result<(), ComputeError>>,
}

/// What every slot loop needs to start PostgreSQL.
struct Launch {
    bins: PgBinaries,
    run_as: RunAs,
    secrets: Secrets,
    opts: SupervisorOptions,
}

struct Slot {
    status: watch::Receiver<Status>,
    stop: mpsc::UnboundedSender<StopRequest>,
    last_activity: Instant,
    /// A stop was requested: a new `ensure_running` waits for it to finish
    /// and starts afresh rather than hand out a compute about to go away.
    stopping: bool,
}

impl Slot {
    fn state(&self) -> ComputeState {
        // A loop that ended without saying so (its task was cancelled) is dead.
        let closed = self.status.has_changed().is_err();
        match &*self.status.borrow() {
            Status::Starting if closed => ComputeState::Failed,
            Status::Running(_) if closed => ComputeState::Failed,
            Status::Starting => ComputeState::Starting,
            Status::Running(_) => ComputeState::Running,
            Status::Failed(_) => ComputeState::Failed,
            Status::Stopped => ComputeState::Stopped,
        }
    }

    fn is_live(&self) -> bool {
        matches!(self.state(), ComputeState::Starting | ComputeState::Running)
    }
}

struct Inner<K> {
    launch: Arc<Launch>,
    slots: Mutex<HashMap<K, Slot>>,
    closed: AtomicBool,
}

/// Keeps one compute per key. Cheap to clone (an `Arc` inside).
pub struct Supervisor<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Supervisor<K> {
    fn clone(&self) -> Self {
        Supervisor {
            inner: self.inner.clone(),
        }
    }
}

impl<K> Supervisor<K>
where
    K: Clone + Eq + Hash + Display + Send + Sync + 'static,
{
    pub fn new(
        bins: PgBinaries,
        run_as: RunAs,
        secrets: Secrets,
        opts: SupervisorOptions,
    ) -> Supervisor<K> {
        Supervisor {
            inner: Arc::new(Inner {
                launch: Arc::new(Launch {
                    bins,
                    run_as,
                    secrets,
                    opts,
                }),
                slots: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The OS user the computes run as.
    pub fn run_as(&self) -> &RunAs {
        &self.inner.launch.run_as
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<K, Slot>> {
        // A panic while holding this lock leaves the map consistent (every
        // critical section is a single insert or read), so poisoning is ignored.
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the running compute for `key`, starting it if needed. The
    /// first caller's `spec_fn` builds the spec (it may mount the branch);
    /// concurrent callers wait for that same start. The start runs in its own
    /// task, so a caller that gives up does not abort it. Counts as activity.
    pub async fn ensure_running<F, Fut>(
        &self,
        key: &K,
        spec_fn: F,
    ) -> Result<RunningCompute, ComputeError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<ComputeSpec, ComputeError>> + Send + 'static,
    {
        let mut status = loop {
            let draining = {
                let mut slots = self.slots();
                if self.inner.closed.load(Ordering::SeqCst) {
                    return Err(ComputeError::ShutDown);
                }
                match slots.get_mut(key) {
                    Some(slot) if slot.is_live() && slot.stopping => slot.status.clone(),
                    Some(slot) if slot.is_live() => {
                        slot.last_activity = Instant::now();
                        break slot.status.clone();
                    }
                    _ => {
                        let (status_tx, status_rx) = watch::channel(Status::Starting);
                        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
                        slots.insert(
                            key.clone(),
                            Slot {
                                status: status_rx.clone(),
                                stop: stop_tx,
                                last_activity: Instant::now(),
                                stopping: false,
                            },
                        );
                        let launch = self.inner.launch.clone();
                        let name = key.to_string();
                        tokio::spawn(async move {
                            match spec_fn().await {
                                Ok(spec) => slot::run(launch, spec, status_tx, stop_rx).await,
                                Err(e) => {
                                    tracing::warn!(branch = %name, error = %e, "could not prepare compute");
                                    status_tx.send_replace(Status::Failed(e.to_string()));
                                }
                            }
                        });
                        break status_rx;
                    }
                }
            };
            // A stop is under way: let it finish, then start afresh.
            let mut draining = draining;
            let _ = draining
                .wait_for(|s| matches!(s, Status::Stopped | Status::Failed(_)))
                .await;
        };
        wait_running(&mut status, key.to_string()).await
    }

    /// Stops `key`'s compute gracefully (waits for a start in progress to
    /// finish first). Stopping what is not running is not an error.
    pub async fn stop(&self, key: &K) -> Result<(), ComputeError> {
        let sender = self.slots().get_mut(key).map(|s| {
            s.stopping = true;
            s.stop.clone()
        });
        let Some(sender) = sender else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        if sender.send(StopRequest { reply }).is_err() {
            return Ok(()); // the slot loop has already ended
        }
        // A loop that ends without answering (it failed meanwhile) has stopped too.
        answer.await.unwrap_or(Ok(()))
    }

    /// Stops every compute, in parallel. New starts are still accepted.
    pub async fn stop_all(&self) -> Result<(), ComputeError> {
        let keys: Vec<K> = self.slots().keys().cloned().collect();
        let mut tasks = tokio::task::JoinSet::new();
        for key in keys {
            let sup = self.clone();
            tasks.spawn(async move {
                let r = sup.stop(&key).await;
                (key, r)
            });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((key, Err(e))) => {
                    tracing::error!(branch = %key, error = %e, "could not stop compute");
                    first_error.get_or_insert(e);
                }
                Err(e) => tracing::error!(error = %e, "compute stop task failed"),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Refuses new starts, then stops every compute (in parallel).
    pub async fn shutdown(&self) -> Result<(), ComputeError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.stop_all().await
    }

    /// Drops what is kept about a key whose compute is stopped or failed (a
    /// deleted branch), so that keys never used again do not pile up. A
    /// starting or running compute is kept.
    pub fn forget(&self, key: &K) {
        let mut slots = self.slots();
        if slots.get(key).is_some_and(|slot| !slot.is_live()) {
            slots.remove(key);
        }
    }

    pub fn state(&self, key: &K) -> ComputeState {
        self.slots()
            .get(key)
            .map_or(ComputeState::Stopped, Slot::state)
    }

    /// The reason of the last failure, while `key` is `failed`.
    pub fn failure(&self, key: &K) -> Option<String> {
        let slots = self.slots();
        let slot = slots.get(key)?;
        let status = slot.status.borrow().clone();
        match status {
            Status::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Asks `key`'s compute, if it is running, for a checkpoint when more
    /// than `min_wal_bytes` of WAL was written since its last one (see
    /// [`crate::checkpoint`]). `Ok(None)`: no compute is running.
    pub async fn checkpoint_if_behind(
        &self,
        key: &K,
        min_wal_bytes: u64,
        timeout: Duration,
    ) -> Result<Option<crate::CheckpointOutcome>, ComputeError> {
        let Some((_, running)) = self.running().into_iter().find(|(k, _)| k == key) else {
            return Ok(None);
        };
        crate::checkpoint::checkpoint_if_behind(
            &key.to_string(),
            &running.socket_dir,
            &self.inner.launch.secrets,
            min_wal_bytes,
            timeout,
        )
        .await
        .map(Some)
    }

    /// Every running compute.
    pub fn running(&self) -> Vec<(K, RunningCompute)> {
        self.slots()
            .iter()
            .filter(|(_, slot)| slot.state() == ComputeState::Running)
            .filter_map(|(key, slot)| match &*slot.status.borrow() {
                Status::Running(r) => Some((key.clone(), r.clone())),
                _ => None,
            })
            .collect()
    }

    /// Records use of `key`'s compute now (the proxy calls this through the
    /// daemon while connections are open). No effect on a key never started.
    pub fn touch(&self, key: &K) {
        if let Some(slot) = self.slots().get_mut(key) {
            slot.last_activity = Instant::now();
        }
    }

    pub fn last_activity(&self, key: &K) -> Option<Instant> {
        self.slots().get(key).map(|s| s.last_activity)
    }

    /// Running computes not touched for at least `idle_for` (candidates for
    /// scale to zero; the daemon decides and calls [`Supervisor::stop`]).
    pub fn idle(&self, idle_for: Duration) -> Vec<K> {
        let now = Instant::now();
        self.slots()
            .iter()
            .filter(|(_, s)| {
                s.state() == ComputeState::Running
                    && now.duration_since(s.last_activity) >= idle_for
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

async fn wait_running(
    status: &mut watch::Receiver<Status>,
    name: String,
) -> Result<RunningCompute, ComputeError> {
    loop {
        let current = status.borrow_and_update().clone();
        match current {
            Status::Running(r) => return Ok(r),
            Status::Failed(reason) => return Err(ComputeError::StartFailed { name, reason }),
            Status::Stopped => {
                return Err(ComputeError::StartFailed {
                    name,
                    reason: "stopped while starting".to_owned(),
                })
            }
            Status::Starting => {}
        }
        if status.changed().await.is_err() {
            return Err(ComputeError::StartFailed {
                name,
                reason: "the start was abandoned".to_owned(),
            });
        }
    }
}
