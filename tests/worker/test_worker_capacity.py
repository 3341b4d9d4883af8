"""What a worker holds and counts: drains that end only when nothing is due, jobs in flight,
unacknowledged jobs against concurrency, sync jobs against free threads, stuck threads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from prometheus_client import REGISTRY
from worker_helpers import drain, enqueue, job, sql

from python_worker.config import Settings
from python_worker.registry import registry
from python_worker.worker import Worker


def enqueue_many(url: str, job_type: str, n: int, payload: str = "{}") -> list[int]:
    return [r["id"] for r in sql(
        url, "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', %s::text,"
             " 'payload', %s::jsonb))) as id from generate_series(1, %s)", (job_type, payload, n))]


def statuses(url: str, ids: list[int]) -> dict[str, int]:
    rows = sql(url, "select status::text, count(*) as n from queue.all_jobs where id = any(%s)"
                    " group by 1", (ids,))
    return {r["status"]: r["n"] for r in rows}


def with_worker(url: str, check: Callable[[Worker], Awaitable[Any]], **settings: Any) -> Any:
    """Runs a worker (``run``, not drain) in-process while ``check(worker)`` runs, then stops it."""

    async def main() -> Any:
        w = Worker(Settings(database_url=url, **settings), registry)
        task = asyncio.create_task(w.run())
        try:
            return await check(w)
        finally:
            w.request_stop()
            await asyncio.wait_for(task, 30)

    return asyncio.run(main())


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (v := await asyncio.to_thread(pred)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
    return v


def test_drain_with_two_claim_streams_ends_only_when_nothing_is_due(url: str) -> None:
    # two streams claim at once (MAX >= 2 x batch); the one that finds the rows locked by the
    # other came back empty and used to end the drain while the other released its jobs
    for _ in range(4):
        ids = enqueue_many(url, "test.noop", 300)
        w = drain(url, ["test.noop"], concurrency="1500-2000", batch_size=1000)
        assert statuses(url, ids) == {"completed": 300}
        assert w.counts["completed"] == 300


def test_jobs_in_flight_gauge_counts_running_jobs_and_falls_back(url: str) -> None:
    async def check(w: Worker) -> tuple[float | None, float | None]:
        ids = await asyncio.to_thread(enqueue_many, url, "test.sleep", 3, '{"seconds": 1}')
        running = await until(lambda: REGISTRY.get_sample_value("kyu_jobs_in_flight") == 3,
                              10, "three jobs in flight")
        await until(lambda: statuses(url, ids) == {"completed": 3}, 20, "completions")
        return running, REGISTRY.get_sample_value("kyu_jobs_in_flight")

    during, after = with_worker(url, check, job_types=["test.sleep"], poll_interval=0.1)
    assert during and after == 0


def test_unacknowledged_jobs_count_against_concurrency(url: str) -> None:
    # hold completions up (complete_jobs inserts into job_history); claims must not go on
    blocker = psycopg.connect(url)
    blocker.execute("lock table queue.job_history in share mode")
    try:
        async def check(w: Worker) -> int:
            ids = await asyncio.to_thread(enqueue_many, url, "test.noop", 20)
            await until(lambda: statuses(url, ids).get("running"), 20, "a first claim")
            await asyncio.sleep(1.0)  # finished jobs wait for their acknowledgement
            held = statuses(url, ids).get("running", 0)
            blocker.rollback()
            await until(lambda: statuses(url, ids) == {"completed": 20}, 20, "completions")
            return held

        held = with_worker(url, check, job_types=["test.noop"], concurrency="2",
                           poll_interval=0.1)
    finally:
        blocker.close()
    assert held == 2


def test_sync_jobs_wait_for_a_free_thread_and_a_stuck_thread_degrades_the_worker(url) -> None:
    # one thread; the first job's handler outlives its 1 s timeout by 2 s: the thread is stuck,
    # so the echo job stays waiting (never started, never timed out) until the thread returns
    hung = enqueue(url, "test.slow_sync", {"seconds": 3})

    async def check(w: Worker) -> tuple[Any, ...]:
        await until(lambda: job(url, hung)["status"] == "running", 20, "the hung job")
        echo = await asyncio.to_thread(enqueue, url, "test.echo", {"value": 1})
        await until(lambda: w.degraded, 5, "degraded")
        session = await until(
            lambda: sql(url, "select metadata from queue.workers where worker_id = %s",
                        (w.worker_id,))[0]["metadata"].get("degraded"), 5, "degraded session")
        waiting = job(url, echo)["status"]
        stuck = REGISTRY.get_sample_value("kyu_threads_stuck")
        await until(lambda: job(url, echo)["status"] == "completed", 20, "the echo job")
        return waiting, session, stuck, w.degraded, job(url, echo), job(url, hung)

    waiting, session, stuck, after, echo, hung_row = with_worker(
        url, check, job_types=["test.slow_sync", "test.echo"], threads=1,
        heartbeat_interval=0.2, poll_interval=0.1)
    assert waiting == "pending"
    assert "handler threads stuck" in session
    assert stuck == 1
    assert after is None  # the thread came back: no longer degraded
    assert (echo["attempt"], echo["errors"]) == (1, [])
    assert hung_row["last_error"] == "timed out after 1s"
    sql(url, "select queue.cancel_job(%s)", (hung_row["id"],))


def test_a_worker_never_opens_more_connections_than_its_budget(url: str, spawn) -> None:
    # 16 threads, 40 jobs that each hold a transaction: the handlers share what the budget
    # (default 10) leaves them, and wait for a connection rather than open more
    w = spawn(url, "--threads", "16", "--heartbeat-interval", "0.2", "--job-types",
              "test.hold,test.noop")
    ids = enqueue_many(url, "test.hold", 40, '{"seconds": 0.2}')
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    peak = 0
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while statuses(url, ids) != {"completed": 40}:
            assert time.monotonic() < deadline, w.output()[-3000:]
            n = conn.execute("select count(*) from pg_stat_activity where datname = %s"
                             " and application_name like 'kyu-%%'", (dbname,)).fetchone()[0]
            peak = max(peak, n)
            time.sleep(0.02)
    session = sql(url, "select metadata from queue.workers where alive")[0]["metadata"]
    assert session["max_connections"] == 10
    assert 0 < session["connections"] <= 10
    assert 7 <= peak <= 10, peak


def test_a_worker_over_its_memory_cap_is_degraded_and_can_exit_to_be_restarted(url) -> None:
    # a thread-mode worker cannot give a leaking handler's memory back: it stays throttled, so
    # it says so (degraded) and, with --exit-when-stuck, exits for its supervisor to restart it
    async def run() -> tuple[int, str | None]:
        w = Worker(Settings(database_url=url, job_types=["test.echo"], max_rss_mb=1,
                            exit_when_stuck=True, poll_interval=0.1), registry)
        code = await asyncio.wait_for(w.run(), 30)
        return code, w.degraded

    code, degraded = asyncio.run(run())
    assert code == 3
    assert degraded is not None and "MB > 1 MB (--max-rss-mb)" in degraded
