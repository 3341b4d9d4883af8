"""Running one attempt: validate the payload, call the handler, turn what happened into an outcome.

The outcome (``outcomes.Completed``, ``CompletedInTransaction`` or ``Failed``) is what the
worker loop acknowledges. A handler exception becomes ``Failed`` by this duck-typed protocol, so
that an application's own errors need no import from (or into) the engine:

- ``RetryLater(at)``: retryable, retry at ``at``.
- ``PermanentError`` (and subclasses), or any exception with an attribute ``permanent`` that
  ``is True``: not retryable, the job goes to the dead letter at once; the error is
  ``Type: message``.
- any other exception with a tz-aware ``datetime`` attribute ``retry_at``: retryable, retry at
  that time (a naive or non-datetime ``retry_at`` is ignored: the queue's backoff applies).
- anything else: retryable after the queue's backoff; the error is ``Type: message`` plus a
  short traceback.

A payload that does not validate against the handler's model is not retryable.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from datetime import datetime
from typing import Any

import psycopg
from pydantic import BaseModel, ValidationError

from .context import JobContext, PermanentError, RetryLater
from .db import Database, SyncTransactions
from .outcomes import Completed, CompletedInTransaction, Failed, Outcome
from .registry import Handler


def short_traceback(exc: BaseException, frames: int = 6, limit: int = 4000) -> str:
    tb = "".join(traceback.format_tb(exc.__traceback__, limit=-frames)).rstrip()
    text = f"{type(exc).__name__}: {exc}"
    if tb:
        text += "\nTraceback (most recent call last, shortened):\n" + tb
    return text[:limit]


def classify(exc: BaseException) -> Failed:
    """A handler's exception as a failure, by the protocol in the module docstring."""
    if isinstance(exc, RetryLater):
        return Failed(f"RetryLater: {exc}", True, exc.at)
    if isinstance(exc, PermanentError) or getattr(exc, "permanent", False) is True:
        return Failed(f"{type(exc).__name__}: {exc}"[:4000], False, None,
                      getattr(exc, "public", None))
    retry_at = getattr(exc, "retry_at", None)
    if not isinstance(retry_at, datetime) or retry_at.tzinfo is None:
        retry_at = None
    return Failed(short_traceback(exc), True, retry_at)


def invalid_payload(job_type: str, exc: ValidationError) -> Failed:
    return Failed(f"invalid payload for {job_type}: {exc}"[:4000], False, None)


def handler_crashed(exc: BaseException) -> Failed:
    """An error outside the handler's own code (the thread pool, the transaction pool)."""
    return Failed(short_traceback(exc), True, None)


def timed_out(seconds: float) -> Failed:
    return Failed(f"timed out after {seconds:g}s", True, None)


def _transaction_failed(exc: BaseException) -> Failed:
    return Failed(f"completing transaction failed: {short_traceback(exc)}", True, None)


def result_json(result: Any) -> str | None:
    """The handler's return value as JSON text (None stays SQL null)."""
    if result is None:
        return None
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str)


def run_sync(
    h: Handler, raw: Any, ctx: JobContext | None, tx: SyncTransactions
) -> Outcome:
    """Runs a sync handler (in a worker thread)."""
    try:
        payload = h.payload(raw)
    except ValidationError as exc:
        return invalid_payload(h.job_type, exc)
    try:
        result = h.func(payload, ctx) if h.wants_ctx else h.func(payload)
        rj = result_json(result)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an outcome
        if ctx is not None and ctx._conn is not None:
            _end_quietly(tx, ctx._conn)
        return classify(exc)
    if ctx is not None and ctx._conn is not None:
        try:
            committed = tx.end(ctx._conn, (ctx.id, ctx.worker_id, rj, ctx.attempt, ctx.lease_token))
            return CompletedInTransaction(committed)
        except Exception as exc:  # noqa: BLE001 - commit state unknown: fail_job is fenced
            return _transaction_failed(exc)
    return Completed(rj)


def _end_quietly(tx: SyncTransactions, conn: psycopg.Connection[Any]) -> None:
    try:
        tx.end(conn, None)
    except Exception:  # noqa: BLE001 - the rollback of a broken connection
        pass


async def run_async(
    h: Handler, raw: Any, ctx: JobContext | None, db: Database, timeout: float
) -> Outcome:
    """Runs an async handler on the event loop; ``timeout`` bounds the wait for a connection
    of the worker's budget when the handler has a transaction."""
    try:
        payload = h.payload(raw)
    except ValidationError as exc:
        return invalid_payload(h.job_type, exc)
    conn = None
    if h.transaction and ctx is not None:
        conn = await db.begin_job_transaction(timeout)
        ctx._conn = conn
    try:
        result = await (h.func(payload, ctx) if h.wants_ctx else h.func(payload))
        rj = result_json(result)
    except asyncio.CancelledError:
        if conn is not None:
            await _aend_quietly(db, conn)
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - sys.exit() in a handler too
        if conn is not None:
            await _aend_quietly(db, conn)
        return classify(exc)
    if conn is not None:
        try:
            assert ctx is not None
            ok = await db.end_job_transaction(
                conn, (ctx.id, ctx.worker_id, rj, ctx.attempt, ctx.lease_token)
            )
            return CompletedInTransaction(ok)
        except Exception as exc:  # noqa: BLE001 - commit state unknown: fail_job is fenced
            return _transaction_failed(exc)
    return Completed(rj)



async def _aend_quietly(db: Database, conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await db.end_job_transaction(conn, None)
    except Exception:  # noqa: BLE001 - the rollback of a broken connection
        pass
