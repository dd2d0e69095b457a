//! initdb, start, authentication, stop and restart of one compute.

use std::time::Instant;

use offshoot_compute::{ComputeError, INTERNAL_ROLE};

use crate::support::{await_no_postmaster, connect, postmasters, read_log, TestEnv, STOP_TIMEOUT};

#[tokio::test]
async fn pg_initdb_start_and_authenticate() {
    let env = TestEnv::new();
    let spec = env.init("main").await;
    let t = Instant::now();
    let compute = env.start(&spec).await.expect("start");
    eprintln!(
        "start: {:?} (measured by start: {:?})",
        t.elapsed(),
        compute.startup_time()
    );
    assert!(compute.socket_path().exists());
    assert_eq!(compute.socket_path(), spec.socket_dir.join(".s.PGSQL.5432"));

    let client = env
        .login(compute.socket_dir())
        .await
        .expect("postgres logs in with its password");
    let row = client
        .query_one("SELECT current_user::text, 40 + 2", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "postgres");
    assert_eq!(row.get::<_, i32>(1), 42);
    let listen: String = client
        .query_one("SHOW listen_addresses", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(listen, "");
    // The WAL settings pagefs's one-request commit is built for.
    let lz4 = env.bins.lz4 && env.bins.version.major >= 15;
    for (name, want) in [
        ("wal_sync_method", "open_datasync"),
        ("wal_init_zero", "off"),
        ("wal_buffers", "16MB"),
        ("wal_compression", if lz4 { "lz4" } else { "off" }),
    ] {
        let value: String = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(value, want, "{name}");
    }

    let wrong = connect(compute.socket_dir(), "postgres", "not-the-password").await;
    let err = wrong.expect_err("wrong password must be rejected");
    let code = err.as_db_error().map(|e| e.code().code().to_owned());
    assert_eq!(code.as_deref(), Some("28P01"), "{err}");

    let internal = connect(
        compute.socket_dir(),
        INTERNAL_ROLE,
        &env.secrets.internal_password,
    )
    .await
    .expect("internal role logs in with its password");
    let is_super: bool = internal
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert!(is_super);
    assert!(
        connect(
            compute.socket_dir(),
            INTERNAL_ROLE,
            &env.secrets.postgres_password
        )
        .await
        .is_err(),
        "internal role must not accept the postgres password"
    );
    client.close().await;
    internal.close().await;
    compute.stop(STOP_TIMEOUT).await.expect("stop");
}

#[tokio::test]
async fn pg_stop_is_clean_and_restart_keeps_data() {
    let env = TestEnv::new();
    let spec = env.init("main").await;
    let compute = env.start(&spec).await.expect("start");
    let pid = compute.pid();
    let client = env.login(compute.socket_dir()).await.expect("connect");
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;")
        .await
        .expect("write");
    client.close().await;
    compute.stop(STOP_TIMEOUT).await.expect("stop");
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err(),
        "postmaster {pid} still alive after stop"
    );
    let log = read_log(&spec);
    assert!(log.contains("database system is shut down"), "{log}");
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("FATAL:") || l.contains("ERROR:") || l.contains("PANIC:"))
        // A backend that has not yet read its client's Terminate when the fast
        // shutdown arrives says so; that is PostgreSQL's race, not offshoot's.
        .filter(|l| !l.contains("terminating connection due to administrator command"))
        .collect();
    assert!(
        noisy.is_empty(),
        "start and stop must log no errors: {noisy:#?}"
    );
    assert!(!spec.socket_dir.join(".s.PGSQL.5432").exists());

    let mut times = Vec::new();
    let mut login_times = Vec::new();
    for _ in 0..3 {
        let compute = env.start(&spec).await.expect("restart");
        times.push(compute.startup_time());
        let login = Instant::now();
        let client = env
            .login(compute.socket_dir())
            .await
            .expect("connect after restart");
        login_times.push(login.elapsed());
        let n: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .expect("read")
            .get(0);
        assert_eq!(n, 1000);
        client.close().await;
        compute.stop(STOP_TIMEOUT).await.expect("stop");
    }
    eprintln!("start times (spawn to first login): {times:?}; one more login: {login_times:?}");
    assert_eq!(
        read_log(&spec)
            .matches("database system is shut down")
            .count(),
        4
    );
}

