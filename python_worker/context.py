"""What a handler sees besides its payload (``JobContext``) and the outcomes it can raise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class PermanentError(Exception):
    """Raise from a handler when retrying cannot help: the job goes to the dead letter at once.

    ``public`` is the short message the job's owner may read (queue_public.my_jobs); the
    exception's own text stays with the operators.
    """

    def __init__(self, *args: object, public: str | None = None) -> None:
        super().__init__(*args)
        self.public = public


class RetryLater(Exception):  # noqa: N818 - it is an instruction, not an error
    """Raise from a handler to retry the job at ``at`` (tz-aware), not after the usual backoff."""

    def __init__(self, at: datetime, message: str = "") -> None:
        if at.tzinfo is None:
            raise ValueError("RetryLater(at) needs a timezone-aware datetime")
        super().__init__(message or f"retry requested at {at.isoformat()}")
        self.at = at
        self.retry_at = at


@dataclass(eq=False)
class JobContext:
    """The running attempt: identity, progress reporting and the completing transaction.

    ``connection`` (alias ``transaction``) is a psycopg connection inside an open transaction;
    the worker completes the job with ``queue.complete_job`` in that same transaction and
    commits, so the handler's writes happen exactly when the job completes (a lost lease rolls
    them back). Sync handlers get a sync connection on first use; async handlers get an
    ``AsyncConnection`` when registered with ``@handler(..., transaction=True)``.
    """

    id: int
    job_type: str
    queue_name: str
    attempt: int
    max_attempts: int
    worker_id: str
    lease_seconds: int
    _progress: Callable[[int, str, Any], None] = field(repr=False)
    _connect: Callable[[JobContext], Any] | None = field(default=None, repr=False)
    _conn: Any = field(default=None, repr=False)
    _release: Callable[[], None] | None = field(default=None, repr=False)
    # the claim's secret: chain follow-up work with queue.enqueue_child_job(id, lease_token, ...)
    lease_token: str = field(default="", repr=False)
    parent_id: int | None = None

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def report_progress(self, progress: Any) -> None:
        """Store progress (any JSON value) for ``queue.get_job``; returns at once, best effort."""
        self._progress(self.id, self.lease_token, progress)

    @property
    def connection(self) -> Any:
        if self._conn is None:
            if self._connect is None:
                raise RuntimeError(
                    "ctx.connection in an async handler needs @handler(..., transaction=True)"
                )
            self._connect(self)
        return self._conn

    @property
    def transaction(self) -> Any:
        return self.connection

    @property
    def uses_transaction(self) -> bool:
        return self._conn is not None
