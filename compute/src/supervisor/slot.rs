//! The slot loop: owns one branch's [`Compute`] from its first start until it
//! is stopped or given up on. See the parent module for the policy.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::{Launch, RunningCompute, Status, StopRequest};
use crate::compute::{log_note, Compute, ComputeSpec};
use crate::error::ComputeError;

enum Event {
    Stop(Option<StopRequest>),
    Exited(Result<std::process::ExitStatus, ComputeError>),
}

pub(super) async fn run(
    launch: Arc<Launch>,
    spec: ComputeSpec,
    status: watch::Sender<Status>,
    mut stops: mpsc::UnboundedReceiver<StopRequest>,
) {
    let name = spec.name.clone();
    // The first start's failure goes straight to the callers waiting for it.
    let mut compute = match start(&launch, &spec).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(branch = %name, error = %e, "compute failed to start");
            status.send_replace(Status::Failed(e.to_string()));
            return;
        }
    };
    let mut failures: u32 = 0;
    loop {
        status.send_replace(Status::Running(running(&compute)));
        let up_since = Instant::now();
        let event = tokio::select! {
            req = stops.recv() => Event::Stop(req),
            st = compute.exited() => Event::Exited(st),
        };
        match event {
            Event::Stop(req) => {
                // `None`: every supervisor handle is gone; stop all the same.
                let result = compute.stop(launch.opts.stop_timeout).await;
                status.send_replace(Status::Stopped);
                answer(req, result, &mut stops);
                return;
            }
            Event::Exited(exit) => {
                let how = match exit {
                    Ok(st) => st.to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(branch = %name, status = %how, "postgres exited without being asked to");
                // Kills backends the postmaster left behind before anything restarts.
                drop(compute);
                if up_since.elapsed() >= launch.opts.stable_after {
                    failures = 0;
                }
                status.send_replace(Status::Starting);
                match restart(&launch, &spec, &how, &mut failures, &mut stops).await {
                    Restart::Started(c) => compute = *c,
                    Restart::Stopped(req) => {
                        status.send_replace(Status::Stopped);
                        answer(req, Ok(()), &mut stops);
                        return;
                    }
                    Restart::GaveUp(reason) => {
                        tracing::error!(branch = %name, %reason, "giving up on compute");
                        log_note(&spec.log_file, &format!("giving up: {reason}"));
                        status.send_replace(Status::Failed(reason));
                        return;
                    }
                }
            }
        }
    }
}

enum Restart {
    Started(Box<Compute>),
    Stopped(Option<StopRequest>),
    GaveUp(String),
}

/// Restarts after a crash with backoff; a stop request during the wait wins.
async fn restart(
    launch: &Launch,
    spec: &ComputeSpec,
    why: &str,
    failures: &mut u32,
    stops: &mut mpsc::UnboundedReceiver<StopRequest>,
) -> Restart {
    let opts = &launch.opts;
    let mut last_error = format!("postgres exited ({why})");
    loop {
        *failures += 1;
        if *failures > opts.max_restarts {
            return Restart::GaveUp(format!(
                "{} consecutive failures; last: {last_error}",
                *failures - 1
            ));
        }
        let shift = (*failures - 1).min(16);
        let delay = opts
            .restart_backoff_initial
            .saturating_mul(1 << shift)
            .min(opts.restart_backoff_max);
        tracing::warn!(branch = %spec.name, attempt = *failures, ?delay, reason = %last_error, "restarting postgres");
        log_note(
            &spec.log_file,
            &format!(
                "{last_error}; restarting in {delay:?} (attempt {})",
                *failures
            ),
        );
        tokio::select! {
            req = stops.recv() => return Restart::Stopped(req),
            _ = tokio::time::sleep(delay) => {}
        }
        match start(launch, spec).await {
            Ok(c) => {
                tracing::info!(branch = %spec.name, pid = c.pid(), "postgres restarted");
                return Restart::Started(Box::new(c));
            }
            Err(e) => last_error = e.to_string(),
        }
    }
}

async fn start(launch: &Launch, spec: &ComputeSpec) -> Result<Compute, ComputeError> {
    Compute::start(
        &launch.bins,
        &launch.run_as,
        spec.clone(),
        &launch.secrets,
        launch.opts.ready_timeout,
    )
    .await
}

fn running(c: &Compute) -> RunningCompute {
    RunningCompute {
        pid: c.pid(),
        socket_dir: c.socket_dir().to_path_buf(),
        socket_path: c.socket_path(),
        log_file: c.log_file().to_path_buf(),
        startup_time: c.startup_time(),
    }
}

/// Answers the stop request that ended the loop and any queued behind it.
fn answer(
    req: Option<StopRequest>,
    result: Result<(), ComputeError>,
    stops: &mut mpsc::UnboundedReceiver<StopRequest>,
) {
    if let Some(req) = req {
        let _ = req.reply.send(result);
    }
    stops.close();
    while let Ok(more) = stops.try_recv() {
        let _ = more.reply.send(Ok(()));
    }
}
