"""The upgrade to partitioned history keeps every finished job, its readers and its protections.

A database is built with the migrations as they were before history was partitioned (commit
d90d81d, main before the storage merge), given history, then upgraded with
supabase/migrations/20261203000000_history_partitions.sql as `supabase db push` would apply it.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from .conftest import ROOT, drop_database, make_old_database, psql_file, url_for

BEFORE = "d90d81d"  # the last commit of main with queue.job_history as one plain table
OLD = ["supabase/migrations/20261123000000_queue.sql",
       "supabase/migrations/20261123000100_receipts.sql"]
UPGRADE = ROOT / "supabase" / "migrations" / "20261203000000_history_partitions.sql"


@pytest.fixture(scope="module")
def old_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = make_old_database("kyu_upgrade", BEFORE, OLD, tmp_path_factory.mktemp("old"))
    url = url_for(name)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select relkind from pg_class where oid = 'queue.job_history'::regclass"
                            ).fetchone()[0] == "r", "the old schema must have a plain history table"
        conn.execute("select queue.register_job_type('t_up', 'default')")
        conn.execute("select queue.enqueue_jobs((select jsonb_agg(jsonb_build_object("
                     "'job_type', 't_up', 'payload', jsonb_build_object('n', g),"
                     " 'owner_id', '11111111-1111-4111-8111-111111111111'))"
                     " from generate_series(1, 50) as g))")
        rows = conn.execute("select id, lease_token from queue.claim_jobs('w', 40)").fetchall()
        ids, tokens = [r[0] for r in rows], [r[1] for r in rows]
        conn.execute("select queue.complete_jobs(%s, 'w', array_fill('{\"ok\": 1}'::jsonb,"
                     " array[%s]), lease_tokens => %s)", (ids[:30], 30, tokens[:30]))
        for job_id, token in zip(ids[30:], tokens[30:], strict=True):
            conn.execute("select queue.fail_job(%s, 'w', 'boom', false, lease_token => %s,"
                         " public_error => 'it broke')", (job_id, token))
        yield url
    drop_database(name)


@pytest.fixture(scope="module")
def upgraded(old_db: str) -> str:
    with psycopg.connect(old_db) as conn:
        before = conn.execute(
            "select count(*), count(*) filter (where status = 'dead'), sum(hashtext(h::text))"
            " from queue.job_history as h").fetchone()
        acl = conn.execute("select relacl::text from pg_class"
                           " where oid = 'queue.job_history'::regclass").fetchone()[0]
    psql_file(old_db, UPGRADE)
    with psycopg.connect(old_db) as conn:
        after = conn.execute(
            "select count(*), count(*) filter (where status = 'dead'), sum(hashtext(h::text))"
            " from queue.job_history as h").fetchone()
    assert before == after and before[0] == 40, "every finished job is kept, unchanged"
    assert acl is not None
    return old_db


def test_history_is_partitioned_with_the_old_rows_in_a_legacy_partition(upgraded: str) -> None:
    with psycopg.connect(upgraded) as conn:
        assert conn.execute("select relkind from pg_class where oid = 'queue.job_history'::regclass"
                            ).fetchone()[0] == "p"
        parts = dict(conn.execute(
            "select partition_name, is_default from queue._history_partitions()").fetchall())
        assert parts.get("job_history_legacy") is False
        assert parts.get("job_history_default") is True
        assert sum(1 for p in parts if p.startswith("job_history_p")) >= 3, "days ahead exist"
        where = conn.execute("select distinct tableoid::regclass::text from queue.job_history"
                             ).fetchall()
        assert where == [("queue.job_history_legacy",)]


def test_readers_see_the_old_jobs(upgraded: str) -> None:
    with psycopg.connect(upgraded) as conn:
        first = conn.execute("select min(id) from queue.job_history where status = 'completed'"
                             ).fetchone()[0]
        status, result = conn.execute("select status::text, result from queue.get_job(%s)",
                                      (first,)).fetchone()
        assert (status, result) == ("completed", {"ok": 1})
        assert conn.execute("select count(*) from queue.dead_letter").fetchone()[0] == 10
        assert conn.execute("select count(*) from queue.all_jobs").fetchone()[0] == 50
        stale = conn.execute("select count(*) from pg_views where schemaname like 'queue%'"
                             " and definition like '%job_history_legacy%'").fetchone()[0]
        assert stale == 0, "no view reads the legacy partition directly"


def test_grants_and_row_level_security_carry_over(upgraded: str) -> None:
    with psycopg.connect(upgraded) as conn:
        rls, acl = conn.execute("select relrowsecurity, relacl::text from pg_class"
                                " where oid = 'queue.job_history'::regclass").fetchone()
        legacy_acl = conn.execute("select relacl::text from pg_class"
                                  " where oid = 'queue.job_history_legacy'::regclass").fetchone()[0]
        assert rls
        assert acl == legacy_acl
        new_cols, old_cols = (
            conn.execute("select array_agg(column_name::text || privilege_type"
                         " order by column_name::text)"
                         " from information_schema.column_privileges where table_schema = 'queue'"
                         " and table_name = %s and grantee = 'authenticated'", (t,)).fetchone()[0]
            for t in ("job_history", "job_history_legacy"))
        assert new_cols and new_cols == old_cols, "column grants carry over"
        policies = conn.execute("select policyname, cmd, roles::text, qual from pg_policies"
                                " where schemaname = 'queue' and tablename = 'job_history'"
                                " order by 1").fetchall()
        legacy = conn.execute("select policyname, cmd, roles::text, qual from pg_policies"
                              " where schemaname = 'queue' and tablename = 'job_history_legacy'"
                              " order by 1").fetchall()
        assert policies and policies == legacy
        # an end user still reads exactly their own finished jobs through my_jobs
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)",
                     ('{"sub": "11111111-1111-4111-8111-111111111111", "role": "authenticated"}',))
        assert conn.execute("select count(*) from queue_public.my_jobs").fetchone()[0] == 50
        conn.execute("select set_config('request.jwt.claims', %s, true)",
                     ('{"sub": "22222222-2222-4222-8222-222222222222", "role": "authenticated"}',))
        assert conn.execute("select count(*) from queue_public.my_jobs").fetchone()[0] == 0
        conn.rollback()


def test_jobs_finish_after_the_upgrade_and_a_second_run_changes_nothing(upgraded: str) -> None:
    with psycopg.connect(upgraded, autocommit=True) as conn:
        rows = conn.execute("select id, lease_token from queue.claim_jobs('w', 10)").fetchall()
        assert conn.execute("select queue.complete_jobs(%s, 'w', lease_tokens => %s)",
                            ([r[0] for r in rows], [r[1] for r in rows])).fetchone()[0] == 10
        parts = conn.execute("select count(*) from queue._history_partitions()").fetchone()[0]
    psql_file(upgraded, UPGRADE)
    with psycopg.connect(upgraded) as conn:
        count = conn.execute("select count(*) from queue._history_partitions()").fetchone()[0]
        assert count == parts
        assert conn.execute("select count(*) from queue.job_history").fetchone()[0] == 50
