#!/usr/bin/env bash
# Builds a private FreeRADIUS 3.2 configuration directory ("raddb") for Jasiyo from the
# system's /etc/freeradius/3.0 plus freeradius-config/, without touching the system one.
#
#   scripts/make-raddb.sh OUT_DIR --auth-port N --acct-port N --snapshot-dir DIR \
#       --module PATH/librlm_jasiyo.so [--journal PATH] [--voucher-key-file PATH]
#       [--clients-network CIDR] [--as-root]
#
# Options can also come from the environment: JASIYO_AUTH_PORT, JASIYO_ACCT_PORT,
# JASIYO_SNAPSHOT_DIR, JASIYO_MODULE, JASIYO_JOURNAL_PATH (default
# /var/lib/jasiyo/journal/accounting.journal), JASIYO_VOUCHER_KEY_FILE (default: none,
# vouchers off), JASIYO_CLIENTS_NETWORK (default 127.0.0.0/8), JASIYO_RADDB_AS_ROOT=1,
# FREERADIUS_RADDB (default /etc/freeradius/3.0).
#
# The result:
# - listens on 127.0.0.1 only, on the given auth and acct ports (no other listener: the
#   stock sites, inner-tunnel, control socket and EAP are not enabled);
# - has no static clients: packets from --clients-network are answered through dynamic
#   clients defined from the snapshot (routers in billing-daemon);
# - loads OUT_DIR/lib/rlm_jasiyo.so (a copy of --module) before /usr/lib/freeradius;
# - journals accounting (and post-auth results) to --journal, the file billing-daemon
#   consumes (its JASIYO_JOURNAL_PATH);
# - logs to OUT_DIR/log/radius.log (or stdout with -l stdout), with auth results;
# - sends Access-Rejects without the stock 1 s delay (reject_delay = 0), for tests;
# - is readable by the freerad user that radiusd switches to (unless --as-root, which drops
#   the user/group settings so radiusd keeps running as root).
#
# Idempotent: running it again over the same OUT_DIR rebuilds it from scratch.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() {
    echo "make-raddb: $*" >&2
    exit 1
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
overlay="$root/freeradius-config"
system_raddb=${FREERADIUS_RADDB:-/etc/freeradius/3.0}

out=""
auth_port=${JASIYO_AUTH_PORT:-}
acct_port=${JASIYO_ACCT_PORT:-}
snapshot_dir=${JASIYO_SNAPSHOT_DIR:-}
module=${JASIYO_MODULE:-}
journal=${JASIYO_JOURNAL_PATH:-/var/lib/jasiyo/journal/accounting.journal}
voucher_key_file=${JASIYO_VOUCHER_KEY_FILE:-}
clients_network=${JASIYO_CLIENTS_NETWORK:-127.0.0.0/8}
as_root=${JASIYO_RADDB_AS_ROOT:-0}

while [ $# -gt 0 ]; do
    case "$1" in
        --auth-port) auth_port=${2:?}; shift 2 ;;
        --acct-port) acct_port=${2:?}; shift 2 ;;
        --snapshot-dir) snapshot_dir=${2:?}; shift 2 ;;
        --module) module=${2:?}; shift 2 ;;
        --journal) journal=${2:?}; shift 2 ;;
        --voucher-key-file) voucher_key_file=${2:?}; shift 2 ;;
        --clients-network) clients_network=${2:?}; shift 2 ;;
        --as-root) as_root=1; shift ;;
        -h | --help) usage ;;
        -*) die "unknown option $1" ;;
        *) [ -z "$out" ] || die "more than one OUT_DIR"; out=$1; shift ;;
    esac
done

[ -n "$out" ] || usage
[[ "$auth_port" =~ ^[0-9]+$ ]] || die "--auth-port N is required"
[[ "$acct_port" =~ ^[0-9]+$ ]] || die "--acct-port N is required"
[ "$auth_port" != "$acct_port" ] || die "auth and acct ports must differ"
for port in "$auth_port" "$acct_port"; do
    case "$port" in
        1812 | 1813 | 3799 | 18120) die "port $port is reserved for a system FreeRADIUS; pick another" ;;
    esac
