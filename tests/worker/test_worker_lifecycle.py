"""Worker processes under stress: signals, SIGKILL, a database restart, two workers, LISTEN."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from worker_helpers import enqueue, job, sql, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PGDATA = Path(__file__).resolve().parents[2] / ".local" / "pgdata"


def status(url: str, job_id: int) -> str:
    return job(url, job_id)["status"]


def ready(url: str, w) -> None:
    """Waits until the worker has run a first job (it is connected and listening)."""
    probe = enqueue(url, "test.noop")
    wait_for(lambda: status(url, probe) == "completed", 20, f"worker start\n{w.output()}")


def test_graceful_shutdown_finishes_short_jobs_and_releases_the_rest(url, spawn) -> None:
    w = spawn(url, "--concurrency", "4", "--shutdown-grace", "2", "--job-types",
              "test.sleep,test.noop")
    ready(url, w)
    short = [enqueue(url, "test.sleep", {"seconds": 0.5}) for _ in range(2)]
    long = [enqueue(url, "test.sleep", {"seconds": 60}) for _ in range(2)]
    wait_for(lambda: all(status(url, j) == "running" for j in short + long), 10, "all running")
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0, w.output()
    assert time.monotonic() - t0 < 6
    for j in short:
        assert status(url, j) == "completed"
    for j in long:
        row = job(url, j)
        assert (row["status"], row["attempt"], row["errors"]) == ("pending", 0, [])
    assert "released 2 unfinished jobs" in w.output()
    sql(url, "select queue.cancel_job(id) from unnest(%s::bigint[]) as id", (long,))


def test_second_signal_exits_at_once(url, spawn) -> None:
    w = spawn(url, "--shutdown-grace", "60", "--job-types", "test.sleep,test.noop")
    ready(url, w)
    j = enqueue(url, "test.sleep", {"seconds": 60})
    wait_for(lambda: status(url, j) == "running", 10, "running")
    w.signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.monotonic()
    w.signal(signal.SIGINT)
    assert w.wait(5) != 0
    assert time.monotonic() - t0 < 2
    sql(url, "select queue.release_jobs(worker_id, array[id]) from queue.jobs where id = %s", (j,))
    sql(url, "select queue.cancel_job(%s)", (j,))


def test_sigkilled_workers_job_is_reclaimed_and_completes_exactly_once(url, spawn) -> None:
    args = ("--lease-seconds", "2", "--heartbeat-interval", "0.5", "--job-types",
            "test.write,test.noop")
    first = spawn(url, *args)
    ready(url, first)
    j = enqueue(url, "test.write", {"hang_first": True}, backoff_base="0 seconds")
    wait_for(lambda: status(url, j) == "running", 10, "running")
    time.sleep(1.0)  # a heartbeat or two extended the lease meanwhile
    first.signal(signal.SIGKILL)
    first.wait(5)
    assert status(url, j) == "running"
    wait_for(lambda: sql(url, "select queue.reap_expired_leases() as n")[0]["n"] == 1, 10, "reap")
    assert status(url, j) == "retrying"
    second = spawn(url, *args)
    wait_for(lambda: status(url, j) == "completed", 20, f"completion\n{second.output()}")
    row = job(url, j)
    assert row["attempt"] == 2
    assert "stopped heartbeating" in row["errors"][0]["error"]
    effects = sql(url, "select attempt from public.effects where job_id = %s", (j,))
    assert effects == [{"attempt": 2}]


def pg_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(PGDATA), *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def restartable() -> None:
    if not PGDATA.exists():
        pytest.skip("the local cluster is not in .local/pgdata")
    yield
    if pg_ctl("status").returncode != 0:
        pg_ctl("-l", str(PGDATA.parent / "postgres.log"), "-w", "start")


def test_worker_survives_a_database_restart_and_every_effect_lands_once(
        url, spawn, restartable) -> None:
    w = spawn(url, "--concurrency", "4", "--lease-seconds", "3", "--heartbeat-interval", "0.5",
              "--poll-interval", "0.5", "--job-types", "test.write,test.noop")
    ready(url, w)
    # each job writes one row in the transaction that completes it, so a run whose completion
    # was lost to the restart leaves no row: every job must end with exactly one
    ids = [r["id"] for r in sql(
        url, "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 'test.write',"
             " 'payload', jsonb_build_object('seconds', 0.03), 'backoff_base', '0 seconds')))"
             " as id from generate_series(1, 150)")]
    wait_for(lambda: sql(url, "select count(*) as n from queue.job_history where id = any(%s)",
                         (ids,))[0]["n"] >= 20, 20, "first completions")
    restart = pg_ctl("-m", "fast", "-l", str(PGDATA.parent / "postgres.log"), "-w", "restart")
    assert restart.returncode == 0, restart.stderr

    def all_done() -> bool:
        sql(url, "select queue.reap_expired_leases()")
        rows = sql(url, "select status::text, count(*) as n from queue.all_jobs"
                        " where id = any(%s) group by 1", (ids,))
        return {r["status"]: r["n"] for r in rows} == {"completed": len(ids)}

    wait_for(all_done, 60, f"all jobs completed\n{w.output()[-3000:]}", step=0.5)
    assert w.proc.poll() is None, "the worker must not exit"
    assert "retrying in" in w.output() or "database reachable again" in w.output()
    effects = sql(url, "select e.job_id, e.attempt, h.attempt as final_attempt"
                       " from public.effects as e join queue.job_history as h on h.id = e.job_id"
                       " where e.job_id = any(%s)", (ids,))
    per_job = Counter(e["job_id"] for e in effects)
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}, "each effect exactly once"
    assert all(e["attempt"] == e["final_attempt"] for e in effects), "by the completing attempt"


def test_two_workers_never_run_a_job_twice(url, spawn, tmp_path) -> None:
    files = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [spawn(url, "--concurrency", "4", "--batch-size", "4", "--job-types",
                     "test.sleep,test.noop", env={"KYU_TEST_RECORD": str(f)}) for f in files]
    for w in workers:
        ready(url, w)
    ids = [r["id"] for r in sql(
        url, "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 'test.sleep',"
             " 'payload', jsonb_build_object('seconds', 0.01, 'n', i)))) as id"
             " from generate_series(1, 300) as i")]
    wait_for(lambda: sql(url, "select count(*) as n from queue.job_history where id = any(%s)"
                              " and status = 'completed'", (ids,))[0]["n"] == len(ids), 60, "done")
    runs = [line.split() for f in files for line in f.read_text().splitlines()]
    per_job = Counter(r[0] for r in runs)
    assert len(per_job) == 300 and set(per_job.values()) == {1}, "each job ran exactly once"
    assert len({r[3] for r in runs}) == 2, "both workers took jobs"


def test_listen_wakes_an_idle_worker_well_before_the_poll_interval(url, spawn) -> None:
    w = spawn(url, "--poll-interval", "10", "--job-types", "test.noop")
    ready(url, w)
    time.sleep(0.3)
    delays = []
    for _ in range(5):
        t0 = time.time()
        j = enqueue(url, "test.noop")
        wait_for(lambda j=j: status(url, j) == "completed", 5, "completion", step=0.01)
        delays.append(job(url, j)["result"]["t"] - t0)
        time.sleep(0.2)
    assert max(delays) < 1.0, delays
