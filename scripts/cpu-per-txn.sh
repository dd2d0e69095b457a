#!/usr/bin/env bash
# CPU per pgbench TPC-B transaction, split by process, for a native cluster
# and a branch run one after the other (docs/benchmarks.md, "Where a
# branch's extra CPU goes").
#
# usage: scripts/cpu-per-txn.sh NATIVE_DATADIR BRANCH_DATADIR DAEMON_PID SECONDS ROUNDS
#
# Both clusters must be running and loaded (`pgbench -i`); BRANCH_DATADIR is
# the branch's mount (its `postmaster.pid` names the postmaster and its
# socket directory). pgbench runs as the `postgres` user when this script
# runs as root; set PGPASSWORD for the branch (offshoot's
# secrets/postgres.password). Each line is one run: tps, then µs of CPU per
# transaction of the daemon, the native and the branch PostgreSQL (each
# postmaster with its reaped children: a branch's backends are often
# reaped after the sample, and then show in the next run's line), pgbench,
# kernel threads, the whole machine, and context switches per transaction.
# SETTLE=1 runs `sync` (and waits 2 s) before each run, so that no run pays
# for the writeback of pages the previous one dirtied.
set -euo pipefail

[ $# -eq 5 ] || { sed -n '6p' "$0" >&2; exit 2; }
native=$1 branch=$2 daemon=$3 seconds=$4 rounds=$5
bin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

pm_pid() { sed -n 1p "$1/postmaster.pid"; }
pm_socket() { sed -n 5p "$1/postmaster.pid"; }
# utime + stime + cutime + cstime, in clock ticks
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
kernel_threads() {
  ps -eo pid=,ppid= | awk '$2 == 2 {print $1}' | while read -r p; do
    awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true
  done | awk '{s += $1} END {print s + 0}'
}
machine() { awk '/^cpu /{c = $2 + $3 + $4 + $7 + $8} /^ctxt/{x = $2} END {print c, x}' /proc/stat; }
sample() { echo "$(ticks "$daemon") $(ticks "$npm") $(ticks "$bpm") $(kernel_threads) $(machine)"; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "PGPASSWORD='${PGPASSWORD:-}' $*"; else sh -c "$*"; fi; }

npm=$(pm_pid "$native") bpm=$(pm_pid "$branch")
hz=$(getconf CLK_TCK)
for round in $(seq 1 "$rounds"); do
  for side in native branch; do
    if [ "$side" = native ]; then socket=$(pm_socket "$native"); else socket=$(pm_socket "$branch"); fi
    if [ -n "${SETTLE:-}" ]; then sync; sleep 2; fi
    read -r -a a <<<"$(sample)"
    out=$(as_pg "/usr/bin/time -f 'pgbench-cpu %U %S' $bin/pgbench -n -h $socket -c 4 -j 2 -T $seconds postgres" 2>&1)
    sleep 1
    read -r -a b <<<"$(sample)"
    tps=$(awk '/^tps/{printf "%d", $3}' <<<"$out")
    n=$(awk '/processed:/{split($NF, x, "/"); print x[1]}' <<<"$out")
    pgb=$(awk '/^pgbench-cpu/{print $2 + $3}' <<<"$out")
    us() { echo $(( ($2 - $1) * 1000000 / hz / n )); }
    printf '%s round %d %-6s tps %5d  us/txn: daemon %3d native-pg %3d branch-pg %3d pgbench %3d kthreads %3d all %3d  ctxsw/txn %s\n' \
      "$(date +%T)" "$round" "$side" "$tps" \
      "$(us "${a[0]}" "${b[0]}")" "$(us "${a[1]}" "${b[1]}")" "$(us "${a[2]}" "${b[2]}")" \
      "$(awk -v s="$pgb" -v n="$n" 'BEGIN {printf "%d", s * 1000000 / n}')" \
      "$(us "${a[3]}" "${b[3]}")" "$(us "${a[4]}" "${b[4]}")" \
      "$(awk -v x="$(( b[5] - a[5] ))" -v n="$n" 'BEGIN {printf "%.1f", x / n}')"
  done
done
