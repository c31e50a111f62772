#!/usr/bin/env bash
# RADIUS authentication benchmark (issue 2, "Benchmark"). In one run, for each subscriber
# count, the same PAP load from jasiyo-radload against these FreeRADIUS configurations:
#
#   nolookup        stock FreeRADIUS; control:Cleartext-Password and the reply set inline
#                   in unlang (the ceiling: no user lookup at all)
#   sql             stock FreeRADIUS + rlm_sql (rlm_sql_postgresql) on a private Postgres
#                   cluster holding the same subscribers in radcheck/radreply
#   jasiyo          FreeRADIUS + rlm_jasiyo answering from the snapshot that billing-daemon
#                   publishes from the same Postgres cluster
#   jasiyo-shipped  the configuration Jasiyo ships, unchanged (scripts/make-raddb.sh:
#                   dynamic clients from the snapshot, filter_username, preprocess,
#                   chap/mschap/pap, auth logging); informational
#
# The accounting suite (issue 3) runs Interim-Updates against accounting doing nothing,
# rlm_sql and rlm_jasiyo, and times billing-daemon's ingest. The enforcement suite (issue 4)
# times Disconnect-Requests: from a suspension committed in Postgres, and from a
# subscription's expiry, to the request arriving at a router's /radius incoming
# (jasiyo-coa-sink, which ACKs at once), with --enforcement-online sessions open. The
# payments suite (issue 5) times M-Pesa activation: expired subscribers, each with a pending
# STK intent, get their success callback (jasiyo-paybench), one at a time
# (--payments-sequential of them) and then --payments-callbacks at once, each timed from its
# POST to its first Access-Accept from rlm_jasiyo. The vouchers suite (issue 6) times
# voucher batches of --voucher-batch codes (the work of POST /api/v1/voucher-batches: draw,
# seal, insert, commit) in the same Postgres, --rounds times.
#
# and writes BENCHMARKS.md: requests/s, p50/p99 latency, the ratio to nolookup, radiusd
# memory, the daemon's snapshot build+publish time and size per subscriber, the in-process
# lookup time (criterion) and the targets of issue 2 with met / not met.
#
#   scripts/bench.sh [--subscribers "100000 1000000"] [--configs "nolookup sql jasiyo jasiyo-shipped"]
#                    [--rounds 3] [--duration 15] [--warmup 3] [--window 256]
#                    [--criterion yes|no] [--full-repeats 4] [--pin auto|yes|no]
#                    [--suites "auth accounting enforcement payments vouchers"] [--enforcement-changes 200]
#                    [--enforcement-online 10000] [--payments-callbacks 500]
#                    [--payments-sequential 100] [--voucher-batch 10000] [--out BENCHMARKS.md]
#
# billing-daemon and Postgres run at nice $JASIYO_BACKGROUND_NICE (10, as scripts/stack.sh
# runs them); Postgres at 0 for the rlm_sql configurations.
#
# Fairness: nolookup, sql and jasiyo run the same site (one auth listener on a random
# loopback port with recv_buff = 4 MiB, authorize { <lookup>; pap }, the same post-auth
# adding Message-Authenticator), the same static client, the stock thread pool, the same
# reply attributes (Mikrotik-Rate-Limit, Session-Timeout, Acct-Interim-Interval,
# Message-Authenticator) and the same load: PPPoE-style PAP requests with
# Message-Authenticator for subscribers bench1..benchN chosen at random, a fixed in-flight
# window. All radiusd instances of one subscriber count run at the same time (idle ones cost
# nothing); each round measures every configuration once, in a rotated order, after a
# warm-up; the table shows the median round, and each ratio is the median of the per-round
# ratios, so slow drifts of a shared machine hit every configuration alike. With two or more
# CPUs, radiusd is pinned to CPU 1 and the load generator to CPU 0 (--pin).
#
# Everything lives in .jasiyo/bench/ (ignored by git): the Postgres cluster (rebuilt each
# run), raddbs, snapshots, logs and raw JSON results. Every process this script starts
# (radiusd, billing-daemon, Postgres) is stopped by pid on exit. Run as root; nothing else
# should be busy. Takes about 10 minutes with the defaults.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

command_line="scripts/bench.sh"
for a in "$@"; do command_line+=" $(printf '%q' "$a")"; done

subscribers="100000 1000000"
configs="nolookup sql jasiyo jasiyo-shipped"
suites="auth accounting enforcement payments vouchers"
voucher_batch=10000
enforcement_changes=200
payments_callbacks=500
payments_sequential=100
enforcement_online=10000
acct_configs="acct-noop acct-sql acct-jasiyo"
acct_subscribers=100000
ingest_records=300000
# Room for a round's backlog when radiusd journals faster than the daemon applies (the
# shipped default is 64 MiB; see the accounting section of BENCHMARKS.md).
journal_capacity=512M
rounds=3
duration=15
warmup=3
window=256
criterion=yes
full_repeats=4
pin=auto
out="$root/BENCHMARKS.md"
# billing-daemon and Postgres run at this nice value, as scripts/stack.sh runs them (radiusd
# first when CPUs are short); Postgres is put back to 0 while an rlm_sql configuration is
# measured, as it is on that request path.
background_nice=$(background_nice)
secret=bench-secret
password=benchpw
# What every configuration puts in an Access-Accept. rlm_jasiyo computes Session-Timeout
# from the subscriber's expiry, which the bench data puts 30 days ahead.
rate_limit="10M/10M"
session_timeout=2592000
interim=300

while [ $# -gt 0 ]; do
    case "$1" in
    --subscribers) subscribers=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --suites) suites=$2; shift 2 ;;
    --acct-configs) acct_configs=$2; shift 2 ;;
    --acct-subscribers) acct_subscribers=$2; shift 2 ;;
    --ingest-records) ingest_records=$2; shift 2 ;;
    --enforcement-changes) enforcement_changes=$2; shift 2 ;;
    --enforcement-online) enforcement_online=$2; shift 2 ;;
    --payments-callbacks) payments_callbacks=$2; shift 2 ;;
    --payments-sequential) payments_sequential=$2; shift 2 ;;
    --voucher-batch) voucher_batch=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --criterion) criterion=$2; shift 2 ;;
    --full-repeats) full_repeats=$2; shift 2 ;;
    --pin) pin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo pipefail/{/^set /!p}' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
for c in $configs; do
    case "$c" in nolookup | sql | jasiyo | jasiyo-shipped) ;; *) die "unknown config $c" ;; esac
done
for c in $acct_configs; do
    case "$c" in acct-noop | acct-sql | acct-jasiyo) ;; *) die "unknown accounting config $c" ;; esac
done
for c in $suites; do
    case "$c" in auth | accounting | enforcement | payments | vouchers) ;; *) die "unknown suite $c (auth, accounting, enforcement, payments, vouchers)" ;; esac
done
has_suite() { case " $suites " in *" $1 "*) return 0 ;; esac; return 1; }
# Without the auth suite there are no auth configurations to run.
has_suite auth || configs=""
has_suite accounting || acct_configs=
for v in "$rounds" "$duration" "$warmup" "$window" $subscribers "$acct_subscribers" "$ingest_records" \
    "$enforcement_changes" "$enforcement_online" "$payments_callbacks" "$payments_sequential" "$voucher_batch"; do
    case "$v" in '' | *[!0-9]* | 0) die "expected a positive integer, got '$v'" ;; esac
done
case "$criterion" in yes | no) ;; *) die "--criterion yes or no" ;; esac
case "$full_repeats" in '' | *[!0-9]*) die "--full-repeats takes a number" ;; esac
case "$pin" in yes | no) ;; auto) if [ "$(nproc)" -ge 2 ]; then pin=yes; else pin=no; fi ;; *) die "--pin yes, no or auto" ;; esac
# With --pin yes, radiusd runs on CPU 1 and the load generator on CPU 0: radiusd's own CPU
# cost per request then sets the rate (radload needs about a quarter of its core), instead
# of how the scheduler splits two cores between them.
radiusd_cpu=()
radload_cpu=()
if [ "$pin" = yes ]; then
    radiusd_cpu=(taskset -c 1)
    radload_cpu=(taskset -c 0)
fi
has_config() { case " $configs $acct_configs " in *" $1 "*) return 0 ;; esac; return 1; }
need_daemon=0
if has_config jasiyo || has_config jasiyo-shipped || has_config acct-jasiyo || has_suite enforcement ||
    has_suite payments; then
    need_daemon=1
fi
need_pg=$need_daemon
if has_config sql || has_config acct-sql || has_suite vouchers; then need_pg=1; fi

require_root
require_cargo
JASIYO_PACKAGES+=(iproute2 procps freeradius-postgresql)
install_packages
command -v jq >/dev/null || die "jq is missing"

