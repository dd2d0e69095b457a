#!/usr/bin/env bash
# Installs what offshoot needs at run time and in tests: the PostgreSQL server
# binaries (initdb, postgres, pgbench, psql, pg_dump), fuse3 (fusermount3,
# /dev/fuse), and the server headers the build compiles offshoot's socket
# handoff module against (postgresql-server-dev-*, which needs libkrb5-dev's
# gssapi headers). Uses apt-get when run as root or with sudo; otherwise prints the
# exact command to run. Does nothing when everything is already present.
# As root it also turns on the kernel's FUSE over io_uring (fuse.enable_uring,
# Linux 6.14+), which pagefs uses when offered (docs/pagefs.md, "Transport"),
# and loads the loop driver if it is missing (the disk-full end-to-end test
# puts a home on a small loop-mounted filesystem).
set -euo pipefail

have_pg() {
  if [ -n "${OFFSHOOT_PG_BIN:-}" ] && [ -x "$OFFSHOOT_PG_BIN/postgres" ]; then return 0; fi
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null
}
have_fuse() { command -v fusermount3 >/dev/null 2>&1 && [ -e /dev/fuse ]; }
have_headers() {
  compgen -G '/usr/include/postgresql/*/server/postgres.h' >/dev/null && [ -e /usr/include/gssapi/gssapi.h ]
}

enable_fuse_uring() {
  local param=/sys/module/fuse/parameters/enable_uring
  [ -e "$param" ] || modprobe fuse 2>/dev/null || true
  [ -e "$param" ] || return 0
  [ "$(cat "$param")" = "Y" ] && return 0
  if [ -w "$param" ]; then
    echo Y > "$param" && echo "==> FUSE over io_uring enabled ($param)"
  else
    echo "note: pagefs serves /dev/fuse; for FUSE over io_uring run: echo Y | sudo tee $param" >&2
  fi
}
enable_fuse_uring
if [ "$(id -u)" -eq 0 ] && [ ! -e /dev/loop-control ]; then
  modprobe loop 2>/dev/null || echo "note: no loop devices (modprobe loop failed); the disk-full test needs them" >&2
fi

if have_pg && have_fuse && have_headers; then exit 0; fi

packages="postgresql postgresql-contrib postgresql-server-dev-all libkrb5-dev fuse3"
if [ "$(id -u)" -eq 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  apt=(sudo apt-get)
else
  echo "offshoot needs PostgreSQL and fuse3. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y $packages" >&2
  exit 1
fi

# Debian's postgresql package would create and start a cluster on port 5432;
# offshoot runs its own servers, so ask it not to.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
  "${apt[@]:0:${#apt[@]}-1}" mkdir -p /etc/postgresql-common 2>/dev/null || mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | "${apt[@]:0:${#apt[@]}-1}" tee /etc/postgresql-common/createcluster.conf >/dev/null 2>&1 \
    || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi

echo "==> installing $packages"
"${apt[@]}" update -q
DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q $packages
have_pg || { echo "PostgreSQL server binaries still missing after install" >&2; exit 1; }
have_fuse || { echo "fuse3 (fusermount3 and /dev/fuse) still missing after install" >&2; exit 1; }
have_headers || { echo "PostgreSQL server headers still missing after install" >&2; exit 1; }
