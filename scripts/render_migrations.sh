#!/usr/bin/env bash
# Until the first release, the initial migrations are rendered from sql/ (the current
# definition) so the two cannot drift; after a release, changes get hand-written migrations.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

render() {  # render <migration file> <sql dir> <title>
    local out="$root/supabase/migrations/$1" dir="$root/sql/$2"
    {
        echo "-- $3"
        echo "-- Rendered by scripts/render_migrations.sh from sql/$2/*.sql; edit those files, not this one."
        echo "-- Creates new objects only: no locks on existing tables; safe while nothing runs Kyu yet."
        for f in "$dir"/*.sql; do
            echo
            echo "-- ---- sql/$2/$(basename "$f") ----"
            cat "$f"
        done
    } >"$out.tmp"
    mv "$out.tmp" "$out"
}

# An upgrade for databases that applied an earlier initial migration: its own step (from
# sql/queue/upgrades/), then the sql/queue files it needs again (all re-runnable).
render_upgrade() {  # render_upgrade <migration file> <files under sql/queue...>
    local out="$root/supabase/migrations/$1"
    shift
    {
        echo "-- Rendered by scripts/render_migrations.sh from sql/queue/upgrades/$(basename "$out") and the"
        echo "-- sql/queue files named below; edit those files, not this one."
        for f in "upgrades/$(basename "$out")" "$@"; do
            echo
            echo "-- ---- sql/queue/$f ----"
            cat "$root/sql/queue/$f"
        done
    } >"$out.tmp"
    mv "$out.tmp" "$out"
}

render 20261123000000_queue.sql queue "Kyu queue engine: schema queue, its tables, functions, grants and policies."
if compgen -G "$root/sql/receipts/*.sql" >/dev/null; then
    render 20261123000100_receipts.sql receipts "Receipt domain: tables and functions used by the receipt handlers."
fi
render_upgrade 20261203000000_history_partitions.sql 72_history_partitions.sql 73_jobs_storage.sql 70_schedules.sql
render_upgrade 20261203000100_tenants.sql 25_registry.sql 27_owner_limits.sql 30_enqueue.sql \
    35_claim_policy.sql 37_fair_claim.sql 40_claim.sql 90_security.sql
render_upgrade 20261203000200_hot_paths.sql 30_enqueue.sql 50_finish.sql 88_console.sql 90_security.sql
