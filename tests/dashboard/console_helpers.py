"""The console's test helpers: representative data made through queue.* calls, the console as
a real server process, and a real Chromium (Debian's chromium + chromedriver, via selenium).

Shared by the tests and by ``make dashboard-screenshots`` (screenshots.py)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from starlette.testclient import TestClient

from python_worker.dashboard.app import create_app
from python_worker.dashboard.security import ConsoleSettings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "console-test-token"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def sql(url: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@dataclass
class Seeded:
    """Ids of the seeded jobs, by what they are."""

    dead: list[int]
    running: list[int]
    waiting: list[int]
    retrying: list[int]
    completed: list[int]
    owner: str


ERRORS = [
    "smtplib.SMTPRecipientsRefused: {'kana@example.jp': (550, b'5.1.1 mailbox unavailable')}",
    "PermanentError: not an address: 'no-at-sign'",
    "httpx.ConnectTimeout: timed out connecting to ocr.internal:443",
    "ValueError: receipt total is negative: -1200",
    'pydantic ValidationError: 1 validation error for Resize\nwidth\n  Input should be a valid'
    ' integer [type=int_type, input_value="wide", input_type=str]',
]


def seed(url: str) -> Seeded:
    """Queues, job types and jobs in every state, made the way workers make them (claim,
    complete, fail, report_progress, heartbeat), plus an hour of per-minute stats snapshots,
    three worker sessions and two circuit breakers."""
    owner = "5b6f6c2e-3f0a-4d59-9a43-0c1f6a1d2e77"
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        def one(q: str, p: Any = None) -> Any:
            row = conn.execute(q, p).fetchone()
            return None if row is None else next(iter(row.values()))

        # emails gets its limits at the end: the seeding claims more than they allow
        emails_policy = ("select queue.create_queue(queue_name => 'emails', max_attempts => 3,"
                         " backoff_base => '0 seconds', backoff_max => '1 second'{})")
        conn.execute(emails_policy.format(""))
        conn.execute("select queue.create_queue(queue_name => 'images', lease_seconds => 600,"
                     " backoff_strategy => 'linear', backoff_base => '30 seconds',"
                     " backoff_max => '10 minutes')")
        conn.execute("select queue.create_queue(queue_name => 'reports', max_attempts => 2,"
                     " retention => '30 days', aging_interval => '5 minutes')")
        # a tenants' queue: fair claiming and per-owner limits, shown on the queues page
        conn.execute("select queue.create_queue(queue_name => 'uploads', fair => true,"
                     " owner_max_live_jobs => 50, owner_enqueue_rate => 20,"
                     " owner_enqueue_interval => '1 minute', owner_concurrency => 2)")
        for jt, q, svc in (("email.send", "emails", "{smtp}"), ("image.resize", "images", "{}"),
                           ("report.monthly", "reports", "{}"),
                           ("email.digest", "emails", "{smtp}")):
            conn.execute("select queue.register_job_type(job_type => %s, queue_name => %s,"
                         " services => %s::text[])", (jt, q, svc))

        def enqueue(jt: str, payload: dict[str, Any], **kw: Any) -> int:
            cols = "".join(f", {k} => %({k})s" for k in kw)
            return int(one(f"select queue.enqueue_job(job_type => %(t)s,"
                           f" payload => %(p)s::jsonb{cols})",
                           {"t": jt, "p": json.dumps(payload), **kw}))

        tokens: dict[int, str] = {}  # each claimed job's lease token, presented when finishing

        def claim(worker: str, queue: str, n: int) -> list[int]:
            rows = conn.execute("select id, lease_token::text from queue.claim_jobs("
                                "worker_id => %s, batch_size => %s, queue_names => array[%s])",
                                (worker, n, queue)).fetchall()
            tokens.update({r["id"]: r["lease_token"] for r in rows})
            return [r["id"] for r in rows]

        completed: list[int] = []
        for i in range(40):
            completed.append(enqueue("email.send", {"to": f"user{i}@example.jp",
                                                    "template": "welcome"}))
        for i in range(12):
            completed.append(enqueue("image.resize", {"image_id": 9000 + i, "width": 640}))
        for jid in claim("worker-a:4121", "emails", 40) + claim("worker-b:4188", "images", 12):
            conn.execute("select queue.complete_job(%s, %s, %s::jsonb, lease_token => %s::uuid)",
                         (jid, "worker-a:4121" if jid in completed[:40] else "worker-b:4188",
                          json.dumps({"message_id": f"<{jid}@mail.example.jp>"}), tokens[jid]))

        # dead: emails that fail three times, images with a permanent error
        dead = [enqueue("email.send", {"to": f"bounce{i}@example.jp", "template": "invoice"},
                        owner_id=owner if i == 0 else None) for i in range(4)]
        for attempt in range(3):
            for jid in claim("worker-a:4121", "emails", 10):
                conn.execute("select queue.fail_job(%s, %s, %s, lease_token => %s::uuid)",
                             (jid, "worker-a:4121", ERRORS[(jid + attempt) % 3], tokens[jid]))
        bad_images = [enqueue("image.resize", {"image_id": 77, "width": "wide"})
                      for _ in range(2)]
        for jid in claim("worker-b:4188", "images", 10):
            conn.execute("select queue.fail_job(%s, %s, %s, retryable => false,"
                         " lease_token => %s::uuid)",
                         (jid, "worker-b:4188", ERRORS[4], tokens[jid]))
        dead += bad_images

        # retrying: failed once, waiting out the linear backoff
        retrying = [enqueue("image.resize", {"image_id": 500 + i, "width": 1280})
                    for i in range(3)]
        for jid in claim("worker-b:4188", "images", 3):
            conn.execute("select queue.fail_job(%s, %s, %s, lease_token => %s::uuid)",
                         (jid, "worker-b:4188", ERRORS[2], tokens[jid]))

        # running, with progress
        running = [enqueue("report.monthly", {"month": "2026-11", "account": f"acct-{i}"},
                           owner_id=owner) for i in range(3)]
        for n, jid in enumerate(claim("worker-c:977", "reports", 3)):
            conn.execute("select queue.report_progress(%s, %s, %s::jsonb, %s::uuid)",
                         (jid, "worker-c:977", json.dumps({"done": 3 + n * 4, "total": 12,
                                                           "step": "rendering pages"}),
                          tokens[jid]))

        # waiting now, and scheduled for later
        waiting = [enqueue("email.digest", {"user_id": i, "period": "weekly"})
                   for i in range(18)]
        waiting += [enqueue("email.send", {"to": "later@example.jp"},
                            run_at=(datetime.now(UTC) + timedelta(days=30)).isoformat())]

        # workers: two beating (one throttled), one gone quiet
        conn.execute("select queue.heartbeat('worker-a:4121', '{}', 'app-1', 4121, %s::jsonb)",
                     (json.dumps({"concurrency": 8, "in_flight": 0, "queues": ["emails"],
                                  "throttled": False}),))
        conn.execute("select queue.heartbeat('worker-c:977', %s::bigint[], 'app-2', 977,"
                     " %s::jsonb, %s::uuid[])", (running, json.dumps({
                         "concurrency": 4, "in_flight": 3, "queues": ["reports", "images"],
                         "throttled": True}), [tokens.get(j) for j in running]))
        conn.execute("insert into queue.worker_sessions (worker_id, host, pid, started_at,"
                     " last_seen_at, metadata) values ('worker-b:4188', 'app-1', 4188,"
                     " now() - interval '3 hours', now() - interval '25 minutes',"
                     " '{\"concurrency\": 2}')")

        # breakers: smtp open, a payments API closed again
        conn.execute("select queue.report_service('smtp', false, '421 too many connections',"
                     " failure_threshold => 3, cooldown => '5 minutes')")
        for _ in range(2):
            conn.execute("select queue.report_service('smtp', false,"
                         " '421 too many connections')")
        conn.execute("select queue.report_service('payments-api', true)")

        conn.execute(emails_policy.format(", concurrency => 4, rate_limit => 10,"
                                          " rate_interval => '1 second'"))

        # an hour of per-minute snapshots, as pg_cron's queue-stats would have written them
        conn.execute("delete from queue.stats_history")
        for minute in range(60, 0, -1):
            for q, base in (("emails", 30.0), ("images", 12.0), ("reports", 2.0)):
                wave = 1 + 0.5 * math.sin(minute / 7 + base)
                jpm = round(base * wave, 2)
                fr = round(max(0.0, 0.02 + 0.05 * math.sin(minute / 11 + base) ** 3), 4)
                conn.execute(
                    "insert into queue.stats_history (captured_at, queue_name, waiting,"
                    " scheduled, running, retrying, dead, completed_last_hour, failed_last_hour,"
                    " wait_p50_seconds, wait_p95_seconds, jobs_per_minute, failure_rate)"
                    " values (date_trunc('minute', now()) - make_interval(mins => %s), %s, %s,"
                    " 0, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (minute, q, int(base * wave * 0.8), int(base / 6), int(wave * 2), 4,
                     int(jpm * 60), int(jpm * 60 * fr), 0.4 * wave, 2.5 * wave ** 2, jpm, fr))
    return Seeded(dead=dead, running=running, waiting=waiting[:-1], retrying=retrying,
                  completed=completed, owner=owner)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Console:
    base: str
    proc: subprocess.Popen[str]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def console_server(url: str, **env: str) -> Iterator[Console]:
    """``python -m python_worker dashboard`` as a process on a free port, until the block ends."""
    port = free_port()
    log_path = Path(f"/tmp/kyu-console-{os.getpid()}-{port}.log")
    full_env = dict(os.environ, DATABASE_URL=url, KYU_DASHBOARD_TOKEN=TOKEN, **env)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "python_worker", "dashboard", "--port",
                                 str(port)], env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                text=True, cwd=ROOT)
    console = Console(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(console.base + "/metrics", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the console did not start:\n{console.output()}") from None
                time.sleep(0.2)
        yield console
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def missing_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return (f"{path} is missing: apt-get install -y chromium chromium-driver"
                    " (make deps installs them on a fresh machine)")
    return None


def chromium(width: int = 1440, height: int = 1000) -> Any:
    """A headless Debian Chromium driven through its own chromedriver (no browser download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1",
                "--lang=en-US"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


# ---- the app in-process (TestClient over the real database) ----

def make_client(url: str, **settings: object) -> TestClient:
    app = create_app(url, ConsoleSettings(token=TOKEN, **settings))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://127.0.0.1:8400", follow_redirects=False)


def sign_in(c: TestClient) -> str:
    """Signs in through the form; returns the CSRF token of the new session."""
    page = c.get("/login")
    login_csrf = page.cookies.get("kyu_login") or c.cookies.get("kyu_login")
    r = c.post("/login", data={"token": TOKEN, "login_csrf": login_csrf})
    assert r.status_code == 303, r.text
    return csrf_of(c)


def csrf_of(c: TestClient) -> str:
    html = c.get("/queues").text
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF token on the page of a signed-in user"
    return m.group(1)
