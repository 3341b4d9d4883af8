"""The worker loop: claim up to free capacity, run handlers, acknowledge in batches, survive.

One asyncio loop drives everything. Async handlers run as tasks on it, sync handlers in a
thread pool. Tasks beside the claim loop: the LISTEN loop (wakes the claim loop), the acker
(``complete_jobs`` / ``fail_job`` in one pipelined round trip for whatever finished meanwhile),
heartbeats (leases of long jobs, worker session), the timeout watchdog, the resource monitor.
Every queue decision stays in SQL; the worker never retries or dead-letters on its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import execution, metrics
from .acks import Acknowledger
from .backoff import Backoff
from .config import Settings
from .context import JobContext
from .db import CONNECTION_ERRORS, ClaimedJob, Database, Listener, SyncTransactions
from .outcomes import Completed, CompletedInTransaction, Failed, Outcome
from .registry import Handler, Registry
from .registry import registry as default_registry
from .running import Running
from .upkeep import heartbeat_loop, resource_loop

log = logging.getLogger("python_worker.worker")
joblog = logging.getLogger("python_worker.job")


class Worker:
    def __init__(
        self, settings: Settings, registry: Registry | None = None, *, drain: bool = False
    ) -> None:
        self.s = settings
        self.registry = registry if registry is not None else default_registry
        self.drain = drain
        self.worker_id = settings.worker_id
        self.lo, self.hi = settings.concurrency_range
        self.limit = self.lo
        self.streams = settings.claim_streams or (
            2 if self.hi >= 2 * settings.batch_size else 1)
        async_tx = any(h.is_async and h.transaction for h in self.registry.all())
        self.db = Database(
            settings.database_url,
            pool_size=settings.pool_size,
            prepare_threshold=settings.prepare_threshold,
            claim_streams=self.streams,
            async_claim_commit=settings.async_claim_commit,
            transaction_pool_size=min(self.hi, 50) if async_tx else 0,
        )
        self.sync_tx = SyncTransactions(settings.database_url, self.hi, settings.prepare_threshold)
        self.executor = ThreadPoolExecutor(self.hi + 4, thread_name_prefix="kyu-job")
        self.inflight: dict[int, Running] = {}
        self.reserved = 0  # jobs asked for by claims in flight
        self.stopping = False
        self.throttled = False
        self.exit_code = 0
        self.job_types = self._job_types()
        self.log_jobs = joblog.isEnabledFor(logging.INFO)
        self.counts = {"completed": 0, "failed": 0, "dead": 0}
        self._signals = 0

    def _job_types(self) -> list[str]:
        mine = self.registry.job_types()
        if self.s.job_types:
            wanted = set(self.s.job_types)
            missing = wanted - set(mine)
            if missing:
                log.warning("no handler for job types %s: not claiming them", sorted(missing))
            mine = [t for t in mine if t in wanted]
        return mine

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, install_signals: bool = False) -> int:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.wake = asyncio.Event()
        self.slot_free = asyncio.Event()
        self.acker = Acknowledger(self.db, self.worker_id, self.counts)
        self.stop_event = asyncio.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig)
        metrics.CONCURRENCY.set(self.limit)
        await self.db.open()
        if not self.job_types:
            log.warning("no handlers registered: this worker claims nothing")
        await self._register_types()
        log.info(
            "worker %s started: job types %s, queues %s, concurrency %d-%d, batch %d%s",
            self.worker_id, self.job_types or "-", self.s.queues or "all", self.lo, self.hi,
            self.s.batch_size, " (drain and exit)" if self.drain else "",
        )
        tasks = [
            loop.create_task(self.acker.run(), name="acker"),
            loop.create_task(
                heartbeat_loop(self.db, self.worker_id, self.s.heartbeat_interval,
                               self.inflight.values, self._session),
                name="heartbeat",
            ),
            loop.create_task(self._watchdog(), name="watchdog"),
            loop.create_task(
                resource_loop(self.s.max_rss_mb, self.s.max_load, self._set_throttled),
                name="resources",
            ),
        ]
        if not self.drain:
            tasks.append(loop.create_task(self._listen(), name="listen"))
        # two claim streams when capacity allows: one claims while the other's batch starts
        claimers = [loop.create_task(self._claim_loop(), name=f"claim{i}")
                    for i in range(self.streams)]
        await self.stop_event.wait()
        await self._shutdown(claimers, tasks)
        return self.exit_code

    def request_stop(self, sig: int | None = None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting at once; %d jobs stay leased", len(self.inflight))
            logging.shutdown()
            os._exit(1)
        if sig is not None:
            log.info("%s: stopping (grace %.0fs)", signal.Signals(sig).name, self.s.shutdown_grace)
        self.stopping = True
        self.stop_event.set()
        self.wake.set()
        self.slot_free.set()

    def _session(self) -> dict[str, Any]:
        """What the heartbeat stores in this worker's ``queue.worker_sessions`` row."""
        return {"job_types": self.job_types, "queues": self.s.queues,
                "concurrency": self.limit, "in_flight": len(self.inflight),
                "throttled": self.throttled}

    def _set_throttled(self, throttled: bool) -> None:
        """The resource monitor's verdict; lifting it wakes the claim loop at once."""
        self.throttled = throttled
        if not throttled:
            self.wake.set()

    async def _register_types(self) -> None:
        specs = [
            {
                "job_type": h.job_type, "queue": h.queue, "priority": h.priority,
                "max_attempts": h.max_attempts, "timeout": h.timeout,
                "description": h.description,
            }
            for h in self.registry.all()
            if h.job_type in self.job_types
        ]
        backoff = Backoff()
        while not self.stopping:
            try:
                added = await self.db.ensure_job_types(specs)
                if added:
                    log.info("registered job types in SQL: %s", ", ".join(added))
                return
            except CONNECTION_ERRORS as exc:
                log.warning("database unreachable (%s); retrying", exc)
                await asyncio.sleep(backoff.next())
            except Exception as exc:  # noqa: BLE001 - e.g. unknown queue: say so, keep running
                log.error("could not register job types: %s", exc)
                return

    async def _shutdown(
        self, claimers: list[asyncio.Task[None]], tasks: list[asyncio.Task[Any]]
    ) -> None:
        self.stopping = True
        # a claim under way finishes (its jobs are released below) rather than being cancelled
        # mid-call, which could leave jobs leased to nobody until their lease expires
        _, pending = await asyncio.wait(claimers, timeout=10.0)
        for c in pending:
            c.cancel()
        await asyncio.gather(*claimers, return_exceptions=True)
        deadline = time.monotonic() + self.s.shutdown_grace
        if self.inflight and not self.drain:
            log.info("waiting up to %.0fs for %d running jobs", self.s.shutdown_grace,
                     len(self.inflight))
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        leftover = [r for r in self.inflight.values() if not r.done]
        for r in leftover:
            r.done = True
            if isinstance(r.task, asyncio.Task):
                r.task.cancel()
        self.inflight.clear()
        await self.acker.flush_all(timeout=10.0)
        if leftover:
            ids = [r.id for r in leftover]
            backoff = Backoff(cap=1.0)
            until = time.monotonic() + 10.0
            while True:
                try:
                    n = await self.db.release(
                        self.worker_id, ids, [r.lease_token for r in leftover]
                    )
                    log.info("released %d unfinished jobs back to the queue: %s", n, ids[:20])
                    break
                except CONNECTION_ERRORS as exc:
                    if time.monotonic() > until:
                        log.error("could not release %s (%s): the lease reaper will", ids, exc)
                        break
                    await asyncio.sleep(backoff.next())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.listener_close()
        await self.db.close()
        self.sync_tx.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info(
            "worker %s stopped: %d completed, %d failed (%d dead)", self.worker_id,
            self.counts["completed"], self.counts["failed"], self.counts["dead"],
        )

    async def _release_quietly(self, jobs: list[ClaimedJob]) -> None:
        try:
            n = await self.db.release(
                self.worker_id, [j.id for j in jobs], [j.lease_token for j in jobs]
            )
            log.info("released %d jobs claimed while stopping", n)
        except Exception as exc:  # noqa: BLE001 - their leases expire and the reaper retries
            log.warning("could not release %d jobs claimed while stopping (%s)", len(jobs), exc)

    async def listener_close(self) -> None:
        listener = getattr(self, "listener", None)
        if listener is not None:
            await listener.close()

    # -- claiming --------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = Backoff()
        queues = self.s.queues or None
        batch = self.s.batch_size
        last_full = time.monotonic()
        while not self.stopping:
            if not self.job_types or self.throttled:
                self.wake.clear()
                await self._wait(self.wake, self.s.poll_interval if not self.throttled else 0.5)
                continue
            free = self.limit - len(self.inflight) - self.reserved
            if free <= 0 or free < min(batch, self.limit) // 4:
                # at capacity: wait for slots rather than claim a trickle
                self.slot_free.clear()
                await self._wait(self.slot_free, 0.002 if free > 0 else None)
                if self.limit - len(self.inflight) - self.reserved <= 0:
                    continue
                free = self.limit - len(self.inflight) - self.reserved
            want = min(free, batch)
            quiet = not self.inflight and self.acker.idle and not self.reserved
            self.wake.clear()
            t0 = time.perf_counter()
            self.reserved += want
            try:
                jobs = await self.db.claim(
                    self.worker_id, want, queues, self.job_types, self.s.lease_seconds
                )
            except CONNECTION_ERRORS as exc:
                self.reserved -= want
                metrics.DB_UP.set(0)
                delay = backoff.next()
                log.warning("claim failed (%s); retrying in %.1fs", str(exc).strip(), delay)
                await asyncio.sleep(delay)
                continue
            except BaseException as exc:
                self.reserved -= want
                if not isinstance(exc, Exception):
                    raise
                log.exception("claim failed")  # never crash the loop
                await asyncio.sleep(backoff.next())
                continue
            self.reserved -= want
            metrics.CLAIM_LATENCY.observe(time.perf_counter() - t0)
            if backoff.n:
                log.info("database reachable again")
                backoff.reset()
            metrics.DB_UP.set(1)
            if jobs and self.stopping:  # stopped while claiming: give these back at once
                await self._release_quietly(jobs)
                return
            if jobs:
                self._dispatch(jobs)
            now = time.monotonic()
            if len(jobs) == want:
                last_full = now
                if want == free and self.limit < self.hi:  # backlog beyond capacity: grow
                    self.limit = min(self.hi, max(self.limit + 1, self.limit * 3 // 2))
                    metrics.CONCURRENCY.set(self.limit)
                continue
            if self.limit > self.lo and now - last_full > 5.0:  # idle: shrink
                self.limit = max(self.lo, self.limit // 2)
                metrics.CONCURRENCY.set(self.limit)
                last_full = now
            if self.drain:
                if not jobs and quiet:
                    log.info("nothing due: drained")
                    self.stopping = True
                    self.stop_event.set()
                    return
                if not self.inflight:
                    await self.acker.flush_all()
                else:
                    self.slot_free.clear()
                    await self._wait(self.slot_free, 0.05)
                continue
            await self._wait(self.wake, self.s.poll_interval)

    async def _wait(self, event: asyncio.Event, timeout: float | None) -> None:
        if event.is_set():
            await asyncio.sleep(0)  # always yield: a set event must not starve the loop
            return
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    async def _listen(self) -> None:
        self.listener = Listener(self.s.database_url)
        backoff = Backoff()
        queues = set(self.s.queues)
        while not self.stopping:
            try:
                if self.listener.conn is None:
                    await self.listener.connect()
                    backoff.reset()
                    self.wake.set()  # catch up on anything enqueued while deaf
                async for queue_name in self.listener.notifications(timeout=5.0):
                    if not queues or queue_name in queues:
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling covers while we reconnect
                await self.listener.close()
                delay = backoff.next()
                log.warning("LISTEN connection lost (%s); polling, reconnect in %.1fs",
                            str(exc).strip(), delay)
                await asyncio.sleep(delay)

    # -- running ---------------------------------------------------------------------------

    def _dispatch(self, jobs: list[ClaimedJob]) -> None:
        now = time.monotonic()
        loop = self.loop
        started: dict[metrics.TypeMetrics, int] = {}
        for job in jobs:
            h = self.registry.get(job.job_type)
            r = Running(job, (h.timeout if h and h.timeout else job.lease_seconds) or 300, now)
            self.inflight[r.id] = r
            started[r.metrics] = started.get(r.metrics, 0) + 1
            if self.log_jobs:
                joblog.info(
                    "job %d %s attempt %d started", r.id, r.job_type, r.attempt,
                    extra={"event": "start", "job_id": r.id, "job_type": r.job_type,
                           "attempt": r.attempt},
                )
            if h is None:
                self._finished(r, Failed(f"no handler for job type {r.job_type} in worker "
                                         f"{self.worker_id}"))
                continue
            ctx = self._context(r, job, h) if h.wants_ctx or h.transaction else None
            if h.is_async:
                r.task = loop.create_task(self._run_async(r, h, job.payload, ctx))
            else:
                fut = loop.run_in_executor(
                    self.executor, execution.run_sync, h, job.payload, ctx, self.sync_tx
                )
                r.task = fut
                fut.add_done_callback(functools.partial(self._sync_done, r))
        for m, n in started.items():
            m.started.inc(n)
        metrics.IN_FLIGHT.set(len(self.inflight))

    def _context(self, r: Running, job: ClaimedJob, h: Handler) -> JobContext:
        return JobContext(
            id=r.id, job_type=r.job_type, queue_name=r.queue_name, attempt=r.attempt,
            max_attempts=job.max_attempts, worker_id=self.worker_id, lease_seconds=r.lease_seconds,
            lease_token=r.lease_token, parent_id=job.parent_id,
            _progress=self._progress_threadsafe,
            _connect=None if h.is_async else self._sync_connect,
        )

    def _sync_connect(self, ctx: JobContext) -> None:
        ctx._conn = self.sync_tx.begin()

    async def _run_async(self, r: Running, h: Handler, raw: Any, ctx: JobContext | None) -> None:
        if ctx is None and h.model is None:  # the common fast path: one coroutine frame less
            try:
                result = await h.func(raw)
                rj = None if result is None else execution.result_json(result)
                outcome: Outcome = Completed(rj)
            except asyncio.CancelledError:
                return
            except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome
                outcome = execution.classify(exc)
            self._finished(r, outcome)
            return
        try:
            outcome = await execution.run_async(h, raw, ctx, self.db)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - e.g. no connection for ctx.connection
            outcome = execution.handler_crashed(exc)
        self._finished(r, outcome)

    def _sync_done(self, r: Running, fut: asyncio.Future[Outcome]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        outcome = fut.result() if exc is None else execution.handler_crashed(exc)
        self._finished(r, outcome)

    def _finished(self, r: Running, outcome: Outcome) -> None:
        if r.done:
            return  # timed out or released meanwhile
        r.done = True
        self.inflight.pop(r.id, None)
        elapsed = time.monotonic() - r.started
        r.metrics.run_time.observe(elapsed)
        match outcome:
            case Completed(result_json):
                self.acker.ok(r, result_json)
                status, reason = "completed", ""
            case CompletedInTransaction(committed):
                if committed:
                    r.metrics.completed.inc()
                    self.counts["completed"] += 1
                else:
                    log.warning("job %d: lease lost before its transaction committed; "
                                "rolled back", r.id)
                status, reason = "completed", ""  # as logged before: the attempt did finish
            case Failed(error, retryable):
                self.acker.fail(r, outcome)
                r.metrics.failed.inc()
                self.counts["failed"] += 1
                status = "failed" if retryable else "failed permanently"
                reason = ": " + error.split("\n", 1)[0]
        if self.log_jobs:
            joblog.info(
                "job %d %s attempt %d %s in %.1f ms%s", r.id, r.job_type, r.attempt, status,
                elapsed * 1000, reason,
                extra={"event": "finish", "job_id": r.id, "job_type": r.job_type,
                       "attempt": r.attempt, "status": status,
                       "duration_ms": round(elapsed * 1000, 3)},
            )
        self.slot_free.set()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            late = [r for r in self.inflight.values() if r.deadline <= now and not r.done]
            for r in late:
                self._finished(r, execution.timed_out(r.timeout))
                if isinstance(r.task, asyncio.Task):
                    r.task.cancel()

    # -- acknowledging -----------------------------------------------------------------------

    def _progress_threadsafe(self, job_id: int, lease_token: str, progress: Any) -> None:
        self.loop.call_soon_threadsafe(self.acker.report_progress, job_id, lease_token, progress)
