"""The console's pages read the seeded database through queue.* and show what is there: counts,
charts, filters and keyset pages, one job with its errors, progress and timeline, the dead
letter's confirmation, workers, schedules, breakers, health and metrics."""

from __future__ import annotations

import re
import subprocess
import sys

from console_helpers import ROOT, Seeded, sign_in, sql
from starlette.testclient import TestClient

from python_worker.dashboard.charts import line_chart


def ids_on(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td class="n"><a href="/jobs/(\d+)">', html)]


def test_overview_shows_counts_health_and_charts(client: TestClient, seeded: Seeded) -> None:
    html = client.get("/").text
    row = re.search(r'<tr data-queue="emails">(.*?)</tr>', html, re.S)
    assert row, "no row for the emails queue"
    cells = re.findall(r'<td class="n">(?:<a[^>]*>)?([^<]*)', row.group(1))
    assert cells[:5] == ["18", "1", "0", "0", "4"]  # waiting, scheduled, running, retrying, dead
    assert "degraded" in html and "circuit breaker smtp is open" in html
    assert html.count("<polyline") == 12  # 4 charts x 3 queues with snapshots
    assert "nothing to plot in this window" not in html
    live = client.get("/?fragment=1").text
    assert "<html" not in live and 'data-queue="emails"' in live  # the live region only


def test_a_chart_without_snapshots_says_so(client: TestClient) -> None:
    empty = line_chart("Throughput", "/min", [], lambda r: r["jobs_per_minute"], {})
    assert empty.empty and "nothing to plot in this window" in empty.svg
    # snapshots whose value is null (no job finished in the hour) plot nothing either
    nulls = line_chart("Failure rate", "%", [{"queue_name": "q", "failure_rate": None,
                                              "captured_at": None}],
                       lambda r: r["failure_rate"], {})
    assert nulls.empty and "nothing to plot" in nulls.svg
    html = client.get("/?window=7d").text
    assert 'class="active">7d<' in html
    assert client.get("/?window=99y").status_code == 200  # an unknown window falls back to 1h


def test_jobs_filters(client: TestClient, seeded: Seeded) -> None:
    dead = ids_on(client.get("/jobs", params={"status": "dead"}).text)
    assert sorted(dead) == sorted(seeded.dead)
    images_dead = ids_on(client.get("/jobs", params={"status": "dead", "queue": "images"}).text)
    assert sorted(images_dead) == sorted(seeded.dead[4:])
    by_type = ids_on(client.get("/jobs", params={"type": "report.monthly"}).text)
    assert sorted(by_type) == sorted(seeded.running)
    by_owner = ids_on(client.get("/jobs", params={"owner": seeded.owner}).text)
    assert sorted(by_owner) == sorted([seeded.dead[0], *seeded.running])
    by_payload = ids_on(client.get("/jobs", params={"payload": '{"image_id": 77}'}).text)
    assert sorted(by_payload) == sorted(seeded.dead[4:])
    recent = ids_on(client.get("/jobs", params={"type": "report.monthly", "after": "1h"}).text)
    assert sorted(recent) == sorted(seeded.running)
    old = ids_on(client.get("/jobs", params={"type": "report.monthly",
                                            "before": "2020-01-01T00:00"}).text)
    assert old == []


def test_bad_filters_are_named(client: TestClient) -> None:
    for params, words in (({"status": "lost"}, "status must be one of"),
                          ({"owner": "bob"}, "owner must be a UUID, got &#39;bob&#39;"),
                          ({"payload": "[1]"}, "payload must be a JSON object, got &#39;[1]&#39;"),
                          ({"after": "tuesday"}, "after must be a time"),
                          ({"before_id": "x"}, "before_id must be a job id"),
                          ({"after": "1h", "before": "2h"}, "must be before created_before")):
        r = client.get("/jobs", params=params)
        assert r.status_code == 400, params
        assert words in r.text, (params, words)


def test_jobs_pages_by_id_without_gaps_or_repeats(client: TestClient, seeded: Seeded,
                                                  module_db_url: str) -> None:
    seen: list[int] = []
    html = client.get("/jobs").text
    pages = 0
    while True:
        page = ids_on(html)
        assert page == sorted(page, reverse=True)
        seen += page
        pages += 1
        older = re.search(r'id="older" href="([^"]+)"', html)
        if not older:
            break
        html = client.get(older.group(1).replace("&amp;", "&")).text
    every = sql(module_db_url, "select array_agg(id order by id desc) as ids"
                               " from queue.all_jobs")[0]["ids"]
    assert pages >= 2 and seen == every


def test_one_job_shows_errors_progress_and_timeline(client: TestClient, seeded: Seeded) -> None:
    dead = client.get(f"/jobs/{seeded.dead[0]}").text
    assert dead.count('<details class="error"') == 3  # every attempt's error
    assert "attempt 3 failed on worker-a:4121" in dead
    assert "bounce0@example.jp" in dead  # the payload
    assert "Sign in</a> to retry or cancel" in dead
    running = client.get(f"/jobs/{seeded.running[1]}").text
    assert re.search(r'<progress id="progress" max="1" value="0\.583">', running)
    assert "rendering pages" in running and "lease of worker-c:977 runs out" in running
    done = client.get(f"/jobs/{seeded.completed[0]}").text
    assert "mail.example.jp" in done and 'id="result"' in done
    missing = client.get("/jobs/987654321")
    assert missing.status_code == 404 and "job 987654321 not found" in missing.text


def test_job_page_retries_and_cancels_for_a_signed_in_user(client: TestClient, seeded: Seeded,
                                                           module_db_url: str) -> None:
    csrf = sign_in(client)
    job_id = seeded.waiting[-1]
    assert 'id="cancel-job"' in client.get(f"/jobs/{job_id}").text
    r = client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf})
    assert r.headers["location"] == f"/jobs/{job_id}?msg=job%20{job_id}%20was%20cancelled"
    assert sql(module_db_url, "select (queue.get_job(%s)).status", (job_id,))[0][
        "status"] == "cancelled"
    again = client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf})
    assert "already%20cancelled" in again.headers["location"]
    client.post(f"/jobs/{job_id}/retry", data={"csrf": csrf})
    assert sql(module_db_url, "select (queue.get_job(%s)).status", (job_id,))[0][
        "status"] == "pending"
    assert client.post(f"/jobs/{job_id}/explode", data={"csrf": csrf}).status_code == 404


