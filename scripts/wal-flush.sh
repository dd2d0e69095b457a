#!/usr/bin/env bash
# What a WAL flush costs PostgreSQL on a branch and natively, side by side
# (docs/benchmarks.md, "What a commit's flush costs").
#
# usage: scripts/wal-flush.sh NATIVE_DATADIR BRANCH_DATADIR DATABASE SECONDS ROUNDS
#
# Both clusters must be running, loaded (`pgbench -i`) in DATABASE, and have
# `track_wal_io_timing = on` (ALTER SYSTEM, then pg_reload_conf()). Each
# round runs pgbench TPC-B (4 clients) on the native cluster and then on the
# branch, resetting `pg_stat_wal` before each run. Each line is one run: tps,
# WAL writes and syncs, and the average time PostgreSQL spent per WAL write
# in write() and in the sync that followed it (natively write + fdatasync;
# on a branch, whose computes use `open_datasync`, the sync is inside the
# write). pgbench runs as the `postgres` user when this script runs as root;
# set PGPASSWORD for the branch (offshoot's secrets/postgres.password).
set -euo pipefail

[ $# -eq 5 ] || { sed -n '5p' "$0" >&2; exit 2; }
native=$1 branch=$2 db=$3 seconds=$4 rounds=$5
bin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

pm_socket() { sed -n 5p "$1/postmaster.pid"; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "PGPASSWORD='${PGPASSWORD:-}' $*"; else sh -c "$*"; fi; }
sql() { as_pg "$bin/psql -h $1 -qAt -F ' ' -c \"$2\" $db"; }

for round in $(seq 1 "$rounds"); do
  for side in native branch; do
    if [ "$side" = native ]; then socket=$(pm_socket "$native"); else socket=$(pm_socket "$branch"); fi
    sql "$socket" "SELECT pg_stat_reset_shared('wal')" >/dev/null
    out=$(as_pg "$bin/pgbench -n -h $socket -c 4 -j 2 -T $seconds $db" 2>&1)
    read -r writes syncs write_ms sync_ms <<<"$(sql "$socket" \
      "SELECT wal_write, wal_sync, wal_write_time, wal_sync_time FROM pg_stat_wal")"
    tps=$(awk '/^tps/{printf "%d", $3}' <<<"$out")
    awk -v r="$round" -v s="$side" -v t="$tps" -v w="$writes" -v y="$syncs" \
      -v wm="$write_ms" -v sm="$sync_ms" 'BEGIN {
        printf "round %d %-6s tps %5d  WAL writes %6d syncs %6d  us per write: write %4.0f sync %4.0f both %4.0f\n",
          r, s, t, w, y, wm * 1000 / w, sm * 1000 / w, (wm + sm) * 1000 / w }'
  done
done
