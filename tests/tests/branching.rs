//! Branches taken from a database under write load are consistent images,
//! isolated from their parent in both directions, and cost nothing to keep
//! apart; deleting and resetting branches.

use offshoot_e2e::disk::du_bytes;
use offshoot_e2e::pgbench::{assert_invariant, processed, state};
use offshoot_e2e::{wait_until, Daemon};
use std::time::Duration;

/// How long a branch create may take on a busy 2-core machine (the design
/// promises milliseconds; this only catches work proportional to data size).
const CREATE_BUDGET: Duration = Duration::from_secs(5);

fn table_exists(d: &Daemon, branch: &str, table: &str) -> bool {
    d.psql(
        branch,
        &format!("select to_regclass('{table}') is not null"),
    ) == "t"
}

/// Branches CHILD off PARENT while pgbench writes to PARENT, then checks the
/// child's consistency and isolation both ways.
fn branch_while_writing(d: &Daemon, parent: &str, child: &str) {
    let load = d.spawn_pgbench(
        parent,
        &["-c", "4", "-j", "2", "-T", "15", "-n"],
        Duration::from_secs(120),
    );
    std::thread::sleep(Duration::from_secs(4));
    let took = d.create_branch(child, Some(parent));
    eprintln!("branch create {child} from {parent} under load: {took:?}");
    assert!(
        took < CREATE_BUDGET,
        "creating {child} took {took:?} (budget {CREATE_BUDGET:?})"
    );

    let at_fork = assert_invariant(d, child);
    assert!(
        at_fork.history > 0,
        "{child} has no pgbench history: {at_fork:?}"
    );

    let out = load.wait();
    assert!(out.success(), "pgbench on {parent} failed: {}", out.stderr);
    let parent_txns = processed(&out.stdout);
    let parent_now = assert_invariant(d, parent);
    assert!(
        parent_now.history > at_fork.history,
        "{parent} kept writing after the fork, yet has {} history rows vs {} on {child}",
        parent_now.history,
        at_fork.history
    );
    assert!(parent_txns > 0);

    // Writes on the parent after the fork stay out of the child.
    let child_now = assert_invariant(d, child);
    assert_eq!(
        child_now, at_fork,
        "{child} changed while only {parent} was written"
    );
    let parent_marker = format!("after_fork_{}", parent.replace('/', "_"));
    d.psql(
        parent,
        &format!("create table {parent_marker} (v int); insert into {parent_marker} values (1)"),
    );
    assert!(!table_exists(d, child, &parent_marker));

    // Writes on the child stay out of the parent.
    let child_marker = format!("only_on_{}", child.replace('/', "_"));
    d.psql(
        child,
        &format!("create table {child_marker} as select g from generate_series(1, 1000) g"),
    );
    let child_run = d.pgbench(child, &["-c", "2", "-t", "50", "-n"]);
    assert_eq!(processed(&child_run), 100);
    let child_after = assert_invariant(d, child);
    assert_eq!(child_after.history, at_fork.history + 100);
    assert!(!table_exists(d, parent, &child_marker));
    assert_eq!(
        state(d, parent),
        parent_now,
        "{child}'s writes reached {parent}"
    );
}

#[test]
fn branch_under_load() {
    let d = Daemon::start();
    d.pgbench("main", &["-i", "-s", "2", "-q"]);
    branch_while_writing(&d, "main", "child");
    branch_while_writing(&d, "child", "grandchild");
    assert_invariant(&d, "main");
}

/// A branch of a branch that has never started takes over the WAL its
/// parent got at create (cut, not yet its own); each then starts on a WAL
/// of its own, and neither sees the other's writes or main's later ones.
#[test]
fn branch_of_a_branch_never_started() {
    let d = Daemon::start();
    d.psql(
        "main",
        "create table t (v int); insert into t select generate_series(1, 100)",
    );
    d.create_branch("idle", Some("main"));
    d.psql("main", "insert into t values (1000)");
    d.create_branch("idlekid", Some("idle"));

    assert_eq!(d.psql("idlekid", "select count(*) from t"), "100");
    d.psql("idlekid", "insert into t values (-1)");
    assert_eq!(d.psql("idle", "select count(*) from t"), "100");
    d.psql("idle", "insert into t values (-2), (-3)");
    assert_eq!(
        d.psql("idlekid", "select count(*), min(v) from t"),
        "101|-1"
    );
    assert_eq!(d.psql("idle", "select count(*), min(v) from t"), "102|-3");
    assert_eq!(d.psql("main", "select count(*), max(v) from t"), "101|1000");
}