def test_dead_letter_bulk_discard_asks_first(client: TestClient, seeded: Seeded,
                                             module_db_url: str) -> None:
    csrf = sign_in(client)
    target = seeded.dead[4]
    page = client.post("/dead/bulk", data={"csrf": csrf, "action": "discard", "ids": [target]})
    assert page.status_code == 200 and "Discard 1 dead job?" in page.text
    assert "cannot be undone" in page.text
    assert sql(module_db_url, "select count(*) as n from queue.dead_letter where id = %s",
               (target,))[0]["n"] == 1  # nothing happened yet
    done = client.post("/dead/bulk", data={"csrf": csrf, "action": "discard", "ids": [target],
                                           "confirmed": "yes"})
    assert done.status_code == 303 and "1%20jobs%20discarded" in done.headers["location"]
    assert sql(module_db_url, "select count(*) as n from queue.dead_letter where id = %s",
               (target,))[0]["n"] == 0
    none = client.post("/dead/bulk", data={"csrf": csrf, "action": "retry"})
    assert "select%20at%20least%20one%20job" in none.headers["location"]
    odd = client.post("/dead/bulk", data={"csrf": csrf, "action": "burn", "ids": [1]})
    assert odd.status_code == 400 and "action must be retry or discard, got 'burn'" in odd.text


def test_queues_workers_schedules_breakers(client: TestClient, seeded: Seeded) -> None:
    queues = client.get("/queues").text
    emails = re.search(r'<tr data-queue="emails">(.*?)</tr>', queues, re.S).group(1)  # type: ignore[union-attr]
    assert "10 per 1 s" in emails and "email.digest, email.send" in emails
    reports = re.search(r'<tr data-queue="reports">(.*?)</tr>', queues, re.S).group(1)  # type: ignore[union-attr]
    assert "30d" in reports and "5m" in reports  # retention, aging
    uploads = re.search(r'<tr data-queue="uploads">(.*?)</tr>', queues, re.S).group(1)  # type: ignore[union-attr]
    owner_policy = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", uploads.split('owner-policy">')[1]))
    assert owner_policy.startswith("fair 50 live · 20 per 1m · 2 running (end users)"), owner_policy
    assert '<td class="small owner-policy">-' in emails  # no per-owner policy
    workers = client.get("/workers").text
    assert re.search(r"worker-c:977.*?throttled", workers, re.S)
    assert re.search(r"worker-b:4188.*?gone", workers, re.S)
    assert re.search(r"worker-a:4121.*?>ok<", workers, re.S)
    schedules = client.get("/schedules").text
    assert "pg_cron not installed" in schedules  # a test database has no pg_cron
    breakers = client.get("/breakers").text
    assert re.search(r"smtp</td>\s*<td><span class=\"badge bad\">open", breakers)
    assert "email.digest, email.send" in breakers and "421 too many connections" in breakers


def test_health_and_metrics_endpoints(client: TestClient) -> None:
    h = client.get("/health")
    assert h.status_code == 200 and h.json()["status"] == "degraded"
    m = client.get("/metrics").text
    assert 'kyu_queue_jobs{queue="emails",state="waiting"} 18.0' in m
    assert 'kyu_queue_jobs{queue="emails",state="dead"}' in m


def test_the_engine_does_not_load_the_console() -> None:
    code = "import sys, python_worker.cli; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    assert "python_worker.cli" in out
    assert not [m for m in out if m.startswith(("python_worker.dashboard", "starlette",
                                                "uvicorn", "jinja2"))]


def test_without_the_extra_the_cli_names_what_to_install(module_db_url: str) -> None:
    code = ("import sys; sys.modules['starlette'] = None; from python_worker.cli import main;"
            " raise SystemExit(main(['--database-url', sys.argv[1], 'dashboard']))")
    out = subprocess.run([sys.executable, "-c", code, module_db_url], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert "pip install 'kyu[dashboard]'" in out.stderr and "starlette" in out.stderr
