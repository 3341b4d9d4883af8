"""A worker's upkeep beside the claim loop: heartbeats and resource limits.

Heartbeats extend the lease of every running job past a third of its lease (and refresh the
worker's session row); the resource monitor pauses claiming while the process RSS or the
machine's load is over its limit, and says so in the log and in ``kyu_throttled``.

Both loops get only what they read or call (callables for state that changes while they run),
never the worker itself, so this module depends on nothing above it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

import psutil

from . import metrics
from .backoff import Backoff
from .db import CONNECTION_ERRORS, Database
from .running import Running

log = logging.getLogger("python_worker.worker")


async def heartbeat_loop(
    db: Database,
    worker_id: str,
    interval: float,
    in_flight: Callable[[], Collection[Running]],
    session: Callable[[], dict[str, Any]],
) -> None:
    """Renews leases and the worker session until cancelled.

    ``in_flight()`` returns the attempts running now (read on every tick); ``session()`` the
    metadata stored with the worker's session row. A lease found lost is logged once and never
    renewed again (its late completion is refused by SQL anyway): the heartbeat marks it by
    moving ``renewed`` far into the future, the one field of ``Running`` it owns.
    """
    host, pid = socket.gethostname(), os.getpid()
    last_session = 0.0
    backoff = Backoff()
    while True:
        now = time.monotonic()
        due = [r for r in in_flight()
               if not r.done and now - r.renewed > r.lease_seconds / 3]
        if due or now - last_session >= interval:
            try:
                held = await db.heartbeat(worker_id, [r.id for r in due],
                                          [r.lease_token for r in due], host, pid, session())
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
        shortest = min((r.lease_seconds for r in in_flight()), default=60)
        tick = min(1.0, interval, shortest / 4)
        await asyncio.sleep(tick)


async def resource_loop(
    max_rss_mb: float | None,
    max_load: float | None,
    set_throttled: Callable[[bool, str | None], None],
) -> None:
    """Checks RSS and load every second; calls ``set_throttled(throttled, over_memory)`` when
    the verdict changes (``over_memory`` names the RSS over its cap, else None)."""
    if max_rss_mb is None and max_load is None:
        return
    proc = psutil.Process()
    throttled = False
    memory: str | None = None
    while True:
        reasons = []
        rss_mb = proc.memory_info().rss / 2**20
        load = os.getloadavg()[0]
        over_rss = max_rss_mb is not None and rss_mb > max_rss_mb
        over_load = max_load is not None and load > max_load
        metrics.THROTTLE_REASON.labels("memory").set(int(over_rss))
        metrics.THROTTLE_REASON.labels("load").set(int(over_load))
        if over_rss:
            reasons.append(f"RSS {rss_mb:.0f} MB > {max_rss_mb:g} MB")
        if over_load:
            reasons.append(f"load {load:.2f} > {max_load:g}")
        if reasons and not throttled:
            log.warning("throttled: not claiming while %s", "; ".join(reasons))
        elif not reasons and throttled:
            log.info("throttle lifted: claiming again (RSS %.0f MB, load %.2f)", rss_mb, load)
        now_memory = reasons[0] if over_rss else None
        if bool(reasons) != throttled or (now_memory is None) != (memory is None):
            throttled, memory = bool(reasons), now_memory
            set_throttled(throttled, memory)
        metrics.THROTTLED.set(int(throttled))
        await asyncio.sleep(1.0)
