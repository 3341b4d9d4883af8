"""run --processes N: a worker that dies is restarted, and the jobs it held fail at once with
the cause, instead of waiting out their lease."""

from __future__ import annotations

import signal
import time

from worker_helpers import enqueue, job, sql, wait_for


def test_a_dead_worker_is_restarted_and_its_job_records_why(url, spawn) -> None:
    sup = spawn(url, "--processes", "2", "--heartbeat-interval", "0.5", "--job-types",
                "test.exit,test.echo")
    probe = enqueue(url, "test.echo", {"value": 1})
    wait_for(lambda: job(url, probe)["status"] == "completed", 30, f"start\n{sup.output()}")
    # os._exit in a (thread-mode) sync handler ends its whole worker process
    t0 = time.monotonic()
    dead = enqueue(url, "test.exit", {"status": 3}, max_attempts=1)
    wait_for(lambda: job(url, dead)["status"] == "dead", 20, f"the failure\n{sup.output()}")
    assert time.monotonic() - t0 < 20, "at once, not after the 5-minute lease"
    row = job(url, dead)
    assert row["last_error"].startswith("worker ")
    assert row["last_error"].endswith("died: worker process exited with status 3")
    # a second generation took the dead one's slot (ids are <base>.<slot>.<generation>)
    wait_for(lambda: sql(url, "select count(*) as n from queue.workers where alive and"
                              " worker_id like '%%.1'")[0]["n"] == 1,
             20, f"a worker in place of the dead one\n{sup.output()}")
    echoes = [enqueue(url, "test.echo", {"value": i}) for i in range(6)]
    wait_for(lambda: all(job(url, j)["status"] == "completed" for j in echoes), 30, "echoes")
    assert "restarting it" in sup.output()
    sup.signal(signal.SIGTERM)
    assert sup.wait(30) == 0, sup.output()
    assert "all workers stopped" in sup.output()
