"""The console's only SQL: ``queue.*`` views and functions, never a table.

Async (``psycopg_pool``) so a slow page never holds the server; autocommit, and no prepared
statements, so the same code works through Supavisor's transaction mode or PgBouncer. Every
method is one call; actions return what happened per job so a page can say it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

Row = dict[str, Any]


@dataclass(frozen=True)
class JobFilter:
    """The jobs page's filters, as ``queue.search_jobs`` takes them."""

    status: str | None = None
    job_type: str | None = None
    queue_name: str | None = None
    owner_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    payload_contains: dict[str, Any] | None = None


@dataclass
class Outcome:
    """What a bulk action did: ids done, and (id, reason) for each one refused."""

    done: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def message(exc: psycopg.Error) -> str:
    """The server's own words (it names the bad value), without the CONTEXT lines."""
    return exc.diag.message_primary or str(exc).strip()


class ConsoleQueries:
    def __init__(self, url: str, max_size: int = 4) -> None:
        self.pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": None,
                    "application_name": "kyu-console", "connect_timeout": 5},
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def _all(self, query: str, params: Any = None) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def _one(self, query: str, params: Any = None) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    # ---- reads ----

    async def queue_stats(self) -> list[Row]:
        return await self._all("select * from queue.queue_stats order by queue_name")

    async def health(self) -> dict[str, Any]:
        row = await self._one("select queue.health() as h")
        return dict(row["h"]) if row else {}

    async def stats_history(self, since: str) -> list[Row]:
        return await self._all("select * from queue.get_stats_history(since => %s::interval)",
                               (since,))

    async def search_jobs(self, f: JobFilter, before_id: int | None, limit: int) -> list[Row]:
        return await self._all(
            "select * from queue.search_jobs(status => %s::queue.job_status, job_type => %s,"
            " queue_name => %s, owner_id => %s::uuid, created_after => %s::timestamptz,"
            " created_before => %s::timestamptz, payload_contains => %s::jsonb,"
            " before_id => %s::bigint, lim => %s::int)",
            (f.status, f.job_type, f.queue_name, f.owner_id, f.created_after, f.created_before,
             None if f.payload_contains is None else Jsonb(f.payload_contains), before_id,
             limit),
        )

    async def get_job(self, job_id: int) -> Row:
        row = await self._one("select * from queue.get_job(%s)", (job_id,))
        assert row is not None  # get_job raises P0002 for an unknown id
        return row

    async def queue_policies(self) -> list[Row]:
        return await self._all("select * from queue.queue_policies order by queue_name")

    async def workers(self) -> list[Row]:
        return await self._all(
            "select * from queue.workers"
            " order by alive desc, last_heartbeat desc nulls last, worker_id")

    async def schedules(self) -> list[Row]:
        return await self._all("select * from queue.schedules order by kind desc, name")

    async def circuit_breakers(self) -> list[Row]:
        return await self._all("select * from queue.circuit_breaker_states order by service")

    # ---- actions ----

    async def pause(self, queue_name: str) -> None:
        await self._one("select queue.pause_queue(%s)", (queue_name,))

    async def resume(self, queue_name: str) -> None:
        await self._one("select queue.resume_queue(%s)", (queue_name,))

    async def cancel(self, job_ids: list[int]) -> Outcome:
        return await self._each("select queue.cancel_job(%s)", job_ids)

    async def retry(self, job_ids: list[int]) -> Outcome:
        return await self._each("select queue.retry_job(%s)", job_ids)

    async def discard_dead(self, job_ids: list[int]) -> Outcome:
        rows = await self._all("select d as id from queue.discard_dead_jobs(%s::bigint[]) as d",
                               (job_ids,))
        done = [int(r["id"]) for r in rows]
        return Outcome(done, [(i, f"job {i} is not in the dead letter")
                              for i in job_ids if i not in done])

    async def _each(self, query: str, job_ids: list[int]) -> Outcome:
        """One transaction per job: one refused job does not undo the others."""
        out = Outcome()
        async with self.pool.connection() as conn:
            for job_id in job_ids:
                try:
                    await conn.execute(query, (job_id,))
                    out.done.append(job_id)
                except psycopg.DatabaseError as exc:
                    out.failed.append((job_id, message(exc)))
        return out
