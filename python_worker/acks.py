"""Acknowledging attempts: completions, failures and progress, batched into few round trips.

Whatever finished while the previous round trip was under way goes in the next one:
``complete_jobs`` for the successes (one statement), ``fail_job`` per failure and
``report_progress`` per pending progress report, pipelined on one connection. Under load the
batches grow by themselves; when idle each finished job is acknowledged at once. A dropped
connection keeps everything pending and retries with backoff: the leases are still ours, and
every call is fenced by lease token, worker id and attempt, so a retry can never complete a job
twice. A batch the database refuses for one bad value (SQLSTATE class 22, e.g. a result over
``queue.settings.max_payload_bytes``) is sent again one attempt at a time: the others are
acknowledged, and a completion refused on its own fails its job for good with the database's
message (the same result would be refused again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from . import metrics
from .backoff import Backoff
from .db import CONNECTION_ERRORS, Database, FailedAttempt
from .outcomes import Failed
from .running import Running

log = logging.getLogger("python_worker.worker")

MAX_BATCH = 5000


class Acknowledger:
    def __init__(
        self, db: Database, worker_id: str, counts: dict[str, int], on_sent: Callable[[], None]
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.counts = counts
        self.on_sent = on_sent  # called after each round trip: its jobs no longer hold slots
        # (the attempt, its result as JSON): plain pairs, they never leave this module
        self.acks: list[tuple[Running, str | None]] = []
        self.fails: list[tuple[FailedAttempt, Running]] = []
        self.progress: dict[int, tuple[str, Any]] = {}  # job id -> (lease token, progress)
        self.flushing = False
        self.singly = 0  # after a refused batch: this many round trips carry one attempt each
        self.sending = 0  # attempts in the round trip under way
        self._pending_sync = 0
        self.event = asyncio.Event()

    @property
    def idle(self) -> bool:
        return not (self.acks or self.fails or self.flushing)

    @property
    def pending(self) -> int:
        """Finished attempts not yet acknowledged: their jobs are still leased to this worker,
        so they count against its concurrency."""
        return len(self.acks) + len(self.fails) + self.sending

    @property
    def pending_sync(self) -> int:
        """Of ``pending``, the attempts of sync handlers (they count against the threads)."""
        return self._pending_sync

    def ok(self, r: Running, result_json: str | None) -> None:
        self.acks.append((r, result_json))
        self._pending_sync += r.sync
        self.event.set()

    def fail(self, r: Running, failed: Failed) -> None:
        attempt = FailedAttempt(r.id, failed.error, failed.retryable, failed.retry_at, r.attempt,
                                r.lease_token, failed.public)
        self.fails.append((attempt, r))
        self._pending_sync += r.sync
        self.event.set()

    def report_progress(self, job_id: int, lease_token: str, progress: Any) -> None:
        first = not self.progress
        self.progress[job_id] = (lease_token, progress)
        if first:
            asyncio.get_running_loop().create_task(self._flush_progress())

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            await self.event.wait()
            self.event.clear()
            while self.acks or self.fails:
                acks, fails = self._next_batch()
                self.flushing = True
                self.sending = len(acks) + len(fails)
                try:
                    await self._send(acks, fails)
                    self._pending_sync -= sum([r.sync for r, _ in acks]) + sum(
                        [r.sync for _, r in fails])
                    backoff.reset()
                except CONNECTION_ERRORS as exc:
                    self.acks[:0] = acks
                    self.fails[:0] = fails
                    delay = backoff.next()
                    log.warning("acknowledging %d jobs failed (%s); retrying in %.1fs",
                                len(acks) + len(fails), str(exc).strip(), delay)
                    await asyncio.sleep(delay)
                except psycopg.DataError as exc:
                    self._refused(acks, fails, exc)
                except Exception:  # noqa: BLE001 - the lease reaper recovers these jobs
                    log.exception("acknowledging %d jobs failed; their leases will expire",
                                  len(acks) + len(fails))
                    self._drop(acks, fails)
                finally:
                    self.flushing = False
                    self.sending = 0
                    self.on_sent()

    def _next_batch(self) -> tuple[list[tuple[Running, str | None]],
                                     list[tuple[FailedAttempt, Running]]]:
        if self.singly:
            self.singly -= 1
            if self.acks:
                acks, self.acks = self.acks[:1], self.acks[1:]
                return acks, []
            fails, self.fails = self.fails[:1], self.fails[1:]
            return [], fails
        acks, self.acks = self.acks[:MAX_BATCH], self.acks[MAX_BATCH:]
        fails, self.fails = self.fails, []
        return acks, fails

    def _refused(self, acks: list[tuple[Running, str | None]],
                 fails: list[tuple[FailedAttempt, Running]], exc: psycopg.DataError) -> None:
        """A round trip refused for a bad value: a batch is retried one attempt at a time; a
        completion refused alone becomes a permanent failure of its job."""
        message = str(exc).strip().splitlines()[0]
        if len(acks) + len(fails) > 1:
            log.warning("%d acknowledgements refused together (%s); sending them one at a time",
                        len(acks) + len(fails), message)
            self.acks[:0] = acks
            self.fails[:0] = fails
            self.singly = len(acks) + len(fails)
        elif acks:
            r = acks[0][0]
            log.error("job %d: completion refused (%s); failing it", r.id, message)
            self.fails.append((FailedAttempt(
                r.id, f"completion refused by the database: {message}", False, None, r.attempt,
                r.lease_token, None), r))
        else:
            log.error("job %d: failure refused (%s); its lease will expire", fails[0][0].job_id,
                      message)
            self._drop([], fails)

    def _drop(self, acks: list[tuple[Running, str | None]],
              fails: list[tuple[FailedAttempt, Running]]) -> None:
        """Attempts given up on (the lease reaper recovers their jobs) stop counting as pending."""
        self._pending_sync -= sum([r.sync for r, _ in acks]) + sum([r.sync for _, r in fails])

    async def _send(
        self, acks: list[tuple[Running, str | None]], fails: list[tuple[FailedAttempt, Running]]
    ) -> None:
        # integer arrays as array literals: cheaper to build than psycopg's list dumping
        ids = "{" + ",".join([str(r.id) for r, _ in acks]) + "}" if acks else ""
        results: list[str | None] | None = [rj for _, rj in acks]
        if not any(rj is not None for rj in results or ()):
            results = None
        attempts = "{" + ",".join([str(r.attempt) for r, _ in acks]) + "}"
        tokens = "{" + ",".join([r.lease_token for r, _ in acks]) + "}"
        progress, self.progress = self.progress, {}
        try:
            done, statuses = await self.db.finish(
                self.worker_id, ids, results, attempts, tokens, [f[0] for f in fails], progress
            )
        except BaseException:
            self.progress = progress | self.progress
            raise
        by_type: dict[metrics.TypeMetrics, int] = {}
        for r, _ in acks:
            m = r.metrics
            by_type[m] = by_type.get(m, 0) + 1
        for m, n in by_type.items():
            m.completed.inc(n)
        self.counts["completed"] += done
        if done < len(acks):
            log.warning("%d of %d completions refused: their leases were lost (the job runs "
                        "again)", len(acks) - done, len(acks))
        for (failure, r), status in zip(fails, statuses, strict=True):
            if status == "dead":
                r.metrics.dead.inc()
                self.counts["dead"] += 1
            elif status is None:
                log.warning("job %d: failure not recorded, lease lost", failure.job_id)

    async def flush_all(self, timeout: float = 30.0) -> None:
        until = time.monotonic() + timeout
        while not self.idle and time.monotonic() < until:
            self.event.set()
            await asyncio.sleep(0.002)

    async def _flush_progress(self) -> None:
        await asyncio.sleep(0.05)
        items, self.progress = self.progress, {}
        if not items:
            return  # sent with the completions meanwhile
        try:
            await self.db.report_progress(
                (i, self.worker_id, token, p) for i, (token, p) in items.items()
            )
        except Exception as exc:  # noqa: BLE001 - progress is best effort
            log.warning("progress not stored (%s)", exc)
