#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: a data folder and a unix socket in one temporary
# folder, no TCP (listen_addresses=''), trust authentication for local connections, and no
# fsync (it is deleted afterwards, nothing in it needs to survive a power loss).
# PG_CLUSTER_OPTIONS adds server options after those (a later -c wins): the benchmarks pass
# "-c fsync=on -c synchronous_commit=on -c full_page_writes=on" to measure a durable server.
#
#   scripts/pg_cluster.sh start [DIR]   initdb + start; prints the DSN (postgresql://...?host=DIR)
#   scripts/pg_cluster.sh stop DIR      stop the server and delete DIR
#
# initdb is looked up on PATH, then in /usr/lib/postgresql/<version>/bin (the Debian packages:
# apt-get install -y postgresql). PostgreSQL refuses to run as root: as root the server runs as
# the user "postgres" (created by the Debian package) or, failing that, a system user
# "sentiment-pg" created here.
set -euo pipefail

die() { echo "pg_cluster.sh: $*" >&2; exit 1; }

find_bin() {  # the folder holding initdb and pg_ctl, or nothing
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; fi
}

as_owner() {  # run a command as the cluster's owner
    if [[ "$(id -u)" == 0 ]]; then runuser -u "$OWNER" -- "$@"; else "$@"; fi
}

pick_owner() {
    OWNER="$(id -un)"
    if [[ "$(id -u)" == 0 ]]; then
        if id postgres >/dev/null 2>&1; then
            OWNER=postgres
        else
            id sentiment-pg >/dev/null 2>&1 || useradd --system --no-create-home sentiment-pg
            OWNER=sentiment-pg
        fi
    fi
}

start() {
    local bin dir
    bin="$(find_bin)"
    [[ -n "$bin" ]] || die "no PostgreSQL found (initdb is neither on PATH nor in /usr/lib/postgresql/*/bin); install it: apt-get install -y postgresql"
    # A short path: a unix socket's path must stay under 108 bytes.
    dir="${1:-$(mktemp -d /tmp/sentiment-pg.XXXXXX)}"
    mkdir -p "$dir"
    pick_owner
    [[ "$(id -u)" != 0 ]] || chown "$OWNER" "$dir"
    chmod 700 "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed (log above)"; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
        "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 ${PG_CLUSTER_OPTIONS:-}" \
        >/dev/null || { cat "$dir/server.log" >&2; die "the server did not start (log above)"; }
    echo "postgresql://postgres@/postgres?host=$dir"
}

stop() {
    local dir="${1:?usage: pg_cluster.sh stop DIR}" bin
    [[ -d "$dir" ]] || return 0
    bin="$(find_bin)"
    if [[ -n "$bin" && -f "$dir/data/postmaster.pid" ]]; then
        pick_owner
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) die "usage: pg_cluster.sh start [DIR] | stop DIR" ;;
esac
