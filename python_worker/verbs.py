"""The operator's verbs of the CLI: list, show, pause, resume, cancel, retry, discard, workers,
health, schedules, queues, breakers, owners, metrics and dashboard (``cli.py`` parses and
dispatches).
Each is one or a few ``queue.*`` calls through ``db.Admin``; ``--json`` prints what SQL returned.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from . import metrics
from .config import Settings
from .db import Admin

log = logging.getLogger("python_worker.cli")

__all__ = ["add_verb_parsers", "dump", "fmt", "table"]

JOB_STATUSES = ["pending", "running", "retrying", "completed", "cancelled", "dead"]


# ---- output: aligned tables for people, JSON for machines (shared with cli.py) ----

def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, timedelta):
        secs = int(v.total_seconds())
        if secs >= 86400:
            return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else (
            f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{v.total_seconds():.1f}s")
    if isinstance(v, (float, Decimal)):
        return f"{float(v):.3g}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    cols = [(k, h) for k, h in columns if not rows or k in rows[0]]
    cells = [[h for _, h in cols]] + [[fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dump(obj: Any) -> str:
    return json.dumps(obj, default=lambda v: v.total_seconds() if isinstance(v, timedelta)
                      else float(v) if isinstance(v, Decimal) else str(v), indent=2)



def add_verb_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    """The operator's verbs: the same actions and views as the console."""
    out = []
    for name, what in (("pause", "stop claiming from a queue (running jobs finish)"),
                       ("resume", "claim from a paused queue again")):
        sp = sub.add_parser(name, help=what)
        sp.add_argument("queue_name", metavar="QUEUE")
        out.append(sp)
    for name, what in (("cancel", "cancel waiting jobs"),
                       ("retry", "replay dead or cancelled jobs"),
                       ("discard", "delete dead jobs from the dead letter for good")):
        sp = sub.add_parser(name, help=what)
        sp.add_argument("job_ids", metavar="JOB", type=int, nargs="+")
        out.append(sp)
    show = sub.add_parser("show", help="one job: payload, result, progress, every error")
    show.add_argument("job_id", metavar="JOB", type=int)
    show.add_argument("--hide-payload", action="store_true", help="leave payload and result out")
    ls = sub.add_parser("list", help="jobs, newest first, filtered; pages with --before-id")
    ls.add_argument("--status", choices=JOB_STATUSES)
    ls.add_argument("--type", dest="job_type", metavar="JOB_TYPE")
    ls.add_argument("--queue", dest="queue_name", metavar="QUEUE")
    ls.add_argument("--owner", metavar="UUID")
    ls.add_argument("--since", metavar="WHEN",
                    help="created at or after: ISO time, or an age such as 30m, 2h, 7d")
    ls.add_argument("--until", metavar="WHEN", help="created before (same forms)")
    ls.add_argument("--payload", metavar="JSON", help="payload contains this JSON object")
    ls.add_argument("--before-id", type=int, metavar="ID", help="the page below this id")
    ls.add_argument("--limit", type=int, default=50, help="rows per page (1-1000)")
    wk = sub.add_parser("workers", help="worker processes: host, pid, concurrency, heartbeat")
    hl = sub.add_parser("health", help="healthy/degraded/unhealthy with reasons (exit 0/3/4)")
    hl.add_argument("--max-wait", metavar="INTERVAL", help="default '5 minutes'")
    hl.add_argument("--max-failure-rate", type=float, metavar="RATE", help="default 0.2")
    hl.add_argument("--worker-timeout", metavar="INTERVAL", help="default '1 minute'")
    sc = sub.add_parser("schedules", help="pg_cron entries: recurring jobs and housekeeping")
    qs = sub.add_parser("queues", help="each queue's policy and whether it is paused")
    cb = sub.add_parser("breakers", help="circuit breakers of external services")
    ow = sub.add_parser("owners", help="top owners by live jobs: waiting, running, oldest wait")
    ow.add_argument("--queue", dest="queue_name", metavar="QUEUE", help="one queue (default all)")
    ow.add_argument("--limit", type=int, default=20, help="rows (default 20)")
    mt = sub.add_parser("metrics", help="serve queue-depth gauges for Prometheus")
    mt.add_argument("--port", type=int, default=9464)
    mt.add_argument("--host", default="127.0.0.1")
    db = sub.add_parser("dashboard", help="the operator's console in a browser (extra: dashboard)")
    db.add_argument("--host", help="default 127.0.0.1 (env KYU_DASHBOARD_HOST)")
    db.add_argument("--port", type=int, help="default 8400 (env KYU_DASHBOARD_PORT)")
    db.add_argument("--read-only", action="store_true", default=None,
                    help="no actions at all (env KYU_DASHBOARD_READ_ONLY=1)")
    db.add_argument("--hide-payloads", action="store_true", default=None,
                    help="never show payloads or results (env KYU_DASHBOARD_HIDE_PAYLOADS=1)")
    return [*out, show, ls, wk, hl, sc, qs, cb, ow, mt, db]


