#!/usr/bin/env bash
# One round of the pagefs harness with a bpftrace program attached for 12 s,
# 4 s into the pagefs side's TPC-B run (docs/benchmarks.md, "Where commits
# wait").
#
# usage: scripts/flush-stalls/run.sh PROGRAM.bt OUT [HARNESS ARGS]
#
# Runs as root from the repository with a release build of the harness
# (`cargo build --release -p offshoot-pagefs --example pgbench_vs_native`)
# and bpftrace installed. HARNESS ARGS default to `68 4 20 /var/tmp/pv 1`
# (that directory must exist); the harness's own report goes to OUT.log,
# bpftrace's to OUT.
set -euo pipefail
program=$1 out=$2
shift 2
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(68 4 20 /var/tmp/pv 1)
./target/release/examples/pgbench_vs_native "${args[@]}" > "$out.log" 2>&1 &
harness=$!
while kill -0 "$harness" 2>/dev/null; do
  p=$(pgrep -f "pgbench -h .*sock-pagefs .* -T" | head -1 || true)
  if [ -n "$p" ] && ! tr '\0' ' ' < "/proc/$p/cmdline" | grep -q -- " -S "; then
    sleep 4
    # stall.bt filters on the harness's pid, its one positional parameter.
    if grep -q '\$1' "$program"; then
      bpftrace "$program" "$harness" > "$out" 2>&1
    else
      bpftrace "$program" > "$out" 2>&1
    fi
    break
  fi
  sleep 0.5
done
wait "$harness"