#[tokio::test]
async fn pg_start_failure_reports_the_log_tail() {
    let env = TestEnv::new();
    let mut spec = env.init("main").await;
    spec.settings
        .push(("shared_buffers".to_owned(), "not-a-size".to_owned()));
    let err = env.start(&spec).await.expect_err("bad setting");
    assert!(matches!(err, ComputeError::ExitedEarly { .. }), "{err:?}");
    assert!(err.to_string().contains("shared_buffers"), "{err}");
    assert!(postmasters(&spec.datadir).is_empty());
}

#[tokio::test]
async fn pg_dropping_a_running_compute_kills_it() {
    let env = TestEnv::new();
    let spec = env.init("main").await;
    let compute = env.start(&spec).await.expect("start");
    let pid = compute.pid();
    assert_eq!(postmasters(&spec.datadir), vec![pid]);
    drop(compute);
    await_no_postmaster(&spec.datadir, "postgres survived its Compute").await;

    // A start that misses its deadline leaves nothing behind.
    let err = env
        .start_within(&spec, std::time::Duration::from_millis(1))
        .await
        .expect_err("1 ms is too short to start");
    assert!(matches!(err, ComputeError::StartTimeout { .. }), "{err:?}");
    await_no_postmaster(&spec.datadir, "a timed-out start left postgres running").await;

    // A stop with no time for a fast shutdown escalates to an immediate one.
    let compute = env
        .start(&spec)
        .await
        .expect("start after kills (crash recovery)");
    compute.stop(std::time::Duration::ZERO).await.expect("stop");
    assert!(postmasters(&spec.datadir).is_empty());
    let log = read_log(&spec);
    assert!(log.contains("received immediate shutdown request"), "{log}");
}

/// After a crash, `postmaster.pid` may name a pid that is alive but is no
/// postmaster of this data directory (a zombie not yet reaped, a reused pid):
/// PostgreSQL alone would refuse to start forever.
#[tokio::test]
async fn pg_stale_postmaster_pid_does_not_block_a_start() {
    let env = TestEnv::new();
    let spec = env.init("main").await;
    let crashed = env.start(&spec).await.expect("start");
    drop(crashed); // SIGKILL to the whole group: a crash
    await_no_postmaster(&spec.datadir, "postgres survived SIGKILL").await;
    let pidfile = spec.datadir.join("postmaster.pid");
    let old = std::fs::read_to_string(&pidfile).expect("a crash leaves postmaster.pid");
    // A live process of the PostgreSQL user (PostgreSQL treats processes it
    // may not signal as gone) that is not a postmaster takes over the pid.
    let mut sleep = tokio::process::Command::new("sleep");
    sleep.arg("60").kill_on_drop(true);
    if env.run_as.needs_switch() {
        sleep.uid(env.run_as.uid).gid(env.run_as.gid);
    }
    let unrelated = sleep.spawn().expect("spawn sleep");
    let other_pid = unrelated.id().expect("pid");
    let rest: Vec<&str> = old.lines().skip(1).collect();
    std::fs::write(&pidfile, format!("{other_pid}\n{}\n", rest.join("\n"))).expect("rewrite");

    let compute = env
        .start(&spec)
        .await
        .expect("a stale postmaster.pid must not block the start");
    assert!(read_log(&spec).contains("removed a stale postmaster.pid"));

    // A second postmaster on a running data directory is still refused, and
    // the running one is left alone.
    let err = env
        .start(&spec)
        .await
        .expect_err("the data directory is in use");
    assert!(err.to_string().contains("lock file"), "{err}");
    assert_eq!(postmasters(&spec.datadir), vec![compute.pid()]);
    let client = env
        .login(compute.socket_dir())
        .await
        .expect("the running compute still answers");
    client.close().await;
    compute.stop(STOP_TIMEOUT).await.expect("stop");
    drop(unrelated);
}
