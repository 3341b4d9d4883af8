#!/usr/bin/env bash
# The local database: a plain PostgreSQL 15 cluster shaped like Supabase's local one
# (127.0.0.1:54322, database postgres, pg_cron preloaded, Supabase roles and auth.* helpers).
# In front of it, PgBouncer in transaction mode (the way Supabase's pooler serves most users) on
# port KYU_DB_PORT + 1000 (55322), so the worker's tests run through a real pooler too.
# Usage: scripts/db.sh install|start|stop|reset|status|url|pooler-url
# With DATABASE_URL set, nothing local is touched: start/reset only prepare that database, and
# pooler-url prints nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pg_bin=/usr/lib/postgresql/15/bin
data_dir="$root/.local/pgdata"
log_file="$root/.local/postgres.log"
port=${KYU_DB_PORT:-54322}  # another port lets a second checkout run beside this one
local_url="postgresql://postgres:postgres@127.0.0.1:$port/postgres"
pooler_port=$((port + 1000))
pooler_dir="$root/.local/pgbouncer"
pooler_url="postgresql://postgres:postgres@127.0.0.1:$pooler_port/postgres"
apt_packages=(postgresql-15 postgresql-15-cron postgresql-15-pgtap pgtap postgresql-15-plpgsql-check
    pgbouncer)

say() { echo "db: $*" >&2; }

missing_packages() {
    local p
    for p in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install() {  # the database packages only; the Makefile installs the rest
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    [ -z "${missing// }" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        say "missing packages: $missing"
        say "run: sudo apt-get update && sudo apt-get install -y $missing"
        exit 1
    fi
    say "installing $missing"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
}

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# The postgres user must reach the data dir inside the checkout; a checkout under a private
# directory (mktemp -d is 0700) would hide it, so open the ancestors for traversal only.
open_path() {
    local d="$root"
    while [ "$d" != / ]; do
        if ! as_postgres test -x "$d"; then chmod o+x "$d"; say "made $d traversable for postgres"; fi
        d=$(dirname "$d")
    done
}

running() { [ -f "$data_dir/postmaster.pid" ] && as_postgres "$pg_bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1; }

init_cluster() {
    [ -f "$data_dir/PG_VERSION" ] && return 0
    mkdir -p "$root/.local"
    chown postgres "$root/.local"
    open_path
    say "creating cluster in $data_dir"
    as_postgres "$pg_bin/initdb" -D "$data_dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data_dir/postgresql.conf" <<CONF
# Kyu local cluster (scripts/db.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
shared_preload_libraries = 'pg_cron,pg_stat_statements'
cron.database_name = 'postgres'
# pg_cron connects over TCP (no unix socket); name the address we listen on, not 'localhost'
cron.host = '127.0.0.1'
max_connections = 200
fsync = on
synchronous_commit = on
timezone = 'UTC'
log_min_messages = warning
CONF
}

start() {
    if [ -n "${DATABASE_URL:-}" ]; then prepare "$DATABASE_URL"; return; fi
    install
    init_cluster
    if running; then start_pooler; return 0; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        say "port $port is taken by another server; stop it or set DATABASE_URL"
        exit 1
    fi
    as_postgres "$pg_bin/pg_ctl" -D "$data_dir" -l "$log_file" -w -t 60 start >/dev/null
    say "started on 127.0.0.1:$port"
    prepare "$local_url"
    start_pooler
}

pooler_running() {
    [ -f "$pooler_dir/pgbouncer.pid" ] && kill -0 "$(cat "$pooler_dir/pgbouncer.pid")" 2>/dev/null
}

# PgBouncer with its defaults but for the pool mode: transaction, as Supavisor's port 6543. Any
# database name is passed through to the local cluster (the tests' clones included); it
# authenticates nobody itself (trust, like the cluster), and refuses what a default PgBouncer
# refuses, such as a startup "options" parameter.
start_pooler() {
    if pooler_running; then return 0; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$pooler_port") 2>/dev/null; then
        say "port $pooler_port (pooler) is taken by another server; stop it or set KYU_DB_PORT"
        exit 1
    fi
    mkdir -p "$pooler_dir"
    cat >"$pooler_dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pooler_port
unix_socket_dir =
pool_mode = transaction
auth_type = trust
auth_file = $pooler_dir/userlist.txt
admin_users = postgres
max_client_conn = 1000
default_pool_size = 20
logfile = $pooler_dir/pgbouncer.log
pidfile = $pooler_dir/pgbouncer.pid
INI
    echo '"postgres" ""' >"$pooler_dir/userlist.txt"
    chown -R postgres "$pooler_dir"
    as_postgres pgbouncer -d -q "$pooler_dir/pgbouncer.ini"
    say "pgbouncer (transaction mode) on 127.0.0.1:$pooler_port"
}

stop_pooler() {
    if pooler_running; then kill "$(cat "$pooler_dir/pgbouncer.pid")"; say "pgbouncer stopped"; fi
}

# Supabase's roles and auth helpers, where missing (a Supabase project already has them).
prepare() {
    psql "$1" -v ON_ERROR_STOP=1 -q -X -f "$root/scripts/supabase_compat.sql" >/dev/null
}

stop() {
    stop_pooler
    if running; then as_postgres "$pg_bin/pg_ctl" -D "$data_dir" -m fast -w stop >/dev/null; say "stopped"; fi
}

reset() {
    if [ -n "${DATABASE_URL:-}" ]; then say "refusing to reset DATABASE_URL; drop it yourself"; exit 1; fi
    stop
    rm -rf "$data_dir"
    start
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    reset) reset ;;
    status) if running; then echo running; else echo stopped; exit 1; fi ;;
    url) echo "${DATABASE_URL:-$local_url}" ;;
    pooler-url) if [ -z "${DATABASE_URL:-}" ]; then echo "$pooler_url"; fi ;;
    *) echo "usage: $0 install|start|stop|reset|status|url|pooler-url" >&2; exit 2 ;;
esac
