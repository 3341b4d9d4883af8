"""The operator's CLI verbs against a real database: pause, resume, cancel, retry, discard, show,
list, workers, health, schedules, queues, breakers, owners, status --watch and the metrics
endpoint."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from worker_helpers import HERE, ROOT, drain, enqueue, job, sql, wait_for

# waiting for later (run_at is at most a year ahead)
LATER = (datetime.now(UTC) + timedelta(days=30)).isoformat()

OWNER = "33333333-3333-4333-8333-333333333333"


def cli(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "python_worker", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def qurl(url: str) -> str:
    """The module's database with a queue of its own for the verbs to act on."""
    sql(url, "select queue.create_queue(queue_name => 't_cli', concurrency => 3,"
             " rate_limit => 7, rate_interval => '1 minute')")
    sql(url, "select queue.register_job_type(job_type => 't_cli.job', queue_name => 't_cli',"
             " services => array['t_cli_svc'])")
    return url


def test_pause_and_resume_a_queue(qurl: str) -> None:
    out = cli(qurl, "pause", "t_cli")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "queue t_cli paused"
    assert sql(qurl, "select paused from queue.queue_policies where queue_name = 't_cli'")[0][
        "paused"] is True
    out = cli(qurl, "--json", "resume", "t_cli")
    assert json.loads(out.stdout) == {"queue": "t_cli", "paused": False}
    assert sql(qurl, "select paused from queue.queue_policies where queue_name = 't_cli'")[0][
        "paused"] is False


def test_pausing_an_unknown_queue_names_it(qurl: str) -> None:
    out = cli(qurl, "pause", "no_such_queue")
    assert out.returncode == 1
    assert "unknown queue: no_such_queue" in out.stderr


def test_cancel_then_retry_then_cancel_again(qurl: str) -> None:
    job_id = enqueue(qurl, "t_cli.job", {"n": 1}, run_at=LATER)
    out = cli(qurl, "cancel", str(job_id))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"job {job_id} cancelled"
    assert job(qurl, job_id)["status"] == "cancelled"
    again = cli(qurl, "--json", "cancel", str(job_id))
    assert again.returncode == 1
    assert json.loads(again.stdout)["failed"] == [
        {"id": job_id, "error": f"job {job_id} is already cancelled and cannot be cancelled"}]
    retried = cli(qurl, "--json", "retry", str(job_id), "999999999")
    assert retried.returncode == 1  # one of the two did not exist
    body = json.loads(retried.stdout)
    assert body["pending"] == [job_id]
    assert body["failed"] == [{"id": 999999999, "error": "job 999999999 not found"}]
    assert job(qurl, job_id)["status"] == "pending"
    cli(qurl, "cancel", str(job_id))


def test_discard_deletes_dead_jobs_only(qurl: str) -> None:
    dead = enqueue(qurl, "test.permanent", {})
    drain(qurl, ["test.permanent"])
    assert job(qurl, dead)["status"] == "dead"
    live = enqueue(qurl, "t_cli.job", {}, run_at=LATER)
    out = cli(qurl, "discard", str(dead), str(live))
    assert out.returncode == 1
    assert f"job {dead} discarded" in out.stdout
    assert f"job {live} is not in the dead letter" in out.stderr
    assert sql(qurl, "select count(*) as n from queue.dead_letter where id = %s", (dead,))[0][
        "n"] == 0
    assert job(qurl, live)["status"] == "pending"
    cli(qurl, "cancel", str(live))


