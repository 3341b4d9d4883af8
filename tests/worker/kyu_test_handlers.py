"""Handlers the worker tests run, in-process and in worker subprocesses (--handlers).

Engine only: the exceptions below stand in for an application's own errors, so the tests prove
the duck-typed protocol of ``python_worker.execution`` without importing any application."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from python_worker import JobContext, PermanentError, RetryLater, handler


class CredentialsRevoked(PermanentError):
    """An application's permanent error, as a subclass of the engine's PermanentError."""


class Throttled(Exception):
    """Duck-typed: an exception with ``retry_at`` / ``permanent`` attributes and no engine base."""

    def __init__(
        self, message: str, retry_at: datetime | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.permanent = permanent


class Echo(BaseModel):
    value: int


@handler("test.echo")
def echo(job: Echo) -> dict[str, int]:
    return {"value": job.value * 2}


@handler("test.async_echo")
async def async_echo(job: Echo, ctx: JobContext) -> dict[str, Any]:
    ctx.report_progress({"step": 1})
    return {"value": job.value, "attempt": ctx.attempt}


@handler("test.flaky")
def flaky(job: dict, ctx: JobContext) -> str:
    if ctx.attempt < job.get("succeed_on", 2):
        raise ValueError(f"flaky failure on attempt {ctx.attempt}")
    return "ok"


@handler("test.permanent")
def permanent(job: dict) -> None:
    raise PermanentError("this input can never work")


@handler("test.public_error")
def public_error(job: dict) -> None:
    raise PermanentError("parser v3 failed at db-internal-3", public="The file could not be read.")


@handler("test.service_permanent")
def service_permanent(job: dict) -> None:
    raise CredentialsRevoked("credentials revoked")


@handler("test.retry_later")
def retry_later(job: dict) -> None:
    raise RetryLater(datetime.now(UTC) + timedelta(hours=1))


@handler("test.slow", timeout=1)
async def slow(job: dict) -> None:
    await asyncio.sleep(job.get("seconds", 30))


@handler("test.slow_sync", timeout=1)
def slow_sync(job: dict) -> None:
    time.sleep(job.get("seconds", 3))


@handler("test.sleep")
def sleep(job: dict) -> dict[str, float]:
    """Sleeps payload.seconds; records its run in $KYU_TEST_RECORD (one line per run)."""
    start = time.time()
    time.sleep(job.get("seconds", 0.01))
    end = time.time()
    path = os.environ.get("KYU_TEST_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(f"{job.get('n')} {start:.6f} {end:.6f} {os.getpid()}\n")
    return {"start": start}


@handler("test.outlives_lease", timeout=30)
def outlives_lease(job: dict) -> dict[str, float]:
    """Sleeps payload.seconds under a 30 s timeout: longer than a short lease, so only
    heartbeats keep it."""
    time.sleep(job.get("seconds", 1))
    return {"slept": job.get("seconds", 1)}


@handler("test.write")
def write(job: dict, ctx: JobContext) -> None:
    """Writes one row in the completing transaction; attempt 1 hangs when asked to; sleeps
    payload.seconds first when given (to keep attempts in flight)."""
    if job.get("hang_first") and ctx.attempt == 1:
        time.sleep(600)
    time.sleep(job.get("seconds", 0))
    ctx.connection.execute(
        "insert into public.effects (job_id, attempt) values (%s, %s)", (ctx.id, ctx.attempt)
    )


@handler("test.noop")
async def noop(job: dict) -> dict[str, float]:
    return {"t": time.time()}


@handler("test.async_write", transaction=True)
async def async_write(job: dict, ctx: JobContext) -> None:
    """Async variant of test.write: the write commits with the completion."""
    await ctx.connection.execute(
        "insert into public.effects (job_id, attempt) values (%s, %s)", (ctx.id, ctx.attempt)
    )
    if job.get("fail"):
        raise RuntimeError("rolled back with the attempt")


@handler("test.service_retry")
def service_retry(job: dict) -> None:
    raise Throttled("429 from the service", retry_at=datetime.now(UTC) + timedelta(hours=2))


@handler("test.duck_permanent")
def duck_permanent(job: dict) -> None:
    raise Throttled("gone for good", permanent=True)


@handler("test.hold")
def hold(job: dict, ctx: JobContext) -> None:
    """Holds its completing transaction open for payload.seconds (connection budget tests)."""
    ctx.connection.execute("select 1")
    time.sleep(job.get("seconds", 0.2))


_leaked: list[bytes] = []


@handler("test.exit")
def exit_now(job: dict) -> None:
    """Ends its process at once, as a crashing extension or a stray os._exit would."""
    os._exit(job.get("status", 3))


@handler("test.leak")
def leak(job: dict) -> dict[str, int]:
    """Keeps payload.mb MB for good; returns the pid of the process it ran in."""
    _leaked.append(b"x" * (job.get("mb", 1) * 2**20))
    return {"pid": os.getpid()}


@handler("test.async_exit")
async def async_exit(job: dict) -> None:
    """sys.exit() in an async handler: it must end the attempt, not the worker."""
    sys.exit(job.get("status", 4))


@handler("test.sized")
async def sized(job: dict) -> dict[str, str]:
    return {"data": "x" * job.get("chars", 10)}
