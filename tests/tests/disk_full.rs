//! The disk under the home fills up in the middle of a write workload whose
//! clients record every commit they saw acknowledged. The daemon stays up,
//! answers, warns, and refuses a branch create with the reason; once the
//! disk has room again the branch comes back through PostgreSQL's own crash
//! recovery with every acknowledged commit in place, and nothing of the
//! refused create is left.
//!
//! The home lives on a small ext4 filesystem in a loop-mounted image
//! ([`LoopFs`]); a ballast file takes most of it, and deleting the ballast
//! is how the operator makes room, with the daemon still running.

use offshoot_e2e::disk::du_bytes;
use offshoot_e2e::loopfs::LoopFs;
use offshoot_e2e::Daemon;
use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WORKERS: i64 = 4;
/// Room left on the small filesystem beyond the home as it was after
/// `initdb`: a few seconds of the workload below.
const HEADROOM: u64 = 160 << 20;
/// Room for a ballast file, which is deleted once the disk is full:
/// crash recovery writes the replayed pages again (the page store keeps
/// every version, there is no compaction yet).
const BALLAST: u64 = 1 << 30;
/// Room for ext4's own metadata on the small filesystem.
const SLACK: u64 = 128 << 20;
/// How long the branch may take to come back once there is room.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(120);
/// How long the workload may run before the disk must have filled.
const FILL_DEADLINE: Duration = Duration::from_secs(120);

