"""claim_jobs and complete_jobs keep their plan whatever the statistics say (issue 15).

The trap: vacuum saw queue.jobs empty (reltuples 0, so every estimate is one row), then a burst
arrives before the next analyze. Plans made then, and generic plans forced by a pooler, scanned
the whole table per call. Each test reads the current transaction's scan counters
(pg_stat_xact_user_tables, before and after the call: PostgreSQL 15 also counts there what
earlier transactions of the session did and has not flushed yet), so it checks the plan's
shape, not its speed: no sequential scan of queue.jobs, and tuples fetched in proportion to the
batch, not to the table.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

BURST = 20_000
BATCH = 100

COUNTERS = """
select coalesce(seq_scan, 0), coalesce(idx_tup_fetch, 0)
from pg_stat_xact_user_tables
where schemaname = 'queue' and relname = 'jobs'
"""


@pytest.fixture(scope="module")
def stale_db(module_db_url: str) -> Iterator[str]:
    """queue.jobs analysed while empty (with its pages kept), then a burst of BURST jobs."""
    with psycopg.connect(module_db_url, autocommit=True) as conn:
        conn.execute("select queue.create_queue('t_plan')")
        conn.execute("select queue.register_job_type('t_plan_job', queue_name => 't_plan')")
        conn.execute(
            "insert into queue.jobs (job_type, queue_name, priority, max_attempts, payload)"
            " select 't_plan_job', 't_plan', 50, 5, '{}' from generate_series(1, 5000)"
        )
        conn.execute("delete from queue.jobs")
        # what autovacuum leaves when it cannot take the lock to truncate: pages, no tuples
        conn.execute("vacuum (analyze, truncate false) queue.jobs")
        conn.execute("alter table queue.jobs set (autovacuum_enabled = off)")
        conn.execute(
            "insert into queue.jobs (job_type, queue_name, priority, max_attempts, payload)"
            " select 't_plan_job', 't_plan', 50, 5, '{}' from generate_series(1, %s)",
            (BURST,),
        )
        reltuples = conn.execute(
            "select reltuples from pg_class where oid = 'queue.jobs'::regclass"
        ).fetchone()[0]
        assert reltuples == 0, "the statistics must still say the table is empty"
    yield module_db_url


@pytest.mark.parametrize("queues", ["array['t_plan']", "null"], ids=["per-queue", "all-queues"])
def test_claim_on_stale_empty_statistics_reads_only_the_batch(stale_db: str, queues: str) -> None:
    with psycopg.connect(stale_db) as conn:
        seq0, fetched0 = conn.execute(COUNTERS).fetchone()
        rows = conn.execute(
            f"select id from queue.claim_jobs('w-plan', {BATCH}, {queues}, array['t_plan_job'])"
        ).fetchall()
        seq1, fetched1 = conn.execute(COUNTERS).fetchone()
        conn.rollback()
    seq_scans, fetched = seq1 - seq0, fetched1 - fetched0
    assert len(rows) == BATCH
    assert seq_scans == 0, "claim_jobs scanned queue.jobs sequentially"
    assert fetched <= 5 * BATCH, f"claim_jobs fetched {fetched} rows for a batch of {BATCH}"


def test_complete_with_a_generic_plan_reads_only_its_ids(stale_db: str) -> None:
    with psycopg.connect(stale_db) as conn:
        # every job of the burst running, as after a worker with spare capacity claimed it all
        conn.execute(
            "update queue.jobs set status = 'running', worker_id = 'w-plan', attempt = 1,"
            " lease_expires_at = now() + interval '1 hour', lease_token = gen_random_uuid()"
        )
        conn.commit()
        conn.execute("set plan_cache_mode = force_generic_plan")
        rows = conn.execute(
            "select id, lease_token from queue.jobs order by id limit %s", (BATCH,)).fetchall()
        conn.commit()
        seq0, fetched0 = conn.execute(COUNTERS).fetchone()
        done = conn.execute("select queue.complete_jobs(%s, 'w-plan', lease_tokens => %s)",
                            ([r[0] for r in rows], [r[1] for r in rows])).fetchone()[0]
        seq1, fetched1 = conn.execute(COUNTERS).fetchone()
        conn.rollback()
    seq_scans, fetched = seq1 - seq0, fetched1 - fetched0
    assert done == BATCH
    assert seq_scans == 0, "complete_jobs scanned queue.jobs sequentially"
    assert fetched <= 5 * BATCH, f"complete_jobs fetched {fetched} rows for {BATCH} ids"


def test_complete_pairs_ids_without_a_nested_loop(stale_db: str) -> None:
    """complete_jobs joins the batch's ids with their tokens. A nested loop with the unnest
    inside reads no extra rows (the counters above cannot see it) but compares every running
    row of the batch with every id: 25M comparisons at 5,000 ids. The plan the function runs,
    as auto_explain shows it, must be a hash or merge join over the ids' index scan."""
    plans: list[str] = []
    with psycopg.connect(stale_db) as conn:
        conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
        conn.execute(
            "update queue.jobs set status = 'running', worker_id = 'w-loop', attempt = 1,"
            " lease_expires_at = now() + interval '1 hour', lease_token = gen_random_uuid()"
            " where id in (select id from queue.jobs order by id limit %s)", (BATCH,))
        rows = conn.execute("select id, lease_token from queue.jobs where worker_id = 'w-loop'"
                            " order by id").fetchall()
        for setting in ("load 'auto_explain'", "set auto_explain.log_min_duration = 0",
                        "set auto_explain.log_nested_statements = on",
                        "set auto_explain.log_level = notice",
                        "set plan_cache_mode = force_generic_plan"):
            conn.execute(setting)
        done = conn.execute("select queue.complete_jobs(%s, 'w-loop', lease_tokens => %s)",
                            ([r[0] for r in rows], [r[1] for r in rows])).fetchone()[0]
        conn.rollback()
    delete = [p for p in plans if "delete from queue.jobs" in p]
    assert done == BATCH
    assert len(delete) == 1, f"auto_explain showed no plan of the delete: {plans}"
    assert "Index Cond: (id = ANY" in delete[0], delete[0]
    assert "Nested Loop" not in delete[0], delete[0]