#[test]
fn drop_and_gc() {
    let d = Daemon::start();
    d.psql("main", "create table base_data as select g, repeat('b', 100) as pad from generate_series(1, 10000) g");
    d.create_branch("parent", Some("main"));
    d.psql("parent", "create table inherited as select g, md5(g::text) as h from generate_series(1, 5000) g; checkpoint");
    d.create_branch("kid", Some("parent"));

    let before_fat = du_bytes(&d.home().join("store"));
    d.psql(
        "parent",
        "create table fat as select g, repeat(md5(g::text), 16) as pad from generate_series(1, 20000) g; checkpoint",
    );
    let with_fat = du_bytes(&d.home().join("store"));
    let grown = with_fat.saturating_sub(before_fat);
    eprintln!("store: {before_fat} bytes before, {with_fat} after writing ~12 MB on parent");
    assert!(
        grown > 8 << 20,
        "writing ~12 MB on a branch grew the store by only {grown} bytes"
    );

    d.cli_ok(&["branch", "delete", "parent"]);
    let list = d.cli_json(&["branch", "list"]);
    let names: Vec<&str> = list["branches"]
        .as_array()
        .unwrap_or_else(|| panic!("no branches array in {list}"))
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["kid", "main"], "branches after deleting parent");
    let target = with_fat - grown / 2;
    let mut now = with_fat;
    let shrank = wait_until(Duration::from_secs(60), || {
        now = du_bytes(&d.home().join("store"));
        now <= target
    });
    assert!(
        shrank,
        "store did not shrink after deleting a branch: {with_fat} bytes with it, {now} 60 s after the delete (wanted <= {target})"
    );
    eprintln!("store after delete and gc: {now} bytes");

    // The grandchild still reads what it inherited through its deleted parent.
    assert_eq!(d.psql("kid", "select count(*) from base_data"), "10000");
    assert_eq!(
        d.psql(
            "kid",
            "select count(*), sum(g) from inherited where h = md5(g::text)"
        ),
        "5000|12502500"
    );
    assert!(!table_exists(&d, "kid", "fat"));
    d.psql(
        "kid",
        "insert into inherited select g, md5(g::text) from generate_series(5001, 6000) g",
    );
    assert_eq!(d.psql("kid", "select count(*) from inherited"), "6000");
}

#[test]
fn reset() {
    let d = Daemon::start();
    d.psql(
        "main",
        "create table t (v int); insert into t select generate_series(1, 10)",
    );
    d.create_branch("dev", Some("main"));
    let url = d.connection_string("dev", "postgres");

    let out = d.psql_url(
        &url,
        "insert into t select generate_series(11, 20); create table only_dev (x int)",
    );
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(d.psql("dev", "select count(*) from t"), "20");
    d.psql("main", "insert into t values (100)");

    d.cli_ok(&["branch", "reset", "dev"]);

    assert_eq!(
        d.connection_string("dev", "postgres"),
        url,
        "reset changed the connection string"
    );
    let out = d.psql_url(
        &url,
        "select count(*), sum(v), to_regclass('only_dev') is null from t",
    );
    assert!(
        out.success(),
        "the old connection string stopped working after reset: {}",
        out.stderr
    );
    assert_eq!(
        out.stdout.trim(),
        "11|155|t",
        "reset did not bring dev to main's current state"
    );
    assert_eq!(d.psql("main", "select count(*) from t"), "11");
}

/// A WAL position (`X/Y`, as PostgreSQL prints it) as a number.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text
        .trim()
        .split_once('/')
        .unwrap_or_else(|| panic!("not an LSN: {text:?}"));
    let part = |p: &str| u64::from_str_radix(p, 16).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    (part(hi) << 32) | part(lo)
}

/// Checkpoints main has run on request (`CHECKPOINT` and the like).
fn requested_checkpoints(d: &Daemon) -> u64 {
    d.psql("main", "select checkpoints_req from pg_stat_bgwriter")
        .parse()
        .expect("checkpoints_req")
}

/// By default a create from a running parent is metadata only: the parent
/// is not checkpointed, and the branch recovers from the parent's last
/// checkpoint. With `--checkpoint-parent`, a branch taken right after its
/// parent wrote a lot (a bulk load, a large migration) starts from a
/// checkpoint the daemon asked the parent for: its recovery replays next to
/// nothing. A parent that wrote little since its last checkpoint is not
/// asked even then.
#[test]
fn checkpoint_parent_makes_a_branch_of_a_parent_that_just_wrote_much_recover_from_a_fresh_checkpoint(
) {
    let mut d = Daemon::start();
    d.psql("main", "checkpoint");
    // About 50 MB of WAL, well past the daemon's 16 MiB threshold and far
    // below what would make PostgreSQL checkpoint on its own.
    d.psql(
        "main",
        "create table big as select g, repeat('x', 200) as pad from generate_series(1, 200000) g",
    );
    let asked_before = requested_checkpoints(&d);
    d.create_branch("plain", Some("main"));
    assert_eq!(d.psql("plain", "select count(*) from big"), "200000");
    assert_eq!(
        requested_checkpoints(&d),
        asked_before,
        "a create without --checkpoint-parent checkpointed main"
    );

    let written = lsn(&d.psql("main", "select pg_current_wal_lsn()"));
    d.cli_ok(&[
        "branch",
        "create",
        "copy",
        "--parent",
        "main",
        "--checkpoint-parent",
    ]);
    assert_eq!(d.psql("copy", "select count(*) from big"), "200000");
    assert_eq!(
        requested_checkpoints(&d),
        asked_before + 1,
        "main was not checkpointed before the copy"
    );
    let log = d.branch_log("copy");
    let redo_start = log
        .lines()
        .find_map(|l| l.split_once("redo starts at ").map(|(_, at)| lsn(at)))
        .unwrap_or_else(|| panic!("no crash recovery in the copy's log:\n{log}"));
    assert!(
        redo_start >= written,
        "the copy replayed from {redo_start:X}, before main's write ended at {written:X}"
    );

    // Little written since: the next copy is taken without a checkpoint.
    d.psql("main", "insert into big values (0, 'y')");
    let asked_before = requested_checkpoints(&d);
    d.cli_ok(&[
        "branch",
        "create",
        "copy2",
        "--parent",
        "main",
        "--checkpoint-parent",
    ]);
    assert_eq!(d.psql("copy2", "select count(*) from big"), "200001");
    assert_eq!(
        requested_checkpoints(&d),
        asked_before,
        "main was checkpointed although it wrote little"
    );
    d.stop().assert_clean();
    d.check_logs();
}