started=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
work="$root/.jasiyo/bench"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$work/results/$stamp"
mkdir -p "$results"
bin="$root/target/release"
radload="$bin/jasiyo-radload"
psql_q() { PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

say "building (cargo build --release)"
build=(-p jasiyo-radload)
[ "$need_daemon" = 0 ] || build+=(-p rlm_jasiyo -p billing-daemon)
(cd "$root" && cargo build --release -q "${build[@]}")
if has_suite vouchers; then
    (cd "$root" && cargo build --release -q -p billing-daemon --example voucher_batch_bench)
fi
if [ "$criterion" = yes ]; then
    (cd "$root" && cargo bench -q -p jasiyo-snapshot --bench lookup --no-run 2>/dev/null) ||
        (cd "$root" && cargo bench -p jasiyo-snapshot --bench lookup --no-run)
fi

# ---- processes we start, stopped by pid on exit ----------------------------------------
declare -A radiusd_pid=()
daemon_pid=""
daemon_port=""
# Extra environment for billing-daemon (the payments suite turns M-Pesa on).
daemon_env=()
pgdir="$work/pg"
pg_port=""

stop_all_radiusd() {
    local c
    for c in "${!radiusd_pid[@]}"; do
        stop_pid "${radiusd_pid[$c]}" "radiusd ($c)"
    done
    radiusd_pid=()
}
stop_daemon() {
    stop_pid "$daemon_pid" billing-daemon
    daemon_pid=""
}
cleanup() {
    local rc=$?
    trap - EXIT
    stop_all_radiusd
    stop_daemon
    if [ -n "$pg_port" ]; then
        "$root/scripts/pg-cluster.sh" stop "$pgdir" "$pg_port" || warn "stopping Postgres in $pgdir failed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# A UDP port on 127.0.0.1 that nothing is bound to right now.
pick_udp_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if [ -z "$(ss -Hauln "sport = :$p" 2>/dev/null)" ] && [ -z "$(ss -Hauln "sport = :$((p + 1))" 2>/dev/null)" ]; then
            echo "$p"
            return 0
        fi
    done
    die "could not find a free UDP port"
}

# ---- Postgres: one private cluster for rlm_sql and billing-daemon ----------------------
radius_url=""
radius_pw=""
jasiyo_url=""
admin_url=""
# pg_nice N: the nice value of the cluster (new backends inherit the postmaster's).
pg_nice() {
    local pm
    pm=$(head -n 1 "$pgdir/postmaster.pid" 2>/dev/null) || return 0
    set_cpu_nice "$1" "$pm"
}
# pg_nice_for CONFIG: 0 for an rlm_sql configuration, else the background value.
pg_nice_for() {
    case "$1" in *sql) pg_nice 0 ;; *) pg_nice "$background_nice" ;; esac
}
start_postgres() {
    # A cluster left by an interrupted earlier run of this script: stop it, start afresh.
    if [ -f "$pgdir/PG_VERSION" ]; then
        "$root/scripts/pg-cluster.sh" stop "$pgdir" 1 || true
    fi
    rm -rf "$pgdir"
    local port attempt
    port=$(pick_port)
    JASIYO_PG_EPHEMERAL=1 "$root/scripts/pg-cluster.sh" init "$pgdir" "$port"
    # Enough shared buffers for 1M subscribers' radcheck/radreply and their indexes.
    cat >>"$pgdir/postgresql.conf" <<EOF
# scripts/bench.sh
shared_buffers = 1GB
maintenance_work_mem = 512MB
work_mem = 64MB
EOF
    for attempt in 1 2 3 4 5; do
        if "$root/scripts/pg-cluster.sh" start "$pgdir" "$port" 2>"$work/pg-start.err"; then
            pg_port=$port
            break
        fi
        [ "$attempt" -lt 5 ] || { cat "$work/pg-start.err" >&2; die "could not start Postgres"; }
        port=$(pick_port)
    done
    admin_url=$("$root/scripts/pg-cluster.sh" url "$pgdir" "$pg_port")
    local pw
    pw=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    psql_q "$admin_url" -c "CREATE ROLE radius LOGIN PASSWORD '$pw'" \
        -c "CREATE DATABASE radius OWNER radius" \
        -c "CREATE ROLE jasiyo LOGIN PASSWORD '$pw'" \
        -c "CREATE DATABASE jasiyo OWNER jasiyo"
    psql_q "${admin_url%/postgres}/radius" -c "CREATE EXTENSION pg_prewarm"
    radius_url="postgres://radius:$pw@127.0.0.1:$pg_port/radius"
    jasiyo_url="postgres://jasiyo:$pw@127.0.0.1:$pg_port/jasiyo"
    radius_pw=$pw
    pg_nice "$background_nice"
    say "Postgres: private cluster in $pgdir on 127.0.0.1:$pg_port"
}

# load_sql N: radcheck/radreply with bench1..benchN (our own DDL, not FreeRADIUS's schema
# file; the columns are the ones the stock queries.conf selects), then everything read
# into shared buffers (pg_prewarm) so rlm_sql is measured warm.
load_sql() {
    local n=$1
    psql_q "$radius_url" -v n="$n" -v password="$password" -v rate="$rate_limit" \
        -v st="$session_timeout" -v interim="$interim" <<'EOF'
DROP TABLE IF EXISTS radcheck, radreply, radusergroup, radgroupcheck, radgroupreply;
CREATE TABLE radcheck (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username  text NOT NULL,
    attribute text NOT NULL,
    op        varchar(2) NOT NULL DEFAULT ':=',
    value     text NOT NULL
);
CREATE TABLE radreply (LIKE radcheck INCLUDING ALL);
CREATE TABLE radgroupcheck (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    groupname text NOT NULL,
    attribute text NOT NULL,
    op        varchar(2) NOT NULL DEFAULT ':=',
    value     text NOT NULL
);
CREATE TABLE radgroupreply (LIKE radgroupcheck INCLUDING ALL);
CREATE TABLE radusergroup (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username  text NOT NULL,
    groupname text NOT NULL,
    priority  integer NOT NULL DEFAULT 1
);
INSERT INTO radcheck (username, attribute, op, value)
    SELECT 'bench' || g, 'Cleartext-Password', ':=', :'password'
    FROM generate_series(1, :n) AS g;
INSERT INTO radreply (username, attribute, op, value)
    SELECT 'bench' || g, a.attribute, ':=', a.value
    FROM generate_series(1, :n) AS g
    CROSS JOIN (VALUES (1, 'Mikrotik-Rate-Limit', :'rate'),
                       (2, 'Session-Timeout', :'st'),
                       (3, 'Acct-Interim-Interval', :'interim')) AS a (k, attribute, value)
    ORDER BY g, a.k;
-- The stock queries: WHERE username = '...' ORDER BY id.
CREATE INDEX radcheck_username_id ON radcheck (username, id);
CREATE INDEX radreply_username_id ON radreply (username, id);
CREATE INDEX radusergroup_username ON radusergroup (username, priority);
CREATE INDEX radgroupcheck_groupname ON radgroupcheck (groupname, id);
CREATE INDEX radgroupreply_groupname ON radgroupreply (groupname, id);
VACUUM ANALYZE radcheck;
VACUUM ANALYZE radreply;
EOF
    psql_q "${admin_url%/postgres}/radius" -c "SELECT pg_prewarm(c) FROM unnest(ARRAY[
        'radcheck', 'radcheck_username_id', 'radreply', 'radreply_username_id']::regclass[]) AS c" >/dev/null
}

# load_jasiyo N: the daemon's schema (billing-daemon migrate) with one plan, one router
# (127.0.0.1) and bench1..benchN. Bulk load with triggers off (session_replication_role):
# the daemon is not running, and does a full load when it starts.
load_jasiyo() {
    local n=$1
    DATABASE_URL="$jasiyo_url" JASIYO_LOG=warn "$bin/billing-daemon" migrate
    psql_q "${admin_url%/postgres}/jasiyo" -v n="$n" -v password="$password" -v rate="$rate_limit" \
        -v secret="$secret" -v days=$((session_timeout / 86400)) <<'EOF'
SET session_replication_role = replica;
TRUNCATE subscribers, routers, plans RESTART IDENTITY CASCADE;
INSERT INTO plans (name, rate_limit, price_kes, duration_seconds, service)
    VALUES ('bench', :'rate', 1000, 2592000, 'both');
INSERT INTO routers (name, ip, secret) VALUES ('bench', '127.0.0.1', :'secret');
INSERT INTO subscribers (username, password, plan_id, status, expires_at)
    SELECT 'bench' || g, :'password', (SELECT id FROM plans WHERE name = 'bench'), 'active',
           now() + make_interval(days => :days)
    FROM generate_series(1, :n) AS g;
RESET session_replication_role;
VACUUM ANALYZE subscribers;
EOF
}

