"""Kyu's thin Python worker: claim through ``queue.claim_jobs``, run handlers, acknowledge.

    from python_worker import handler, JobContext, PermanentError, RetryLater
"""

from .context import JobContext, PermanentError, RetryLater
from .registry import handler, registry

__all__ = ["JobContext", "PermanentError", "RetryLater", "handler", "registry"]
