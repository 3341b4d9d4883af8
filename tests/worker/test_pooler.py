"""The worker behind PgBouncer in transaction mode, with default settings: what Supabase's
pooler (Supavisor, port 6543) gives most users. ``make test-py`` starts the pooler
(scripts/db.sh, port KYU_DB_PORT + 1000) and passes its URL as KYU_POOLER_URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from worker_helpers import HERE, ROOT, drain, enqueue, job, sql, wait_for

POOLER_URL = os.environ.get("KYU_POOLER_URL")
NO_LISTEN = "transaction pooling: no LISTEN"


@pytest.fixture(scope="module")
def pooled(url: str) -> str:
    """This module's database, reached through the pooler."""
    if not POOLER_URL:
        pytest.skip("no pooler: KYU_POOLER_URL is unset (make test-py sets it)")
    port = psycopg.conninfo.conninfo_to_dict(POOLER_URL)["port"]
    return psycopg.conninfo.make_conninfo(url, port=port)


def status(url: str, job_id: int) -> str:
    return job(url, job_id)["status"]


def test_the_pooler_is_pgbouncer_in_transaction_mode(pooled: str) -> None:
    admin = psycopg.conninfo.make_conninfo(pooled, dbname="pgbouncer")
    out = subprocess.run(["psql", admin, "-XAt", "-F", "=", "-c", "show config"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    config = dict(line.split("=")[:2] for line in out.stdout.splitlines() if "=" in line)
    assert config["pool_mode"] == "transaction"
    assert "options" not in config.get("ignore_startup_parameters", "")


def test_claim_complete_fail_retry_and_transactions_behind_the_pooler(url, pooled) -> None:
    echo = enqueue(url, "test.echo", {"value": 21})
    progress = enqueue(url, "test.async_echo", {"value": 5})
    flaky = enqueue(url, "test.flaky", {"succeed_on": 2}, backoff_base="0 seconds")
    dead = enqueue(url, "test.permanent", max_attempts=3)
    write = enqueue(url, "test.write")
    async_write = enqueue(url, "test.async_write")
    w = drain(pooled, ["test.echo", "test.async_echo", "test.flaky", "test.permanent",
                       "test.write", "test.async_write"])
    assert w.pool_mode == "transaction"
    assert job(url, echo)["result"] == {"value": 42}
    assert job(url, progress)["progress"] == {"step": 1}
    assert (status(url, flaky), job(url, flaky)["attempt"]) == ("completed", 2)
    assert (status(url, dead), job(url, dead)["attempt"]) == ("dead", 1)
    assert status(url, write) == status(url, async_write) == "completed"
    effects = sql(url, "select job_id from public.effects where job_id = any(%s) order by 1",
                  ([write, async_write],))
    assert [r["job_id"] for r in effects] == sorted([write, async_write])


def cli(url: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    return subprocess.Popen([sys.executable, "-m", "python_worker", "--json", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_drain_behind_the_pooler_and_lose_or_double_nothing(url, pooled) -> None:
    # two clients share the pooler's server connections: named prepared statements would
    # collide ("_pg3_0 already exists"), a startup "options" would be refused
    ids = [r["id"] for r in sql(
        url, "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 'test.noop')))"
             " as id from generate_series(1, 5000)")]
    workers = [cli(pooled, "process", "--handlers", "kyu_test_handlers", "--job-types",
                   "test.noop") for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in workers]
    for p, (_, err) in zip(workers, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    rows = sql(url, "select status::text, attempt, count(*) as n from queue.all_jobs"
                    " where id = any(%s) group by 1, 2", (ids,))
    assert rows == [{"status": "completed", "attempt": 1, "n": 5000}]


def test_run_behind_the_pooler_warns_once_and_polls_within_the_interval(url, pooled,
                                                                         spawn) -> None:
    w = spawn(pooled, "--poll-interval", "1", "--job-types", "test.noop")
    probe = enqueue(url, "test.noop")
    wait_for(lambda: status(url, probe) == "completed", 20, f"worker start\n{w.output()}")
    delays = []
    for _ in range(3):
        time.sleep(2.5)  # idle: polling has backed off to the interval
        t0 = time.time()
        j = enqueue(url, "test.noop")
        wait_for(lambda j=j: status(url, j) == "completed", 10, "completion", step=0.01)
        delays.append(job(url, j)["result"]["t"] - t0)
    # the interval, plus a claim and a start on a shared two-core box: a bound, not a speed
    # target; a backoff well past the interval would exceed it
    assert max(delays) < 1 + 1.5, delays
    assert w.output().count(NO_LISTEN) == 1, w.output()


def test_listen_url_wakes_a_worker_behind_the_pooler(url, pooled, spawn) -> None:
    w = spawn(pooled, "--poll-interval", "10", "--job-types", "test.noop",
              env={"KYU_LISTEN_URL": url})
    probe = enqueue(url, "test.noop")
    wait_for(lambda: status(url, probe) == "completed", 20, f"worker start\n{w.output()}")
    time.sleep(0.3)
    delays = []
    for _ in range(3):
        t0 = time.time()
        j = enqueue(url, "test.noop")
        wait_for(lambda j=j: status(url, j) == "completed", 5, "completion", step=0.01)
        delays.append(job(url, j)["result"]["t"] - t0)
        time.sleep(0.2)
    assert max(delays) < 1.0, delays
    assert NO_LISTEN not in w.output()


def test_shutdown_behind_the_pooler_releases_running_jobs(url, pooled, spawn) -> None:
    w = spawn(pooled, "--shutdown-grace", "1", "--job-types", "test.sleep")
    long = enqueue(url, "test.sleep", {"seconds": 60})
    wait_for(lambda: status(url, long) == "running", 20, f"running\n{w.output()}")
    w.signal(signal.SIGTERM)
    assert w.wait(20) == 0, w.output()
    row = job(url, long)
    assert (row["status"], row["attempt"], row["errors"]) == ("pending", 0, [])
    sql(url, "select queue.cancel_job(%s)", (long,))
