"""Command line: ``python -m python_worker run|process|status|dead-letter|enqueue|list|show|...``.

Human-readable tables by default, ``--json`` for machines. Settings come from the environment
(``DATABASE_URL``, ``KYU_*``) with flags on top.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from datetime import datetime, timedelta

import psycopg
from pydantic import ValidationError

from . import metrics
from .config import Settings, load_settings
from .db import Admin
from .registry import import_handlers
from .verbs import (
    add_verb_parsers,
    cmd_dashboard,
    cmd_list,
    cmd_metrics,
    cmd_show,
    cmd_verb,
    cmd_view,
    dump,
    table,
)

log = logging.getLogger("python_worker.cli")

STATUS_COLUMNS = [
    ("queue_name", "queue"),
    ("waiting", "waiting"),
    ("scheduled", "scheduled"),
    ("running", "running"),
    ("retrying", "retrying"),
    ("dead", "dead"),
    ("completed_last_hour", "done 1h"),
    ("failed_last_hour", "failed 1h"),
    ("oldest_waiting_age", "oldest waiting"),
    ("failure_rate", "failure rate"),
    ("jobs_per_minute", "jobs/min"),
]


def _worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--handlers", action="append", metavar="MODULE",
                   help="module that registers handlers (repeatable; env KYU_HANDLERS)")
    p.add_argument("--queues", action="append", metavar="NAMES",
                   help="queues to serve (comma list)")
    p.add_argument("--job-types", action="append", metavar="TYPES", help="only these job types")
    p.add_argument("--concurrency",
                   help="jobs at once, N or MIN-MAX (grows with backlog; default 500-2000)")
    p.add_argument("--threads", type=int, help="sync handlers at once (default 16)")
    p.add_argument("--batch-size", type=int, help="jobs per claim (1-1000, default 1000)")
    p.add_argument("--max-connections", type=int,
                   help="connections this worker may open, handlers' included (default 10)")
    p.add_argument("--pool-mode", choices=["auto", "transaction", "session", "direct"],
                   help="how DATABASE_URL reaches Postgres (default auto)")
    p.add_argument("--listen-url", help="direct or session-mode URL for LISTEN")
    p.add_argument("--isolation", choices=["thread", "process"],
                   help="run sync handlers in threads (default) or in handler processes")
    p.add_argument("--child-max-rss-mb", type=float,
                   help="replace a handler process whose RSS is above this after a job")
    p.add_argument("--processes", type=int, default=None,
                   help="run: supervise N worker processes, restarting any that dies")
    p.add_argument("--exit-when-stuck", action="store_true", default=None,
                   help="exit with status 3 once degraded (every handler thread stuck past its"
                   " timeout, or RSS over --max-rss-mb)")
    p.add_argument("--poll-interval", type=float, help="seconds between polls without NOTIFY")
    p.add_argument("--lease-seconds", type=int, help="lease per claim (default: type/queue)")
    p.add_argument("--heartbeat-interval", type=float, help="seconds between worker heartbeats")
    p.add_argument("--shutdown-grace", type=float, help="seconds running jobs get on SIGTERM")
    p.add_argument("--max-rss-mb", type=float, help="stop claiming above this process RSS")
    p.add_argument("--max-load", type=float, help="stop claiming above this 1-minute load")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--worker-id", help="name of this worker (default host:pid:random)")
    p.add_argument("--log-json", action="store_true", default=argparse.SUPPRESS,
                   help="JSON log lines")
    p.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the counts as JSON at exit (process)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m python_worker", description=__doc__.split("\n")[0])
    p.add_argument("--database-url", help="default: $DATABASE_URL")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    p.add_argument("--log-level", help="DEBUG, INFO (default), WARNING")
    sub = p.add_subparsers(dest="command", required=True)
    _worker_args(sub.add_parser("run", help="run a worker until SIGTERM/SIGINT"))
    _worker_args(sub.add_parser("process", help="drain the jobs due now and exit"))
    st = sub.add_parser("status", help="a table per queue")
    st.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                    help="redraw every SECONDS (default 2) until Ctrl-C; --json: one line each")
    st.add_argument("--count", type=int, metavar="N", help="with --watch: stop after N draws")
    dl = sub.add_parser("dead-letter", help="list dead jobs, or replay them")
    dl.add_argument("--retry", type=int, metavar="ID", help="replay one dead job")
    dl.add_argument("--all", action="store_true", help="replay every dead job")
    dl.add_argument("--limit", type=int, default=50)
    enq = sub.add_parser("enqueue", help="enqueue one job")
    enq.add_argument("job_type")
    enq.add_argument("payload", nargs="?", default="{}", help="JSON object")
    enq.add_argument("--queue")
    enq.add_argument("--priority", type=int)
    enq.add_argument("--run-at", help="ISO timestamp, or +SECONDS from now")
    enq.add_argument("--unique-key")
    enq.add_argument("--max-attempts", type=int)
    verbs = add_verb_parsers(sub)
    for sp in (st, dl, enq, *verbs):  # --json also after the command
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    keys = [
        "handlers", "queues", "job_types", "concurrency", "threads", "batch_size",
        "max_connections", "pool_mode", "listen_url", "exit_when_stuck", "isolation",
        "child_max_rss_mb", "poll_interval",
        "lease_seconds", "heartbeat_interval", "shutdown_grace", "max_rss_mb", "max_load",
        "metrics_port", "worker_id", "database_url", "log_json", "log_level",
    ]
    return load_settings(**{k: getattr(args, k, None) for k in keys})


def cmd_work(args: argparse.Namespace, s: Settings, drain: bool, argv: list[str]) -> int:
    from .registry import registry
    from .worker import Worker

    if args.processes is not None:
        if drain or args.processes < 1:
            print(f"kyu: --processes {args.processes}: only `run` takes it, with N >= 1",
                  file=sys.stderr)
            return 2
        from .supervisor import Supervisor, default_base_id

        base = getattr(args, "worker_id", None) or default_base_id()
        return Supervisor(argv, args.processes, base, Admin(s.database_url)).run()
    sys.path.insert(0, os.getcwd())
    try:
        import_handlers(s.handlers)
    except ValueError as exc:
        print(f"kyu: {exc}", file=sys.stderr)
        return 2
    if s.metrics_port:
        metrics.serve(s.metrics_port)
        log.info("metrics on :%d/metrics", s.metrics_port)
    worker = Worker(s, registry, drain=drain)
    try:
        code = asyncio.run(worker.run(install_signals=True))
    except ValueError as exc:  # settings that only make sense once the handlers are known
        print(f"kyu: {exc}", file=sys.stderr)
        return 2
    if drain and args.json:
        print(dump(worker.counts))
    # handler threads that outlived the grace period (or a timeout) must not hold the exit
    joiner = threading.Thread(target=worker.executor.shutdown, kwargs={"wait": True}, daemon=True)
    joiner.start()
    joiner.join(1.0)
    if joiner.is_alive():
        log.warning("handler threads still running after shutdown; exiting anyway")
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def cmd_status(args: argparse.Namespace, admin: Admin) -> int:
    if args.watch is None:
        rows = admin.queue_stats()
        print(dump(rows) if args.json else table(rows, STATUS_COLUMNS))
        return 0
    if args.watch <= 0:
        print(f"--watch needs a positive number of seconds, got {args.watch}", file=sys.stderr)
        return 2
    draws = 0
    try:
        while True:
            rows = admin.queue_stats()
            health = admin.health()
            if args.json:  # one line per draw, for a pipe
                print(json.dumps({"at": datetime.now().astimezone().isoformat(),
                                  "queues": json.loads(dump(rows)), "health": health}),
                      flush=True)
            else:
                reasons = "".join(f"\n  - {r}" for r in health["reasons"])
                # clear the screen and draw from the top left (any ANSI terminal)
                sys.stdout.write("\x1b[H\x1b[2J")
                print(f"kyu  {datetime.now():%Y-%m-%d %H:%M:%S}  health: {health['status']}"
                      f"  workers live: {health['workers']['live']}{reasons}\n")
                print(table(rows, STATUS_COLUMNS))
                print(f"\nevery {args.watch:g}s; Ctrl-C to stop", flush=True)
            draws += 1
            if args.count is not None and draws >= args.count:
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0


def cmd_dead_letter(args: argparse.Namespace, admin: Admin) -> int:
    if args.retry is not None:
        job_id = admin.retry(args.retry)
        print(dump({"retried": [job_id]}) if args.json else f"job {job_id} is pending again")
        return 0
    if args.all:
        retried, failed = admin.retry_all()
        if args.json:
            print(dump({"retried": retried, "failed": [{"id": i, "error": e} for i, e in failed]}))
        else:
            print(f"{len(retried)} dead jobs pending again")
            for i, e in failed:
                print(f"job {i} not retried: {e}")
        return 1 if failed else 0
    rows = admin.dead_letter(args.limit)
    if args.json:
        print(dump(rows))
        return 0
    for r in rows:
        r["error"] = (r.get("last_error") or "").split("\n", 1)[0][:100]
    print(table(rows, [("id", "id"), ("job_type", "type"), ("queue_name", "queue"),
                       ("attempt", "attempts"), ("died_at", "died at"), ("error", "last error")]))
    return 0


def cmd_enqueue(args: argparse.Namespace, admin: Admin) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        print(f"payload is not JSON: {exc}", file=sys.stderr)
        return 2
    run_at = None
    if args.run_at:
        if args.run_at.startswith("+"):
            run_at = datetime.now().astimezone() + timedelta(seconds=float(args.run_at[1:]))
        else:
            run_at = datetime.fromisoformat(args.run_at)
            if run_at.tzinfo is None:
                run_at = run_at.astimezone()
    job_id = admin.enqueue(args.job_type, payload, queue=args.queue, priority=args.priority,
                           run_at=run_at, unique_key=args.unique_key,
                           max_attempts=args.max_attempts)
    print(dump({"id": job_id}) if args.json else job_id)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        s = _settings(args)
    except ValidationError as exc:
        print(f"bad settings: {exc}", file=sys.stderr)
        return 2
    metrics.setup_logging(s.log_level, s.log_json)
    try:
        if args.command in ("run", "process"):
            return cmd_work(args, s, drain=args.command == "process", argv=argv)
        admin = Admin(s.database_url)
        if args.command == "status":
            return cmd_status(args, admin)
        if args.command == "dead-letter":
            return cmd_dead_letter(args, admin)
        if args.command == "enqueue":
            return cmd_enqueue(args, admin)
        if args.command == "list":
            return cmd_list(args, admin)
        if args.command == "show":
            return cmd_show(args, admin)
        if args.command in ("pause", "resume", "cancel", "retry", "discard"):
            return cmd_verb(args, admin)
        if args.command in ("workers", "health", "schedules", "queues", "breakers", "owners"):
            return cmd_view(args, admin)
        if args.command == "metrics":
            return cmd_metrics(args, admin)
        if args.command == "dashboard":
            return cmd_dashboard(args, s)
    except psycopg.Error as exc:
        diag = exc.diag
        message = diag.message_primary or str(exc).strip()
        hint = f"\nhint: {diag.message_hint}" if diag.message_hint else ""
        print(f"error: {message}{hint}", file=sys.stderr)
        return 1
    return 2
