"""Prometheus metrics (``--metrics-port``) and the structured log set-up (``--log-json``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STARTED = Counter("kyu_jobs_started_total", "Attempts started, by job type.", ["job_type"])
COMPLETED = Counter("kyu_jobs_completed_total", "Attempts completed, by job type.", ["job_type"])
FAILED = Counter(
    "kyu_jobs_failed_total", "Attempts failed (retryable or not), by job type.", ["job_type"]
)
DEAD = Counter("kyu_jobs_dead_total", "Jobs sent to the dead letter, by job type.", ["job_type"])
RUN_TIME = Histogram(
    "kyu_job_run_seconds",
    "Handler run time, by job type.",
    ["job_type"],
    buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 300, 1800),
)
CLAIM_LATENCY = Histogram(
    "kyu_claim_seconds",
    "Round trip of one queue.claim_jobs call.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5),
)
IN_FLIGHT = Gauge("kyu_jobs_in_flight", "Jobs running in this worker.")
CONCURRENCY = Gauge("kyu_concurrency_limit", "Current concurrency limit (grows with backlog).")
THROTTLED = Gauge("kyu_throttled", "1 while claiming is paused by a resource limit.")
THROTTLE_REASON = Gauge(
    "kyu_throttle_active", "1 while this resource limit pauses claiming.", ["resource"]
)
DB_UP = Gauge("kyu_database_up", "1 while the worker reaches the database.")
THREADS_STUCK = Gauge(
    "kyu_threads_stuck", "Handler threads still running past their attempt's timeout."
)
DEGRADED = Gauge("kyu_degraded", "1 while stuck threads leave none free for sync jobs.")


class TypeMetrics:
    """The per-type children, resolved once per job type (label lookup is the slow part)."""

    __slots__ = ("started", "completed", "failed", "dead", "run_time")

    def __init__(self, job_type: str) -> None:
        self.started = STARTED.labels(job_type)
        self.completed = COMPLETED.labels(job_type)
        self.failed = FAILED.labels(job_type)
        self.dead = DEAD.labels(job_type)
        self.run_time = RUN_TIME.labels(job_type)


_by_type: dict[str, TypeMetrics] = {}


def for_type(job_type: str) -> TypeMetrics:
    m = _by_type.get(job_type)
    if m is None:
        m = _by_type[job_type] = TypeMetrics(job_type)
    return m


def serve(port: int, addr: str = "0.0.0.0") -> None:
    start_http_server(port, addr=addr)


# ---- queue depth: the whole queue as one scrape target, read from queue.queue_stats ----

DEPTH_STATES = ("waiting", "scheduled", "running", "retrying", "dead")


def queue_depth_families(rows: Sequence[dict[str, Any]]) -> list[GaugeMetricFamily]:
    """Gauges from queue_stats rows: jobs per queue and state, oldest wait, paused."""
    jobs = GaugeMetricFamily("kyu_queue_jobs", "Jobs per queue and state (queue.queue_stats).",
                             labels=["queue", "state"])
    oldest = GaugeMetricFamily(
        "kyu_queue_oldest_wait_seconds",
        "Age of the oldest due job waiting in the queue (0 when none waits).", labels=["queue"])
    paused = GaugeMetricFamily("kyu_queue_paused", "1 while the queue is paused.",
                               labels=["queue"])
    for r in rows:
        q = r["queue_name"]
        for state in DEPTH_STATES:
            jobs.add_metric([q, state], float(r.get(state) or 0))
        age = r.get("oldest_waiting_age")
        oldest.add_metric([q], age.total_seconds() if age is not None else 0.0)
        paused.add_metric([q], 1.0 if r.get("paused") else 0.0)
    return [jobs, oldest, paused]


class QueueDepthCollector(Collector):
    """Reads queue_stats at each scrape through ``fetch``; a failed read is
    ``kyu_queue_scrape_ok 0`` (and the error logged) instead of a failed scrape."""

    def __init__(self, fetch: Callable[[], Sequence[dict[str, Any]]]) -> None:
        self.fetch = fetch

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok = GaugeMetricFamily("kyu_queue_scrape_ok", "1 when queue.queue_stats was read.")
        try:
            rows = self.fetch()
        except Exception as exc:  # noqa: BLE001 - a scrape reports, never raises
            logging.getLogger("python_worker.metrics").warning("queue_stats failed: %s", exc)
            ok.add_metric([], 0.0)
            yield ok
            return
        ok.add_metric([], 1.0)
        yield ok
        yield from queue_depth_families(rows)


def serve_queue_depth(fetch: Callable[[], Sequence[dict[str, Any]]], port: int,
                      addr: str = "0.0.0.0") -> None:
    """Registers the queue-depth gauges with the default registry and serves it."""
    REGISTRY.register(QueueDepthCollector(fetch))
    start_http_server(port, addr=addr)


def render_queue_depth(rows: Sequence[dict[str, Any]]) -> bytes:
    """The exposition text of the queue-depth gauges for rows already read (the console)."""
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(lambda: rows))
    return generate_latest(registry)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and any ``extra={...}`` fields."""

    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in self._skip:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("psycopg.pool").setLevel(max(logging.WARNING, root.level))
