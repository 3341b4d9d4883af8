"""Concurrency range, throttling, transactional async handlers, metrics and JSON logs."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request

from worker_helpers import drain, enqueue, job, sql, wait_for

from python_worker.config import Settings, parse_concurrency
from python_worker.registry import registry
from python_worker.worker import Worker


def test_concurrency_is_a_number_or_a_range() -> None:
    assert parse_concurrency("8") == (8, 8)
    assert parse_concurrency("2-16") == (2, 16)
    s = Settings(concurrency="2-16", handlers="a.b, c.d", queues=["default,bulk"])
    assert s.concurrency_range == (2, 16)
    assert s.handlers == ["a.b", "c.d"] and s.queues == ["default", "bulk"]


def test_handlers_and_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("KYU_HANDLERS", "my_app.jobs,other.jobs")
    monkeypatch.setenv("KYU_CONCURRENCY", "4-8")
    monkeypatch.setenv("DATABASE_URL", "postgresql://example/db")
    s = Settings()
    assert s.handlers == ["my_app.jobs", "other.jobs"]
    assert s.concurrency_range == (4, 8)
    assert s.database_url == "postgresql://example/db"


def test_concurrency_grows_with_the_backlog(url: str) -> None:
    sql(url, "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 'test.slow',"
             " 'payload', jsonb_build_object('seconds', 0.02)))) from generate_series(1, 60)")
    w = drain(url, ["test.slow"], concurrency="2-12", batch_size=50)
    assert w.counts["completed"] == 60
    assert w.limit > 2


def test_async_handler_writes_commit_or_roll_back_with_the_attempt(url: str) -> None:
    ok = enqueue(url, "test.async_write")
    bad = enqueue(url, "test.async_write", {"fail": True}, max_attempts=1)
    drain(url, ["test.async_write"])
    assert job(url, ok)["status"] == "completed"
    assert job(url, bad)["status"] == "dead"
    rows = sql(url, "select job_id from public.effects where job_id = any(%s)", ([ok, bad],))
    assert rows == [{"job_id": ok}]


def test_worker_stops_claiming_over_its_memory_limit(url: str, caplog) -> None:
    j = enqueue(url, "test.echo", {"value": 1})

    async def run_briefly() -> Worker:
        w = Worker(Settings(database_url=url, job_types=["test.echo"], max_rss_mb=1,
                            poll_interval=0.1), registry)
        task = asyncio.create_task(w.run())
        await asyncio.sleep(1.5)
        throttled = w.throttled
        w.request_stop()
        await task
        assert throttled
        return w

    asyncio.run(run_briefly())
    assert job(url, j)["status"] == "pending"
    assert any("throttled: not claiming while RSS" in r.getMessage() for r in caplog.records)
    drain(url, ["test.echo"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_endpoint_and_json_logs(url: str, spawn) -> None:
    port = free_port()
    w = spawn(url, "--metrics-port", str(port), "--log-json", "--job-types", "test.echo")
    j = enqueue(url, "test.echo", {"value": 2})
    wait_for(lambda: job(url, j)["status"] == "completed", 20, "completion")

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    text = wait_for(lambda: 'kyu_jobs_completed_total{job_type="test.echo"} 1.0' in scrape()
                    and scrape(), 10, "metrics")
    for name in ("kyu_jobs_started_total", "kyu_job_run_seconds_bucket", "kyu_claim_seconds",
                 "kyu_jobs_in_flight", "kyu_throttled", "kyu_jobs_dead_total"):
        assert name in text
    w.stop()
    lines = [json.loads(line) for line in w.output().splitlines() if line.startswith("{")]
    events = [(x.get("event"), x.get("job_id")) for x in lines]
    assert ("start", j) in events and ("finish", j) in events
    finish = next(x for x in lines if x.get("event") == "finish" and x.get("job_id") == j)
    assert finish["job_type"] == "test.echo" and finish["attempt"] == 1
    assert finish["duration_ms"] >= 0 and finish["status"] == "completed"