done
[ -n "$snapshot_dir" ] || die "--snapshot-dir DIR is required"
[ -n "$module" ] || die "--module PATH_TO_librlm_jasiyo.so is required"
[ -f "$module" ] || die "module $module not found (cargo build -p rlm_jasiyo)"
[ -f "$system_raddb/radiusd.conf" ] || die "$system_raddb/radiusd.conf not found (apt-get install freeradius)"
[[ "$clients_network" =~ ^[0-9A-Fa-f.:]+/([0-9]+)$ ]] || die "bad --clients-network $clients_network (want a network such as 10.0.0.0/8)"
# FreeRADIUS refuses to start with a single address as a dynamic-clients network ("Dynamic
# clients MUST be a network"): say so here, in words an operator can act on.
prefix=${BASH_REMATCH[1]}
if [[ "$clients_network" == *:* ]]; then max_prefix=128; else max_prefix=32; fi
[ "$prefix" -lt "$max_prefix" ] || die "--clients-network $clients_network is a single address; FreeRADIUS needs a network for dynamic clients (e.g. ${clients_network%/*}/31 or wider)"
[ -n "$(getent passwd freerad)" ] || [ "$as_root" = 1 ] || die "user freerad does not exist (use --as-root)"

mkdir -p "$out"
out=$(cd "$out" && pwd)
# Rebuilding wipes OUT_DIR: only do that to an empty directory or an earlier raddb.
if [ -n "$(ls -A "$out")" ] && [ ! -f "$out/radiusd.conf" ]; then
    die "$out is not empty and is not a raddb; refusing to wipe it"
fi
snapshot_dir=$(realpath -m "$snapshot_dir")
journal=$(realpath -m "$journal")

# Start from a clean copy of the system configuration.
find "$out" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
cp -a "$system_raddb/." "$out/"
mkdir -p "$out/lib" "$out/log/radacct" "$out/run"

# Only the sites and modules this server needs. The stock default and inner-tunnel sites
# listen on the standard ports, and eap (TLS certificates, inner-tunnel) is not needed for
# MikroTik PAP/CHAP/MS-CHAPv2.
rm -f "$out"/sites-enabled/*
rm -f "$out"/mods-enabled/*
for mod in always attr_filter chap detail expr mschap pap preprocess; do
    [ -e "$out/mods-available/$mod" ] || die "stock module $mod missing from $system_raddb"
    ln -s "../mods-available/$mod" "$out/mods-enabled/$mod"
done

# Jasiyo's module instances and site.
cp "$overlay/mods-available/jasiyo" "$out/mods-available/jasiyo"
sed -i -E "s|^([[:space:]]*snapshot_dir = )/var/lib/jasiyo/snapshot$|\1$snapshot_dir|" \
    "$out/mods-available/jasiyo"
grep -q "snapshot_dir = $snapshot_dir\$" "$out/mods-available/jasiyo" ||
    die "could not set snapshot_dir in mods-available/jasiyo"
sed -i -E "s|^([[:space:]]*journal = )/var/lib/jasiyo/journal/accounting\.journal$|\1$journal|" \
    "$out/mods-available/jasiyo"
grep -q "journal = $journal\$" "$out/mods-available/jasiyo" ||
    die "could not set journal in mods-available/jasiyo"
if [ -n "$voucher_key_file" ]; then
    voucher_key_file=$(realpath -m "$voucher_key_file")
    sed -i -E "s|^#([[:space:]]*voucher_key_file = )/var/lib/jasiyo/voucher\.key$|\1$voucher_key_file|" \
        "$out/mods-available/jasiyo"
    grep -q "^[[:space:]]*voucher_key_file = $voucher_key_file\$" "$out/mods-available/jasiyo" ||
        die "could not set voucher_key_file in mods-available/jasiyo"
fi
ln -s ../mods-available/jasiyo "$out/mods-enabled/jasiyo"

# The site, listening on 127.0.0.1 and the given ports only.
awk -v auth="$auth_port" -v acct="$acct_port" '
    /^[[:space:]]*type = auth$/ { port = auth }
    /^[[:space:]]*type = acct$/ { port = acct }
    /^[[:space:]]*ipaddr = \*$/ { sub(/\*/, "127.0.0.1") }
    /^[[:space:]]*port = 0$/ { if (port == "") { print "make-raddb: port before type" > "/dev/stderr"; exit 1 }
                               sub(/0$/, port); port = "" }
    { print }
