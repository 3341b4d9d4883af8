"""pg_cron for real: a recurring job enqueues on pg_cron's own minute tick in the database where
pg_cron lives; and a database without pg_cron (the test template) still has a working queue whose
health() says that housekeeping is not scheduled."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC

import psycopg
import pytest

CRON_DB_URL = os.environ.get(
    "DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:54322/postgres"
)


def test_without_pg_cron_the_queue_installs_and_health_says_housekeeping_is_missing(
    module_db_url: str,
) -> None:
    with psycopg.connect(module_db_url, autocommit=True) as c:
        assert (
            c.execute("select count(*) from pg_extension where extname = 'pg_cron'").fetchone()[0]
            == 0
        )
        health = c.execute("select queue.health()").fetchone()[0]
        assert health["status"] == "degraded"
        assert any(
            r.startswith("housekeeping is not scheduled: pg_cron is not installed in database")
            for r in health["reasons"]
        ), health["reasons"]
        assert health["housekeeping"]["pg_cron_version"] is None
        assert set(health["housekeeping"]["missing"]) == {
            "queue-reap",
            "queue-age",
            "queue-stats",
            "queue-purge",
            "queue-cron-trim",
            "queue-partitions",
            "queue-storage",
        }
        assert c.execute("select count(*) from queue.schedules").fetchone()[0] == 0
        assert c.execute("select count(*) from queue.sync_cron_jobs()").fetchone()[0] == 0
        assert c.execute("select queue.unschedule_job('nothing')").fetchone()[0] is False
        with pytest.raises(
            psycopg.errors.ObjectNotInPrerequisiteState, match="pg_cron is not installed"
        ):
            c.execute("select queue.schedule_job('x', '* * * * *', 'nope')")
        # the queue itself works
        c.execute("select queue.register_job_type(job_type => 'ops_plain')")
        job_id = c.execute("select queue.enqueue_job(job_type => 'ops_plain')").fetchone()[0]
        claimed = c.execute(
            "select id from queue.claim_jobs('w', 1, job_types => array['ops_plain'])"
        ).fetchone()
        assert claimed == (job_id,)


@pytest.fixture
def cron_db() -> Iterator[psycopg.Connection]:
    with psycopg.connect(CRON_DB_URL, autocommit=True) as c:
        if (
            c.execute("select count(*) from pg_extension where extname = 'pg_cron'").fetchone()[0]
            == 0
        ):
            pytest.skip("pg_cron is not installed in the DATABASE_URL database")
        yield c


def test_recurring_job_enqueues_on_pg_cron_tick(cron_db: psycopg.Connection) -> None:
    """Waits for pg_cron's next minute tick (up to ~70 s)."""
    c = cron_db
    tag = f"ops_tick_{os.getpid()}"
    name = tag.replace("_", "-")
    try:
        # a paused queue of its own: no worker in this database can take the job away
        c.execute("select queue.create_queue(queue_name => %s)", (tag,))
        c.execute("select queue.pause_queue(%s)", (tag,))
        c.execute("select queue.register_job_type(job_type => %s, queue_name => %s)", (tag, tag))
        c.execute(
            "select queue.schedule_job(%s, '* * * * *', %s, '{\"from\": \"cron\"}')", (name, tag)
        )
        assert c.execute(
            "select active, username from cron.job where jobname = %s", (f"queue-job:{name}",)
        ).fetchone() == (True, "postgres")

        deadline = time.monotonic() + 75
        rows: list[tuple] = []
        while time.monotonic() < deadline:
            rows = c.execute(
                "select id, unique_key, payload, created_at from queue.jobs where queue_name = %s",
                (tag,),
            ).fetchall()
            if rows:
                break
            time.sleep(0.5)
        assert rows, "pg_cron's tick did not enqueue the recurring job within 75 s"
        time.sleep(1)  # a second run of the same minute would have landed by now
        rows = c.execute(
            "select id, unique_key, payload, created_at from queue.jobs where queue_name = %s",
            (tag,),
        ).fetchall()
        assert len(rows) == 1
        _, unique_key, payload, created_at = rows[0]
        assert payload == {"from": "cron"}
        # the run's minute (created_at is the run's now())
        assert unique_key == f"queue-job:{name}@{created_at.astimezone(UTC):%Y-%m-%dT%H:%M}:00Z"
        status = c.execute(
            "select last_run_status from queue.schedules where name = %s", (name,)
        ).fetchone()[0]
        assert status in ("succeeded", "running")
        # the same minute's command run again (an overlapping tick) gives the same job
        again = c.execute(
            "select queue.enqueue_scheduled_job(%s, %s)", (name, created_at)
        ).fetchone()[0]
        assert again == rows[0][0]
    finally:
        c.execute("select queue.unschedule_job(%s)", (name,))
        c.execute("delete from queue.jobs where queue_name = %s", (tag,))
        c.execute("delete from queue.job_history where queue_name = %s", (tag,))
        c.execute("delete from queue.job_types where job_type = %s", (tag,))
        c.execute("delete from queue.queues where queue_name = %s", (tag,))
