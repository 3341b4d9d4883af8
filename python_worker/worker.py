"""The worker loop: claim up to free capacity, run handlers, acknowledge in batches, survive.

One asyncio loop drives everything. Async handlers run as tasks on it, sync handlers in a
thread pool of ``threads`` threads. Job types are claimed in lanes: the async lane up to the
concurrency limit, the sync lane never beyond its free threads (a thread stuck past its
timeout is not free), so no claimed job waits for a thread. Tasks beside the claim loops: the
LISTEN loop (wakes them), the acker (``complete_jobs`` / ``fail_job`` in one pipelined round
trip for whatever finished meanwhile), heartbeats (leases of long jobs, worker session), the
timeout watchdog, the resource monitor. Every queue decision stays in SQL; the worker never
retries or dead-letters on its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
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
from .db import (
    CONNECTION_ERRORS,
    Budget,
    ClaimedJob,
    Database,
    Listener,
    SyncTransactions,
    detect_pool_mode,
)
from .isolation import ChildJob, HandlerProcesses, handler_modules
from .outcomes import Completed, CompletedInTransaction, Failed, Outcome
from .registry import Handler, Registry
from .registry import registry as default_registry
from .running import Running
from .upkeep import heartbeat_loop, resource_loop

log = logging.getLogger("python_worker.worker")
joblog = logging.getLogger("python_worker.job")

UPKEEP_CONNECTIONS = 2  # the acker and the heartbeat, each on its own connection


class Lane:
    """Job types claimed together: those of async handlers, or those of sync handlers."""

    def __init__(self, name: str, job_types: list[str], streams: int) -> None:
        self.name = name
        self.job_types = job_types
        self.streams = streams  # claim loops of this lane
        self.reserved = 0  # jobs asked for by this lane's claims under way
        self.wake = asyncio.Event()


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
        self.threads = settings.threads
        self.job_types = self._job_types()
        self.lanes = self._lanes()
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="kyu-job")
        self.inflight: dict[int, Running] = {}
        # read when scraped, not kept up per job (a gauge update cost ~0.8 us of a no-op
        # job's ~17 us of worker CPU)
        metrics.IN_FLIGHT.set_function(lambda: len(self.inflight))
        self.sync_running = 0  # sync attempts in flight (each holds or awaits a thread)
        self.stuck: set[int] = set()  # sync attempts timed out whose thread still runs
        self.claiming = 0  # claims under way
        self.ending = False  # a drain's claim came back short: claims take turns
        self.claim_turn = asyncio.Lock()
        self.drained: set[str] = set()  # lanes whose last quiet claim came back empty
        self.stopping = False
        self.throttled = False
        self.over_memory: str | None = None  # the resource monitor's RSS verdict
        self.degraded: str | None = None
        self.exit_code = 0
        self.listener: Listener | None = None
        self.pool_mode = settings.pool_mode
        self.log_jobs = joblog.isEnabledFor(logging.INFO)
        self.counts = {"completed": 0, "failed": 0, "dead": 0}
        self._signals = 0

    def _lanes(self) -> list[Lane]:
        handlers = [h for h in self.registry.all() if h.job_type in self.job_types]
        batch = self.s.batch_size
        streams = self.s.claim_streams or (2 if self.hi >= 2 * batch else 1)
        lanes = []
        async_types = sorted(h.job_type for h in handlers if h.is_async)
        sync_types = sorted(h.job_type for h in handlers if not h.is_async)
        if async_types:
            lanes.append(Lane("async", async_types, streams))
        if sync_types:
            lanes.append(Lane("sync", sync_types, 1))
        return lanes

    def _budget(self, listening: bool) -> Budget:
        """Shares ``max_connections`` out; the handlers get what the worker's own calls leave."""
        handlers = [h for h in self.registry.all() if h.job_type in self.job_types]
        claims = sum(lane.streams for lane in self.lanes) or 1
        fixed = int(listening) + claims + UPKEEP_CONNECTIONS
        left = self.s.max_connections - fixed
        if left < 1:
            raise ValueError(
                f"max_connections {self.s.max_connections} is too small: this worker needs"
                f" {fixed} for itself ({int(listening)} LISTEN, {claims} claim streams,"
                f" {UPKEEP_CONNECTIONS} upkeep) and at least 1 for handler transactions;"
                f" set KYU_MAX_CONNECTIONS (or --max-connections) to {fixed + 1} or more")
        async_tx = any(h.is_async and h.transaction for h in handlers)
        sync = any(not h.is_async for h in handlers)
        a = (left + 1) // 2 if async_tx and sync else left if async_tx else 0
        return Budget(int(listening), claims, UPKEEP_CONNECTIONS, a, left - a if sync else 0)

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
        self.slot_free = asyncio.Event()
        self.stop_event = asyncio.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig)
        metrics.CONCURRENCY.set(self.limit)
        if not await self._connect():
            return self.exit_code
        self.acker = Acknowledger(self.db, self.worker_id, self.counts, self.slot_free.set)
        await self.db.open()
        if not self.job_types:
            log.warning("no handlers registered: this worker claims nothing")
        await self._register_types()
        log.info(
            "worker %s started: job types %s, queues %s, concurrency %d-%d, %d threads, batch"
            " %d, %s, at most %d connections%s", self.worker_id, self.job_types or "-",
            self.s.queues or "all", self.lo, self.hi, self.threads, self.s.batch_size,
            self.pool_mode, self.budget.total, " (drain and exit)" if self.drain else "",
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
        if self.listen_url is not None:
            tasks.append(loop.create_task(self._listen(self.listen_url), name="listen"))
        # two claim streams when capacity allows: one claims while the other's batch starts
        claimers = [loop.create_task(self._claim_loop(lane), name=f"claim-{lane.name}{i}")
                    for lane in self.lanes for i in range(lane.streams)]
        if not claimers and self.drain:
            self._stop_drained()
        await self.stop_event.wait()
        await self._shutdown(claimers, tasks)
        return self.exit_code

    async def _connect(self) -> bool:
        """Settles the pool mode (one probe connection, retried until the database answers)
        and the connection budget, and builds the pools. False if stopped meanwhile."""
        backoff = Backoff()
        while True:
            try:
                self.pool_mode, why = await detect_pool_mode(
                    self.s.database_url, self.s.pool_mode)
                break
            except CONNECTION_ERRORS as exc:
                if self.stopping:
                    return False
                log.warning("database unreachable (%s); retrying", str(exc).strip())
                await asyncio.sleep(backoff.next())
        pooled = self.pool_mode == "transaction"
        listen_url = self.s.listen_url or (None if pooled else self.s.database_url)
        self.listen_url = None if self.drain else listen_url
        log.info("pool mode %s (%s)", self.pool_mode, why)
        if pooled and listen_url is None and not self.drain:
            log.warning(
                "transaction pooling: no LISTEN (a pooled connection would lose it), so new"
                " jobs are found by polling, within --poll-interval (%gs) when idle; set"
                " KYU_LISTEN_URL to a direct or session-mode URL to be woken at once",
                self.s.poll_interval)
        self.budget = self._budget(self.listen_url is not None)
        prepare = None if pooled else self.s.prepare_threshold
        self.db = Database(self.s.database_url, self.budget, prepare_threshold=prepare,
                           async_claim_commit=self.s.async_claim_commit)
        self.sync_tx = SyncTransactions(self.s.database_url, self.budget.sync_handlers, prepare)
        self.children: HandlerProcesses | None = None
        if self.s.isolation == "process":
            sync = [h.func for h in self.registry.all() if not h.is_async]
            self.children = HandlerProcesses(
                self.threads, handler_modules(sync), self.s.database_url, prepare,
                self.budget.sync_handlers, self.s.child_max_rss_mb)
        return True

    def request_stop(self, sig: int | None = None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting at once; %d jobs stay leased", len(self.inflight))
            logging.shutdown()
            os._exit(1)
        if sig is not None:
            log.info("%s: stopping (grace %.0fs)", signal.Signals(sig).name, self.s.shutdown_grace)
        self._stop()

    def _stop(self) -> None:
        self.stopping = True
        self.stop_event.set()
        self._wake_all()
        self.slot_free.set()

    def _stop_drained(self) -> None:
        if not self.stopping:
            log.info("nothing due: drained")
            self._stop()

    def _wake_all(self) -> None:
        for lane in self.lanes:
            lane.wake.set()

    def connections(self) -> int:
        """Connections this worker holds now, LISTEN included."""
        listening = self.listener is not None and self.listener.conn is not None
        children = self.children.open_connections() if self.children is not None else 0
        return (self.db.open_connections() + self.sync_tx.open_connections() + children
                + int(listening))

    def _session(self) -> dict[str, Any]:
        """What the heartbeat stores in this worker's ``queue.worker_sessions`` row."""
        return {"job_types": self.job_types, "queues": self.s.queues,
                "concurrency": self.limit, "threads": self.threads,
                "in_flight": len(self.inflight), "throttled": self.throttled,
                "threads_stuck": len(self.stuck), "degraded": self.degraded,
                "pool_mode": self.pool_mode, "connections": self.connections(),
                "max_connections": self.budget.total}

    def _set_throttled(self, throttled: bool, over_memory: str | None) -> None:
        """The resource monitor's verdict; lifting it wakes the claim loop at once."""
        self.throttled = throttled
        self.over_memory = over_memory
        self._check_degraded()
        if not throttled:
            self._wake_all()

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
        if claimers:
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
        if self.children is not None:
            await asyncio.to_thread(self.children.close)
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
        if self.listener is not None:
            await self.listener.close()

    # -- claiming --------------------------------------------------------------------------

    def _free(self, lane: Lane) -> int:
        """Jobs ``lane`` may claim now: async jobs up to the concurrency limit, sync jobs up to
        the free threads (a thread stuck past its timeout is not free). Finished attempts not
        yet acknowledged still hold their leases, so they count too."""
        pending, pending_sync = self.acker.pending, self.acker.pending_sync
        if lane.name == "sync":
            return (self.threads - self.sync_running - len(self.stuck) - pending_sync
                    - lane.reserved)
        running = len(self.inflight) - self.sync_running
        return self.limit - running - (pending - pending_sync) - lane.reserved

    async def _claim_loop(self, lane: Lane) -> None:
        backoff = Backoff()
        queues = self.s.queues or None
        batch = self.s.batch_size
        last_full = time.monotonic()
        # polling without LISTEN: soon after work, backing off to --poll-interval when idle
        poll_min = self.s.poll_interval if self.listen_url else min(0.05, self.s.poll_interval)
        poll = poll_min
        cap = self.threads if lane.name == "sync" else self.limit
        while not self.stopping:
            if self.throttled:
                lane.wake.clear()
                await self._wait(lane.wake, 0.5)
                continue
            free = self._free(lane)
            if free <= 0 or free < min(batch, cap) // 4:
                # at capacity: wait for slots rather than claim a trickle
                self.slot_free.clear()
                await self._wait(self.slot_free, 0.002 if free > 0 else 0.05)
                free = self._free(lane)
                if free <= 0:
                    continue
            want = min(free, batch)
            lane.wake.clear()
            # Near the end of a drain claims take turns: a claim that overlaps another may
            # come back empty only because the other holds the rows, and must not end the
            # drain. A drain ends on an empty claim that started with nothing in flight.
            turn = self.claim_turn if self.drain and self.ending else None
            if turn is not None:
                await turn.acquire()
            quiet = not self.inflight and self.acker.idle
            t0 = time.perf_counter()
            lane.reserved += want
            self.claiming += 1
            try:
                jobs = await self.db.claim(
                    self.worker_id, want, queues, lane.job_types, self.s.lease_seconds
                )
            except CONNECTION_ERRORS as exc:
                metrics.DB_UP.set(0)
                delay = backoff.next()
                log.warning("claim failed (%s); retrying in %.1fs", str(exc).strip(), delay)
                await asyncio.sleep(delay)
                continue
            except Exception:
                log.exception("claim failed")  # never crash the loop
                await asyncio.sleep(backoff.next())
                continue
            finally:
                lane.reserved -= want
                self.claiming -= 1
                if turn is not None:
                    turn.release()
            metrics.CLAIM_LATENCY.observe(time.perf_counter() - t0)
            if backoff.n:
                log.info("database reachable again")
                backoff.reset()
            metrics.DB_UP.set(1)
            if jobs and self.stopping:  # stopped while claiming: give these back at once
                await self._release_quietly(jobs)
                return
            if jobs:
                self.drained.clear()
                self._dispatch(jobs)
                poll = poll_min
            now = time.monotonic()
            if len(jobs) == want:
                self.ending = False
                last_full = now
                if want == free and self.limit < self.hi and lane.name == "async":
                    # backlog beyond capacity: grow
                    self.limit = min(self.hi, max(self.limit + 1, self.limit * 3 // 2))
                    metrics.CONCURRENCY.set(self.limit)
                    cap = self.limit
                continue
            if self.limit > self.lo and now - last_full > 5.0 and lane.name == "async":
                self.limit = max(self.lo, self.limit // 2)  # idle: shrink
                metrics.CONCURRENCY.set(self.limit)
                cap = self.limit
                last_full = now
            if self.drain:
                self.ending = True
                if not jobs and quiet:
                    self.drained.add(lane.name)
                if (len(self.drained) == len(self.lanes) and not self.claiming
                        and not self.inflight and self.acker.idle):
                    self._stop_drained()
                    return
                if not self.inflight:
                    await self.acker.flush_all()
                else:
                    self.slot_free.clear()
                    await self._wait(self.slot_free, 0.05)
                continue
            await self._wait(lane.wake, poll)
            if not jobs:
                poll = min(self.s.poll_interval, poll * 2)

    async def _wait(self, event: asyncio.Event, timeout: float | None) -> None:
        if event.is_set():
            await asyncio.sleep(0)  # always yield: a set event must not starve the loop
            return
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    async def _listen(self, url: str) -> None:
        self.listener = listener = Listener(url)
        backoff = Backoff()
        queues = set(self.s.queues)
        while not self.stopping:
            try:
                if listener.conn is None:
                    await listener.connect()
                    backoff.reset()
                    self._wake_all()  # catch up on anything enqueued while deaf
                async for queue_name in listener.notifications(timeout=5.0):
                    if not queues or queue_name in queues:
                        self._wake_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling covers while we reconnect
                await listener.close()
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
                # the timeout runs from when a thread takes the job (see _in_thread); in a
                # handler process, the thread enforces it by killing the process
                r.sync = True
                r.deadline = math.inf
                self.sync_running += 1
                if self.children is not None:
                    fut = loop.run_in_executor(self.executor, self._in_child, r, job)
                else:
                    fut = loop.run_in_executor(
                        self.executor, self._in_thread, r, h, job.payload, ctx)
                r.task = fut
                fut.add_done_callback(functools.partial(self._sync_done, r))
        for m, n in started.items():
            m.started.inc(n)

    def _in_thread(self, r: Running, h: Handler, raw: Any, ctx: JobContext | None) -> Outcome:
        r.deadline = time.monotonic() + r.timeout
        return execution.run_sync(h, raw, ctx, self.sync_tx)

    def _in_child(self, r: Running, job: ClaimedJob) -> Outcome:
        assert self.children is not None
        child_job = ChildJob(job.id, job.job_type, job.queue_name, job.attempt,
                             job.max_attempts, self.worker_id, job.lease_seconds, job.payload,
                             job.lease_token)
        return self.children.run(child_job, r.timeout,
                                 lambda p: self._progress_threadsafe(r.id, r.lease_token, p))

    def _context(self, r: Running, job: ClaimedJob, h: Handler) -> JobContext:
        return JobContext(
            id=r.id, job_type=r.job_type, queue_name=r.queue_name, attempt=r.attempt,
            max_attempts=job.max_attempts, worker_id=self.worker_id, lease_seconds=r.lease_seconds,
            lease_token=r.lease_token, parent_id=job.parent_id,
            _progress=self._progress_threadsafe,
            _connect=None if h.is_async else self._sync_connect,
        )

    def _sync_connect(self, ctx: JobContext) -> None:
        r = self.inflight.get(ctx.id)
        left = r.deadline - time.monotonic() if r is not None else 0.0
        ctx._conn = self.sync_tx.begin(timeout=max(0.1, left))

    async def _run_async(self, r: Running, h: Handler, raw: Any, ctx: JobContext | None) -> None:
        if ctx is None and h.model is None:  # the common fast path: one coroutine frame less
            try:
                result = await h.func(raw)
                rj = None if result is None else execution.result_json(result)
                outcome: Outcome = Completed(rj)
            except asyncio.CancelledError:
                return
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - sys.exit() too: it
                outcome = execution.classify(exc)  # would end the worker on every attempt
            self._finished(r, outcome)
            return
        try:
            outcome = await execution.run_async(h, raw, ctx, self.db, r.timeout)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - e.g. no connection for ctx.connection
            outcome = execution.handler_crashed(exc)
        self._finished(r, outcome)

    def _sync_done(self, r: Running, fut: asyncio.Future[Outcome]) -> None:
        if r.id in self.stuck:  # a thread stuck past its timeout came back: free again
            self.stuck.discard(r.id)
            metrics.THREADS_STUCK.set(len(self.stuck))
            self._check_degraded()
            self.slot_free.set()
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
        if r.sync:
            self.sync_running -= 1
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
                elif not r.task.done():  # a thread cannot be stopped: count it as stuck
                    self.stuck.add(r.id)
                    metrics.THREADS_STUCK.set(len(self.stuck))
                    log.warning("job %d %s: its thread runs on past the %gs timeout (%d of %d"
                                " threads stuck)", r.id, r.job_type, r.timeout, len(self.stuck),
                                self.threads)
            if late:
                self._check_degraded()

    def _check_degraded(self) -> None:
        """Degraded while stuck threads leave none free (no sync job can be claimed) or while
        the RSS is over --max-rss-mb (nothing is claimed, and memory that handlers hold in
        this process is seldom given back)."""
        was = self.degraded
        reasons = []
        if self.stuck and len(self.stuck) >= self.threads:
            reasons.append(f"all {self.threads} handler threads stuck past their timeout;"
                           " not claiming sync jobs")
        if self.over_memory:
            reasons.append(f"{self.over_memory} (--max-rss-mb); not claiming")
        self.degraded = "; ".join(reasons) or None
        if self.degraded == was:
            return
        metrics.DEGRADED.set(int(self.degraded is not None))
        if self.degraded is None:
            log.info("no longer degraded: %d threads stuck", len(self.stuck))
            return
        log.error("degraded: %s", self.degraded)
        if self.s.exit_when_stuck and not self.stopping:
            log.error("exiting so that a supervisor restarts this worker (--exit-when-stuck)")
            self.exit_code = 3
            self._stop()

    # -- acknowledging -----------------------------------------------------------------------

    def _progress_threadsafe(self, job_id: int, lease_token: str, progress: Any) -> None:
        self.loop.call_soon_threadsafe(self.acker.report_progress, job_id, lease_token, progress)
