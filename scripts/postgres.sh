#!/usr/bin/env bash
# A throw-away PostgreSQL server for the database tests (and for trying a fleet by hand).
#
#   scripts/postgres.sh start   initdb (first time) + start on 127.0.0.1, a free port; prints the URL
#   scripts/postgres.sh url     prints the URL of the running server (fails if it is not running)
#   scripts/postgres.sh status  says whether it runs
#   scripts/postgres.sh stop    stops it and deletes its directory (INFT_PG_KEEP=1 keeps the data)
#
# Safe to run twice: `start` on a running server only prints its URL, `stop` on a stopped one
# does nothing. The server lives in ${INFT_PG_DIR:-target/pg} (data/, sock/ for its unix socket,
# server.log), trusts every local connection (user `inft`, a superuser; tests create one
# database each through postgres://inft@127.0.0.1:PORT/postgres) and runs with fsync off: it is
# for tests, never for data anyone keeps. Binaries: Debian's `postgresql` package
# (/usr/lib/postgresql/<version>/bin, the newest), or INFT_PG_BIN.
#
# PostgreSQL refuses to run as root. As root the server runs as the `postgres` user the Debian
# package creates (else `nobody`; INFT_PG_USER chooses), which must be able to reach the
# directory: when it cannot (e.g. a checkout under /root), the directory moves to
# /tmp/inft-pg-<hash of the checkout path>.
#
# Usage in a test run:
#   export INFT_TEST_DATABASE_URL=$(scripts/postgres.sh start)
#   cargo test -p agent-runtime --test db --test outbox
#   scripts/postgres.sh stop
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "postgres.sh: $*" >&2; exit 1; }

bin=${INFT_PG_BIN:-}
if [ -z "$bin" ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/initdb" ] \
  || die "PostgreSQL binaries not found: apt-get install postgresql (scripts/setup.sh does), or set INFT_PG_BIN"

# Who runs the server, and how to run a command as them.
run_user=""
if [ "$(id -u)" -eq 0 ]; then
  run_user=${INFT_PG_USER:-}
  if [ -z "$run_user" ]; then
    if id -u postgres >/dev/null 2>&1; then run_user=postgres; else run_user=nobody; fi
  fi
fi
as_server() {
  if [ -n "$run_user" ]; then runuser -u "$run_user" -- "$@"; else "$@"; fi
}

dir=${INFT_PG_DIR:-$root/target/pg}
if [ -n "$run_user" ] && [ -z "${INFT_PG_DIR:-}" ]; then
  # The server user must reach $dir: every parent directory must be searchable by it.
  if ! as_server test -x "$root" 2>/dev/null; then
    dir=/tmp/inft-pg-$(printf '%s' "$root" | sha256sum | cut -c1-12)
  fi
fi
data=$dir/data
sock=$dir/sock
logfile=$dir/server.log
portfile=$dir/port

running() {
  [ -f "$data/PG_VERSION" ] && as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

url() {
  printf 'postgres://inft@127.0.0.1:%s/postgres\n' "$(cat "$portfile")"
}

free_port() {
  python3 - <<'EOF' 2>/dev/null && return
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
  # No python: probe from a random start.
  local p=$((20000 + RANDOM % 20000))
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

start() {
  if running; then
    url
    return
  fi
  mkdir -p "$dir"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data" "$sock"
    mkdir -p "$data" "$sock"
    [ -z "$run_user" ] || chown -R "$run_user" "$dir"
    chmod 700 "$data"
    as_server "$bin/initdb" -D "$data" -U inft --auth=trust --encoding=UTF8 --no-locale \
      --no-sync >"$dir/initdb.log" 2>&1 \
      || die "initdb failed, see $dir/initdb.log"
  fi
  [ -z "$run_user" ] || chown -R "$run_user" "$dir"
  local port
  port=$(free_port)
  echo "$port" >"$portfile"
  # Tests create many small databases: no fsync; enough connections for parallel test threads,
  # each holding a small pool.
  as_server "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 \
    -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null \
    || { tail -n 20 "$logfile" >&2 || true; die "the server did not start, see $logfile"; }
  url
}

stop() {
  if running; then
    as_server "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
  if [ "${INFT_PG_KEEP:-0}" != 1 ]; then rm -rf "$dir"; fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  url) running || die "not running (scripts/postgres.sh start)"; url ;;
  status) if running; then echo "running: $(url)"; else echo "stopped"; exit 1; fi ;;
  *) die "usage: $0 start|stop|url|status" ;;
esac