# start_daemon N: billing-daemon serve on a fresh snapshot directory; waits for its first
# publication and records what its publisher logged (full load, build, write).
start_daemon() {
    local n=$1 d="$work/$n/daemon" port t0 t1
    # The journal stays: a restart resumes it (the callers remove $d for a fresh start).
    rm -rf "$d/snapshot"
    mkdir -p "$d"
    port=$(pick_port)
    t0=$(date +%s.%N)
    daemon_port=$port
    env DATABASE_URL="$jasiyo_url" JASIYO_LISTEN="127.0.0.1:$port" "${daemon_env[@]}" \
        JASIYO_SNAPSHOT_DIR="$d/snapshot" JASIYO_SNAPSHOT_GROUP=freerad \
        JASIYO_JOURNAL_PATH="$d/journal/accounting.journal" \
        JASIYO_VOUCHER_KEY_FILE="$d/voucher.key" \
        JASIYO_JOURNAL_CAPACITY="$journal_capacity" \
        JASIYO_LOG="info,billing_daemon::publisher=debug" JASIYO_LOG_FORMAT=json \
        setsid "$bin/billing-daemon" serve </dev/null >"$d/stdout" 2>"$d/log.json" &
    daemon_pid=$!
    # In its own session, as scripts/stack.sh runs it (set_cpu_nice in scripts/lib.sh).
    set_cpu_nice "$background_nice" "$daemon_pid"
    local deadline=$((SECONDS + 300))
    while ! grep -q '^ready' "$d/stdout" 2>/dev/null; do
        if [ ! -d "/proc/$daemon_pid" ] || [ $SECONDS -ge "$deadline" ]; then
            tail -n 20 "$d/log.json" >&2 || true
            warn "billing-daemon did not publish a snapshot of $n subscribers"
            stop_daemon
            return 1
        fi
        sleep 0.05
    done
    t1=$(date +%s.%N)
    local snap="$d/snapshot/subscribers.snap"
    jq -n --slurpfile log "$d/log.json" --argjson n "$n" \
        --argjson bytes "$(stat -c %s "$snap")" \
        --argjson ready_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
        --argjson rss_kib "$(awk '/^VmRSS/ {print $2}' "/proc/$daemon_pid/status")" '
        ($log | map(select(.message == "full load")) | first) as $load
        | ($log | map(select(.message == "published snapshot")) | first) as $pub
        | { subscribers: $n, snapshot_bytes: $bytes, bytes_per_subscriber: ($bytes / $n),
            start_to_ready_s: $ready_s, daemon_rss_kib: $rss_kib,
            full_load_ms: ($load.elapsed_ms // null),
            build_ms: ($pub.build_ms // null), write_ms: ($pub.write_ms // null) }' \
        >"$results/daemon-$n.json"
    say "billing-daemon published $n subscribers: $(jq -c . "$results/daemon-$n.json")"
    [ "${2:-}" = no-repeats ] || full_republish "$n"
}

# full_republish N: the first publication is one sample on a machine shared with others;
# make the daemon rebuild and publish a full base $full_repeats more times (the notification
# a TRUNCATE sends) and record every base publication's build and write times.
full_republish() {
    local n=$1 d="$work/$n/daemon" gen deadline
    for _ in $(seq 1 "$full_repeats"); do
        gen=$(jq -rs 'map(select(.message == "published snapshot")) | last | .generation' "$d/log.json")
        psql_q "${admin_url%/postgres}/jasiyo" -c "NOTIFY jasiyo_changes, 'subscribers:*'"
        deadline=$((SECONDS + 60))
        until jq -e --argjson g "$gen" 'select(.message == "published snapshot" and .generation > $g)' \
            "$d/log.json" >/dev/null 2>&1; do
            [ $SECONDS -lt "$deadline" ] || { warn "no full republication within 60 s"; break; }
            sleep 0.05
        done
    done
    jq -s 'map(select(.message == "published snapshot" and .base == true)
               | {build_ms, write_ms, total_ms: (.build_ms + .write_ms)})' "$d/log.json" \
        >"$results/base-publications-$n.json"
    say "base publications at $n (build + write ms): $(jq -c 'map(.total_ms | floor)' "$results/base-publications-$n.json")"
}

# republish_latency N: one UPDATE in psql, the time until the daemon logged the next
# publication, and that publication's build and write times.
republish_latency() {
    local n=$1 d="$work/$n/daemon" gen t0 line deadline
    gen=$(jq -rs 'map(select(.message == "published snapshot")) | last | .generation' "$d/log.json")
    t0=$(date +%s.%N)
    psql_q "${admin_url%/postgres}/jasiyo" -c "UPDATE subscribers SET password = password WHERE id = 1"
    deadline=$((SECONDS + 20))
    line=""
    while [ -z "$line" ] && [ $SECONDS -lt "$deadline" ]; do
        sleep 0.02
        line=$(jq -c --argjson g "$gen" 'select(.message == "published snapshot" and .generation > $g)' \
            "$d/log.json" 2>/dev/null | head -n 1)
    done
    if [ -z "$line" ]; then
        warn "no republication within 20 s of an UPDATE"
        return 0
    fi
    local ts
    ts=$(jq -r .timestamp <<<"$line")
    jq -n --argjson l "$line" --argjson lat "$(awk -v a="$t0" -v b="$(date -d "$ts" +%s.%N)" 'BEGIN {print b - a}')" \
        '{change_to_publish_ms: ($lat * 1000), build_ms: $l.build_ms, write_ms: $l.write_ms}' \
        >"$results/republish-$n.json"
    say "republish after one UPDATE at $n: $(jq -c . "$results/republish-$n.json")"
}

# ---- raddb for each configuration ------------------------------------------------------

# base_raddb DIR: a copy of the system configuration with no virtual servers, no EAP,
# running as root, logging and pid file inside DIR, and the bench client.
base_raddb() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir/run" "$dir/log"
    cp -a /etc/freeradius/3.0 "$dir/raddb"
    rm -f "$dir/raddb/sites-enabled/"* "$dir/raddb/mods-enabled/eap"
    sed -i -e 's/^\s*user = freerad/#&/' -e 's/^\s*group = freerad/#&/' \
        -e "s|^raddbdir = .*|raddbdir = $dir/raddb|" \
        -e "s|^run_dir = .*|run_dir = $dir/run|" -e "s|^logdir = .*|logdir = $dir/log|" \
        -e 's|^proxy_requests\s*= .*|proxy_requests = no|' \
        "$dir/raddb/radiusd.conf"
    bench_client >"$dir/raddb/clients.conf"
}

bench_client() {
    cat <<EOF
client bench {
	ipaddr = 127.0.0.1
	secret = $secret
}
EOF
}

# bench_site PORT LOOKUP...: the virtual server nolookup, sql and jasiyo share; LOOKUP is
# the unlang that finds the subscriber (sets control:Cleartext-Password and the reply).
bench_site() {
    local port=$1
    shift
    cat <<EOF
server bench {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $port
		recv_buff = 4194304
	}
	authorize {
$(printf '\t\t%s\n' "$@")
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
	}
	#  FreeRADIUS 3.2.1 signs replies with Message-Authenticator only when asked;
	#  RouterOS v7 requires it.
	post-auth {
		update reply {
			&Message-Authenticator := 0x00
		}
		Post-Auth-Type REJECT {
			update reply {
				&Message-Authenticator := 0x00
			}
		}
	}
}
EOF
}

setup_nolookup() { # DIR PORT N
    local dir=$1 port=$2
    base_raddb "$dir"
    bench_site "$port" 'update control {' "	&Cleartext-Password := \"$password\"" '}' \
        'update reply {' "	&Mikrotik-Rate-Limit := \"$rate_limit\"" \
        "	&Session-Timeout := $session_timeout" "	&Acct-Interim-Interval := $interim" '}' \
        >"$dir/raddb/sites-enabled/bench"
}

# rlm_sql with the stock PostgreSQL queries (the installed queries.conf) and our tables.
# read_groups = no: the subscribers have no groups, so the group queries would only add
# round trips (the best case for rlm_sql: two queries per request). Pool: up to one
# connection per radiusd thread (thread pool max_servers = 32).
setup_sql() { # DIR PORT N
    local dir=$1 port=$2
    base_raddb "$dir"
    cat >"$dir/raddb/mods-enabled/sql" <<EOF
sql {
	dialect = "postgresql"
	driver = "rlm_sql_postgresql"
	server = "127.0.0.1"
	port = $pg_port
	login = "radius"
	password = "$radius_pw"
	radius_db = "radius"
	postgresql {
		send_application_name = yes
	}
	acct_table1 = "radacct"
	acct_table2 = "radacct"
	postauth_table = "radpostauth"
	authcheck_table = "radcheck"
	authreply_table = "radreply"
	groupcheck_table = "radgroupcheck"
	groupreply_table = "radgroupreply"
	usergroup_table = "radusergroup"
	client_table = "nas"
	group_attribute = "SQL-Group"
	read_groups = no
	read_clients = no
	delete_stale_sessions = yes
	pool {
		start = 5
		min = 4
		max = 32
		spare = 10
		uses = 0
		retry_delay = 30
		lifetime = 0
		idle_timeout = 60
	}
	\$INCLUDE \${modconfdir}/\${.:name}/main/\${dialect}/queries.conf
}
EOF
    chmod 0640 "$dir/raddb/mods-enabled/sql"
    bench_site "$port" sql >"$dir/raddb/sites-enabled/bench"
}

# jasiyo and jasiyo-shipped: make-raddb.sh's overlay (module, its configuration, paths).
jasiyo_raddb() { # DIR PORT N
    local dir=$1 port=$2 n=$3 acct
    acct=$((port + 1))
    rm -rf "$dir"
    mkdir -p "$dir"
    "$root/scripts/make-raddb.sh" "$dir/raddb" --auth-port "$port" --acct-port "$acct" \
        --snapshot-dir "$work/$n/daemon/snapshot" --journal "$work/$n/daemon/journal/accounting.journal" \
        --module "$bin/librlm_jasiyo.so" --as-root >"$dir/make-raddb.log" 2>&1 || {
        cat "$dir/make-raddb.log" >&2
        return 1
    }
}
setup_jasiyo() { # DIR PORT N: the bench site, the bench client, no auth log (as the others)
    local dir=$1 port=$2 n=$3
    jasiyo_raddb "$dir" "$port" "$n" || return 1
    rm -f "$dir/raddb/sites-enabled/"*
    bench_site "$port" jasiyo >"$dir/raddb/sites-enabled/bench"
    bench_client >"$dir/raddb/clients.conf"
    sed -i -E 's|^([[:space:]]*auth = ).*$|\1no|' "$dir/raddb/radiusd.conf"
}
setup_jasiyo_shipped() { # DIR PORT N: as shipped
    jasiyo_raddb "$@"
}

# ---- accounting configurations: one accounting listener, the bench client --------------
# acct_site PORT PREACCT ACCOUNTING: what acct-noop, acct-sql and acct-jasiyo share.
acct_site() {
    cat <<EOF
server bench {
	listen {
		type = acct
		ipaddr = 127.0.0.1
		port = $1
		recv_buff = 4194304
	}
	preacct {
		$2
	}
	accounting {
		$3
	}
}
EOF
}
setup_acct_noop() { # DIR PORT N: accounting doing nothing (answers every request)
    base_raddb "$1"
    acct_site "$2" "" ok >"$1/raddb/sites-enabled/bench"
}
setup_acct_sql() { # DIR PORT N: rlm_sql's stock accounting queries into radacct
    setup_sql "$@"
    sed -i 's|radius_db = "radius"|radius_db = "radius_acct"|' "$1/raddb/mods-enabled/sql"
    # acct_unique computes the AcctUniqueId the stock queries key on.
    acct_site "$2" acct_unique sql >"$1/raddb/sites-enabled/bench"
}
setup_acct_jasiyo() { # DIR PORT N: rlm_jasiyo appending to the journal billing-daemon consumes
    jasiyo_raddb "$1" "$(($2 - 1))" "$3" || return 1
    rm -f "$1/raddb/sites-enabled/"*
    acct_site "$2" "" jasiyo >"$1/raddb/sites-enabled/bench"
    bench_client >"$1/raddb/clients.conf"
}

# radacct from FreeRADIUS's own PostgreSQL schema file (as an rlm_sql user installs it), in
# a database of its own.
load_radacct() {
    psql_q "$admin_url" -c "DROP DATABASE IF EXISTS radius_acct" -c "CREATE DATABASE radius_acct OWNER radius"
    psql_q "${radius_url%/radius}/radius_acct" \
        -f /etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql >/dev/null
}

