"""A worker's upkeep beside the claim loop: heartbeats and resource limits.

Heartbeats extend the lease of every running job past a third of its lease (and refresh the
worker's session row); the resource monitor pauses claiming while the process RSS or the
machine's load is over its limit, and says so in the log and in ``kyu_throttled``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

import psutil

from . import metrics
from .backoff import Backoff
from .db import CONNECTION_ERRORS

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("python_worker.worker")


async def heartbeat_loop(w: Worker) -> None:
    host, pid = socket.gethostname(), os.getpid()
    last_session = 0.0
    backoff = Backoff()
    while True:
        now = time.monotonic()
        due = [r for r in w.inflight.values()
               if not r.done and now - r.renewed > r.lease_seconds / 3]
        if due or now - last_session >= w.s.heartbeat_interval:
            meta = {"job_types": w.job_types, "queues": w.s.queues,
                    "concurrency": w.limit, "in_flight": len(w.inflight),
                    "throttled": w.throttled}
            try:
                held = await w.db.heartbeat(w.worker_id, [r.id for r in due], host, pid, meta)
                last_session = now
                backoff.reset()
                for r in due:
                    if r.id in held:
                        r.renewed = now
                    elif not r.done:
                        log.warning("job %d: lease lost (reclaimed or finished elsewhere)", r.id)
                        r.renewed = now + 1e9
            except CONNECTION_ERRORS as exc:
                log.warning("heartbeat failed (%s)", str(exc).strip())
                await asyncio.sleep(backoff.next())
                continue
            except Exception:  # noqa: BLE001
                log.exception("heartbeat failed")
        # tick often enough to renew the shortest lease at a third of its length
        shortest = min((r.lease_seconds for r in w.inflight.values()), default=60)
        tick = min(1.0, w.s.heartbeat_interval, shortest / 4)
        await asyncio.sleep(tick)


async def resource_loop(w: Worker) -> None:
    max_rss = w.s.max_rss_mb
    max_load = w.s.max_load
    if max_rss is None and max_load is None:
        return
    proc = psutil.Process()
    while True:
        reasons = []
        rss_mb = proc.memory_info().rss / 2**20
        load = os.getloadavg()[0]
        over_rss = max_rss is not None and rss_mb > max_rss
        over_load = max_load is not None and load > max_load
        metrics.THROTTLE_REASON.labels("memory").set(int(over_rss))
        metrics.THROTTLE_REASON.labels("load").set(int(over_load))
        if over_rss:
            reasons.append(f"RSS {rss_mb:.0f} MB > {max_rss:g} MB")
        if over_load:
            reasons.append(f"load {load:.2f} > {max_load:g}")
        if reasons and not w.throttled:
            log.warning("throttled: not claiming while %s", "; ".join(reasons))
        elif not reasons and w.throttled:
            log.info("throttle lifted: claiming again (RSS %.0f MB, load %.2f)", rss_mb, load)
            w.wake.set()
        w.throttled = bool(reasons)
        metrics.THROTTLED.set(int(w.throttled))
        await asyncio.sleep(1.0)
