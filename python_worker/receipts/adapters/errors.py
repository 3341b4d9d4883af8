"""Typed failures of external services, for handlers to map onto queue outcomes.

- `PermanentServiceError(message)`: retrying cannot help (bad payload, revoked credentials,
  missing permission, stale id). The handler dead-letters the job.
- `RetryableServiceError(message, retry_at)`: transient (throttle, 5xx, timeout). `retry_at`
  is a tz-aware instant when the service said when to come back (freee `x-ratelimit-reset`,
  the 10-minute 403 throttle); `None` means "use the queue's own backoff".

Both carry an optional `code` (the service's machine-readable error code) and `request_id`
(freee `X-Freee-Request-ID`, for the log).
"""

from __future__ import annotations

from datetime import datetime

from python_worker import PermanentError


class ServiceError(Exception):
    """Base class: an external service refused or failed a call."""

    def __init__(
        self, message: str, *, code: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id


class PermanentServiceError(ServiceError, PermanentError):
    """Retrying the same call will fail the same way: the engine dead-letters the job."""


class RetryableServiceError(ServiceError):
    """A later attempt may succeed; `retry_at` (tz-aware) is the earliest useful time. The engine
    reads `retry_at` from any exception (its documented duck-typed protocol)."""

    def __init__(
        self,
        message: str,
        retry_at: datetime | None = None,
        *,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id)
        if retry_at is not None and retry_at.tzinfo is None:
            raise ValueError("retry_at must be timezone-aware")
        self.retry_at = retry_at
