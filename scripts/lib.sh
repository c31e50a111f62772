# Shared helpers for the project's shell scripts. Source it; do not run it.
# shellcheck shell=bash

# The Debian packages the stack and the tests need. freeradius and
# freeradius-utils give radiusd, radclient and radtest; libfreeradius-dev,
# libclang-dev, clang, libtalloc-dev and libpcre3-dev are what build.rs needs to
# run bindgen over the FreeRADIUS headers; postgresql-15 gives the binaries for
# the private cluster (no system cluster is used); gcc/libc6-dev link Rust;
# acl lets the scripts give postgres/freerad search access to a checkout under
# /root; curl and jq let stack.sh talk to the API. chromium and
# chromium-driver (chromedriver) run the hotspot login page in the tests.
JASIYO_PACKAGES=(
    freeradius freeradius-utils libfreeradius-dev
    libclang-dev clang libtalloc-dev libpcre3-dev pkg-config
    postgresql-15 gcc libc6-dev curl ca-certificates acl jq
    chromium chromium-driver
)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# background_nice: the CPU nice value stack.sh and bench.sh give billing-daemon and
# its Postgres (radiusd keeps 0): JASIYO_BACKGROUND_NICE, 0 to 19, default 10.
background_nice() {
    local n=${JASIYO_BACKGROUND_NICE:-10}
    case "$n" in '' | *[!0-9]*) die "JASIYO_BACKGROUND_NICE must be 0 to 19, got '$n'" ;; esac
    [ "$n" -le 19 ] || die "JASIYO_BACKGROUND_NICE must be 0 to 19, got '$n'"
    echo "$n"
}

# set_cpu_nice NICE PID...: gives each process and its children nice value NICE.
# With autogroup scheduling on (kernel.sched_autogroup_enabled, the default on
# Debian), Linux first shares the CPUs between sessions and only then between the
# processes of a session, so a process's own nice value is weighed only against
# its session. For a PID that leads its own session (pg_ctl and setsid start one)
# the session's nice value is set too; a PID in the caller's session keeps it, as
# that would lower the caller and its other children.
set_cpu_nice() {
    local nice=$1 pid sid p tasks
    shift
    for pid in "$@"; do
        # Every thread: Linux keeps a nice value per thread, and renice of a pid sets only
        # its main thread's.
        tasks=()
        for p in "$pid" $(ps -o pid= --ppid "$pid"); do
            tasks+=("/proc/$p/task"/*)
        done
        renice -n "$nice" -p "${tasks[@]##*/}" >/dev/null 2>&1 ||
            warn "could not set nice $nice on process $pid"
        sid=$(ps -o sid= -p "$pid" | tr -d ' ')
        if [ "$sid" = "$pid" ] && [ -w "/proc/$pid/autogroup" ]; then
            echo "$nice" 2>/dev/null >"/proc/$pid/autogroup" || warn "could not set the session nice of $pid"
        fi
    done
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "run this as root (it installs packages and starts radiusd and Postgres under their own users)"
}

# Installs whichever of JASIYO_PACKAGES is missing: apt-get update, then
# apt-get install of just those. Nothing is fetched when all are present.
install_packages() {
    local missing=() p status
    for p in "${JASIYO_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "system packages: all present"
        return 0
    fi
    say "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update </dev/null || die "apt-get update failed"
    apt-get install -y --no-install-recommends "${missing[@]}" </dev/null ||
        die "apt-get install ${missing[*]} failed"
}

require_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            die "cargo not found: install a Rust toolchain (>= 1.85), e.g. from https://rustup.rs, and make sure cargo is on PATH"
        fi
    fi
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now
# (the caller retries if it loses a race for it).
pick_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "could not find a free port"
}

# Is something listening on 127.0.0.1:PORT (TCP)?
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Gives USER search (x) permission on every ancestor of PATH that lacks it, so
# a service running as USER (postgres, freerad) can reach a directory inside a
# checkout under, say, /root. Uses an ACL entry for USER only, never o+x.
ensure_reachable() {
    local user=$1 path=$2 d dirs=()
    d=$(dirname "$(readlink -f "$path")")
    while [ "$d" != "/" ]; do
        dirs=("$d" "${dirs[@]}")
        d=$(dirname "$d")
    done
    # Top down, so only the directories that really block get an entry.
    for d in "${dirs[@]}"; do
        runuser -u "$user" -- test -x "$d" 2>/dev/null && continue
        command -v setfacl >/dev/null 2>&1 ||
            die "$user cannot reach $path: $d is not searchable by $user (apt-get install acl, or move the checkout)"
        say "granting $user search permission on $d (ACL, x only) so it can reach $path"
        setfacl -m "u:$user:x" "$d" || die "setfacl on $d failed"
    done
}

# Polls COMMAND... until it succeeds (status 0) or SECONDS pass (status 1).
# A COMMAND status of 255 means "will never succeed": give up at once.
wait_for() {
    local seconds=$1 rc
    shift
    local deadline=$((SECONDS + seconds))
    while true; do
        "$@" >/dev/null 2>&1 && return 0
        rc=$?
        [ "$rc" -ne 255 ] || return 1
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# Is the process in pid file FILE alive (and is it the one we started: its
# command line contains WORD)?
pid_alive() {
    local file=$1 word=$2 pid
    [ -s "$file" ] || return 1
    pid=$(cat "$file")
    [ -d "/proc/$pid" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$word"
}

# Stops process PID (named NAME in messages): TERM, wait up to 10 s, then KILL;
# reaps it if it is our child. Does nothing if it is already gone.
stop_pid() {
    local pid=$1 name=$2
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        [ -d "/proc/$pid" ] || break
        sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
        warn "$name (pid $pid) did not stop after 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Stops the process in pid file FILE (if it is alive and matches WORD) with
# stop_pid, and removes the pid file.
stop_pidfile() {
    local file=$1 word=$2 name=$3 pid
    if pid_alive "$file" "$word"; then
        pid=$(cat "$file")
        say "stopping $name (pid $pid)"
        stop_pid "$pid" "$name"
    fi
    rm -f "$file"
}