def test_show_prints_payload_progress_and_every_error(qurl: str) -> None:
    job_id = enqueue(qurl, "test.flaky", {"succeed_on": 9, "note": "見積書"}, max_attempts=2,
                     backoff_base="0 seconds", backoff_max="1 second")
    drain(qurl, ["test.flaky"])
    out = cli(qurl, "show", str(job_id))
    assert out.returncode == 0, out.stderr
    assert re.search(r"^status +dead$", out.stdout, re.M)
    assert '"note": "見積書"' in out.stdout
    assert out.stdout.count("attempt 1 failed") == 1 and "attempt 2 failed" in out.stdout
    hidden = cli(qurl, "--json", "show", str(job_id), "--hide-payload")
    data = json.loads(hidden.stdout)
    assert data["payload"] == "(hidden)" and data["result"] == "(hidden)"
    assert [e["attempt"] for e in data["errors"]] == [1, 2]
    missing = cli(qurl, "show", "987654321")
    assert missing.returncode == 1
    assert "job 987654321 not found" in missing.stderr


def test_list_filters_and_pages_by_id(qurl: str) -> None:
    ids = [enqueue(qurl, "t_cli.job", {"batch": "L", "i": i}, run_at=LATER)
           for i in range(5)]
    owned = enqueue(qurl, "t_cli.job", {"batch": "O"}, run_at=LATER, owner_id=OWNER)
    first = json.loads(cli(qurl, "--json", "list", "--payload", '{"batch": "L"}',
                           "--limit", "3").stdout)
    assert [r["id"] for r in first] == ids[::-1][:3]
    assert "payload" not in first[0]  # a listing carries no payloads
    second = json.loads(cli(qurl, "--json", "list", "--payload", '{"batch": "L"}', "--limit",
                            "3", "--before-id", str(first[-1]["id"])).stdout)
    assert [r["id"] for r in second] == ids[::-1][3:]
    human = cli(qurl, "list", "--queue", "t_cli", "--status", "pending", "--limit", "2")
    assert f"next page: --before-id {ids[-1]}" in human.stdout
    by_owner = json.loads(cli(qurl, "--json", "list", "--owner", OWNER).stdout)
    assert [r["id"] for r in by_owner] == [owned]
    recent = json.loads(cli(qurl, "--json", "list", "--type", "t_cli.job", "--since", "10m",
                            "--limit", "1000").stdout)
    assert set(ids) <= {r["id"] for r in recent}
    old = json.loads(cli(qurl, "--json", "list", "--type", "t_cli.job", "--until",
                         "2000-01-01").stdout)
    assert old == []
    bad = cli(qurl, "list", "--since", "yesterday")
    assert bad.returncode == 2
    assert "not a time: 'yesterday'" in bad.stderr
    too_many = cli(qurl, "list", "--limit", "5000")
    assert too_many.returncode == 1
    assert "lim must be between 1 and 1000, got 5000" in too_many.stderr
    for i in [*ids, owned]:
        cli(qurl, "cancel", str(i))


def test_workers_show_concurrency_and_a_throttled_worker(qurl: str) -> None:
    sql(qurl, "select queue.heartbeat('w-cli-1', '{}', 'host-a', 41, %s::jsonb)",
        (json.dumps({"concurrency": 6, "throttled": True}),))
    rows = json.loads(cli(qurl, "--json", "workers").stdout)
    mine = [r for r in rows if r["worker_id"] == "w-cli-1"]
    assert mine and mine[0]["host"] == "host-a" and mine[0]["alive"] is True
    human = cli(qurl, "workers").stdout
    line = next(x for x in human.splitlines() if x.startswith("w-cli-1"))
    assert line.split()[1:4] == ["host-a", "41", "6"] and line.split()[-1] == "throttled"


def test_health_exit_code_follows_the_verdict(qurl: str) -> None:
    # the test database has no pg_cron: housekeeping is not scheduled, so at best degraded
    out = cli(qurl, "health")
    assert out.returncode == 3, out.stdout
    assert out.stdout.startswith("degraded") and "pg_cron is not installed" in out.stdout
    job_id = enqueue(qurl, "t_cli.job", {})  # due now, and no live worker
    sql(qurl, "delete from queue.worker_sessions")
    unhealthy = cli(qurl, "--json", "health", "--worker-timeout", "5 seconds")
    assert unhealthy.returncode == 4
    assert any("no live workers" in r for r in json.loads(unhealthy.stdout)["reasons"])
    cli(qurl, "cancel", str(job_id))


