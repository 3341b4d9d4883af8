"""--isolation process: a hung, a leaking and an exiting sync handler each leave the worker
serving other jobs, and every job's recorded error says what happened."""

from __future__ import annotations

import os
import time

from worker_helpers import drain, enqueue, job, sql


def test_handler_processes_contain_hangs_leaks_and_exits(url: str) -> None:
    hung = enqueue(url, "test.slow_sync", {"seconds": 60})  # its timeout is 1 s
    exited = enqueue(url, "test.exit", {"status": 3}, max_attempts=1)
    leaks = [enqueue(url, "test.leak", {"mb": 80}) for _ in range(3)]
    echoes = [enqueue(url, "test.echo", {"value": i}) for i in range(5)]
    write = enqueue(url, "test.write")
    t0 = time.monotonic()
    w = drain(url, ["test.slow_sync", "test.exit", "test.leak", "test.echo", "test.write"],
              isolation="process", threads=2, child_max_rss_mb=60)
    assert time.monotonic() - t0 < 30, "the hung handler was killed, not waited for"

    row = job(url, hung)
    assert (row["status"], row["last_error"]) == (
        "retrying", "timed out after 1s (handler process killed)")
    row = job(url, exited)
    assert (row["status"], row["attempt"]) == ("dead", 1)
    assert row["last_error"] == "handler process exited with status 3"
    # each leak pushed its process over the cap: the next ran in a fresh one
    pids = [job(url, j)["result"]["pid"] for j in leaks]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert [job(url, j)["result"] for j in echoes] == [{"value": 2 * i} for i in range(5)]
    assert job(url, write)["status"] == "completed"  # ctx.connection inside the process
    assert sql(url, "select attempt from public.effects where job_id = %s", (write,)) == [
        {"attempt": 1}]
    assert w.counts["completed"] == 9
    sql(url, "select queue.cancel_job(%s)", (hung,))


def test_sys_exit_in_an_async_handler_fails_only_its_attempt(url: str) -> None:
    exits = enqueue(url, "test.async_exit", {"status": 4}, max_attempts=1)
    echo = enqueue(url, "test.async_echo", {"value": 7})
    w = drain(url, ["test.async_exit", "test.async_echo"])
    row = job(url, exits)
    assert (row["status"], row["attempt"]) == ("dead", 1)
    assert row["last_error"].startswith("SystemExit: 4")
    assert job(url, echo)["status"] == "completed"
    assert (w.counts["completed"], w.counts["failed"]) == (1, 1)
