#!/usr/bin/env bash
# Brings the whole Jasiyo stack up on this machine (Debian 12, as root):
#
#   scripts/stack.sh up       install what is missing, build, start Postgres,
#                             billing-daemon and FreeRADIUS with rlm_jasiyo
#   scripts/stack.sh down     stop what `up` started (by pid, nothing else)
#   scripts/stack.sh status   show what is running
#
# Everything lives in .jasiyo/ in the checkout (ignored by git): the private
# Postgres cluster, the API token, the snapshot, the raddb overlay, pid files
# and logs. Running `up` twice restarts the daemon and radiusd cleanly.
#
# Environment (defaults in brackets):
#   DATABASE_URL            use this database instead of the private cluster
#   JASIYO_PG_PORT          port of the private cluster [55432]
#   JASIYO_LISTEN           daemon API address [127.0.0.1:58080]
#   JASIYO_SNAPSHOT_DIR     where the daemon publishes the snapshot [.jasiyo/snapshot]
#   JASIYO_SNAPSHOT_GROUP   group that may read it (radiusd's) [freerad]
#   JASIYO_JOURNAL_PATH     accounting journal (daemon creates, radiusd appends)
#                           [.jasiyo/journal/accounting.journal]
#   JASIYO_JOURNAL_CAPACITY its size, fixed when created [64M]
#   JASIYO_RADIUS_AUTH_PORT / JASIYO_RADIUS_ACCT_PORT  radiusd ports [51812/51813]
#   JASIYO_LOG              daemon log filter [info]
#   JASIYO_VOUCHER_KEY_FILE hotspot voucher key, read by the daemon (which creates it)
#                           and by radiusd's jasiyo module [.jasiyo/voucher.key]
#   JASIYO_PUBLIC_URL       where phones (and Safaricom) reach the daemon; the hotspot
#                           login page calls it [http://JASIYO_LISTEN]
#   JASIYO_BACKGROUND_NICE  CPU nice value of billing-daemon and the private
#                           cluster (radiusd keeps 0) [10]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

state="$root/.jasiyo"
run="$state/run"
logs="$state/log"
pgdir="$state/pgdata"
pg_port=${JASIYO_PG_PORT:-55432}
listen=${JASIYO_LISTEN:-127.0.0.1:58080}
snapshot_dir=${JASIYO_SNAPSHOT_DIR:-$state/snapshot}
snapshot_group=${JASIYO_SNAPSHOT_GROUP:-freerad}
journal_path=${JASIYO_JOURNAL_PATH:-$state/journal/accounting.journal}
# The one voucher key file: billing-daemon creates it on first start (mode 0640, the snapshot
# group); the jasiyo module's voucher_key_file must name the same path.
voucher_key_file=${JASIYO_VOUCHER_KEY_FILE:-$state/voucher.key}
# radiusd answers from the snapshot and the journal; the daemon and Postgres do the
# bookkeeping behind it, and the journal absorbs what they have not applied yet. When the CPUs
# are short (an accounting burst after a router reboot), radiusd should get them first.
background_nice=$(background_nice)
journal_capacity=${JASIYO_JOURNAL_CAPACITY:-64M}
auth_port=${JASIYO_RADIUS_AUTH_PORT:-51812}
acct_port=${JASIYO_RADIUS_ACCT_PORT:-51813}
raddb="$state/raddb"
token_file="$state/api-token"
profile=release
bin="$root/target/$profile"
daemon_pid="$run/billing-daemon.pid"
radiusd_pid="$run/radiusd.pid"
api="http://$listen"

# The private cluster is used unless DATABASE_URL says otherwise.
if [ -n "${DATABASE_URL:-}" ]; then
    private_pg=0
else
    private_pg=1
fi

