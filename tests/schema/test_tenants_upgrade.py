"""The tenants upgrade brings a database of the previous release to exactly today's schema.

A database is built with the migrations as they were before tenants (commit af30f44, main after
the storage merge), given jobs, then upgraded with supabase/migrations/20261203000100_tenants.sql
and the migrations after it, as `supabase db push` would apply them. Its catalog (functions and
their grants, columns, constraints, indexes, policies) must equal one built from sql/, its jobs
must still run, and the quotas must work.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from .conftest import (
    ROOT,
    drop_database,
    make_database,
    make_old_database,
    psql_file,
    source_files,
    url_for,
)
from .test_drift import snapshot

BEFORE = "af30f44"  # main with the storage merge, before tenants
OLD = ["supabase/migrations/20261123000000_queue.sql",
       "supabase/migrations/20261123000100_receipts.sql",
       "supabase/migrations/20261203000000_history_partitions.sql"]
# the tenants upgrade and every migration after it, as `supabase db push` applies them
UPGRADES = sorted(p for p in (ROOT / "supabase" / "migrations").glob("*.sql")
                  if p.name >= "20261203000100_tenants.sql")
OWNER = "11111111-1111-4111-8111-111111111111"


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = make_old_database("kyu_tenants_up", BEFORE, OLD, tmp_path_factory.mktemp("old"))
    url = url_for(name)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select count(*) from information_schema.columns"
                            " where table_schema = 'queue' and column_name = 'fair'"
                            ).fetchone()[0] == 0, "the old schema must be without tenants"
        conn.execute("select queue.register_job_type('t_up', 'default', user_enqueue => true)")
        conn.execute("select queue.enqueue_jobs((select jsonb_agg(jsonb_build_object("
                     "'job_type', 't_up', 'owner_id', %s::uuid)) from generate_series(1, 5)))",
                     (OWNER,))
    for upgrade in UPGRADES:
        psql_file(url, upgrade)
    yield url
    drop_database(name)


def test_upgraded_schema_equals_a_fresh_one(upgraded: str) -> None:
    fresh = make_database("kyu_tenants_fresh", source_files())
    try:
        want = snapshot(url_for(fresh))
    finally:
        drop_database(fresh)
    got = snapshot(upgraded)
    assert len(got) > 100
    only_upgraded = sorted(set(got) - set(want))
    only_fresh = sorted(set(want) - set(got))
    assert not only_upgraded and not only_fresh, (
        f"only after the upgrade: {only_upgraded[:10]}\nonly in a fresh install: {only_fresh[:10]}")


def test_old_jobs_run_and_quotas_work_after_the_upgrade(upgraded: str) -> None:
    with psycopg.connect(upgraded, autocommit=True) as conn:
        conn.execute("select queue.create_queue('default', owner_max_live_jobs => 6, fair => true)")
        conn.execute("select set_config('request.jwt.claims', %s, false)",
                     (f'{{"sub": "{OWNER}", "role": "authenticated"}}',))
        conn.execute("set role authenticated")
        conn.execute("select queue_public.enqueue_job(job_type => 't_up')")  # the sixth
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):
            conn.execute("select queue_public.enqueue_job(job_type => 't_up')")
        conn.execute("reset role")
        claimed = conn.execute("select count(*) from queue.claim_jobs('w', 10, array['default'])"
                               ).fetchone()[0]
    assert claimed == 6


def test_a_second_run_of_the_upgrade_changes_nothing(upgraded: str) -> None:
    before = snapshot(upgraded)
    for upgrade in UPGRADES:
        psql_file(upgraded, upgrade)
    assert snapshot(upgraded) == before