' "$overlay/sites-available/jasiyo" >"$out/sites-available/jasiyo"
[ "$(grep -cE "^[[:space:]]*port = ($auth_port|$acct_port)$" "$out/sites-available/jasiyo")" = 2 ] ||
    die "could not set the listen ports in sites-available/jasiyo"
ln -s ../sites-available/jasiyo "$out/sites-enabled/jasiyo"

# Clients: only the dynamic network (the stock localhost client would shadow it).
sed -E "s|^([[:space:]]*ipaddr = )10\.0\.0\.0/8$|\1$clients_network|" "$overlay/clients.conf" \
    >"$out/clients.conf"
grep -q "ipaddr = $clients_network\$" "$out/clients.conf" || die "could not set the clients network"

# The module, under the name radiusd looks for.
install -m 0644 "$module" "$out/lib/rlm_jasiyo.so"

# radiusd.conf: paths into OUT_DIR, library search path, logging, no proxying.
conf="$out/radiusd.conf"
set_conf() { # KEY VALUE: replace the top-level "KEY = ..." line
    grep -qE "^$1[[:space:]]*= " "$conf" || die "radiusd.conf has no '$1 =' line"
    sed -i -E "s|^$1[[:space:]]*= .*$|$1 = $2|" "$conf"
}
set_conf raddbdir "$out"
set_conf logdir "$out/log"
set_conf run_dir "$out/run"
set_conf libdir "$out/lib:/usr/lib/freeradius"
set_conf proxy_requests "no"
sed -i -E \
    -e 's|^([[:space:]]*colourise = ).*$|\1no|' \
    -e 's|^([[:space:]]*auth = ).*$|\1yes|' \
    -e 's|^([[:space:]]*reject_delay = ).*$|\10|' \
    "$conf"
if [ "$as_root" = 1 ]; then
    sed -i -E '/^[[:space:]]*(user|group) = freerad$/d' "$conf"
fi

# Permissions: radiusd reads its configuration after switching to freerad, and refuses
# world-writable configuration files.
chmod -R go-w "$out"
if [ "$as_root" != 1 ]; then
    chgrp -R freerad "$out"
    chmod -R g+rX "$out"
    chown -R freerad:freerad "$out/log" "$out/run"
    # Check the whole path is reachable for freerad (e.g. a 0700 home directory is not).
    if command -v runuser >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        runuser -u freerad -- test -r "$out/radiusd.conf" ||
            die "freerad cannot read $out/radiusd.conf (a parent directory is not searchable?)"
        runuser -u freerad -- test -x "$snapshot_dir" ||
            echo "make-raddb: warning: freerad cannot enter $snapshot_dir (yet?); radiusd will fail to start until it can" >&2
        runuser -u freerad -- test -w "$journal" ||
            echo "make-raddb: warning: freerad cannot write $journal (yet?); accounting fails (no responses) until billing-daemon created it" >&2
    fi
fi

cat <<EOF
raddb ready in $out (auth 127.0.0.1:$auth_port, acct 127.0.0.1:$acct_port, clients $clients_network, journal $journal)
check:  freeradius -C -d $out
start:  FR_LIBRARY_PATH=$out/lib:/usr/lib/freeradius freeradius -f -l stdout -d $out
debug:  FR_LIBRARY_PATH=$out/lib:/usr/lib/freeradius freeradius -X -d $out
(-f -l stdout logs to stdout; without -l the log is $out/log/radius.log.
 radiusd prints "Ready to process requests" once it listens.)
EOF
