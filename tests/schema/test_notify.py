"""Enqueue wakes idle workers with NOTIFY on channel kyu_jobs, payload = the queue's name, once per
queue per statement and only for jobs that are due now (a job for later wakes nobody)."""

from __future__ import annotations

import psycopg
import pytest


@pytest.fixture()
def queues(migrated_db: str) -> str:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("select queue.create_queue('t_wake_a')")
        conn.execute("select queue.create_queue('t_wake_b')")
        conn.execute("select queue.register_job_type('t_wake_a_job', queue_name => 't_wake_a')")
        conn.execute("select queue.register_job_type('t_wake_b_job', queue_name => 't_wake_b')")
    return migrated_db


def received(listener: psycopg.Connection, timeout: float = 0.5) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=timeout) if n.channel == "kyu_jobs"]


def test_enqueue_notifies_each_queue_of_due_jobs_once_per_statement(queues: str) -> None:
    with (
        psycopg.connect(queues, autocommit=True) as listener,
        psycopg.connect(queues, autocommit=True) as client,
    ):
        listener.execute("listen kyu_jobs")
        client.execute(
            "select queue.enqueue_jobs('[{\"job_type\": \"t_wake_a_job\"},"
            " {\"job_type\": \"t_wake_a_job\"}, {\"job_type\": \"t_wake_b_job\"}]')"
        )
        assert sorted(received(listener)) == ["t_wake_a", "t_wake_b"]
        client.execute("select queue.enqueue_job('t_wake_a_job')")
        assert received(listener) == ["t_wake_a"]


def test_a_job_for_later_wakes_nobody(queues: str) -> None:
    with (
        psycopg.connect(queues, autocommit=True) as listener,
        psycopg.connect(queues, autocommit=True) as client,
    ):
        listener.execute("listen kyu_jobs")
        client.execute("select queue.enqueue_job('t_wake_a_job',"
                       " run_at => now() + interval '1 hour')")
        assert received(listener) == []
        # the same in a batch (enqueue_jobs takes another path for more than one job)
        client.execute(
            "select queue.enqueue_jobs(jsonb_build_array("
            " jsonb_build_object('job_type', 't_wake_a_job', 'run_at', now() + interval '1 hour'),"
            " jsonb_build_object('job_type', 't_wake_a_job', 'run_at', now() + interval '2 hours')"
            "))"
        )
        assert received(listener) == []
        client.execute("select queue.enqueue_job('t_wake_b_job')")  # the listener still works
        assert received(listener) == ["t_wake_b"]


def test_a_rolled_back_enqueue_wakes_nobody(queues: str) -> None:
    with (
        psycopg.connect(queues, autocommit=True) as listener,
        psycopg.connect(queues) as client,
    ):
        listener.execute("listen kyu_jobs")
        client.execute("select queue.enqueue_job('t_wake_a_job')")
        client.rollback()
        assert received(listener) == []
