"""Promises of the worker that only a running worker can prove: heartbeats keep a job that runs
longer than its lease, and concurrency shrinks back after a burst. (A database restart mid-run
leaving every in-transaction effect exactly once is in test_worker_lifecycle.py.)"""

from __future__ import annotations

import asyncio
import time

from test_worker_lifecycle import ready
from worker_helpers import enqueue, job, sql, wait_for

from python_worker.config import Settings
from python_worker.registry import registry
from python_worker.worker import Worker


def test_a_job_longer_than_its_lease_is_kept_alive_by_heartbeats(url, spawn) -> None:
    w = spawn(url, "--lease-seconds", "2", "--heartbeat-interval", "0.4", "--job-types",
              "test.outlives_lease,test.noop")
    ready(url, w)
    j = enqueue(url, "test.outlives_lease", {"seconds": 5})
    wait_for(lambda: job(url, j)["status"] == "running", 20, "the job starts")
    first_lease = job(url, j)["lease_expires_at"]
    reaped = 0
    while job(url, j)["status"] == "running":  # the reaper runs all along; it must find nothing
        reaped += sql(url, "select queue.reap_expired_leases() as n")[0]["n"]
        time.sleep(0.3)
    row = job(url, j)
    assert row["status"] == "completed" and row["attempt"] == 1 and row["errors"] == []
    assert reaped == 0
    assert row["finished_at"] > first_lease, "the job outlived its first lease"


def test_concurrency_shrinks_back_to_its_minimum_when_idle(url) -> None:
    # --concurrency bounds async jobs (sync ones are bounded by --threads)
    sql(url, "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 'test.slow',"
             " 'payload', jsonb_build_object('seconds', 0.02)))) from generate_series(1, 80)")

    async def burst_then_idle() -> tuple[int, int]:
        w = Worker(Settings(database_url=url, job_types=["test.slow"], concurrency="2-12",
                            batch_size=50, poll_interval=0.2), registry)
        task = asyncio.create_task(w.run())
        peak = w.limit
        until = time.monotonic() + 30
        while time.monotonic() < until and (w.counts["completed"] < 80 or w.limit > w.lo):
            peak = max(peak, w.limit)
            await asyncio.sleep(0.1)
        low = w.limit
        w.request_stop()
        await task
        return peak, low

    peak, low = asyncio.run(burst_then_idle())
    assert peak > 2, "the backlog made it grow"
    assert low == 2, "idle, it shrank back to the range's minimum"