/// Inserts ids `worker * 1e9 + n`, one per transaction, until an error;
/// records every id whose INSERT returned success, the one in flight when it
/// failed, and the error.
async fn insert_until_error(
    url: String,
    worker: i64,
    acked: Arc<Mutex<Vec<i64>>>,
    in_flight: Arc<Mutex<Vec<i64>>>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let note = |e: String| errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    let (client, conn) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => return note(format!("worker {worker} connect: {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let stmt = match client
        .prepare("insert into acked (id, pad) values ($1, repeat('p', 2000))")
        .await
    {
        Ok(s) => s,
        Err(e) => return note(format!("worker {worker} prepare: {e}")),
    };
    for n in 0.. {
        let id = worker * 1_000_000_000 + n;
        match client.execute(&stmt, &[&id]).await {
            Ok(1) => acked.lock().unwrap_or_else(|p| p.into_inner()).push(id),
            Ok(other) => panic!("insert of {id} reported {other} rows"),
            Err(e) => {
                in_flight.lock().unwrap_or_else(|p| p.into_inner()).push(id);
                return note(format!("worker {worker}: {e:?}"));
            }
        }
    }
}

fn set_of(v: &Mutex<Vec<i64>>) -> BTreeSet<i64> {
    v.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect()
}

#[test]
fn disk_full_loses_no_acknowledged_commit() {
    let mut small: Option<LoopFs> = None;
    let mut d = Daemon::start();
    d.psql(
        "main",
        "create table acked (id bigint primary key, pad text); checkpoint",
    );

    // Move the home onto a filesystem with little room left.
    d.stop().assert_clean();
    let home = d.home().to_path_buf();
    let initial = home.with_file_name("home.initial");
    std::fs::rename(&home, &initial).expect("move the home aside");
    std::fs::create_dir(&home).expect("create the mount point");
    let size = du_bytes(&initial) + HEADROOM + BALLAST + SLACK;
    let fs = small.insert(LoopFs::create(
        &home.with_file_name("home.img"),
        size,
        &home,
    ));
    let copy = Command::new("cp")
        .arg("-a")
        .arg(initial.join("."))
        .arg(&home)
        .status()
        .expect("run cp");
    assert!(
        copy.success(),
        "copying the home onto the small filesystem failed"
    );
    std::fs::remove_dir_all(&initial).expect("remove the old home");
    let ballast = home.join("ballast");
    let file = std::fs::File::create(&ballast).expect("create the ballast");
    let ballast_len = fs.available_bytes().saturating_sub(HEADROOM);
    nix::fcntl::fallocate(
        file.as_raw_fd(),
        nix::fcntl::FallocateFlags::empty(),
        0,
        ballast_len as i64,
    )
    .expect("allocate the ballast");
    drop(file);
    eprintln!(
        "home on a {} MiB filesystem, {} MiB free",
        size >> 20,
        fs.available_bytes() >> 20
    );
    d.start_again();

    let url = d.connection_string("main", "postgres");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let finished = rt.block_on(async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                tokio::spawn(insert_until_error(
                    url.clone(),
                    w,
                    acked.clone(),
                    in_flight.clone(),
                    errors.clone(),
                ))
            })
            .collect();
        tokio::time::timeout(FILL_DEADLINE, futures_util::future::join_all(tasks)).await
    });
    drop(rt);
    let acked = set_of(&acked);
    let in_flight = set_of(&in_flight);
    let errors = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    eprintln!(
        "{} inserts acknowledged; the workers stopped on: {errors:#?}",
        acked.len()
    );
    assert!(
        finished.is_ok(),
        "the workload still ran after {FILL_DEADLINE:?}: the disk never filled"
    );
    assert!(
        acked.len() > 1000,
        "only {} inserts acknowledged",
        acked.len()
    );
    assert_eq!(
        fs.available_bytes(),
        0,
        "the workload stopped, but the filesystem still has room"
    );
    assert!(
        d.daemon_output().contains("No space left on device"),
        "the daemon never met a full disk"
    );

    // The daemon itself is still up and answering, and it warned.
    assert!(d.pid().is_some());
    let list = d.cli_ok(&["branch", "list"]);
    assert!(list.contains("main"), "branch list on a full disk: {list}");
    // A branch cannot be created, and says why.
    let create = d.cli(&["branch", "create", "while-full"]);
    assert!(
        !create.success() && create.stderr.contains("No space left on device"),
        "branch create on a full disk: {:?} {} {}",
        create.status,
        create.stdout,
        create.stderr
    );
    let free = d.cli_json(&["status"])["disk_free_bytes"].as_u64();
    assert!(
        free.is_some_and(|b| b < 64 << 20),
        "status on a full disk says {free:?} bytes free"
    );
    assert!(
        d.daemon_output()
            .contains("the disk under the page store is nearly full"),
        "the daemon did not warn about the low space"
    );

    // Room again, the daemon still running: the branch comes back by
    // PostgreSQL's crash recovery.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    let freed = std::time::Instant::now();
    let back = offshoot_e2e::wait_until(RECOVERY_DEADLINE, || {
        d.try_psql_db("main", "postgres", "select 1").success()
    });
    assert!(
        back,
        "main did not come back within {RECOVERY_DEADLINE:?} of room being freed"
    );
    eprintln!("main answered {:?} after the ballast went", freed.elapsed());
    let present: BTreeSet<i64> = d
        .psql("main", "select id from acked order by id")
        .lines()
        .map(|l| l.trim().parse::<i64>().expect("an id"))
        .collect();
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged commits lost to a full disk (of {}), e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    let unexpected: Vec<_> = present
        .difference(&acked)
        .filter(|id| !in_flight.contains(id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "rows nobody inserted: {unexpected:?}"
    );

    // And it takes writes again.
    assert_eq!(
        d.psql(
            "main",
            "insert into acked values (-1, 'after'); select pad from acked where id = -1"
        )
        .trim(),
        "after"
    );
    // The refused create left nothing behind, and works now.
    let list = d.cli_ok(&["branch", "list"]);
    assert!(
        !list.contains("while-full"),
        "a refused create shows: {list}"
    );
    d.create_branch("while-full", Some("main"));
    let rows = d.psql("while-full", "select count(*) from acked");
    assert_eq!(rows.trim(), (present.len() + 1).to_string());

    let log = d.branch_log("main");
    assert!(
        log.contains("No space left on device"),
        "main's PostgreSQL never saw the full disk"
    );
    assert!(
        log.contains("redo done"),
        "main's PostgreSQL log shows no crash recovery"
    );
    // What PostgreSQL says while the disk is full.
    d.allow_errors(&[
        r"No space left on device",
        r"PANIC:  could not (write|fsync|close|extend|open)",
        r"FATAL:  the database system is (in recovery mode|not yet accepting connections|shutting down|starting up)",
        r"FATAL:  terminating connection because of crash of another server process",
    ]);
    // The store's manifest took the failed write in its stride: a restart
    // finds both branches as they were acknowledged.
    d.restart();
    let list = d.cli_ok(&["branch", "list"]);
    assert!(
        list.contains("main") && list.contains("while-full"),
        "{list}"
    );
    d.stop().assert_clean();
    d.check_logs();
    drop(small);
}
