//! The supervisor: one start for many callers, restart after a crash, stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offshoot_compute::{ComputeError, ComputeState, Supervisor, SupervisorOptions};

use crate::support::{postmasters, read_log, TestEnv, READY_TIMEOUT, STOP_TIMEOUT};

fn supervisor(env: &TestEnv) -> Supervisor<String> {
    Supervisor::new(
        env.bins.clone(),
        env.run_as.clone(),
        env.secrets.clone(),
        SupervisorOptions {
            ready_timeout: READY_TIMEOUT,
            stop_timeout: STOP_TIMEOUT,
            restart_backoff_initial: Duration::from_millis(50),
            ..SupervisorOptions::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_supervisor_restarts_a_crashed_compute_with_its_data() {
    let env = TestEnv::new();
    let spec = env.init("feature").await;
    let sup = supervisor(&env);
    let key = "feature".to_owned();
    let s = spec.clone();
    let first = sup
        .ensure_running(&key, move || async move { Ok(s) })
        .await
        .expect("start");
    let client = env.login(&first.socket_dir).await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE kept (v int); INSERT INTO kept SELECT generate_series(1, 500);",
        )
        .await
        .expect("write");
    client.close().await;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the postmaster");

    let deadline = Instant::now() + Duration::from_secs(60);
    let second = loop {
        let now_running = sup.running();
        if let Some((_, r)) = now_running
            .iter()
            .find(|(k, r)| *k == key && r.pid != first.pid)
        {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no restart; state {:?}, log:\n{}",
            sup.state(&key),
            read_log(&spec)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sup.state(&key), ComputeState::Running);
    assert_eq!(postmasters(&spec.datadir), vec![second.pid]);

    let client = env
        .login(&second.socket_dir)
        .await
        .expect("connect after restart");
    let n: i64 = client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .expect("read")
        .get(0);
    assert_eq!(n, 500);
    client.close().await;

    let log = read_log(&spec);
    assert!(log.contains("restarting in"), "{log}");
    assert!(
        log.contains("database system was interrupted") || log.contains("not properly shut down"),
        "crash recovery expected in the log:\n{log}"
    );
    sup.shutdown().await.expect("shutdown");
    assert_eq!(sup.state(&key), ComputeState::Stopped);
    assert!(postmasters(&spec.datadir).is_empty());
    assert!(matches!(
        sup.ensure_running(&key, move || async move { Ok(spec) })
            .await,
        Err(ComputeError::ShutDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_supervisor_concurrent_callers_start_one_postgres() {
    let env = TestEnv::new();
    let spec = env.init("shared").await;
    let sup = supervisor(&env);
    let key = "shared".to_owned();
    let spec_calls = Arc::new(AtomicUsize::new(0));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let sup = sup.clone();
        let key = key.clone();
        let spec = spec.clone();
        let calls = spec_calls.clone();
        tasks.spawn(async move {
            sup.ensure_running(&key, move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(spec)
            })
            .await
        });
    }
    let mut pids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        pids.push(joined.expect("task").expect("ensure_running").pid);
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "callers saw different computes: {pids:?}");
    assert_eq!(spec_calls.load(Ordering::SeqCst), 1);
    assert_eq!(postmasters(&spec.datadir), pids);
    assert_eq!(sup.running().len(), 1);

    sup.touch(&key);
    assert_eq!(sup.idle(Duration::ZERO), vec![key.clone()]);
    assert!(sup.idle(Duration::from_secs(3600)).is_empty());
    sup.forget(&key);
    assert_eq!(
        sup.state(&key),
        ComputeState::Running,
        "forgot a live compute"
    );

    sup.stop(&key).await.expect("stop");
    assert_eq!(sup.state(&key), ComputeState::Stopped);
    assert!(sup.last_activity(&key).is_some());
    sup.forget(&key);
    assert!(sup.last_activity(&key).is_none(), "a stopped key is kept");
    assert!(postmasters(&spec.datadir).is_empty());
    assert!(read_log(&spec).contains("database system is shut down"));

    // A wake that races a stop gets a fresh compute, not the one going away.
    let first = sup
        .ensure_running(&key, {
            let s = spec.clone();
            move || async move { Ok(s) }
        })
        .await
        .expect("start again after stop");
    assert!(!pids.contains(&first.pid));
    let s = spec.clone();
    let (stopped, again) = tokio::join!(sup.stop(&key), async {
        tokio::task::yield_now().await;
        sup.ensure_running(&key, move || async move { Ok(s) }).await
    });
    stopped.expect("stop");
    let again = again.expect("wake after stop");
    assert_ne!(again.pid, first.pid, "handed out the compute being stopped");
    assert_eq!(postmasters(&spec.datadir), vec![again.pid]);
    assert_eq!(sup.state(&key), ComputeState::Running);
    sup.stop_all().await.expect("stop_all");
    assert!(postmasters(&spec.datadir).is_empty());
}

#[tokio::test]
async fn pg_supervisor_reports_a_failed_start() {
    let env = TestEnv::new();
    // An empty data directory: postgres refuses to start at once.
    let spec = env.spec("empty");
    std::fs::create_dir_all(&spec.datadir).expect("mkdir");
    let sup = supervisor(&env);
    let key = "empty".to_owned();
    let s = spec.clone();
    let err = sup
        .ensure_running(&key, move || async move { Ok(s) })
        .await
        .expect_err("cannot start on an empty directory");
    assert!(matches!(err, ComputeError::StartFailed { .. }), "{err:?}");
    assert_eq!(sup.state(&key), ComputeState::Failed);
    let reason = sup.failure(&key).expect("a reason");
    assert!(reason.contains("exited during startup"), "{reason}");
    assert!(postmasters(&spec.datadir).is_empty());
}
