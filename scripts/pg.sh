#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the tests, under target/pg, run as
# the `postgres` user and reached on 127.0.0.1 only.
#
#   scripts/pg.sh start   installs PostgreSQL 15 if missing, creates the
#                         cluster if needed, starts it, prints its URL
#   scripts/pg.sh url     prints the URL of the running cluster
#   scripts/pg.sh stop    stops it (the data stays until `clean`)
#   scripts/pg.sh restart stops and starts it (outage tests)
#   scripts/pg.sh clean   stops it and deletes its data
#
# CALLBACK_STORE_PG_PORT (default 55432) and CALLBACK_STORE_PG_DIR (default
# target/pg) give a second cluster, e.g. for a test that restarts its own.
#
# A cluster that cannot start fails loudly: the PostgreSQL suites never
# skip in silence.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${CALLBACK_STORE_PG_PORT:-55432}
dir=${CALLBACK_STORE_PG_DIR:-$PWD/target/pg}
data=$dir/data
log=$dir/server.log
bin=/usr/lib/postgresql/15/bin

fail() { echo "scripts/pg.sh: $*" >&2; exit 1; }

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

install() {
    [ -x "$bin/initdb" ] && return
    echo "installing PostgreSQL 15 (Debian's postgresql-15)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || fail "apt-get update failed: cannot install PostgreSQL 15"
    apt-get install -y -qq postgresql-15 >/dev/null || fail "apt-get install postgresql-15 failed"
    [ -x "$bin/initdb" ] || fail "postgresql-15 is installed but $bin/initdb is missing"
}

url() { echo "postgres://postgres@127.0.0.1:$port/postgres"; }

running() { as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
    install
    id postgres >/dev/null 2>&1 || fail "there is no postgres user (the postgresql-15 package creates it)"
    mkdir -p "$dir"
    chown postgres: "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
        as_postgres "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; fail "initdb failed (log above)"; }
        # Throwaway data: no fsync. Enough connections for the fleet tests
        # (3 servers and 8 workers, each with its pool).
        cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
CONF
    fi
    if ! running; then
        as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
            || { tail -n 30 "$log" >&2 || true; fail "PostgreSQL 15 did not start on 127.0.0.1:$port (server log above)"; }
    fi
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" || fail "PostgreSQL started but does not answer on 127.0.0.1:$port"
    url
}

stop() {
    if [ -f "$data/PG_VERSION" ] && running; then
        as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
}

case "${1:-}" in
    start) start ;;
    url) running || fail "the test cluster is not running (scripts/pg.sh start)"; url ;;
    stop) stop ;;
    restart) stop; start >/dev/null; url ;;
    clean) stop; rm -rf "$dir" ;;
    *) fail "usage: scripts/pg.sh start|url|stop|restart|clean" ;;
esac
