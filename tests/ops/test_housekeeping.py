"""Housekeeping as pg_cron runs it: the purge procedure commits after each batch, so a large
purge never holds a long transaction."""

from __future__ import annotations

import psycopg
import pytest


def test_purge_procedure_deletes_in_committed_batches(module_db_url: str) -> None:
    with psycopg.connect(module_db_url, autocommit=True) as c:
        c.execute("select queue.create_queue(queue_name => 'ops_purge', retention => '7 days')")
        c.execute(
            "insert into queue.job_history (id, job_type, queue_name, status, priority, payload,"
            " attempt, max_attempts, run_at, created_at, finished_at)"
            " select nextval('queue.jobs_id_seq'), 't', 'ops_purge', 'completed', 50, '{}', 1, 1,"
            " now() - interval '9 days', now() - interval '9 days',"
            " now() - interval '8 days' + i * interval '1 second'"
            " from generate_series(1, 2500) as i"
        )
        c.execute(
            "insert into queue.job_history (id, job_type, queue_name, status, priority, payload,"
            " attempt, max_attempts, run_at, created_at, finished_at)"
            " select nextval('queue.jobs_id_seq'), 't', 'ops_purge', 'completed', 50, '{}', 1, 1,"
            " now(), now(), now() - interval '1 day' from generate_series(1, 10)"
        )
        c.execute(
            "insert into queue.worker_sessions (worker_id, last_seen_at)"
            " values ('ops-old', now() - interval '2 days'), ('ops-new', now())"
        )

        def left() -> int:
            return c.execute(
                "select count(*) from queue.job_history where queue_name = 'ops_purge'"
            ).fetchone()[0]

        # the procedure commits: inside a transaction block it cannot run
        with pytest.raises(psycopg.errors.InvalidTransactionTermination):
            with c.transaction():
                c.execute("call queue.purge_history_batches(batch_size => 1000)")
        assert left() == 2510

        # as pg_cron calls it: bounded by max_batches, oldest first
        c.execute("call queue.purge_history_batches(batch_size => 1000, max_batches => 2)")
        assert left() == 510
        oldest = c.execute(
            "select min(finished_at) > now() - interval '8 days' + interval '2000 seconds'"
            " from queue.job_history where queue_name = 'ops_purge'"
        ).fetchone()[0]
        assert oldest, "the oldest rows go first"
        c.execute("call queue.purge_history_batches(batch_size => 1000)")
        assert left() == 10, "rows within the retention stay"
        sessions = c.execute(
            "select array_agg(worker_id order by worker_id) from queue.worker_sessions"
        ).fetchone()[0]
        assert sessions == ["ops-new"]
