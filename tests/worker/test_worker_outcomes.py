"""What the worker does with each handler outcome (in-process `process` runs, real database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from worker_helpers import drain, enqueue, job, sql


def test_handler_success_stores_result_and_completes(url: str) -> None:
    a = enqueue(url, "test.echo", {"value": 21})
    b = enqueue(url, "test.async_echo", {"value": 5})
    w = drain(url, ["test.echo", "test.async_echo"])
    ja, jb = job(url, a), job(url, b)
    assert (ja["status"], ja["attempt"], ja["result"]) == ("completed", 1, {"value": 42})
    assert jb["status"] == "completed"
    assert jb["result"] == {"value": 5, "attempt": 1}
    assert w.counts["completed"] == 2


def test_failed_attempt_is_retried_then_succeeds(url: str) -> None:
    j = enqueue(url, "test.flaky", {"succeed_on": 2}, backoff_base="0 seconds")
    drain(url, ["test.flaky"])
    row = job(url, j)
    assert row["status"] == "completed"
    assert row["attempt"] == 2
    [first] = row["errors"]
    assert first["attempt"] == 1
    assert first["error"].startswith("ValueError: flaky failure on attempt 1")
    assert "Traceback" in first["error"] and "kyu_test_handlers.py" in first["error"]


def test_permanent_error_dead_letters_at_once(url: str) -> None:
    j = enqueue(url, "test.permanent", max_attempts=5)
    s = enqueue(url, "test.service_permanent", max_attempts=5)
    drain(url, ["test.permanent", "test.service_permanent"])
    row = job(url, j)
    assert (row["status"], row["attempt"]) == ("dead", 1)
    assert row["last_error"] == "PermanentError: this input can never work"
    assert job(url, s)["status"] == "dead"
    assert "credentials revoked" in job(url, s)["last_error"]
    dead = {r["id"] for r in sql(url, "select id from queue.dead_letter")}
    assert {j, s} <= dead


def test_permanent_error_public_message_is_what_the_owner_sees(url: str) -> None:
    j = enqueue(url, "test.public_error")
    drain(url, ["test.public_error"])
    row = job(url, j)
    assert row["status"] == "dead"
    assert row["public_error"] == "The file could not be read."
    assert row["last_error"] == "PermanentError: parser v3 failed at db-internal-3"


def test_invalid_payload_dead_letters_with_the_validation_message(url: str) -> None:
    j = enqueue(url, "test.echo", {"value": "not a number"}, max_attempts=5)
    drain(url, ["test.echo"])
    row = job(url, j)
    assert (row["status"], row["attempt"]) == ("dead", 1)
    assert "invalid payload for test.echo" in row["last_error"]
    assert "value" in row["last_error"] and "valid integer" in row["last_error"]


def test_retry_later_uses_the_requested_time(url: str) -> None:
    j = enqueue(url, "test.retry_later")
    drain(url, ["test.retry_later"])
    row = job(url, j)
    assert row["status"] == "retrying"
    assert row["run_at"] > datetime.now(UTC) + timedelta(minutes=55)


def test_timeout_fails_the_attempt_retryably(url: str) -> None:
    a = enqueue(url, "test.slow", {"seconds": 30})
    b = enqueue(url, "test.slow_sync", {"seconds": 3})
    t0 = time.monotonic()
    drain(url, ["test.slow", "test.slow_sync"])
    assert time.monotonic() - t0 < 2.9  # neither handler was waited for
    for j in (a, b):
        row = job(url, j)
        assert row["status"] == "retrying"
        assert row["last_error"] == "timed out after 1s"


def test_handler_writes_commit_with_the_completion(url: str) -> None:
    j = enqueue(url, "test.write")
    drain(url, ["test.write"])
    assert job(url, j)["status"] == "completed"
    rows = sql(url, "select job_id, attempt from public.effects where job_id = %s", (j,))
    assert rows == [{"job_id": j, "attempt": 1}]


def test_progress_is_stored(url: str) -> None:
    j = enqueue(url, "test.async_echo", {"value": 1})
    drain(url, ["test.async_echo"])
    assert job(url, j)["progress"] == {"step": 1}


def test_registering_a_handler_keeps_existing_job_type_settings(url: str) -> None:
    sql(url, "select queue.register_job_type('test.echo', 'critical', priority => 7)")
    drain(url, ["test.echo"])
    row = sql(url, "select queue_name, priority from queue.job_types where job_type = 'test.echo'")
    assert row == [{"queue_name": "critical", "priority": 7}]


def test_service_errors_map_to_retry_at_and_permanent(url: str) -> None:
    r = enqueue(url, "test.service_retry")
    p = enqueue(url, "test.duck_permanent", max_attempts=5)
    drain(url, ["test.service_retry", "test.duck_permanent"])
    row = job(url, r)
    assert row["status"] == "retrying"
    assert row["run_at"] > datetime.now(UTC) + timedelta(minutes=115)
    assert "Throttled: 429 from the service" in row["last_error"]
    dead = job(url, p)
    assert (dead["status"], dead["last_error"]) == ("dead", "Throttled: gone for good")


def test_finished_at_is_when_the_job_finished_not_when_its_transaction_began(url: str) -> None:
    # test.hold opens its completing transaction at once, then works 0.5 s before completing
    j = enqueue(url, "test.hold", {"seconds": 0.5})
    drain(url, ["test.hold"])
    row = job(url, j)
    assert row["status"] == "completed"
    assert (row["finished_at"] - row["started_at"]).total_seconds() >= 0.5


def test_a_result_over_the_cap_fails_its_job_and_the_rest_of_the_batch_completes(url: str) -> None:
    # one oversized result used to refuse the whole complete_jobs batch: every job in it ran
    # again after its lease expired
    sql(url, "update queue.settings set max_payload_bytes = 5000")
    try:
        small = [enqueue(url, "test.sized", {"chars": 100}) for _ in range(30)]
        big = enqueue(url, "test.sized", {"chars": 6000})
        small += [enqueue(url, "test.sized", {"chars": 100}) for _ in range(30)]
        w = drain(url, ["test.sized"], batch_size=100)
    finally:
        sql(url, "update queue.settings set max_payload_bytes = 1048576")
    row = job(url, big)
    assert (row["status"], row["attempt"]) == ("dead", 1)
    assert "result is" in row["last_error"] and "over the cap of 5000 bytes" in row["last_error"]
    rows = [job(url, j) for j in small]
    assert {(r["status"], r["attempt"]) for r in rows} == {("completed", 1)}
    assert all(r["result"] == {"data": "x" * 100} for r in rows)
    assert w.counts["completed"] == 60
