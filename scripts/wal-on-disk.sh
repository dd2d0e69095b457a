#!/usr/bin/env bash
# An upper bound for "the WAL beside the page store" (docs/benchmarks.md,
# "What is left of the TPC-B gap"): PostgreSQL with its data directory on a
# pagefs mount of a fresh store but its WAL on the plain disk (`initdb
# --waldir`), against native PostgreSQL on the same disk; pgbench TPC-B
# (scale 68, 4 clients, 30 s runs), the side that runs first alternating.
# Both servers keep PostgreSQL's default settings. No branching is involved:
# this measures what a commit costs when it does not cross FUSE.
#
# usage: scripts/wal-on-disk.sh ROUNDS
#
# Runs as root from the repository with a release build of the
# `mount_branch` example (`cargo build --release -p offshoot-pagefs
# --example mount_branch`). Uses /var/tmp/mb and /var/tmp/nat (removed first).
set -euo pipefail
BIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
M=/var/tmp/mb; N=/var/tmp/nat
ROUNDS=${1:-3}
rm -rf $M $N; mkdir -p $M/mnt $M/wal $M/store $N; chown postgres $M $M/wal $N; chmod 755 $M
# The example serves the mount until its stdin closes: hold a fifo open.
mkfifo $M/stdin
./target/release/examples/mount_branch $M/store $M/mnt < $M/stdin > $M/mount.log 2>&1 &
exec 3> $M/stdin
for i in $(seq 30); do mount | grep -q " $M/mnt " && break; sleep 0.5; done
chown postgres $M/mnt; chmod 700 $M/mnt
su postgres -c "$BIN/initdb -D $M/mnt/data --waldir=$M/wal -A trust -U postgres >/dev/null"
su postgres -c "$BIN/initdb -D $N/data -A trust -U postgres >/dev/null"
su postgres -c "$BIN/pg_ctl -D $N/data -o '-c listen_addresses= -c unix_socket_directories=$N -c port=5499' -l $N/log start >/dev/null"
su postgres -c "$BIN/pg_ctl -D $M/mnt/data -o '-c listen_addresses= -c unix_socket_directories=$M -c port=5498' -l $M/pg.log start >/dev/null"
ls -la $M/mnt/data | grep pg_wal
su postgres -c "$BIN/pgbench -i -q -s 68 -h $N -p 5499 postgres" >/dev/null 2>&1
su postgres -c "$BIN/pgbench -i -q -s 68 -h $M -p 5498 postgres" >/dev/null 2>&1
run() { su postgres -c "$BIN/pgbench -n -h $1 -p $2 -c 4 -j 2 -T 30 postgres" 2>&1 | awk '/^tps/{printf "%d", $3}'; }
for r in $(seq $ROUNDS); do
  if [ $((r % 2)) = 1 ]; then a=$(run $N 5499); b=$(run $M 5498); else b=$(run $M 5498); a=$(run $N 5499); fi
  echo "round $r native $a pagefs-data+ext4-wal $b ratio $(echo "scale=3; $b/$a" | bc)"
done
su postgres -c "$BIN/pg_ctl -D $M/mnt/data stop -m fast" >/dev/null
su postgres -c "$BIN/pg_ctl -D $N/data stop -m fast" >/dev/null
exec 3>&-
wait
mount | grep -c " $M/mnt " || true