def _when(text: str) -> datetime:
    """``2026-12-01T10:00``, ``2026-12-01``, or an age: ``90s``, ``30m``, ``2h``, ``7d``."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now().astimezone() - timedelta(**{unit: float(m.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use an ISO time such as 2026-12-01T10:00,"
                         " or an age such as 30m, 2h, 7d)") from None
    return at if at.tzinfo else at.astimezone()


def cmd_list(args: argparse.Namespace, admin: Admin) -> int:
    try:
        since = _when(args.since) if args.since else None
        until = _when(args.until) if args.until else None
        payload = json.loads(args.payload) if args.payload else None
    except ValueError as exc:
        print(f"kyu: {exc}", file=sys.stderr)
        return 2
    rows = admin.search_jobs(status=args.status, job_type=args.job_type,
                             queue_name=args.queue_name, owner_id=args.owner,
                             created_after=since, created_before=until,
                             payload_contains=payload, before_id=args.before_id,
                             limit=args.limit)
    if args.json:
        print(dump(rows))
        return 0
    for r in rows:
        r["tries"] = f"{r['attempt']}/{r['max_attempts']}"
        r["error"] = (r.get("last_error") or "").split("\n", 1)[0][:80] or None
    print(table(rows, [("id", "id"), ("job_type", "type"), ("queue_name", "queue"),
                       ("status", "status"), ("tries", "tries"), ("created_at", "created"),
                       ("finished_at", "finished"), ("error", "last error")]))
    if len(rows) == args.limit:
        print(f"\nnext page: --before-id {rows[-1]['id']}")
    return 0


def cmd_show(args: argparse.Namespace, admin: Admin) -> int:
    job = admin.get_job(args.job_id)
    if args.hide_payload:
        job["payload"] = job["result"] = "(hidden)"
    if args.json:
        print(dump(job))
        return 0
    fields = ["id", "job_type", "queue_name", "status", "priority", "attempt", "max_attempts",
              "owner_id", "unique_key", "worker_id", "created_at", "run_at", "started_at",
              "lease_expires_at", "finished_at"]
    width = max(map(len, fields))
    for f in fields:
        print(f"{f.ljust(width)}  {fmt(job.get(f))}")
    for f in ("progress", "payload", "result"):
        if job.get(f) is not None:
            text = job[f] if isinstance(job[f], str) else json.dumps(job[f], indent=2,
                                                                      ensure_ascii=False)
            print(f"\n{f}:\n" + "\n".join("  " + line for line in text.splitlines()))
    for e in job.get("errors") or []:
        print(f"\nattempt {e.get('attempt')} failed at {e.get('at')} on {e.get('worker_id')}:")
        print("\n".join("  " + line for line in str(e.get("error")).splitlines()))
    return 0


def cmd_verb(args: argparse.Namespace, admin: Admin) -> int:
    """pause, resume, cancel, retry, discard: do it, say what happened; 1 if any part failed."""
    if args.command in ("pause", "resume"):
        (admin.pause if args.command == "pause" else admin.resume)(args.queue_name)
        done = {"queue": args.queue_name, "paused": args.command == "pause"}
        print(dump(done) if args.json else f"queue {args.queue_name} {args.command}d")
        return 0
    ids: list[int] = args.job_ids
    failed: list[tuple[int, str]] = []
    if args.command == "discard":
        ok = admin.discard_dead(ids)
        failed = [(i, f"job {i} is not in the dead letter") for i in ids if i not in ok]
    elif args.command == "retry":
        ok, failed = admin.retry_many(ids)
    else:
        ok = []
        for i in ids:
            try:
                admin.cancel(i)
                ok.append(i)
            except psycopg.DatabaseError as exc:
                failed.append((i, exc.diag.message_primary or str(exc).strip()))
    past = {"cancel": "cancelled", "retry": "pending again", "discard": "discarded"}[args.command]
    if args.json:
        print(dump({past.split()[0]: ok, "failed": [{"id": i, "error": e} for i, e in failed]}))
    else:
        for i in ok:
            print(f"job {i} {past}")
        for _, e in failed:
            print(f"error: {e}", file=sys.stderr)
    return 1 if failed else 0


HEALTH_EXIT = {"healthy": 0, "degraded": 3, "unhealthy": 4}


def cmd_view(args: argparse.Namespace, admin: Admin) -> int:
    """workers, health, schedules, queues, breakers, owners: a table, or --json."""
    if args.command == "health":
        h = admin.health(args.max_wait, args.max_failure_rate, args.worker_timeout)
        if args.json:
            print(dump(h))
        else:
            print(f"{h['status']}  (workers live {h['workers']['live']} of "
                  f"{h['workers']['known']})")
            for r in h["reasons"]:
                print(f"  - {r}")
        return HEALTH_EXIT.get(h["status"], 4)
    if args.command == "workers":
        rows = admin.workers()
        for r in rows:
            meta = r.get("metadata") or {}
            r["concurrency"] = meta.get("concurrency")
            r["state"] = ("gone" if not r["alive"] else
                          "throttled" if meta.get("throttled") else "ok")
        cols = [("worker_id", "worker"), ("host", "host"), ("pid", "pid"),
                ("concurrency", "concurrency"), ("jobs_in_flight", "in flight"),
                ("last_heartbeat", "last heartbeat"), ("state", "state")]
    elif args.command == "schedules":
        rows = admin.schedules()
        cols = [("name", "name"), ("kind", "kind"), ("schedule", "schedule"),
                ("job_type", "job type"), ("active", "active"),
                ("last_run_started_at", "last run"), ("last_run_status", "status"),
                ("last_run_message", "message")]
    elif args.command == "queues":
        rows = admin.queue_policies()
        for r in rows:
            r["rate"] = f"{r['rate_limit']}/{fmt(r['rate_interval'])}" if r["rate_limit"] else None
            r["backoff"] = (f"{r['backoff_strategy']} {fmt(r['backoff_base'])}"
                            f"..{fmt(r['backoff_max'])}")
        cols = [("queue_name", "queue"), ("paused", "paused"), ("concurrency", "concurrency"),
                ("rate", "rate limit"), ("max_attempts", "attempts"), ("backoff", "backoff"),
                ("lease_seconds", "lease s"), ("retention", "retention")]
    elif args.command == "owners":
        rows = admin.owner_stats(args.queue_name, args.limit)
        cols = [("queue_name", "queue"), ("owner_id", "owner"), ("tier", "tier"),
                ("waiting", "waiting"), ("scheduled", "scheduled"), ("running", "running"),
                ("retrying", "retrying"), ("oldest_waiting_age", "oldest waiting")]
    else:
        rows = admin.circuit_breakers()
        cols = [("service", "service"), ("state", "state"), ("failures", "failures"),
                ("failure_threshold", "threshold"), ("retry_at", "retry at"),
                ("last_error", "last error")]
    print(dump(rows) if args.json else table(rows, cols))
    return 0


def cmd_metrics(args: argparse.Namespace, admin: Admin) -> int:
    metrics.serve_queue_depth(admin.queue_stats, args.port, args.host)
    log.info("queue-depth metrics on http://%s:%d/metrics", args.host, args.port)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_dashboard(args: argparse.Namespace, s: Settings) -> int:
    # loaded by name: the engine never imports the console (import-linter contract), and a
    # plain install without the extra says what to install instead of a traceback
    import importlib

    try:
        console = importlib.import_module("python_worker.dashboard.app")
    except ModuleNotFoundError as exc:
        print(f"kyu: the console needs the dashboard extra ({exc.name} is missing):"
              " pip install 'kyu[dashboard]'", file=sys.stderr)
        return 2
    return int(console.serve(s.database_url, host=args.host, port=args.port,
                             read_only=args.read_only, hide_payloads=args.hide_payloads))
