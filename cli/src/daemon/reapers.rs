//! The daemon's background loops, each until shutdown:
//!
//! - **idle reaper**, every `min(1 s, idle_timeout / 10)` (at least 100 ms):
//!   stops computes that have had no connection for `idle_timeout`, then
//!   unmounts their branches (scale to zero). Off when the timeout is 0.
//! - **TTL reaper**, every second: deletes unprotected branches whose expiry
//!   has passed, with a log line for each.
//! - **GC**, woken after each delete or reset (and once at start): runs the
//!   store's garbage collector on the blocking pool.
//! - **disk watch**, every 5 s: warns in the log while the disk under the
//!   page store is nearly full ([`super::disk_space`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::control::Control;
use super::disk_space;

/// The TTL reaper's period.
pub const TTL_PERIOD: Duration = Duration::from_secs(1);

/// The idle reaper's period for a given idle timeout.
pub fn idle_period(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Starts the loops; they end when `shutdown` turns true.
pub fn spawn(
    control: Arc<Control>,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if !idle_timeout.is_zero() {
        let c = control.clone();
        tasks.push(every(
            idle_period(idle_timeout),
            shutdown.clone(),
            move || {
                let c = c.clone();
                async move {
                    c.runtime().reap_idle(idle_timeout).await;
                }
            },
        ));
    }
    let c = control.clone();
    tasks.push(every(TTL_PERIOD, shutdown.clone(), move || {
        let c = c.clone();
        async move {
            c.expire(SystemTime::now()).await;
        }
    }));
    let store_dir = control.home().store_dir();
    let mut watch = disk_space::LowSpaceWatch::default();
    tasks.push(every(disk_space::PERIOD, shutdown.clone(), move || {
        disk_space::check(&mut watch, &store_dir);
        std::future::ready(())
    }));
    tasks.push(tokio::spawn(gc_loop(control, shutdown)));
    tasks
}

fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, mut f: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => f().await,
                _ = stopped(&mut shutdown) => return,
            }
        }
    })
}

async fn gc_loop(control: Arc<Control>, mut shutdown: watch::Receiver<bool>) {
    let notify = control.gc_notify();
    loop {
        let store = control.store().clone();
        match tokio::task::spawn_blocking(move || store.gc()).await {
            Ok(Ok(report)) if report.layers_removed > 0 => {
                tracing::info!(
                    layers = report.layers_removed,
                    bytes = report.bytes_removed,
                    "garbage collected"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "garbage collection"),
            Err(e) => tracing::warn!(error = %e, "garbage collection task"),
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// Resolves once shutdown is signalled (drops the borrow before returning).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_period_scales_with_the_timeout_within_bounds() {
        assert_eq!(
            idle_period(Duration::from_secs(300)),
            Duration::from_secs(1)
        );
        assert_eq!(
            idle_period(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
        assert_eq!(
            idle_period(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }
}
