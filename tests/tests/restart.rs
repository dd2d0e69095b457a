//! A pgbench workload on `main` survives a clean stop and start of the daemon.

use offshoot_e2e::pgbench::{assert_invariant, processed};
use offshoot_e2e::Daemon;

#[test]
fn init_pgbench_restart() {
    let mut d = Daemon::start();
    d.pgbench("main", &["-i", "-s", "5", "-q"]);
    let run = d.pgbench("main", &["-c", "4", "-j", "2", "-T", "10"]);
    let txns = processed(&run);
    assert!(txns > 0, "pgbench processed no transaction:\n{run}");

    let before = assert_invariant(&d, "main");
    assert_eq!(before.accounts, 500_000);
    assert_eq!(before.branches, 5);
    assert_eq!(before.tellers, 50);
    assert_eq!(before.history, txns as i64);

    let stop = d.stop();
    eprintln!("clean stop took {:?}", stop.elapsed);
    stop.assert_clean();
    d.start_again();

    let after = assert_invariant(&d, "main");
    assert_eq!(after, before, "data changed across a clean restart");
    d.check_logs();
}
