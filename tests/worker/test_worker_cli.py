"""The CLI: enqueue, status, dead-letter (list and retry), human and --json output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from worker_helpers import HERE, ROOT, drain, job, sql


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "python_worker", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_enqueue_prints_the_id_and_rejects_unknown_types(url: str) -> None:
    out = cli(url, "--json", "enqueue", "test.echo", '{"value": 1}', "--priority", "3",
              "--unique-key", "cli-1")
    assert out.returncode == 0, out.stderr
    job_id = json.loads(out.stdout)["id"]
    row = job(url, job_id)
    assert (row["priority"], row["unique_key"], row["payload"]) == (3, "cli-1", {"value": 1})
    bad = cli(url, "enqueue", "no.such.type", "{}")
    assert bad.returncode == 1
    assert "unknown job type: no.such.type" in bad.stderr
    assert "register_job_type" in bad.stderr  # the hint
    drain(url, ["test.echo"])


def test_dead_letter_lists_and_retries(url: str) -> None:
    out = cli(url, "enqueue", "test.permanent", "{}")
    job_id = int(out.stdout)
    drain(url, ["test.permanent"])
    listing = cli(url, "dead-letter")
    assert str(job_id) in listing.stdout and "PermanentError" in listing.stdout
    rows = json.loads(cli(url, "--json", "dead-letter").stdout)
    assert any(r["id"] == job_id for r in rows)
    retried = cli(url, "dead-letter", "--retry", str(job_id))
    assert retried.returncode == 0 and job(url, job_id)["status"] == "pending"
    drain(url, ["test.permanent"])
    everything = cli(url, "--json", "dead-letter", "--all")
    assert job_id in json.loads(everything.stdout)["retried"]
    sql(url, "select queue.cancel_job(%s)", (job_id,))


def test_status_shows_a_row_per_queue(url: str) -> None:
    human = cli(url, "status")
    assert human.returncode == 0, human.stderr
    assert "queue" in human.stdout and "default" in human.stdout
    rows = json.loads(cli(url, "--json", "status").stdout)
    assert {"default", "critical", "bulk"} <= {r["queue_name"] for r in rows}


def test_status_survives_infinite_times_and_a_5mb_error(url: str) -> None:
    """Rows the API now refuses but an older version (or a hand-written insert) left behind must
    not break the status command: run_at -infinity/infinity and a 5 MB error in the dead letter."""
    ids = sql(url, """
        with live as (
            insert into queue.jobs
                (id, job_type, queue_name, priority, run_at, payload, max_attempts)
            values (nextval('queue.jobs_id_seq'), 'test.echo', 'default', 50, '-infinity', '{}', 3),
                   (nextval('queue.jobs_id_seq'), 'test.echo', 'default', 50, 'infinity', '{}', 3)
            returning id
        ), dead as (
            insert into queue.job_history (id, job_type, queue_name, status, priority, payload,
                attempt, max_attempts, errors, run_at, created_at, started_at, finished_at)
            values (nextval('queue.jobs_id_seq'), 'test.echo', 'default', 'dead', 50, '{}', 1, 1,
                    jsonb_build_array(jsonb_build_object('error', repeat('e', 5000000))),
                    '-infinity', now(), now(), now())
            returning id
        )
        select id from live union all select id from dead""")
    try:
        human = cli(url, "status")
        assert human.returncode == 0, human.stderr
        assert "default" in human.stdout
        rows = {r["queue_name"]: r for r in json.loads(cli(url, "--json", "status").stdout)}
        assert rows["default"]["waiting"] >= 1 and rows["default"]["scheduled"] >= 1
        listing = cli(url, "dead-letter")
        assert listing.returncode == 0, listing.stderr
    finally:
        job_ids = [r["id"] for r in ids]
        sql(url, "delete from queue.jobs where id = any(%s)", (job_ids,))
        sql(url, "delete from queue.job_history where id = any(%s)", (job_ids,))


def test_process_drains_and_exits(url: str) -> None:
    ids = [int(cli(url, "enqueue", "test.echo", f'{{"value": {i}}}').stdout) for i in range(3)]
    out = cli(url, "--json", "process", "--handlers", "kyu_test_handlers", "--job-types",
              "test.echo")
    assert out.returncode == 0, out.stderr
    assert all(job(url, i)["status"] == "completed" for i in ids)
    assert json.loads(out.stdout)["completed"] == 3
