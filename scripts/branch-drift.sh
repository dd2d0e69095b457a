#!/usr/bin/env bash
# Does a branch slow down as TPC-B runs on it? (docs/benchmarks.md, "Where
# commits wait", the second of the two things measured that evening; and,
# with CHECKPOINT_AFTER, "Latest runs", night.)
#
# usage: scripts/branch-drift.sh RUNS [HOME]
#
# Runs as root from the repository with a release build of `offshoot`.
# Starts `offshoot up` on a fresh HOME (default /var/tmp/h, removed first),
# loads `main` with `pgbench -i -s 68`, creates branch `b1`, wakes it, reads
# its accounts table once, then runs RUNS TPC-B runs of 30 s (4 clients) on
# b1's compute socket back to back. Each line: tps (transactions / 30 s),
# the WAL the run wrote per transaction, then the store's layer files, the
# page cache and the store's size after the run. With CHECKPOINT_AFTER=N
# set, a CHECKPOINT runs on b1 after run N (to see what a checkpoint's
# start does to the runs after it). With NATIVE_BETWEEN=1, a plain
# PostgreSQL cluster in HOME-native, loaded the same way, runs a TPC-B run
# of 30 s before each of b1's (as `offshoot bench` alternates the sides),
# and each line starts with its tps and WAL per transaction. Stops the
# daemon (and the native cluster) at the end.
set -euo pipefail
runs=${1:?usage: scripts/branch-drift.sh RUNS [HOME]}
home=${2:-/var/tmp/h}
offshoot=./target/release/offshoot
bin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
rm -rf "$home" && mkdir -p "$home"
# Never stopped for idleness: runs on a compute's own socket are not
# sessions the daemon counts.
setsid "$offshoot" up --home "$home" --idle-timeout 0s > "$home.daemon.log" 2>&1 &
for _ in $(seq 60); do "$offshoot" --home "$home" status > /dev/null 2>&1 && break; sleep 1; done
password=$(cat "$home/secrets/postgres.password")
as_pg() { su postgres -c "PGPASSWORD='$password' $*"; }
as_pg "$bin/pgbench -i -q -s 68 '$("$offshoot" --home "$home" connection-string main)'" > /dev/null 2>&1
"$offshoot" --home "$home" branch create b1 --parent main
as_pg "$bin/psql '$("$offshoot" --home "$home" connection-string b1)' -qAt -c 'select 1'" > /dev/null
datadir=$(dirname "$(ls -t "$home"/mnt/*/postmaster.pid | head -1)")
socket=$(sed -n 5p "$datadir/postmaster.pid")
# Runs SQL $2 on the server whose socket directory is $1.
psql_at() { as_pg "$bin/psql -h $1 -qAt -d postgres -c \"$2\""; }
psql_at "$socket" 'select count(*) from pgbench_accounts' > /dev/null
native=$home-native
if [ -n "${NATIVE_BETWEEN:-}" ]; then
  rm -rf "$native" && mkdir -p "$native" && chown postgres: "$native"
  as_pg "$bin/initdb -U postgres -A trust -D $native/data" > /dev/null
  as_pg "$bin/pg_ctl -w -s -D $native/data -l $native/log start \
    -o \"-c listen_addresses='' -c unix_socket_directories=$native\""
  as_pg "$bin/pgbench -i -q -s 68 -h $native postgres" > /dev/null 2>&1
fi
# One 30-s TPC-B run on the server whose socket directory is $1; prints its
# tps (transactions / 30 s) and the WAL it wrote per transaction.
tpcb() {
  local lsn txns
  lsn=$(psql_at "$1" 'select pg_current_wal_lsn()')
  txns=$(as_pg "$bin/pgbench -n -h $1 -c 4 -j 2 -T 30 postgres" 2>&1 \
    | awk '/^number of transactions actually processed/{print $NF}')
  echo "$((txns / 30)) $(psql_at "$1" "select round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn') / $txns)")"
}
for run in $(seq "$runs"); do
  if [ -n "${NATIVE_BETWEEN:-}" ]; then
    read -r ntps nwal < <(tpcb "$native")
    echo -n "native tps $ntps walB/txn $nwal | "
  fi
  read -r tps wal < <(tpcb "$socket")
  layers=$(ls "$home/store" | grep -c '^layer-')
  cached=$(awk '/^Cached:/{print int($2 / 1024)}' /proc/meminfo)
  echo "run $run tps $tps walB/txn $wal layers $layers cachedMB $cached store $(du -sm "$home/store" | cut -f1)MB"
  if [ "$run" = "${CHECKPOINT_AFTER:-}" ]; then psql_at "$socket" checkpoint && echo "checkpoint"; fi
done
[ -z "${NATIVE_BETWEEN:-}" ] || as_pg "$bin/pg_ctl -s -D $native/data -m fast stop"
pkill -INT -f "offshoot up --home $home"
