//! A DDL-heavy workload on a branch (what a migration does): no ERROR in the
//! PostgreSQL log, indexes that check out with amcheck, and `main` untouched.

use offshoot_e2e::Daemon;

#[test]
fn ddl_workload() {
    let d = Daemon::start();
    d.psql(
        "main",
        "create table keep (v int); insert into keep values (1)",
    );
    d.create_branch("migrate", Some("main"));
    let b = "migrate";
    for sql in [
        "create table t1 (id serial primary key, a int, b text)",
        "insert into t1 (a, b) select g, md5(g::text) from generate_series(1, 200000) g",
        "create index t1_a on t1 (a)",
        "alter table t1 add column c bigint default 7",
        "alter table t1 alter column b set not null",
        "alter table t1 rename column a to a2",
        "create table t2 as select * from t1 where id % 3 = 0",
        "alter table t2 add primary key (id)",
        "drop index t1_a",
        "update t1 set c = c + id",
        "vacuum full t1",
        "create index concurrently t1_c on t1 (c)",
        "drop table t2",
        "alter table keep add column w text default 'x'",
        "create database app",
    ] {
        d.psql(b, sql);
    }
    d.psql_db(
        b,
        "app",
        "create table in_app as select g from generate_series(1, 10000) g",
    );
    assert_eq!(d.psql_db(b, "app", "select count(*) from in_app"), "10000");
    d.psql(b, "drop database app");
    d.psql(b, "checkpoint");

    assert_eq!(
        d.psql(b, "select count(*), sum(c) from t1"),
        format!("200000|{}", 7 * 200_000 + 200_000i64 * 200_001 / 2)
    );
    assert_eq!(
        d.psql(
            b,
            "select indisvalid from pg_index where indexrelid = 't1_c'::regclass"
        ),
        "t"
    );
    d.psql(b, "create extension amcheck");
    d.psql(
        b,
        "select bt_index_check('t1_c', true), bt_index_check('t1_pkey', true)",
    );
    assert_eq!(
        d.psql(b, "select count(*) from pg_database where datname = 'app'"),
        "0"
    );

    // main saw none of it.
    assert_eq!(d.psql("main", "select to_regclass('t1') is null"), "t");
    assert_eq!(
        d.psql(
            "main",
            "select count(*) from information_schema.columns where table_name = 'keep'"
        ),
        "1"
    );
}
