"""The console's pages (GET): each reads ``queue.*`` through ``ConsoleQueries`` and renders a
template. Pages with a live region answer ``?fragment=1`` with that region only; the
script in static/console.js fetches it every ``refresh_seconds`` and swaps it in."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import metrics
from .charts import overview_charts
from .queries import JobFilter, message
from .web import render

STATUSES = ["pending", "running", "retrying", "completed", "cancelled", "dead"]
WINDOWS = {"1h": "1 hour", "6h": "6 hours", "24h": "24 hours", "7d": "7 days"}
PAGE_SIZE = 50


class BadFilter(ValueError):
    """A filter the page cannot use; the message names the value."""


def _when(text: str, name: str) -> datetime:
    """A browser's datetime-local (read as UTC), an ISO time, or an age: 30m, 2h, 7d."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: float(m.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(f"{name} must be a time (2026-12-01T10:00, UTC) or an age (30m, 2h, 7d),"
                        f" got {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def parse_filter(params: dict[str, str], hide_payloads: bool) -> JobFilter:
    p = {k: v.strip() for k, v in params.items() if v and v.strip()}
    status = p.get("status")
    if status and status not in STATUSES:
        raise BadFilter(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    owner = p.get("owner")
    if owner:
        try:
            owner = str(uuid.UUID(owner))
        except ValueError:
            raise BadFilter(f"owner must be a UUID, got {owner!r}") from None
    payload = None
    if p.get("payload"):
        if hide_payloads:
            raise BadFilter("payloads are hidden in this console, so it cannot filter by them")
        try:
            payload = json.loads(p["payload"])
        except json.JSONDecodeError as exc:
            raise BadFilter(f"payload must be a JSON object, got {p['payload']!r} ({exc.msg})"
                            ) from None
        if not isinstance(payload, dict):
            raise BadFilter(f"payload must be a JSON object, got {p['payload']!r}")
    return JobFilter(
        status=status,
        job_type=p.get("type"),
        queue_name=p.get("queue"),
        owner_id=owner,
        created_after=_when(p["after"], "after") if p.get("after") else None,
        created_before=_when(p["before"], "before") if p.get("before") else None,
        payload_contains=payload,
    )


def _before_id(request: Request) -> int | None:
    raw = request.query_params.get("before_id", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise BadFilter(f"before_id must be a job id, got {raw!r}")
    return int(raw)


async def overview(request: Request) -> Response:
    db = request.app.state.db
    window = request.query_params.get("window", "1h")
    if window not in WINDOWS:
        window = "1h"
    stats = await db.queue_stats()
    health = await db.health()
    history = await db.stats_history(WINDOWS[window])
    charts = overview_charts(history, [s["queue_name"] for s in stats])
    totals = {k: sum(s[k] for s in stats) for k in ("waiting", "running", "retrying", "dead")}
    ctx = {"stats": stats, "health": health, "charts": charts, "window": window,
           "windows": list(WINDOWS), "totals": totals, "snapshots": len(history)}
    return render(request, "overview.html", ctx, live="_overview_live.html")


async def jobs(request: Request) -> Response:
    db = request.app.state.db
    settings = request.app.state.settings
    params = dict(request.query_params)
    rows: list[dict[str, Any]] = []
    error = None
    try:
        f = parse_filter(params, settings.hide_payloads)
        rows = await db.search_jobs(f, _before_id(request), PAGE_SIZE)
    except BadFilter as exc:
        error = str(exc)
    except psycopg.DataError as exc:
        error = message(exc)
    queues = [q["queue_name"] for q in await db.queue_policies()]
    keep = {k: v for k, v in params.items() if k != "before_id" and v}
    ctx = {"rows": rows, "error": error, "params": params, "statuses": STATUSES,
           "queues": queues, "keep": keep,
           "next_before": rows[-1]["id"] if len(rows) == PAGE_SIZE else None}
    return render(request, "jobs.html", ctx, status=400 if error else 200)


def progress_bar(progress: Any) -> tuple[float, str] | None:
    """(fraction, label) when progress says how far along it is: percent, or done/total."""
    if not isinstance(progress, dict):
        return None
    try:
        if "percent" in progress:
            frac = float(progress["percent"]) / 100
        elif "total" in progress and float(progress["total"]) > 0:
            done = next(progress[k] for k in ("done", "current", "completed", "step")
                         if k in progress)
            frac = float(done) / float(progress["total"])
        else:
            return None
    except (StopIteration, TypeError, ValueError):
        return None
    frac = min(max(frac, 0.0), 1.0)
    return frac, f"{frac * 100:.0f}%"


def timeline(job: dict[str, Any]) -> list[tuple[datetime, str, str]]:
    """(when, what, css class) in time order: created, due, first start, each failure, end."""
    events: list[tuple[datetime, str, str]] = []
    if job.get("created_at"):
        events.append((job["created_at"], "enqueued", "info"))
    if job.get("run_at") and job["run_at"] != job.get("created_at") and job.get("attempt", 0) == 0:
        events.append((job["run_at"], "due", "info"))
    if job.get("started_at"):
        events.append((job["started_at"], "first started", "info"))
    for e in job.get("errors") or []:
        try:
            at = datetime.fromisoformat(str(e.get("at")))
        except ValueError:
            continue
        first = str(e.get("error", "")).split("\n", 1)[0][:120]
        events.append((at, f"attempt {e.get('attempt')} failed on {e.get('worker_id')}: {first}",
                       "bad"))
    if job.get("status") == "running" and job.get("lease_expires_at"):
        events.append((job["lease_expires_at"], f"lease of {job.get('worker_id')} runs out",
                       "info"))
    if job.get("status") == "retrying" and job.get("run_at"):
        events.append((job["run_at"], "retries", "info"))
    if job.get("finished_at"):
        cls = {"completed": "good", "dead": "bad"}.get(str(job["status"]), "info")
        events.append((job["finished_at"], str(job["status"]), cls))
    return sorted(events, key=lambda e: e[0])


async def job(request: Request) -> Response:
    db = request.app.state.db
    job_id = request.path_params["job_id"]
    try:
        row = await db.get_job(job_id)
    except psycopg.errors.NoDataFound as exc:
        return render(request, "error.html", {"title": "No such job", "error": message(exc)},
                      status=404)
    ctx = {"job": row, "progress_bar": progress_bar(row.get("progress")),
           "timeline": timeline(row),
           "payload_json": json.dumps(row["payload"], indent=2, ensure_ascii=False),
           "result_json": None if row["result"] is None else json.dumps(
               row["result"], indent=2, ensure_ascii=False),
           "progress_json": None if row["progress"] is None else json.dumps(
               row["progress"], indent=2, ensure_ascii=False)}
    return render(request, "job.html", ctx)


async def dead_letter(request: Request) -> Response:
    db = request.app.state.db
    params = dict(request.query_params)
    error = None
    rows: list[dict[str, Any]] = []
    try:
        f = JobFilter(status="dead", job_type=params.get("type") or None,
                      queue_name=params.get("queue") or None)
        rows = await db.search_jobs(f, _before_id(request), PAGE_SIZE)
    except BadFilter as exc:
        error = str(exc)
    stats = await db.queue_stats()
    ctx = {"rows": rows, "error": error, "params": params,
           "queues": [s["queue_name"] for s in stats], "total": sum(s["dead"] for s in stats),
           "keep": {k: v for k, v in params.items() if k in ("type", "queue") and v},
           "next_before": rows[-1]["id"] if len(rows) == PAGE_SIZE else None}
    return render(request, "dead.html", ctx, status=400 if error else 200)


async def queues(request: Request) -> Response:
    db = request.app.state.db
    stats = {s["queue_name"]: s for s in await db.queue_stats()}
    policies = await db.queue_policies()
    return render(request, "queues.html", {"policies": policies, "stats": stats},
                  live="_queues_live.html")


async def workers(request: Request) -> Response:
    rows = await request.app.state.db.workers()
    for r in rows:
        meta = r.get("metadata") or {}
        r["concurrency"] = meta.get("concurrency")
        r["throttled"] = bool(meta.get("throttled"))
        r["queues"] = ", ".join(meta.get("queues") or []) or "all"
        r["degraded"] = (not r["alive"]) or r["throttled"]
    return render(request, "workers.html", {"rows": rows}, live="_workers_live.html")


async def schedules(request: Request) -> Response:
    rows = await request.app.state.db.schedules()
    health = await request.app.state.db.health()
    return render(request, "schedules.html", {"rows": rows, "housekeeping":
                                              health.get("housekeeping", {})})


async def breakers(request: Request) -> Response:
    rows = await request.app.state.db.circuit_breakers()
    return render(request, "breakers.html", {"rows": rows})


async def health_json(request: Request) -> Response:
    h = await request.app.state.db.health()
    return JSONResponse(h, status_code=503 if h.get("status") == "unhealthy" else 200)


async def metrics_text(request: Request) -> Response:
    rows = await request.app.state.db.queue_stats()
    return Response(metrics.render_queue_depth(rows),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
