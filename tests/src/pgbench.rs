//! pgbench's bookkeeping invariant: every TPC-B-like transaction adds the
//! same delta to one account, one teller, one branch and one history row, so
//! on any consistent image sum(abalance) = sum(bbalance) = sum(tbalance) =
//! sum(delta). A torn or mixed image of the data directory breaks it.

use crate::Daemon;

/// The four sums and the row counts of a pgbench database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgbenchState {
    pub sum_abalance: i64,
    pub sum_bbalance: i64,
    pub sum_tbalance: i64,
    pub sum_delta: i64,
    pub accounts: i64,
    pub branches: i64,
    pub tellers: i64,
    pub history: i64,
}

const QUERY: &str = "select \
    (select coalesce(sum(abalance),0) from pgbench_accounts), \
    (select coalesce(sum(bbalance),0) from pgbench_branches), \
    (select coalesce(sum(tbalance),0) from pgbench_tellers), \
    (select coalesce(sum(delta),0) from pgbench_history), \
    (select count(*) from pgbench_accounts), \
    (select count(*) from pgbench_branches), \
    (select count(*) from pgbench_tellers), \
    (select count(*) from pgbench_history)";

/// Reads the sums and counts on BRANCH (database `postgres`) in one snapshot.
pub fn state(d: &Daemon, branch: &str) -> PgbenchState {
    let out = d.psql(branch, QUERY);
    let v: Vec<i64> = out
        .split('|')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|e| panic!("pgbench state on {branch}: {e} in {out:?}"))
        })
        .collect();
    assert_eq!(v.len(), 8, "pgbench state on {branch}: {out:?}");
    PgbenchState {
        sum_abalance: v[0],
        sum_bbalance: v[1],
        sum_tbalance: v[2],
        sum_delta: v[3],
        accounts: v[4],
        branches: v[5],
        tellers: v[6],
        history: v[7],
    }
}

/// Reads the state and panics unless the four sums agree.
pub fn assert_invariant(d: &Daemon, branch: &str) -> PgbenchState {
    let s = state(d, branch);
    assert!(
        s.sum_abalance == s.sum_bbalance
            && s.sum_bbalance == s.sum_tbalance
            && s.sum_tbalance == s.sum_delta,
        "pgbench invariant broken on {branch}: {s:?}"
    );
    s
}

/// The number pgbench reports as "number of transactions actually processed".
pub fn processed(output: &str) -> u64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no transaction count in pgbench output:\n{output}"))
}