psql_q() { PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

start_private_postgres() {
    if ! "$root/scripts/pg-cluster.sh" status "$pgdir" "$pg_port" 2>/dev/null; then
        if port_in_use "$pg_port"; then
            die "port $pg_port is taken by something else: set JASIYO_PG_PORT to a free port"
        fi
        say "Postgres: private cluster in $pgdir on 127.0.0.1:$pg_port"
        "$root/scripts/pg-cluster.sh" init "$pgdir" "$pg_port"
        "$root/scripts/pg-cluster.sh" start "$pgdir" "$pg_port"
    else
        say "Postgres: private cluster already running on 127.0.0.1:$pg_port"
    fi
    set_cpu_nice "$background_nice" "$(head -n 1 "$pgdir/postmaster.pid")"
    local admin db_pw_file="$state/db-password"
    admin=$("$root/scripts/pg-cluster.sh" url "$pgdir" "$pg_port")
    if [ ! -s "$db_pw_file" ]; then
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$db_pw_file")
    fi
    local pw
    pw=$(cat "$db_pw_file")
    if [ "$(psql_q "$admin" -c "SELECT 1 FROM pg_roles WHERE rolname = 'jasiyo'")" != 1 ]; then
        psql_q "$admin" -c "CREATE ROLE jasiyo LOGIN PASSWORD '$pw'"
    else
        psql_q "$admin" -c "ALTER ROLE jasiyo PASSWORD '$pw'"
    fi
    if [ "$(psql_q "$admin" -c "SELECT 1 FROM pg_database WHERE datname = 'jasiyo'")" != 1 ]; then
        psql_q "$admin" -c "CREATE DATABASE jasiyo OWNER jasiyo"
    fi
    export DATABASE_URL="postgres://jasiyo:$pw@127.0.0.1:$pg_port/jasiyo"
}

# The daemon's settings, for every billing-daemon run below.
export_daemon_env() {
    export DATABASE_URL JASIYO_LISTEN="$listen" JASIYO_SNAPSHOT_DIR="$snapshot_dir" \
        JASIYO_SNAPSHOT_GROUP="$snapshot_group" JASIYO_RADIUS_AUTH_PORT="$auth_port" \
        JASIYO_JOURNAL_PATH="$journal_path" JASIYO_JOURNAL_CAPACITY="$journal_capacity" \
        JASIYO_RADIUS_ACCT_PORT="$acct_port" JASIYO_LOG="${JASIYO_LOG:-info}" \
        JASIYO_VOUCHER_KEY_FILE="$voucher_key_file" \
        JASIYO_PUBLIC_URL="${JASIYO_PUBLIC_URL:-http://$listen}"
}

# alive_and PIDFILE WORD COMMAND...: runs COMMAND, or returns 255 (which
# makes wait_for give up) when the process in PIDFILE has died.
alive_and() {
    local file=$1 word=$2
    shift 2
    pid_alive "$file" "$word" || return 255
    "$@"
}

api_status() {
    # prints the HTTP status of an authenticated GET
    curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$token_file")" "$api$1" || true
}

stop_services() {
    stop_pidfile "$radiusd_pid" freeradius radiusd
    stop_pidfile "$daemon_pid" billing-daemon billing-daemon
}

cmd_up() {
    require_root
    install_packages
    require_cargo
    mkdir -p "$state" "$run" "$logs"
    # radiusd (as freerad) must reach the snapshot and raddb inside .jasiyo;
    # 0711 lets it through without listing the secrets kept here.
    chmod 0711 "$state"
    ensure_reachable freerad "$state/x"
    ensure_reachable freerad "$snapshot_dir"
    ensure_reachable freerad "$(dirname "$journal_path")"

    say "building (cargo build --$profile)"
    cargo build --"$profile" -p billing-daemon -p rlm_jasiyo
    [ -x "$bin/billing-daemon" ] || die "$bin/billing-daemon was not built"
    [ -f "$bin/librlm_jasiyo.so" ] || die "$bin/librlm_jasiyo.so was not built"

    # Only now, so a failed build leaves a running stack alone.
    if pid_alive "$daemon_pid" billing-daemon || pid_alive "$radiusd_pid" freeradius; then
        say "the stack is already running: restarting billing-daemon and radiusd"
        stop_services
    fi

    if [ "$private_pg" = 1 ]; then
        start_private_postgres
    else
        say "Postgres: using DATABASE_URL from the environment (no private cluster)"
    fi

    export_daemon_env
    say "applying migrations"
    "$bin/billing-daemon" migrate
    if [ "$(psql_q "$DATABASE_URL" -c 'SELECT count(*) FROM plans')" = 0 ]; then
        say "loading demo data"
        "$bin/billing-daemon" demo-data
    else
        say "demo data: the database already has plans, leaving it alone"
    fi

    port_in_use "${listen##*:}" && die "$listen is already taken by another program: set JASIYO_LISTEN"
    say "starting billing-daemon on $api"
    : >>"$logs/billing-daemon.log"
    # setsid execs into the daemon (it is not a group leader), so $! is the daemon.
    setsid "$bin/billing-daemon" serve </dev/null >>"$logs/billing-daemon.log" 2>&1 &
    echo $! >"$daemon_pid"
    set_cpu_nice "$background_nice" "$(cat "$daemon_pid")"
    if ! wait_for 60 alive_and "$daemon_pid" billing-daemon curl -sf "$api/healthz"; then
        tail -n 30 "$logs/billing-daemon.log" >&2
        stop_services
        die "billing-daemon did not become healthy within 60 s (log: $logs/billing-daemon.log)"
    fi

    if [ ! -s "$token_file" ] || [ "$(api_status /api/v1/plans)" = 401 ]; then
        say "creating an API token (kept in $token_file)"
        local token
        token=$("$bin/billing-daemon" token create --name stack | tail -n 1)
        [ -n "$token" ] || die "billing-daemon token create printed no token"
        (umask 077 && printf '%s\n' "$token" >"$token_file")
        chmod 0600 "$token_file"
    fi

    say "building the raddb overlay in $raddb (auth $auth_port, acct $acct_port)"
    rm -rf "$raddb"
    "$root/scripts/make-raddb.sh" "$raddb" --auth-port "$auth_port" --acct-port "$acct_port" \
        --snapshot-dir "$snapshot_dir" --journal "$journal_path" \
        --voucher-key-file "$voucher_key_file" \
        --module "$bin/librlm_jasiyo.so" >>"$logs/make-raddb.log"

    say "starting radiusd"
    local log="$logs/radiusd.log" from
    : >>"$log"
    from=$(($(stat -c %s "$log") + 1))
    FR_LIBRARY_PATH="$raddb/lib:/usr/lib/freeradius" \
        setsid freeradius -f -l stdout -d "$raddb" </dev/null >>"$log" 2>&1 &
    echo $! >"$radiusd_pid"
    if ! wait_for 30 alive_and "$radiusd_pid" freeradius \
        bash -c "tail -c +$from '$log' | grep -q 'Ready to process requests'"; then
        tail -c +"$from" "$log" | tail -n 30 >&2
        stop_services
        die "radiusd did not start (log: $log)"
    fi

    print_summary
}

# What to try, from the demo data as the API reports it.
print_summary() {
    local token router secret user pass subs routers
    token=$(cat "$token_file")
    routers=$(curl -sf -H "Authorization: Bearer $token" "$api/api/v1/routers" || true)
    subs=$(curl -sf -H "Authorization: Bearer $token" "$api/api/v1/subscribers?status=active" || true)
    router=$(jq -r '(if type == "array" then . else .items end) | map(select(.ip | startswith("127.0.0.1"))) | .[0].id // empty' <<<"$routers" 2>/dev/null || true)
    secret=$(jq -r '(if type == "array" then . else .items end) | map(select(.ip | startswith("127.0.0.1"))) | .[0].secret // empty' <<<"$routers" 2>/dev/null || true)
    # the demo's alice if she is there, else any active subscriber
    local pick='(if type == "array" then . else .items end) | (map(select(.username == "alice")) + .) | .[0]'
    user=$(jq -r "$pick | .username // empty" <<<"$subs" 2>/dev/null || true)
    pass=$(jq -r "$pick | .password // empty" <<<"$subs" 2>/dev/null || true)
    local radtest_line="radtest ${user:-USER} ${pass:-PASSWORD} 127.0.0.1:$auth_port 0 ${secret:-SECRET}"
    if [ -n "$user" ] && [ -n "$secret" ]; then
        if radtest "$user" "$pass" "127.0.0.1:$auth_port" 0 "$secret" 2>&1 | grep -q 'Received Access-Accept'; then
            say "radiusd answers: Access-Accept for demo user $user"
        else
            warn "radiusd did not accept demo user $user; see $logs/radiusd.log"
        fi
    fi
    cat <<EOF

Jasiyo is up.
  API:        $api/api/v1   (OpenAPI: $api/api/v1/openapi.json)
  API token:  $token  (kept in $token_file)
  RADIUS:     127.0.0.1:$auth_port (auth), 127.0.0.1:$acct_port (acct)
  Logs:       $logs/

Try:
  $radtest_line
  export TOKEN=\$(cat $token_file) API=$api/api/v1
  curl -H "Authorization: Bearer \$TOKEN" \$API/subscribers
EOF
    if [ -n "$router" ]; then
        echo "  curl -H \"Authorization: Bearer \$TOKEN\" \$API/routers/$router/routeros-script"
    fi
    cat <<EOF

Stop it with: scripts/stack.sh down
EOF
}

cmd_down() {
    require_root
    stop_services
    if [ "$private_pg" = 1 ] && [ -f "$pgdir/PG_VERSION" ]; then
        say "stopping the private Postgres cluster"
        "$root/scripts/pg-cluster.sh" stop "$pgdir" "$pg_port"
    fi
    say "stack stopped (data kept in $state)"
}

cmd_status() {
    local rc=0
    if pid_alive "$daemon_pid" billing-daemon; then
        echo "billing-daemon: running (pid $(cat "$daemon_pid")), $api"
    else
        echo "billing-daemon: stopped"
        rc=1
    fi
    if pid_alive "$radiusd_pid" freeradius; then
        echo "radiusd: running (pid $(cat "$radiusd_pid")), 127.0.0.1:$auth_port/$acct_port"
    else
        echo "radiusd: stopped"
        rc=1
    fi
    if [ "$private_pg" = 1 ]; then
        if [ -f "$pgdir/PG_VERSION" ] && "$root/scripts/pg-cluster.sh" status "$pgdir" "$pg_port" 2>/dev/null; then
            echo "postgres: running, 127.0.0.1:$pg_port ($pgdir)"
        else
            echo "postgres: stopped"
            rc=1
        fi
    fi
    return $rc
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*) die "usage: $0 {up|down|status}" ;;
esac
