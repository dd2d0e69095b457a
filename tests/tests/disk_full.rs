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

use offshoot_e2e::acked::{AckLog, CREATE_TABLE};
use offshoot_e2e::disk::du_bytes;
use offshoot_e2e::loopfs::LoopFs;
use offshoot_e2e::Daemon;
use std::os::fd::AsRawFd;
use std::process::Command;
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
/// How long a client may take to be told that the disk is full: the
/// supervisor first restarts the compute five times, and each time its
/// postmaster goes through PostgreSQL's own crash-restart cycle, in recovery
/// mode for seconds (about 70 s in all here).
const TOLD_DEADLINE: Duration = Duration::from_secs(240);
/// How long the workload may run before the disk must have filled.
const FILL_DEADLINE: Duration = Duration::from_secs(120);

/// A WAL segment's size.
const WAL_SEGMENT: u64 = 16 << 20;

/// Allocates what is left of `path`'s filesystem to a new file at `path`.
fn fill(path: &std::path::Path) {
    let file = std::fs::File::create(path).expect("create the filler");
    let (mut offset, mut step) = (0i64, 64i64 << 20);
    while step >= 4096 {
        let grown = nix::fcntl::fallocate(
            file.as_raw_fd(),
            nix::fcntl::FallocateFlags::empty(),
            offset,
            step,
        );
        match grown {
            Ok(()) => offset += step,
            Err(nix::errno::Errno::ENOSPC) => step /= 2,
            Err(e) => panic!("allocate {}: {e}", path.display()),
        }
    }
}

#[test]
fn disk_full_loses_no_acknowledged_commit() {
    let mut small: Option<LoopFs> = None;
    let mut d = Daemon::start();
    d.psql("main", &format!("{CREATE_TABLE}; checkpoint"));

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
    let clients = AckLog::new();
    let (rt, tasks) = clients.start(&url, WORKERS, 2000);
    let finished = rt.block_on(async {
        tokio::time::timeout(FILL_DEADLINE, futures_util::future::join_all(tasks)).await
    });
    drop(rt);
    let acked = clients.acked().len();
    eprintln!(
        "{acked} inserts acknowledged; the workers stopped on: {:#?}",
        clients.errors()
    );
    assert!(
        finished.is_ok(),
        "the workload still ran after {FILL_DEADLINE:?}: the disk never filled"
    );
    assert!(acked > 1000, "only {acked} inserts acknowledged");
    // PostgreSQL writes its WAL beside the page store and stops at the
    // first WAL segment (16 MiB) that does not fit; then the rest of the
    // disk fills too, as it would under any other writer.
    let left = fs.available_bytes();
    assert!(
        left < 2 * WAL_SEGMENT,
        "the workload stopped, but the filesystem still has {left} bytes of room"
    );
    let rest = home.join("ballast-rest");
    fill(&rest);
    assert_eq!(fs.available_bytes(), 0, "the filesystem still has room");

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

    // A client that connects meanwhile is told why its branch cannot start
    // (once the supervisor has given up restarting it; until then
    // PostgreSQL itself answers that it is in recovery).
    let mut told = String::new();
    let named = offshoot_e2e::wait_until(TOLD_DEADLINE, || {
        let out = d.try_psql_db("main", "postgres", "select 1");
        let refused = !out.success();
        told = out.stderr;
        refused && told.contains("page store is full")
    });
    assert!(named, "a client on a full disk was told: {told}");
    assert!(
        d.daemon_output().contains("No space left on device"),
        "the daemon never met a full disk"
    );

    // Room again, the daemon still running: the branch comes back by
    // PostgreSQL's crash recovery.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    std::fs::remove_file(&rest).expect("remove the rest's ballast");
    let freed = std::time::Instant::now();
    let back = offshoot_e2e::wait_until(RECOVERY_DEADLINE, || {
        d.try_psql_db("main", "postgres", "select 1").success()
    });
    assert!(
        back,
        "main did not come back within {RECOVERY_DEADLINE:?} of room being freed"
    );
    eprintln!("main answered {:?} after the ballast went", freed.elapsed());
    let present = clients.assert_present(&d, "main", "to a full disk");

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
        // A line the full disk cut short: the compute supervisor ends it
        // with its cut mark before its next note (the restart note, or the
        // next start's banner). The cut falls anywhere, right after the
        // severity too ("FATAL: [offshoot: line cut short]").
        r"(FATAL|PANIC):.* \[offshoot: line cut short\]$",
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