# daemon_health: billing-daemon's /healthz body (journal positions and counters).
daemon_health() {
    curl -fsS --max-time 2 "http://127.0.0.1:$daemon_port/healthz" 2>/dev/null
}
# journal_lag: bytes of journal that billing-daemon has not applied yet.
journal_lag() {
    daemon_health | jq -r '.journal.lag_bytes // "null"' 2>/dev/null || echo null
}
# sample_lag FILE: appends "unix-seconds lag-bytes" every 0.2 s until killed.
sample_lag() {
    while :; do
        echo "$(date +%s.%N) $(journal_lag)" >>"$1"
        sleep 0.2
    done
}
# wait_drained SECONDS: until billing-daemon has applied the whole journal.
wait_drained() {
    local deadline=$((SECONDS + $1)) lag
    while :; do
        lag=$(journal_lag)
        [ "$lag" != 0 ] || return 0
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# start_radiusd CONFIG DIR PORT [acct]: start radiusd (-f, not -X, which is single-threaded)
# and wait until it accepts bench1 (with acct: until it answers an Interim-Update).
start_radiusd() {
    local config=$1 dir=$2 port=$3 probe what
    if [ "${4:-}" = acct ]; then
        probe=(--kind interim --expect accounting-response)
        what="an Interim-Update"
    else
        probe=(--password "$password" --expect accept)
        what="an Access-Request with Access-Accept"
    fi
    if ! freeradius -C -d "$dir/raddb" >/dev/null 2>&1; then
        freeradius -XC -d "$dir/raddb" >"$dir/check.log" 2>&1 || true
        tail -n 5 "$dir/check.log" >&2
        warn "radiusd rejected the configuration in $dir/raddb"
        return 1
    fi
    "${radiusd_cpu[@]}" freeradius -f -d "$dir/raddb" -l "$dir/radiusd.log" </dev/null >/dev/null 2>&1 &
    radiusd_pid[$config]=$!
    if ! wait_for 30 "$radload" --server "127.0.0.1:$port" --secret "$secret" \
        --users 'bench{n}' --count 1 --requests 1 --timeout 0.5 --retries 0 "${probe[@]}"; then
        tail -n 20 "$dir/radiusd.log" >&2 || true
        warn "radiusd ($config) in $dir did not answer $what"
        stop_pid "${radiusd_pid[$config]}" "radiusd ($config)"
        unset "radiusd_pid[$config]"
        return 1
    fi
}

# resident memory of PID in KiB: total, anonymous (private), file-backed (the mapped snapshot
# counts once per mapping: rlm_jasiyo's two instances, jasiyo and jasiyo_clients, map it each)
rss_kib() {
    awk '/^(VmRSS|RssAnon|RssFile):/ {v[$1] = $2} END {print v["VmRSS:"], v["RssAnon:"], v["RssFile:"]}' \
        "/proc/$1/status" 2>/dev/null || true
}

# ---- the run ---------------------------------------------------------------------------
[ "$need_pg" = 0 ] || start_postgres

auth_subscribers=$subscribers
has_suite auth || auth_subscribers=""
for n in $auth_subscribers; do
    say "===== $n subscribers ====="
    mkdir -p "$work/$n" "$results/$n"
    daemon_ok=0
    if has_config sql; then
        say "loading $n subscribers into radcheck/radreply"
        load_sql "$n"
    fi
    if [ "$need_daemon" = 1 ]; then
        say "loading $n subscribers into billing-daemon's schema"
        load_jasiyo "$n"
        say "starting billing-daemon (first full snapshot)"
        rm -rf "$work/$n/daemon"
        if start_daemon "$n"; then daemon_ok=1; fi
    fi

    declare -A port_of=()
    live=()
    for c in $configs; do
        case "$c" in jasiyo*) [ "$daemon_ok" = 1 ] || { echo "no snapshot" >"$results/$n/$c.failed"; continue; } ;; esac
        dir="$work/$n/$c"
        port=$(pick_udp_port)
        say "[$c, $n] setting up in $dir (port $port)"
        if "setup_${c//-/_}" "$dir" "$port" "$n" && start_radiusd "$c" "$dir" "$port"; then
            port_of[$c]=$port
            live+=("$c")
        else
            echo "setup or start failed (see $dir)" >"$results/$n/$c.failed"
        fi
    done

    for r in $(seq 1 "$rounds"); do
        # rotate the order each round
        k=$(((r - 1) % (${#live[@]} > 0 ? ${#live[@]} : 1)))
        order=("${live[@]:k}" "${live[@]:0:k}")
        for c in "${order[@]}"; do
            pg_nice_for "$c"
            load=(--server "127.0.0.1:${port_of[$c]}" --secret "$secret" --users 'bench{n}'
                --count "$n" --password "$password" --random --window "$window" --service pppoe)
            "${radload_cpu[@]}" "$radload" "${load[@]}" --duration "$warmup" >/dev/null 2>&1 || true
            "${radload_cpu[@]}" "$radload" "${load[@]}" --duration "$duration" --json \
                >"$results/$n/$c-r$r.json" 2>"$results/$n/$c-r$r.log" || true
            if jq -e .requests_per_s "$results/$n/$c-r$r.json" >/dev/null 2>&1; then
                jq -r --arg c "$c" --arg r "$r" --arg n "$n" \
                    '"    [\($c), \($n), round \($r)] \(.requests_per_s | floor) req/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, \(.accept)/\(.sent) accepted, \(.timeouts) timeouts"' \
                    "$results/$n/$c-r$r.json" >&2
            else
                warn "[$c, $n, round $r] radload failed: $(tail -n 3 "$results/$n/$c-r$r.log")"
                rm -f "$results/$n/$c-r$r.json"
            fi
        done
    done
    pg_nice "$background_nice"
    for c in "${live[@]}"; do
        rss_kib "${radiusd_pid[$c]}" >"$results/$n/$c.rss"
    done
    stop_all_radiusd
    if [ -n "$daemon_pid" ]; then
        republish_latency "$n" || true
        stop_daemon
    fi
    unset port_of
done

# ---- accounting suite -----------------------------------------------------------------
# The same Interim-Update load against acct-noop, acct-sql and acct-jasiyo (rounds rotated as
# above), the journal lag sampled during acct-jasiyo's rounds; then billing-daemon's ingest
# rate: with the daemon stopped, radiusd journals $ingest_records Interim-Updates, and the
# daemon, started again, applies them to Postgres.
if [ -n "$acct_configs" ]; then
    n=$acct_subscribers
    a="acct-$n"
    say "===== accounting, $n sessions ====="
    mkdir -p "$work/$a" "$results/$a"
    daemon_ok=0
    if has_config acct-sql; then
        say "creating radacct from FreeRADIUS's schema.sql"
        load_radacct
    fi
    if has_config acct-jasiyo; then
        say "loading $n subscribers into billing-daemon's schema"
        load_jasiyo "$n"
        psql_q "${admin_url%/postgres}/jasiyo" -c "TRUNCATE sessions, usage_daily, auth_log, enforcement_actions"
        rm -rf "$work/$n/daemon"
        if start_daemon "$n" no-repeats; then daemon_ok=1; fi
    fi
    declare -A port_of=()
    live=()
    for c in $acct_configs; do
        [ "$c" != acct-jasiyo ] || [ "$daemon_ok" = 1 ] || { echo "no daemon" >"$results/$a/$c.failed"; continue; }
        dir="$work/$a/$c"
        port=$(pick_udp_port)
        say "[$c] setting up in $dir (port $port)"
        if "setup_${c//-/_}" "$dir" "$port" "$n" && start_radiusd "$c" "$dir" "$port" acct; then
            port_of[$c]=$port
            live+=("$c")
        else
            echo "setup or start failed (see $dir)" >"$results/$a/$c.failed"
        fi
    done
    # acct-jasiyo-paused: the same radiusd with billing-daemon stopped (SIGSTOP) for the round,
    # the journal absorbing everything: radiusd's own cost, without the daemon and Postgres
    # competing for the two CPUs.
    if [ -n "${port_of[acct-jasiyo]:-}" ]; then
        port_of[acct-jasiyo-paused]=${port_of[acct-jasiyo]}
        live+=(acct-jasiyo-paused)
    fi
    for r in $(seq 1 "$rounds"); do
        k=$(((r - 1) % (${#live[@]} > 0 ? ${#live[@]} : 1)))
        order=("${live[@]:k}" "${live[@]:0:k}")
        for c in "${order[@]}"; do
            pg_nice_for "$c"
            load=(--kind interim --server "127.0.0.1:${port_of[$c]}" --secret "$secret"
                --users 'bench{n}' --count "$n" --random --window "$window")
            # Let the daemon catch up first, so every round starts from an empty journal.
            case "$c" in acct-jasiyo*) wait_drained 300 || warn "the journal did not drain in 300 s" ;; esac
            [ "$c" != acct-jasiyo-paused ] || kill -STOP "$daemon_pid"
            "${radload_cpu[@]}" "$radload" "${load[@]}" --duration "$warmup" >/dev/null 2>&1 || true
            sampler=""
            if [ "$c" = acct-jasiyo ]; then
                wait_drained 300 || true
                sample_lag "$results/$a/lag-r$r.txt" &
                sampler=$!
            fi
            "${radload_cpu[@]}" "$radload" "${load[@]}" --duration "$duration" --json \
                >"$results/$a/$c-r$r.json" 2>"$results/$a/$c-r$r.log" || true
            [ -z "$sampler" ] || { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
            [ "$c" != acct-jasiyo-paused ] || kill -CONT "$daemon_pid"
            if jq -e .requests_per_s "$results/$a/$c-r$r.json" >/dev/null 2>&1; then
                jq -r --arg c "$c" --arg r "$r" \
                    '"    [\($c), round \($r)] \(.requests_per_s | floor) req/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, \(.accounting_response)/\(.sent) answered, \(.retransmits) retransmits, \(.timeouts) timeouts"' \
                    "$results/$a/$c-r$r.json" >&2
            else
                warn "[$c, round $r] radload failed: $(tail -n 3 "$results/$a/$c-r$r.log")"
                rm -f "$results/$a/$c-r$r.json"
            fi
        done
    done
    pg_nice "$background_nice"
    for c in "${live[@]}"; do
        [ -z "${radiusd_pid[$c]:-}" ] || rss_kib "${radiusd_pid[$c]}" >"$results/$a/$c.rss"
    done
    if [ -n "$daemon_pid" ] && wait_drained 600; then
        # The journal was created by this daemon: its reserved position is every byte
        # journaled, and every record is applied now.
        daemon_health |
            jq '{bytes: .journal.reserved, records: .journal.records_applied_total,
                 bytes_per_record: (.journal.reserved / .journal.records_applied_total)}' \
            >"$results/$a/journal.json" || true
    fi
    # Ingest: everything journaled while the daemon is down, then applied from a cold start.
    if [ -n "${port_of[acct-jasiyo]:-}" ] && [ -n "$daemon_pid" ]; then
        wait_drained 600 || warn "the journal did not drain in 600 s"
        say "ingest: journaling $ingest_records Interim-Updates with billing-daemon stopped"
        stop_daemon
        "$radload" --kind interim --server "127.0.0.1:${port_of[acct-jasiyo]}" --secret "$secret" \
            --users 'bench{n}' --count "$n" --random --window "$window" --requests "$ingest_records" \
            --json >"$results/$a/ingest-load.json" 2>"$results/$a/ingest-load.log" || true
        say "ingest: starting billing-daemon on a full journal"
        t0=$(date +%s.%N)
        if start_daemon "$n" no-repeats; then
            t_ready=$(date +%s.%N)
            applied_at_ready=$(daemon_health | jq '.journal.records_applied_total // 0')
            if wait_drained 900; then
                t1=$(date +%s.%N)
                # Timed from /healthz answering when most of the backlog was still there, else
                # (a fast drain during start-up) from the daemon's start, start-up included.
                jq -n --argjson records "$(jq .accounting_response "$results/$a/ingest-load.json")" \
                    --argjson at_ready "$applied_at_ready" \
                    --argjson from_start "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
                    --argjson from_ready "$(awk -v a="$t_ready" -v b="$t1" 'BEGIN {print b - a}')" \
                    'if $at_ready * 2 < $records
                     then {records: ($records - $at_ready), seconds: $from_ready, timed_from: "ready"}
                     else {records: $records, seconds: $from_start, timed_from: "start"} end
                     | . + {records_per_s: (.records / .seconds), journaled: $records}' \
                    >"$results/$a/ingest.json"
                say "ingest: $(jq -c . "$results/$a/ingest.json")"
            else
                warn "billing-daemon did not drain the journal within 900 s"
            fi
        fi
    fi
    stop_all_radiusd
    stop_daemon
    unset port_of
fi

# ---- enforcement suite ----------------------------------------------------------------
# $acct_subscribers subscribers, $enforcement_online of them online on the bench router,
# whose /radius incoming is jasiyo-coa-sink. Suspensions: one UPDATE at a time in one psql
# session, each preceded by its clock_timestamp() (so the time measured includes the
# UPDATE itself). Expiries: $enforcement_changes other online subscribers get expires_at
# spread over the next seconds, and each arrival is compared with its expires_at.
if has_suite enforcement; then
    n=$acct_subscribers
    e="enforcement-$n"
    k=$enforcement_changes
    [ $((2 * k)) -le "$enforcement_online" ] && [ "$enforcement_online" -le "$n" ] ||
        die "--enforcement-online must be at least twice --enforcement-changes and at most the subscribers"
    say "===== enforcement, $n subscribers, $enforcement_online online ====="
    mkdir -p "$work/$e" "$results/$e"
    load_jasiyo "$n"
    sink_port=$(pick_udp_port)
    "$bin/jasiyo-coa-sink" --listen "127.0.0.1:$sink_port" --secret "$secret" \
        >"$results/$e/arrivals" 2>"$work/$e/sink.log" &
    sink_pid=$!
    psql_q "${admin_url%/postgres}/jasiyo" -v online="$enforcement_online" -v port="$sink_port" <<'EOF'
SET session_replication_role = replica;
TRUNCATE sessions, usage_daily, auth_log, enforcement_actions;
UPDATE routers SET coa_port = :port;
INSERT INTO sessions (router_id, source_ip, nas_ip, username, subscriber_id, acct_session_id,
                      unique_key, framed_ip, started_at, last_update_at)
    SELECT r.id, '127.0.0.1', '127.0.0.1', s.username, s.id, 'e' || s.id, 'enforcement-' || s.id,
           '10.0.0.0'::inet + s.id, now(), now()
      FROM subscribers s, routers r
     WHERE s.id <= :online;
RESET session_replication_role;
VACUUM ANALYZE sessions;
EOF
    rm -rf "$work/$n/daemon"
    if start_daemon "$n" no-repeats; then
        db="${admin_url%/postgres}/jasiyo"
        say "enforcement: $k suspensions, one at a time"
        for i in $(seq 1 "$k"); do
            echo "SELECT (extract(epoch FROM clock_timestamp()) * 1e9)::bigint, 'bench$i';"
            echo "UPDATE subscribers SET status = 'suspended' WHERE username = 'bench$i';"
            echo "SELECT pg_sleep(0.02);"
        done | psql_q "$db" | grep '|' | tr '|' ' ' >"$results/$e/suspended"
        say "enforcement: $k expiries over the next $((3 + k / 50)) s"
        psql_q "$db" -v k="$k" <<'EOF' | tr '|' ' ' >"$results/$e/expiring"
UPDATE subscribers
   SET expires_at = now() + interval '3 s' + (id - :k - 1) * interval '20 ms'
 WHERE id BETWEEN :k + 1 AND 2 * :k
RETURNING (extract(epoch FROM expires_at) * 1e9)::bigint, username;
EOF
        deadline=$((SECONDS + 30 + k / 50))
        while [ "$(grep -c . "$results/$e/arrivals")" -lt $((2 * k)) ] && [ $SECONDS -lt "$deadline" ]; do
            sleep 0.2
        done
        # latencies in ms, one file per kind: join "time user" with "arrival kind user"
        for what in suspended expiring; do
            awk 'NR == FNR {t[$2] = $1; next} ($3 in t) {printf "%.3f\n", ($1 - t[$3]) / 1e6}' \
                "$results/$e/$what" "$results/$e/arrivals" | sort -g >"$results/$e/$what.ms"
        done
        psql_q "$db" -c "SELECT status, count(*) FROM enforcement_actions GROUP BY 1 ORDER BY 1" |
            tr '|' ' ' >"$results/$e/outcomes"
        say "enforcement: $(wc -l <"$results/$e/suspended.ms") suspension and $(wc -l <"$results/$e/expiring.ms") expiry arrivals; outcomes: $(tr '\n' ' ' <"$results/$e/outcomes")"
    fi
    stop_daemon
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
fi

# ---- payments suite ---------------------------------------------------------------------
# $acct_subscribers subscribers, the last $payments_sequential + $payments_callbacks of them expired (Access-Reject),
# each with a pending STK intent written in SQL as `POST /api/v1/payments/stk` would leave it
# after Daraja accepted the push (no Daraja here: the reconciler never queries these, their
# next_query_at is empty). jasiyo-paybench then POSTs the intents' success callbacks (first
# $payments_sequential one at a time, then $payments_callbacks at once) and asks radiusd (rlm_jasiyo) for each
# subscriber, a request every 10 ms, until the first Access-Accept.
if has_suite payments; then
    n=$acct_subscribers
    p="payments-$n"
    k=$((payments_sequential + payments_callbacks))
    [ "$k" -le "$n" ] || die "--payments-sequential + --payments-callbacks must be at most the subscribers"
    say "===== payments, $n subscribers, $payments_sequential callbacks one at a time, $payments_callbacks at once ====="
    mkdir -p "$work/$p" "$results/$p"
    load_jasiyo "$n"
    psql_q "${admin_url%/postgres}/jasiyo" -v n="$n" -v k="$k" <<'EOF'
UPDATE subscribers SET expires_at = now() - interval '1 day' WHERE id > :n - :k;
INSERT INTO payment_intents (subscriber_id, plan_id, phone, amount_kes, account_reference,
                             callback_token, merchant_request_id, checkout_request_id)
    SELECT s.id, s.plan_id, '2547' || lpad((s.id % 100000000)::text, 8, '0'), p.price_kes,
           'bench' || s.id, md5(random()::text) || md5(random()::text), 'bench-' || s.id,
           'ws_CO_bench' || s.id
      FROM subscribers s JOIN plans p ON p.id = s.plan_id
     WHERE s.id > :n - :k;
EOF
    psql_q "${admin_url%/postgres}/jasiyo" -F ' ' -c "SELECT s.username, i.callback_token, i.checkout_request_id, i.amount_kes
        FROM payment_intents i JOIN subscribers s ON s.id = i.subscriber_id ORDER BY i.id" \
        >"$work/$p/intents"
    rm -rf "$work/$n/daemon"
    daemon_env=(JASIYO_MPESA_ENVIRONMENT=http://127.0.0.1:9 JASIYO_MPESA_CONSUMER_KEY=bench
        JASIYO_MPESA_CONSUMER_SECRET=bench JASIYO_MPESA_PASSKEY=bench JASIYO_MPESA_SHORTCODE=174379
        JASIYO_PUBLIC_URL=http://127.0.0.1 JASIYO_MPESA_C2B_TOKEN="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')")
    if start_daemon "$n" no-repeats; then
        port_of=$(pick_udp_port)
        if setup_jasiyo "$work/$p/jasiyo" "$port_of" "$n" && start_radiusd pay-jasiyo "$work/$p/jasiyo" "$port_of"; then
            head -n "$payments_sequential" "$work/$p/intents" >"$work/$p/intents-one"
            tail -n +"$((payments_sequential + 1))" "$work/$p/intents" >"$work/$p/intents-burst"
            for run in one burst; do
                at_once=()
                [ "$run" = burst ] || at_once=(--at-once 1)
                "${radload_cpu[@]}" "$bin/jasiyo-paybench" --callback-base "http://127.0.0.1:$daemon_port" \
                    --server "127.0.0.1:$port_of" --secret "$secret" --password "$password" \
                    --intents "$work/$p/intents-$run" "${at_once[@]}" \
                    >"$results/$p/activation-$run.json" 2>"$work/$p/paybench-$run.err" ||
                    warn "jasiyo-paybench ($run) failed: $(tail -n 3 "$work/$p/paybench-$run.err")"
            done
            psql_q "${admin_url%/postgres}/jasiyo" -c "SELECT count(*) FROM payments WHERE applied = 'renewed'" \
                >"$results/$p/renewed"
            say "payments: $(cat "$results/$p/activation-one.json" "$results/$p/activation-burst.json" 2>/dev/null | tr '\n' ' ')renewed $(cat "$results/$p/renewed")"
            stop_pid "${radiusd_pid[pay-jasiyo]}" "radiusd (pay-jasiyo)"
            unset "radiusd_pid[pay-jasiyo]"
        fi
        unset port_of
    fi
    stop_daemon
    daemon_env=()
fi

# ---- vouchers suite ---------------------------------------------------------------------
# Batches of $voucher_batch codes made $rounds times in the jasiyo database, by the code
# POST /api/v1/voucher-batches runs (CSPRNG codes, lookup names, sealed copies, one
# transaction). The daemon is not running: this is the batch alone.
if has_suite vouchers; then
    say "===== vouchers: $rounds batches of $voucher_batch codes ====="
    DATABASE_URL="$jasiyo_url" "$bin/examples/voucher_batch_bench" "$voucher_batch" "$rounds" \
        >"$results/vouchers.jsonl" 2>"$work/vouchers.err" ||
        warn "voucher_batch_bench failed: $(tail -n 3 "$work/vouchers.err")"
    say "vouchers: $(tail -n 1 "$results/vouchers.jsonl" 2>/dev/null)"
fi

# ---- criterion: in-process lookup and build ---------------------------------------------
if [ "$criterion" = yes ]; then
    say "cargo bench -p jasiyo-snapshot --bench lookup (short measurement)"
    rm -rf "$root/target/criterion"
    if (cd "$root" && cargo bench -q -p jasiyo-snapshot --bench lookup -- \
        --warm-up-time 1 --measurement-time 4 --noplot) >"$results/criterion.txt" 2>&1; then
        for f in "$root"/target/criterion/*/new/benchmark.json "$root"/target/criterion/*/*/new/benchmark.json; do
            [ -f "$f" ] || continue
            jq -n --slurpfile b "$f" --slurpfile e "$(dirname "$f")/estimates.json" \
                '{id: $b[0].full_id, mean_ns: $e[0].mean.point_estimate,
                  mean_lo_ns: $e[0].mean.confidence_interval.lower_bound,
                  mean_hi_ns: $e[0].mean.confidence_interval.upper_bound,
                  median_ns: $e[0].median.point_estimate}'
        done | jq -s . >"$results/criterion.json"
        # the slowest sample (mean per iteration within one sample): an upper bound the
        # table shows next to the mean, since criterion reports no per-lookup percentile
        for f in "$root"/target/criterion/*/new/sample.json "$root"/target/criterion/*/*/new/sample.json; do
            [ -f "$f" ] || continue
            jq -n --slurpfile b "$(dirname "$f")/benchmark.json" --slurpfile s "$f" \
                '{id: $b[0].full_id, worst_sample_ns: ([$s[0].iters, $s[0].times] | transpose | map(.[1] / .[0]) | max)}'
        done | jq -s . >"$results/criterion-samples.json"
    else
        warn "cargo bench failed (see $results/criterion.txt)"
    fi
fi

# ---- BENCHMARKS.md ---------------------------------------------------------------------

elapsed=$((SECONDS - started))
say "writing $out"

median() { sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'; }
fmt() { # FORMAT VALUE (empty or null -> empty)
    [ -n "$2" ] && [ "$2" != null ] && printf "$1" "$2" || true
}
# median_run N CONFIG: the round file with the median req/s
median_run() {
    local files=("$results/$1/$2"-r*.json)
    [ -f "${files[0]}" ] || return 0
    local best
    best=$(for f in "${files[@]}"; do echo "$(jq .requests_per_s "$f") $f"; done | sort -g |
        awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')
    echo "$best"
}
# ratio N CONFIG [REFERENCE]: median over rounds of CONFIG req/s / REFERENCE (nolookup) req/s
# in the same round
ratio() {
    local n=$1 c=$2 ref=${3:-nolookup} r a b
    for r in $(seq 1 "$rounds"); do
        a="$results/$n/$c-r$r.json"
        b="$results/$n/$ref-r$r.json"
        [ -f "$a" ] && [ -f "$b" ] || continue
        echo "$(jq .requests_per_s "$a") $(jq .requests_per_s "$b")" | awk '{printf "%.4f\n", $1 / $2}'
    done | median
}
all_rps() {
    local r f
    for r in $(seq 1 "$rounds"); do
        f="$results/$1/$2-r$r.json"
        [ -f "$f" ] && printf '%.0f ' "$(jq .requests_per_s "$f")"
    done
}
# base_median N: median build+publish ms of every full base publication at N subscribers
base_median() {
    local f="$results/base-publications-$1.json"
    [ -f "$f" ] || return 0
    jq -r '.[].total_ms' "$f" | median
}
base_publications() { # N: "median (a, b, c)"
    local f="$results/base-publications-$1.json"
    [ -f "$f" ] || return 0
    printf '%.0f (%s)' "$(base_median "$1")" "$(jq -r 'map(.total_ms | floor | tostring) | join(", ")' "$f")"
}
cfield() { # ID FIELD from criterion.json
    [ -f "$results/criterion.json" ] || return 0
    jq -r --arg id "$1" "map(select(.id == \$id)) | first | $2 // empty" "$results/criterion.json"
}
met() { # CONDITION-STATUS-OF-awk EXPR
    if [ -z "$2" ]; then echo "not measured"; elif awk "BEGIN {exit !($2 $1)}"; then echo "**met**"; else echo "**not met**"; fi
}

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:\s*//p' | head -1)
mem=$(free -g | awk '/^Mem:/ {print $2}')
frv=$(freeradius -v 2>/dev/null | sed -n '1s/^radiusd: \(FreeRADIUS Version [^,]*\).*/\1/p')
pgv=$("$PG_BIN/postgres" --version 2>/dev/null | sed 's/^postgres (PostgreSQL) /PostgreSQL /')
os=$(. /etc/os-release && echo "$PRETTY_NAME")
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)
dirty=""
[ -z "$(git -C "$root" status --porcelain 2>/dev/null)" ] || dirty=" plus uncommitted changes"
bigN=$(for n in $subscribers; do echo "$n"; done | sort -n | tail -1)
describe() {
    case "$1" in
    nolookup) echo "stock FreeRADIUS, password and reply set inline (no lookup)" ;;
    sql) echo "FreeRADIUS + rlm_sql (PostgreSQL)" ;;
    jasiyo) echo "FreeRADIUS + rlm_jasiyo (snapshot)" ;;
    jasiyo-shipped) echo "rlm_jasiyo, shipped configuration" ;;
    esac
}

{
    echo "# Benchmarks"
    echo
    echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $rev$dirty,"
    echo "in $((elapsed / 60)) min $((elapsed % 60)) s. Numbers from one shared, noisy machine: compare the"
    echo "ratios, not the absolute values. Raw results: \`.jasiyo/bench/results/$stamp/\` (not committed)."
    echo
    echo "Command (as root):"
    echo
    echo '```'
    echo "$command_line"
    echo '```'
    echo
    echo "## Machine"
    echo
    echo "- CPU: ${cpu:-unknown}, $(nproc) cores"
    echo "- Memory: ${mem} GiB"
    echo "- Kernel: Linux $(uname -r) ($os)"
    echo "- Load average (1/5/15 min) before the run: $load_before (other users of the machine; the"
    echo "  benchmark's own radiusd threads raise it during the run)"
    echo "- ${frv:-FreeRADIUS}, ${pgv:-PostgreSQL}; load generator, radiusd, Postgres and billing-daemon share"
    echo "  the machine and talk over loopback."
    echo
    if has_suite auth; then
    echo "## RADIUS authentication (PAP)"
    echo
    echo "Load: \`jasiyo-radload\`, PAP Access-Requests with Message-Authenticator (PPPoE attribute set)"
    echo "for bench1..benchN drawn at random, $window requests in flight ($(( (window + 127) / 128 )) UDP sockets, at most 128 each)."
    if [ "$pin" = yes ]; then
        echo "radiusd pinned to CPU 1 and the load generator to CPU 0 (\`taskset\`), so radiusd's CPU cost per"
        echo "request sets the rate (Postgres and billing-daemon are not pinned; they run at nice $background_nice"
        echo "as \`scripts/stack.sh\` runs them, Postgres at 0 for the rlm_sql configurations)."
    else
        echo "radiusd and the load generator not pinned: they share the CPUs."
    fi
    echo "${warmup} s warm-up then ${duration} s measured, $rounds rounds (every configuration once per round,"
    echo "rotated order). req/s, p50 and p99"
    echo "are those of the median round; \"vs nolookup\" is the median of the per-round ratios; req/s"
    echo "counts the drain after the last request too, so a round with retransmissions (each waits"
    echo "the 3 s timeout) reads low. RSS is radiusd's resident memory after the rounds: anonymous"
    echo "(private) and file-backed; the latter holds the accounting journal rlm_jasiyo maps (its whole"
    echo "size, $journal_capacity here, pre-faulted) and the snapshot once per mapping (rlm_jasiyo's two"
    echo "instances, jasiyo and jasiyo_clients, each map it), shared with the page cache."
    echo
    echo "| subscribers | configuration | req/s | p50 ms | p99 ms | vs nolookup | accepted / sent | retransmits / timeouts | radiusd RSS MiB (anon / file) | req/s per round |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for n in $subscribers; do
        for c in $configs; do
            f=$(median_run "$n" "$c")
            if [ -z "$f" ]; then
                why=$(cat "$results/$n/$c.failed" 2>/dev/null || echo "no result")
                echo "| $n | $c | not measured: $why | | | | | | | |"
                continue
            fi
            rt=""
            if [ "$c" = nolookup ]; then rt="1.00x"; else rt=$(fmt '%.2fx' "$(ratio "$n" "$c")"); fi
            rss=$(awk '{printf "%.0f (%.0f / %.0f)", $1 / 1024, $2 / 1024, $3 / 1024}' "$results/$n/$c.rss" 2>/dev/null || true)
            printf '| %s | %s | %.0f | %.3f | %.3f | %s | %s / %s | %s / %s | %s | %s|\n' "$n" "$c" \
                "$(jq .requests_per_s "$f")" "$(jq .latency_ms.p50 "$f")" "$(jq .latency_ms.p99 "$f")" \
                "${rt:-n/a}" "$(jq .accept "$f")" "$(jq .sent "$f")" "$(jq .retransmits "$f")" \
                "$(jq .timeouts "$f")" "$rss" "$(all_rps "$n" "$c")"
        done
    done
    echo
    echo "Configurations:"
    echo
    echo "- **nolookup**: stock FreeRADIUS; \`control:Cleartext-Password\` and the reply attributes set"
    echo "  inline in unlang. The ceiling: no user lookup at all."
    echo "- **sql**: stock FreeRADIUS + rlm_sql (\`rlm_sql_postgresql\` from freeradius-postgresql) with the"
    echo "  installed \`queries.conf\`, on the same private Postgres 15 cluster as billing-daemon"
    echo "  (shared_buffers 1 GB, tables prewarmed). radcheck holds Cleartext-Password, radreply the three"
    echo "  reply attributes, indexed on (username, id). \`read_groups = no\` (two queries per request: the"
    echo "  best case for rlm_sql; stock \`yes\` adds a radusergroup query). Pool: start 5, max 32 (one per"
    echo "  radiusd thread)."
    echo "- **jasiyo**: rlm_jasiyo from \`scripts/make-raddb.sh\`'s overlay, answering from the snapshot"
    echo "  billing-daemon published from the same Postgres; the daemon keeps running, idle."
    echo "- These three share one virtual server (\`authorize { <lookup>; pap }\`, post-auth adding"
    echo "  Message-Authenticator), one static client, the stock thread pool (5..32 threads),"
    echo "  \`recv_buff = 4194304\`, no auth log, radiusd as root."
    if has_config jasiyo-shipped; then
        echo "- **jasiyo-shipped**: the configuration Jasiyo ships, unchanged: dynamic clients from the"
        echo "  snapshot, filter_username, preprocess, chap/mschap/pap, rlm_jasiyo in post-auth, and one"
        echo "  auth log line per request. Informational; the target applies to **jasiyo**. Its"
        echo "  retransmissions are packets radiusd discarded as \"conflicting packet ... unfinished request\"."
    fi
    echo
    echo "## Snapshot (billing-daemon)"
    echo
    echo "Measured by billing-daemon's publisher (its debug log): the first publication at \`serve\`"
    echo "(full load from Postgres, build, write + fsync + rename + generation bump); then $full_repeats more"
    echo "full rebuilds of the base (the notification a TRUNCATE sends), whose build+publish times are"
    echo "listed with their median (what the target is checked on: one sample on a shared machine is"
    echo "noise); then one \`UPDATE\` of one subscriber in psql and the time until the daemon logged the"
    echo "republication (an overlay)."
    echo
    echo "| subscribers | full load from Postgres ms | build ms | write+publish ms | build+publish ms | full base build+publish ms: median (every publication) | snapshot bytes | bytes/subscriber | daemon RSS MiB | UPDATE -> published ms | republish build+write ms |"
    echo "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
    for n in $subscribers; do
        f="$results/daemon-$n.json"
        if [ ! -f "$f" ]; then
            echo "| $n | not measured | | | | | | | | | |"
            continue
        fi
        g="$results/republish-$n.json"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" \
            "$(fmt '%.0f' "$(jq .full_load_ms "$f")")" "$(fmt '%.0f' "$(jq .build_ms "$f")")" \
            "$(fmt '%.0f' "$(jq .write_ms "$f")")" \
            "$(fmt '%.0f' "$(jq '.build_ms + .write_ms' "$f")")" "$(base_publications "$n")" \
            "$(jq .snapshot_bytes "$f")" \
            "$(fmt '%.1f' "$(jq .bytes_per_subscriber "$f")")" \
            "$(fmt '%.0f' "$(jq '.daemon_rss_kib / 1024' "$f")")" \
            "$(fmt '%.0f' "$(jq -r '.change_to_publish_ms // empty' "$g" 2>/dev/null)")" \
            "$(fmt '%.0f' "$(jq -r '(.build_ms + .write_ms) // empty' "$g" 2>/dev/null)")"
    done
    echo
    fi
    if [ "$criterion" = yes ]; then
        echo "## In-process (criterion, \`cargo bench -p jasiyo-snapshot --bench lookup\`)"
        echo
        echo "Run with \`-- --warm-up-time 1 --measurement-time 4\`. Criterion reports the mean per"
        echo "iteration (95 % confidence interval); \"worst sample\" is the slowest of its samples' means."
        echo "The bench also times 500,000 lookups one at a time (each reading the password and expiry, as"
        echo "the module does) for a per-lookup p50/p99; that timing includes reading the clock."
        echo
        if [ -f "$results/criterion.json" ]; then
            echo "| benchmark | mean | 95 % CI | worst sample |"
            echo "|---|---:|---:|---:|"
            jq -r --slurpfile s "$results/criterion-samples.json" '.[] | . as $b
                | ($s[0] | map(select(.id == $b.id)) | first | .worst_sample_ns) as $w
                | def t: if . >= 1e6 then "\(. / 1e6 * 100 | round / 100) ms"
                         elif . >= 1e3 then "\(. / 1e3 * 100 | round / 100) us"
                         else "\(. * 10 | round / 10) ns" end;
                "| \(.id) | \(.mean_ns | t) | \(.mean_lo_ns | t) .. \(.mean_hi_ns | t) | \($w | if . then t else "" end) |"' \
                "$results/criterion.json"
            echo
            grep -h 'bytes per subscriber' "$results/criterion.txt" | sed 's/^/Criterion data set: /' || true
            echo
            grep -h 'one at a time' "$results/criterion.txt" | sed 's/^/Per lookup: /' || true
        else
            echo "Not measured (cargo bench failed; see the raw results)."
        fi
        echo
    fi

    if [ -n "$acct_configs" ]; then
        a="acct-$acct_subscribers"
        echo "## RADIUS accounting (Interim-Update)"
        echo
        echo "Load: \`jasiyo-radload --kind interim\`: Accounting-Request Interim-Updates (PPPoE attribute"
        echo "set, 64-bit counters with Gigawords) for $acct_subscribers sessions (bench1..bench$acct_subscribers, one session"
        echo "each, drawn at random), $window in flight; warm-up, rounds, rotation and pinning as above. Every"
        echo "configuration answers only after its accounting section returned ok."
        echo
        echo "| configuration | req/s | p50 ms | p99 ms | vs acct-noop | answered / sent | retransmits / timeouts | radiusd RSS MiB | req/s per round |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
        for c in $acct_configs $(has_config acct-jasiyo && echo acct-jasiyo-paused); do
            f=$(median_run "$a" "$c")
            if [ -z "$f" ]; then
                echo "| $c | not measured: $(cat "$results/$a/$c.failed" 2>/dev/null || echo "no result") | | | | | | | |"
                continue
            fi
            rt=""
            if [ "$c" = acct-noop ]; then rt="1.00x"; else rt=$(fmt '%.2fx' "$(ratio "$a" "$c" acct-noop)"); fi
            rss=$(awk '{printf "%.0f", $1 / 1024}' "$results/$a/$c.rss" 2>/dev/null || true)
            printf '| %s | %.0f | %.3f | %.3f | %s | %s / %s | %s / %s | %s | %s|\n' "$c" \
                "$(jq .requests_per_s "$f")" "$(jq .latency_ms.p50 "$f")" "$(jq .latency_ms.p99 "$f")" \
                "${rt:-n/a}" "$(jq .accounting_response "$f")" "$(jq .sent "$f")" \
                "$(jq .retransmits "$f")" "$(jq .timeouts "$f")" "$rss" "$(all_rps "$a" "$c")"
        done
        echo
        echo "- **acct-noop**: stock FreeRADIUS, \`accounting { ok }\`: answers without recording anything."
        echo "- **acct-sql**: stock FreeRADIUS + rlm_sql with the installed PostgreSQL \`queries.conf\`"
        echo "  (\`acct_unique\` in preacct, one UPDATE, or INSERT, of radacct per packet) on the same Postgres"
        echo "  cluster, radacct created from FreeRADIUS's own \`schema.sql\`. Pool as above."
        echo "- **acct-jasiyo-paused**: the same radiusd with billing-daemon stopped (SIGSTOP) during the"
        echo "  round: the journal absorbs everything; radiusd's own cost without the daemon and Postgres"
        echo "  sharing the two CPUs (the target is checked on **acct-jasiyo**)."
        echo "- **acct-jasiyo**: \`accounting { jasiyo }\`: rlm_jasiyo appends the packet to the journal and"
        echo "  answers once it is there (durable against radiusd and daemon crashes); billing-daemon"
        echo "  applies the journal to sessions and daily usage in Postgres meanwhile. The journal is sized"
        echo "  $journal_capacity for the benchmark (the shipped default is 64 MiB) so that a round's backlog fits;"
        echo "  sustained beyond the journal's size, the daemon's ingest rate below is the limit."
        echo "  billing-daemon and Postgres run at nice $background_nice, as \`scripts/stack.sh\` runs them: when the"
        echo "  CPUs are short, radiusd gets them first and the journal holds what is not applied yet."
        echo "  For acct-sql, Postgres runs at nice 0 (it is on rlm_sql's request path)."
        echo
        lag_files=("$results/$a"/lag-r*.txt)
        if [ -f "${lag_files[0]}" ]; then
            bpr=$(jq -r '.bytes_per_record // empty' "$results/$a/journal.json" 2>/dev/null || true)
            echo "Daemon lag during acct-jasiyo's measured rounds (journal bytes not yet applied to Postgres,"
            echo "sampled every 0.2 s from \`/healthz\`$([ -z "$bpr" ] || printf '; records at %.0f journal bytes each' "$bpr")):"
            echo "$(cat "${lag_files[@]}" | awk -v b="${bpr:-0}" '$2 != "null" {n++; if ($2 > m) m = $2; s += $2}
                END {if (!n) {print "not reported"; exit}
                     printf "mean %.0f KiB, max %.0f KiB over %d samples", s / n / 1024, m / 1024, n
                     if (b > 0) printf " (about %.0f and %.0f records)", s / n / b, m / b}')."
            echo
        fi
        if [ -f "$results/$a/ingest.json" ]; then
            echo "Daemon ingest: $(jq -r .journaled "$results/$a/ingest.json") Interim-Updates journaled with billing-daemon"
            echo "stopped, then the daemon started on that backlog: it applied $(jq -r .records "$results/$a/ingest.json") of them to Postgres in"
            echo "$(jq -r '.seconds * 100 | round / 100' "$results/$a/ingest.json") s (timed from $(jq -r 'if .timed_from == "ready" then "its /healthz answering" else "its start, start-up included" end' "$results/$a/ingest.json")) = **$(jq -r '.records_per_s | floor' "$results/$a/ingest.json") records/s**."
            echo
        fi
    fi
    if has_suite enforcement; then
        e="enforcement-$acct_subscribers"
        # pct FILE P: the P-th percentile of a sorted file of numbers
        pct() { awk -v p="$2" '{a[NR] = $1} END {if (NR) {i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; print a[i]}}' "$1"; }
        echo "## Enforcement (Disconnect/CoA)"
        echo
        echo "$acct_subscribers subscribers, $enforcement_online of them online on one router whose \`/radius incoming\` is"
        echo "\`jasiyo-coa-sink\` (it ACKs every correctly signed request at once and logs its arrival time)."
        echo "**Suspension**: $enforcement_changes \`UPDATE subscribers SET status = 'suspended'\` one after another in psql,"
        echo "each timed from just before the statement to the Disconnect-Request's arrival. **Expiry**:"
        echo "$enforcement_changes online subscribers whose \`expires_at\` falls 20 ms apart, each timed from \`expires_at\`"
        echo "to the arrival (billing-daemon sleeps until the next expiry of an online subscriber)."
        echo
        echo "| change -> Disconnect-Request at the router | arrivals | p50 ms | p99 ms | max ms |"
        echo "|---|---:|---:|---:|---:|"
        for what in suspended expiring; do
            f="$results/$e/$what.ms"
            label=suspension
            [ "$what" = suspended ] || label=expiry
            if [ -s "$f" ]; then
                echo "| $label | $(wc -l <"$f") / $enforcement_changes | $(pct "$f" 50) | $(pct "$f" 99) | $(tail -n 1 "$f") |"
            else
                echo "| $label | not measured | | | |"
            fi
        done
        early=""
        [ ! -s "$results/$e/expiring.ms" ] || early=$(awk '$1 < 0' "$results/$e/expiring.ms" | wc -l)
        echo
        echo "Disconnects sent before the expiry they enforce: ${early:-not measured}. Outcomes in the"
        echo "enforcement log: $(tr '\n' ',' <"$results/$e/outcomes" 2>/dev/null | sed 's/,$//; s/,/, /g')."
        echo
    fi
    if has_suite payments; then
        p="payments-$acct_subscribers"
        pf() { jq -r --arg f "$2" '.[$f] // empty | . * 10 | round / 10' "$1"; }
        echo "## M-Pesa activation (callback -> Access-Accept)"
        echo
        echo "$acct_subscribers subscribers; the last $((payments_sequential + payments_callbacks)) are expired (rlm_jasiyo rejects them) and each has a"
        echo "pending STK intent, written in SQL in the state \`POST /api/v1/payments/stk\` leaves after Daraja"
        echo "accepted the push (no Daraja in the bench). \`jasiyo-paybench\` POSTs their success callbacks, first"
        echo "$payments_sequential one at a time, then $payments_callbacks at once, each to its intent's URL with Safaricom's body, and asks radiusd for that subscriber (PAP,"
        echo "one request every 10 ms) until the first Access-Accept. Latency: from just before the"
        echo "callback POST to that Access-Accept (store the body, credit and renew in one transaction,"
        echo "snapshot republish, rlm_jasiyo sees it)."
        echo
        echo "| callbacks | activated | activation p50 ms | p99 ms | max ms | callback POST p50 ms | p99 ms |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for run in one burst; do
            pj="$results/$p/activation-$run.json"
            label="$payments_sequential, one at a time"
            [ "$run" = one ] || label="$payments_callbacks at once"
            if [ -s "$pj" ]; then
                echo "| $label | $(jq -r '"\(.count) (\(.failures) failed)"' "$pj") | $(pf "$pj" activation_p50_ms) | $(pf "$pj" activation_p99_ms) | $(pf "$pj" activation_max_ms) | $(pf "$pj" callback_p50_ms) | $(pf "$pj" callback_p99_ms) |"
            else
                echo "| $label | not measured | | | | | |"
            fi
        done
        echo
        echo "Payments renewed in Postgres afterwards: $(cat "$results/$p/renewed" 2>/dev/null || echo 'not measured')."
        echo
    fi
    if has_suite auth; then
    echo "## Targets (issue 2)"
    echo
    rj=$(ratio "$bigN" jasiyo)
    bp=""
    bps=""
    if [ -f "$results/daemon-$bigN.json" ]; then
        bp=$(base_median "$bigN")
        bps=$(jq .bytes_per_subscriber "$results/daemon-$bigN.json")
    fi
    lk=$(cfield "lookup by username, 1M subscribers" .mean_ns)
    lk99=""
    [ ! -f "$results/criterion.txt" ] ||
        lk99=$(sed -n 's/.*one at a time: .* p99 \([0-9]*\) ns.*/\1/p' "$results/criterion.txt" | head -n 1)
    lkw=""
    [ ! -f "$results/criterion-samples.json" ] ||
        lkw=$(jq -r 'map(select(.id == "lookup by username, 1M subscribers")) | first | .worst_sample_ns // empty' "$results/criterion-samples.json")
    echo "| target | measured | |"
    echo "|---|---:|---|"
    if [ "$bigN" = 1000000 ]; then
        echo "| rlm_jasiyo >= 0.95x no-lookup req/s at 1M subscribers | $(fmt '%.2fx' "$rj") | $(met '>= 0.95' "$rj") |"
        echo "| full snapshot of 1M subscribers built and published <= 1 s | $(fmt '%.0f ms' "$bp") (build + write, median of the full publications, daemon log) | $(met '<= 1000' "$bp") |"
        echo "| <= 256 bytes per subscriber | $(fmt '%.1f' "$bps") (daemon's file at 1M) | $(met '<= 256' "$bps") |"
        rp=""
        rpb=""
        if [ -f "$results/republish-$bigN.json" ]; then
            rp=$(jq .change_to_publish_ms "$results/republish-$bigN.json")
            rpb=$(jq '.build_ms + .write_ms' "$results/republish-$bigN.json")
        fi
        echo "| (issue 2, \"The snapshot\") a new snapshot within 100 ms of a change, at 1M subscribers | $(fmt '%.0f ms' "$rp")$([ -z "$rpb" ] || printf ' (build + write %.0f ms)' "$rpb") | $(met '<= 100' "$rp") |"
    else
        echo "| rlm_jasiyo >= 0.95x no-lookup at 1M subscribers | not measured (largest run: $bigN) | not measured |"
        echo "| full snapshot of 1M subscribers built and published <= 1 s | not measured | not measured |"
        echo "| <= 256 bytes per subscriber | $(fmt '%.1f' "$bps") at $bigN | not measured at 1M |"
    fi
    if [ -n "$lk99" ]; then
        echo "| lookup <= 1 us p99 in-process (1M subscribers) | $lk99 ns p99 ($(fmt '%.0f ns' "$lk") criterion mean) | $(met '<= 1000' "$lk99") |"
    else
        echo "| lookup <= 1 us in-process (criterion, 1M subscribers) | $(fmt '%.0f ns mean' "$lk")$([ -z "$lkw" ] || printf ', %.0f ns worst sample' "$lkw") | $(met '<= 1000' "$lk") (on the mean) |"
    fi
    fi
    if [ -n "$acct_configs" ]; then
        a="acct-$acct_subscribers"
        echo
        echo "## Targets (issue 3)"
        echo
        ra=$(ratio "$a" acct-jasiyo acct-noop)
        rp=$(ratio "$a" acct-jasiyo-paused acct-noop)
        ing=""
        [ ! -f "$results/$a/ingest.json" ] || ing=$(jq .records_per_s "$results/$a/ingest.json")
        echo "| target | measured | |"
        echo "|---|---:|---|"
        echo "| Interim-Update throughput with rlm_jasiyo >= 0.9x accounting doing nothing, every record durable (in the journal): radiusd's own cost, billing-daemon paused (acct-jasiyo-paused) | $(fmt '%.2fx' "$rp") | $(met '>= 0.9' "$rp") |"
        echo "| the same with billing-daemon applying to Postgres at the same time (both at nice $background_nice, as the stack runs them), sharing the two CPUs with the load generator (acct-jasiyo) | $(fmt '%.2fx' "$ra") | $(met '>= 0.9' "$ra") |"
        echo "| daemon ingest into Postgres >= 20,000 records/s sustained | $(fmt '%.0f records/s' "$ing") | $(met '>= 20000' "$ing") |"
    fi
    if has_suite enforcement; then
        e="enforcement-$acct_subscribers"
        sp=""
        ep=""
        [ ! -s "$results/$e/suspended.ms" ] || sp=$(tail -n 1 "$results/$e/suspended.ms")
        [ ! -s "$results/$e/expiring.ms" ] || ep=$(tail -n 1 "$results/$e/expiring.ms")
        echo
        echo "## Targets (issue 4)"
        echo
        echo "| target | measured | |"
        echo "|---|---:|---|"
        echo "| suspended while online -> disconnected within 1 s (every router) | $(fmt '%.0f ms' "$sp") worst of $enforcement_changes | $(met '<= 1000' "$sp") |"
        echo "| expired while online -> disconnected within 1 s of expires_at | $(fmt '%.0f ms' "$ep") worst of $enforcement_changes | $(met '<= 1000' "$ep") |"
    fi
    if has_suite payments; then
        echo
        echo "## Targets (issue 5)"
        echo
        echo "| target | measured | |"
        echo "|---|---:|---|"
        for run in one burst; do
            pj="$results/payments-$acct_subscribers/activation-$run.json"
            ap=""
            [ ! -s "$pj" ] || ap=$(jq -r '.activation_p99_ms // empty' "$pj")
            label="one callback at a time"
            [ "$run" = one ] || label="$payments_callbacks callbacks at once"
            echo "| callback received -> the subscriber's next Access-Accept <= 200 ms p99 ($acct_subscribers subscribers, $label) | $(fmt '%.0f ms' "$ap") p99 | $(met '<= 200' "$ap") |"
        done
    fi
    if has_suite vouchers; then
        vs=""
        [ ! -s "$results/vouchers.jsonl" ] || vs=$(tail -n 1 "$results/vouchers.jsonl")
        vmax=""
        [ -z "$vs" ] || vmax=$(jq -r '.max_ms // empty' <<<"$vs")
        echo
        echo "## Voucher batches (issue 6)"
        echo
        echo "What \`POST /api/v1/voucher-batches\` does for $voucher_batch codes: draw them from the OS CSPRNG,"
        echo "derive their lookup names (HMAC), seal them (AES-256-GCM) and insert them in one transaction, in"
        echo "the benchmark's Postgres (after the other suites, with their subscribers loaded); $rounds batches."
        echo
        echo "| codes | batches | min ms | median ms | max ms |"
        echo "|---:|---:|---:|---:|---:|"
        if [ -n "$vs" ]; then
            echo "| $voucher_batch | $(jq -r '"\(.rounds) | \(.min_ms) | \(.median_ms) | \(.max_ms)"' <<<"$vs") |"
        else
            echo "| $voucher_batch | not measured | | | |"
        fi
        echo
        echo "## Targets (issue 6)"
        echo
        echo "| target | measured | |"
        echo "|---|---:|---|"
        # Only a batch of at least 10,000 can meet it.
        [ "$voucher_batch" -ge 10000 ] || vmax=""
        echo "| a batch of 10,000 vouchers generated in under 2 s | $(fmt '%.0f ms' "$vmax") slowest of $rounds ($voucher_batch codes) | $(met '< 2000' "$vmax") |"
    fi
} >"$out"
say "wrote $out ($((elapsed / 60)) min $((elapsed % 60)) s)"