@pytest.mark.parametrize("owners", [1, 100, 10_000])
def test_fair_claim_on_stale_empty_statistics_reads_only_the_batch(stale_db: str,
                                                                   owners: int) -> None:
    """A fair queue (issue 12) on the same stale statistics: a skip scan over the next owners,
    each owner's share and the claim, all through indexes: rows fetched grow with the batch,
    never with the backlog or the number of owners."""
    queue = f"t_plan_fair_{owners}"
    with psycopg.connect(stale_db, autocommit=True) as conn:
        conn.execute("select queue.create_queue(%s, fair => true)", (queue,))
        conn.execute(
            "insert into queue.jobs"
            " (job_type, queue_name, priority, max_attempts, payload, owner_id)"
            " select 't_plan_job', %s, 50, 5, '{}',"
            " ('00000000-0000-4000-8000-' || lpad((g %% %s)::text, 12, '0'))::uuid"
            " from generate_series(1, %s) as g",
            (queue, owners, BURST),
        )
    with psycopg.connect(stale_db) as conn:
        seq0, fetched0 = conn.execute(COUNTERS).fetchone()
        rows = conn.execute(
            f"select id from queue.claim_jobs('w-plan', {BATCH}, array['{queue}'],"
            " array['t_plan_job'])"
        ).fetchall()
        seq1, fetched1 = conn.execute(COUNTERS).fetchone()
        conn.rollback()
    seq_scans, fetched = seq1 - seq0, fetched1 - fetched0
    assert len(rows) == BATCH
    assert seq_scans == 0, "the fair claim scanned queue.jobs sequentially"
    # a claim visits at most batch_size owners (one descent each), then their shares
    assert fetched <= 5 * BATCH, f"the fair claim fetched {fetched} rows ({owners} owners)"
