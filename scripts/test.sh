#!/usr/bin/env bash
# Runs every test of the project, end to end included. Run as root on Debian 12:
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --test auth     # extra arguments go to `cargo test --workspace`
#
# Installs the missing system packages, starts a private Postgres cluster for
# this run only (temporary directory, port picked now, stopped on exit), builds
# the workspace and runs `cargo test --workspace`. The environment it exports:
#   DATABASE_URL    a scratch database, for the daemon's #[sqlx::test] tests
#   JASIYO_TEST_PG  the cluster's superuser URL; each end-to-end test creates
#                   its own database from it
#   JASIYO_PG_CLUSTER  this script's sibling pg-cluster.sh, for tests that need
#                   a cluster of their own (they stop Postgres)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

require_root
install_packages
require_cargo

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jasiyo-test.XXXXXX")
# postgres must reach the cluster inside it
chmod 0755 "$tmp"
pgdir="$tmp/pg"
port=
cleanup() {
    local rc=$?
    if [ -n "$port" ]; then
        "$root/scripts/pg-cluster.sh" stop "$pgdir" "$port" || warn "stopping the test cluster failed"
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

say "starting a private Postgres cluster for this run"
port=$(pick_port)
JASIYO_PG_EPHEMERAL=1 "$root/scripts/pg-cluster.sh" init "$pgdir" "$port"
for attempt in 1 2 3 4 5; do
    [ -n "$port" ] || port=$(pick_port)
    if "$root/scripts/pg-cluster.sh" start "$pgdir" "$port" 2>"$tmp/pg-start.err"; then
        break
    fi
    port=
    [ "$attempt" -lt 5 ] || {
        cat "$tmp/pg-start.err" >&2
        die "could not start the test cluster"
    }
done
admin_url=$("$root/scripts/pg-cluster.sh" url "$pgdir" "$port")
PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -q -v ON_ERROR_STOP=1 "$admin_url" -c 'CREATE DATABASE jasiyo_test' >/dev/null
say "test cluster on 127.0.0.1:$port ($pgdir)"

export JASIYO_TEST_PG="$admin_url"
export DATABASE_URL="${admin_url%/postgres}/jasiyo_test"
export JASIYO_PG_CLUSTER="$root/scripts/pg-cluster.sh"
# Two cores: two test threads per test binary (each end-to-end test runs its
# own radiusd, daemon and database).
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-2}

say "cargo build --workspace --all-targets"
cargo build --workspace --all-targets
say "cargo test --workspace --no-fail-fast $*"
cargo test --workspace --no-fail-fast "$@"
say "all tests passed"
