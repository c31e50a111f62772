#!/usr/bin/env bash
# The one implementation of a private Postgres cluster, used by stack.sh,
# test.sh and the end-to-end tests.
#
#   scripts/pg-cluster.sh init   DIR PORT   create the cluster in DIR unless it exists
#   scripts/pg-cluster.sh start  DIR PORT   start it (no-op if already running)
#   scripts/pg-cluster.sh stop   DIR PORT   stop it (fast shutdown; no-op if stopped)
#   scripts/pg-cluster.sh status DIR PORT   exit 0 if running and accepting connections
#   scripts/pg-cluster.sh url    DIR PORT   print the superuser URL for it
#
# With JASIYO_PG_EPHEMERAL=1, init makes a throwaway cluster for tests: no
# fsync, no synchronous commit (a crash loses data; tests do not care).
#
# The cluster belongs to the `postgres` user (Postgres refuses to run as root),
# listens on 127.0.0.1:PORT only and has no Unix socket. The superuser
# `postgres` gets a random password, kept in DIR/jasiyo-superuser-password
# (mode 0600, owned by postgres; root reads it for `url`).
# Must run as root (it switches to postgres with runuser).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

usage() { die "usage: $0 {init|start|stop|status|url} DIR PORT"; }
[ $# -eq 3 ] || usage
cmd=$1
dir=$2
port=$3
case "$port" in '' | *[!0-9]*) die "PORT must be a number, got '$port'" ;; esac
require_root
[ -x "$PG_BIN/pg_ctl" ] || die "Postgres 15 binaries not found in $PG_BIN (apt-get install postgresql-15)"

pwfile="$dir/jasiyo-superuser-password"
as_pg() { runuser -u postgres -- "$@"; }

running() {
    [ -f "$dir/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1
}

case "$cmd" in
init)
    if [ -f "$dir/PG_VERSION" ]; then
        exit 0
    fi
    mkdir -p "$dir"
    dir=$(readlink -f "$dir")
    [ -z "$(ls -A "$dir")" ] || die "$dir exists, is not empty and is not a Postgres cluster"
    ensure_reachable postgres "$dir"
    chown postgres: "$dir"
    chmod 0700 "$dir"
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp"
    chown postgres: "$tmp"
    as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --pwfile="$tmp" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 || {
        cat "$dir.initdb.log" >&2
        die "initdb failed"
    }
    rm -f "$dir.initdb.log"
    install -m 0600 -o postgres -g postgres "$tmp" "$pwfile"
    cat >>"$dir/postgresql.conf" <<EOF

# Private cluster for Jasiyo (scripts/pg-cluster.sh): loopback only, no socket.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
EOF
    if [ "${JASIYO_PG_EPHEMERAL:-0}" = 1 ]; then
        printf '%s\n' "fsync = off" "synchronous_commit = off" "full_page_writes = off" >>"$dir/postgresql.conf"
    fi
    ;;
start)
    [ -f "$dir/PG_VERSION" ] || die "no cluster in $dir (run: $0 init $dir $port)"
    running && exit 0
    ensure_reachable postgres "$dir"
    # -p PORT overrides the port written at init, so a cluster can move ports.
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >/dev/null || {
        tail -n 20 "$dir/server.log" >&2 || true
        die "Postgres in $dir failed to start on port $port"
    }
    ;;
stop)
    [ -f "$dir/PG_VERSION" ] || exit 0
    running || exit 0
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null
    ;;
status)
    running && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"
    ;;
url)
    [ -s "$pwfile" ] || die "no password file in $dir (was it made by '$0 init'?)"
    echo "postgres://postgres:$(cat "$pwfile")@127.0.0.1:$port/postgres"
    ;;
*) usage ;;
esac
