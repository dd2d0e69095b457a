#!/usr/bin/env bash
# How long does `branch create` take on a running 1 GiB database while it
# takes writes? (docs/benchmarks.md, "Latest runs: the WAL beside the page
# store".)
#
# usage: scripts/create-under-load.sh CREATES [HOME]
#
# Runs as root from the repository with a release build of `offshoot` (or
# the one OFFSHOOT names).
# Starts `offshoot up` on a fresh HOME (default /var/tmp/cu, removed first),
# loads `main` with `pgbench -i -s 68` (1 GiB; SCALE=340 for 5 GiB), then,
# while TPC-B (4 clients) runs on `main`, creates CREATES branches of `main`
# one a second through the HTTP API and prints each create's time as the API
# client saw it (curl's total), then the median and the largest, and how
# many WAL segments `main` had. Stops the daemon at the end.
set -euo pipefail
creates=${1:?usage: scripts/create-under-load.sh CREATES [HOME]}
home=${2:-/var/tmp/cu}
offshoot=${OFFSHOOT:-./target/release/offshoot}
bin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
rm -rf "$home" && mkdir -p "$home"
setsid "$offshoot" up --home "$home" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
  --idle-timeout 0s > "$home.daemon.log" 2>&1 &
for _ in $(seq 60); do "$offshoot" --home "$home" status > /dev/null 2>&1 && break; sleep 1; done
password=$(cat "$home/secrets/postgres.password")
token=$(cat "$home/secrets/api.token")
api=$(grep -o '"api_addr": *"[^"]*"' "$home/daemon.json" | cut -d'"' -f4)
main=$("$offshoot" --home "$home" connection-string main)
as_pg() { su postgres -c "PGPASSWORD='$password' $*"; }
as_pg "$bin/pgbench -i -q -s ${SCALE:-68} '$main'" > /dev/null 2>&1
as_pg "$bin/pgbench -n -c 4 -j 2 -T $((creates + 10)) '$main'" > "$home.pgbench.log" 2>&1 &
load=$!
sleep 5
times=$home.creates
for i in $(seq "$creates"); do
  curl -s -o /dev/null -w '%{time_total}\n' -X POST \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"c$i\",\"parent\":\"main\"}" "http://$api/v1/branches"
  sleep 1
done | awk '{printf "%.2f\n", $1 * 1000}' > "$times"
echo "create times (ms): $(tr '\n' ' ' < "$times")"
sort -n "$times" | awk '{all[NR] = $1}
  END { printf "median %.2f ms, max %.2f ms over %d creates\n", all[int((NR + 1) / 2)], all[NR], NR }'
wait "$load"
grep -E '^tps' "$home.pgbench.log"
echo "WAL segments of main: $(ls "$home/wal/1" 2>/dev/null | grep -cE '^[0-9A-F]{24}$' || true)"
kill -INT "$(grep -o '"pid": *[0-9]*' "$home/daemon.json" | grep -o '[0-9]*$')"
while [ -e "$home/daemon.json" ]; do sleep 1; done
