"""What one attempt came to, as the worker loop acknowledges it.

    Completed(result_json)          complete it (batched through queue.complete_jobs)
    CompletedInTransaction(committed)
                                    already completed (or not, lease lost) by queue.complete_job
                                    inside the handler's own transaction; nothing left to send
    Failed(error, retryable, retry_at, public)
                                    queue.fail_job: SQL decides retry or dead letter; public is
                                    what the job's owner may read (never the raw error)

There is no "released" outcome: at shutdown the worker releases unfinished attempts by id in one
``queue.release_jobs`` call, without an outcome per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


# slots and no __eq__ override: one of these is built per job on the hot path
@dataclass(frozen=True, slots=True)
class Completed:
    """The handler returned; ``result_json`` is its result as JSON text (None: SQL null)."""

    result_json: str | None


@dataclass(frozen=True, slots=True)
class CompletedInTransaction:
    """The handler used ``ctx.connection``: the job was completed in that transaction.

    ``committed`` is False when ``queue.complete_job`` refused (the lease was lost), so the
    handler's writes were rolled back with it.
    """

    committed: bool


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt failed. ``retryable`` False dead-letters at once; ``retry_at`` (tz-aware)
    asks for that retry time instead of the job type's backoff; ``public`` is the message the
    job's owner sees (None: a generic one)."""

    error: str
    retryable: bool = True
    retry_at: datetime | None = None
    public: str | None = None


Outcome = Completed | CompletedInTransaction | Failed
