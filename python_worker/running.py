"""One attempt in flight: the state the claim loop, the acker and the heartbeat share about it."""

from __future__ import annotations

from typing import Any

from . import metrics
from .db import ClaimedJob


class Running:
    """One attempt in flight.

    The worker loop creates it and owns ``done``/``task``; the heartbeat owns ``renewed``; the
    acker only reads. Slots, because one is made per job on the hot path.
    """

    __slots__ = (
        "id", "job_type", "queue_name", "attempt", "lease_token", "lease_seconds", "timeout",
        "deadline", "started", "renewed", "task", "done", "sync", "metrics",
    )

    def __init__(self, job: ClaimedJob, timeout: float, now: float) -> None:
        self.id = job.id
        self.job_type = job.job_type
        self.queue_name = job.queue_name
        self.attempt = job.attempt
        self.lease_token = job.lease_token
        self.lease_seconds = job.lease_seconds
        self.timeout = timeout
        self.deadline = now + timeout
        self.started = now
        self.renewed = now
        self.task: Any = None  # asyncio.Task (async handler) or Future (sync handler)
        self.done = False
        self.sync = False  # a sync handler's attempt (runs in a thread)
        self.metrics = metrics.for_type(self.job_type)
