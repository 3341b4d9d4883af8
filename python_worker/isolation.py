"""Sync handlers in handler processes (``--isolation process``), one job at a time each.

A handler past its timeout is killed (SIGKILL) and its process replaced; a process whose RSS
is over ``--child-max-rss-mb`` after a job is replaced before the next; a process that dies
(``os._exit``, ``sys.exit``, a segfault, the OOM killer) fails only the attempt it ran, at once,
with its exit status as the error. Every other job goes on in the other processes.

The worker's threads drive the processes: a thread takes an idle process, sends it the job over
a pipe and waits for the outcome (or the process's death, or the deadline). Processes start with
"spawn" (a fresh interpreter that imports the handler modules), on first use.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import psutil

from . import execution
from .context import JobContext
from .db import ChildTransactions
from .outcomes import Failed, Outcome
from .registry import import_handlers, registry

log = logging.getLogger("python_worker.isolation")

_spawn = multiprocessing.get_context("spawn")


class ChildJob(NamedTuple):
    """What a handler process needs to run one attempt (the ``JobContext`` fields)."""

    id: int
    job_type: str
    queue_name: str
    attempt: int
    max_attempts: int
    worker_id: str
    lease_seconds: int
    payload: Any
    lease_token: str  # the claim's secret: ctx.connection completes the job with it


def exit_error(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"handler process killed by {name}"
    return f"handler process exited with status {code}"


def _child_main(
    conn: Connection, modules: list[str], url: str, prepare: int | None, slots: Any
) -> None:
    """A handler process: runs the jobs it is sent, one at a time, until its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when to stop
    import_handlers(modules)
    tx = ChildTransactions(url, prepare, slots)
    me = psutil.Process()
    while True:
        try:
            job: ChildJob = conn.recv()
        except (EOFError, OSError):
            return
        h = registry.get(job.job_type)
        if h is None:
            outcome: Outcome = Failed(f"no handler for job type {job.job_type} in the handler"
                                      f" process (modules {', '.join(modules)})")
        else:
            ctx = None
            if h.wants_ctx or h.transaction:
                ctx = JobContext(
                    id=job.id, job_type=job.job_type, queue_name=job.queue_name,
                    attempt=job.attempt, max_attempts=job.max_attempts, worker_id=job.worker_id,
                    lease_seconds=job.lease_seconds, lease_token=job.lease_token,
                    _progress=lambda _id, _token, p: conn.send(("progress", p)),
                    _connect=lambda c: setattr(c, "_conn", tx.begin(timeout=60.0)),
                )
            outcome = execution.run_sync(h, job.payload, ctx, tx)
        conn.send(("done", outcome, me.memory_info().rss / 2**20))


class HandlerProcess:
    """One handler process, started on first use and replaced when it dies or is killed."""

    def __init__(self, pool: HandlerProcesses) -> None:
        self.pool = pool
        self.proc: Any = None
        self.conn: Connection | None = None

    def _start(self) -> None:
        parent, child = _spawn.Pipe()
        p = self.pool
        self.proc = _spawn.Process(
            target=_child_main, args=(child, p.modules, p.url, p.prepare, p.slots),
            name="kyu-handler", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.conn is not None:
            self.conn.close()
        if kill:
            self.proc.kill()
        self.proc.join(5.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5.0)
        self.proc = self.conn = None

    def run(self, job: ChildJob, timeout: float, progress: Callable[[Any], None]) -> Outcome:
        if self.proc is None or not self.proc.is_alive():
            self.stop()
            self._start()
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        try:
            self.conn.send(job)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop(kill=True)
                    return Failed(f"timed out after {timeout:g}s (handler process killed)")
                if not self.conn.poll(min(left, 1.0)):
                    continue
                message = self.conn.recv()
                if message[0] == "progress":
                    progress(message[1])
                    continue
                _, outcome, rss_mb = message
                cap = self.pool.max_rss_mb
                if cap is not None and rss_mb > cap:
                    log.warning("handler process %d at %.0f MB RSS after job %d (cap %g MB):"
                                " replacing it", self.proc.pid, rss_mb, job.id, cap)
                    self.stop()
                return outcome  # type: ignore[no-any-return]
        except (EOFError, OSError, BrokenPipeError):
            self.proc.join(5.0)
            error = exit_error(self.proc.exitcode)
            log.error("job %d %s: %s; starting another", job.id, job.job_type, error)
            self.stop()
            return Failed(error)


class HandlerProcesses:
    """``size`` handler processes; the calling threads (never more than ``size``) share them."""

    def __init__(
        self, size: int, modules: list[str], url: str, prepare: int | None, connections: int,
        max_rss_mb: float | None,
    ) -> None:
        self.modules = modules
        self.url = url
        self.prepare = prepare
        self.max_rss_mb = max_rss_mb
        self.connections = connections
        # the handlers' share of the connection budget, across all the processes
        self.slots = _spawn.BoundedSemaphore(max(1, connections))
        self.idle: queue.SimpleQueue[HandlerProcess] = queue.SimpleQueue()
        self.all = [HandlerProcess(self) for _ in range(size)]
        for p in self.all:
            self.idle.put(p)

    def run(self, job: ChildJob, timeout: float, progress: Callable[[Any], None]) -> Outcome:
        """Runs ``job`` in an idle handler process (blocking: call from a worker thread)."""
        proc = self.idle.get()
        try:
            return proc.run(job, timeout, progress)
        finally:
            self.idle.put(proc)

    def open_connections(self) -> int:
        try:
            return self.connections - self.slots.get_value()
        except NotImplementedError:  # macOS has no sem_getvalue
            return 0

    def close(self) -> None:
        for p in self.all:
            p.stop(kill=True)


def handler_modules(funcs: list[Callable[..., Any]]) -> list[str]:
    """The modules a handler process imports to find these handlers."""
    return sorted({f.__module__ for f in funcs})