def test_queues_breakers_and_schedules(qurl: str) -> None:
    queues = {r["queue_name"]: r for r in json.loads(cli(qurl, "--json", "queues").stdout)}
    assert (queues["t_cli"]["concurrency"], queues["t_cli"]["rate_limit"]) == (3, 7)
    assert queues["t_cli"]["job_types"] == ["t_cli.job"]
    assert "7/1m00s" in cli(qurl, "queues").stdout
    sql(qurl, "select queue.report_service('t_cli_svc', false, 'connection refused',"
              " failure_threshold => 1, cooldown => '1 hour')")
    breakers = json.loads(cli(qurl, "--json", "breakers").stdout)
    assert [(b["service"], b["state"], b["job_types"]) for b in breakers
            if b["service"] == "t_cli_svc"] == [("t_cli_svc", "open", ["t_cli.job"])]
    sql(qurl, "select queue.report_service('t_cli_svc', true)")
    schedules = cli(qurl, "--json", "schedules")
    assert schedules.returncode == 0
    assert json.loads(schedules.stdout) == []  # no pg_cron in a test database: no entries


def test_owners_lists_the_top_owners_with_their_oldest_wait(qurl: str) -> None:
    big, small = "44444444-4444-4444-8444-444444444444", "55555555-5555-4555-8555-555555555555"
    sql(qurl, "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 't_cli.job',"
              " 'owner_id', %s::uuid, 'run_at', now() - interval '1 minute')))"
              " from generate_series(1, 5)", (big,))
    sql(qurl, "select queue.enqueue_job('t_cli.job', owner_id => %s::uuid)", (small,))
    out = cli(qurl, "--json", "owners", "--queue", "t_cli", "--limit", "2")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["owner_id"], r["waiting"], r["running"]) for r in rows] == [
        (big, 5, 0), (small, 1, 0)]
    assert rows[0]["oldest_waiting_age"] >= 59
    text = cli(qurl, "owners", "--queue", "t_cli").stdout
    assert big in text and "oldest waiting" in text
    sql(qurl, "select queue.cancel_job(id) from queue.jobs where owner_id in (%s, %s)",
        (big, small))


def test_status_watch_draws_until_the_count(qurl: str) -> None:
    out = cli(qurl, "--json", "status", "--watch", "0.2", "--count", "2")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(lines) == 2
    assert "t_cli" in {q["queue_name"] for q in lines[0]["queues"]}
    assert lines[1]["health"]["status"] in ("healthy", "degraded", "unhealthy")
    human = cli(qurl, "status", "--watch", "0.1", "--count", "1")
    assert "\x1b[2J" in human.stdout and "health:" in human.stdout and "t_cli" in human.stdout
    bad = cli(qurl, "status", "--watch", "0")
    assert bad.returncode == 2 and "positive number of seconds, got 0.0" in bad.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_command_exports_queue_depth(qurl: str) -> None:
    ids = [enqueue(qurl, "t_cli.job", {}) for _ in range(2)]
    sql(qurl, "select queue.pause_queue('t_cli')")
    port = _free_port()
    env = dict(os.environ, DATABASE_URL=qurl)
    proc = subprocess.Popen([sys.executable, "-m", "python_worker", "metrics", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        def scrape() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    return r.read().decode()
            except OSError:
                return None
        text = wait_for(scrape, 20, "the metrics endpoint")
        assert 'kyu_queue_jobs{queue="t_cli",state="waiting"} 2.0' in text
        assert 'kyu_queue_paused{queue="t_cli"} 1.0' in text
        assert "kyu_queue_scrape_ok 1.0" in text
        assert 'kyu_queue_oldest_wait_seconds{queue="t_cli"}' in text
    finally:
        proc.terminate()
        proc.wait(10)
        sql(qurl, "select queue.resume_queue('t_cli')")
        for i in ids:
            cli(qurl, "cancel", str(i))
