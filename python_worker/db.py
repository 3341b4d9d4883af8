"""The only module that runs SQL. It calls ``queue.*`` functions and views, nothing else.

``Database`` serves the worker loop (async, ``psycopg_pool``, prepared statements, autocommit
so each call is its own short transaction). ``Listener`` holds the dedicated LISTEN connection
outside the pool. ``SyncTransactions`` lends sync handlers a connection whose transaction
completes their job. ``Admin`` serves the CLI's one-shot commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb, set_json_loads
from psycopg_pool import AsyncConnectionPool, ConnectionPool

log = logging.getLogger("python_worker.db")

CHANNEL = "kyu_jobs"
IDLE = psycopg.pq.TransactionStatus.IDLE

# Connection-level failures worth a reconnect and retry (the server went away, the pool could
# not hand out a connection in time, the network dropped).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    OSError,
)

CLAIM_COLUMNS = (
    "id, job_type, queue_name, payload, attempt, max_attempts, priority,"
    " lease_expires_at, lease_seconds, owner_id, created_at, lease_token::text, parent_id"
)
CLAIM_SQL = (
    f"select {CLAIM_COLUMNS} from queue.claim_jobs(%s, %s, %s::text[], %s::text[], %s::int)"
)
# the same, committing without waiting for the WAL flush: set_config(..., true) is SET LOCAL,
# so the setting lasts for this statement's own transaction only (safe behind any pooler)
CLAIM_ASYNC_COMMIT_SQL = (
    f"select {CLAIM_COLUMNS} from (select set_config('synchronous_commit', 'off', true)) as s,"
    " queue.claim_jobs(%s, %s, %s::text[], %s::text[], %s::int)"
)
# every call about a claimed job presents its lease token (the claim's secret)
COMPLETE_SQL = "select queue.complete_jobs(%s::bigint[], %s, %s::jsonb[], %s::int[], %s::uuid[])"
COMPLETE_ONE_SQL = "select queue.complete_job(%s, %s, %s::jsonb, %s, %s::uuid)"
FAIL_SQL = "select queue.fail_job(%s, %s, %s, %s, %s::timestamptz, %s, %s::uuid, %s)::text"
HEARTBEAT_SQL = "select queue.heartbeat(%s, %s::bigint[], %s, %s, %s::jsonb, %s::uuid[])"
RELEASE_SQL = "select queue.release_jobs(%s, %s::bigint[], %s::uuid[])"
PROGRESS_SQL = "select queue.report_progress(%s, %s, %s::jsonb, %s::uuid)"


class ClaimedJob(NamedTuple):
    """One row of ``queue.claim_jobs`` (the SQL type ``queue.claimed_job``), columns in order."""

    id: int
    job_type: str
    queue_name: str
    payload: Any
    attempt: int  # the attempt this claim runs, 1-based
    max_attempts: int
    priority: int
    lease_expires_at: datetime
    lease_seconds: int
    owner_id: UUID | None
    created_at: datetime
    lease_token: str  # the claim's secret: every later call about this attempt presents it
    parent_id: int | None


class FailedAttempt(NamedTuple):
    """The arguments of one ``queue.fail_job`` call (fenced by lease token, worker id and
    ``attempt``)."""

    job_id: int
    error: str
    retryable: bool
    retry_at: datetime | None
    attempt: int
    lease_token: str
    public_error: str | None = None


_decoder = json.JSONDecoder()


def _jsonb_loads(data: bytes | str) -> Any:
    """Payload decoding for claims: jsonb text never has surrounding whitespace, so the
    decoder's raw_decode does (4x faster than json.loads on bytes for small payloads)."""
    if not isinstance(data, str):
        data = bytes(data).decode()
    return _decoder.raw_decode(data)[0]


async def _configure_claims(conn: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(_jsonb_loads, conn)


def _conn_kwargs(prepare_threshold: int | None, role: str) -> dict[str, Any]:
    # No startup "options": transaction poolers (PgBouncer, Supavisor) refuse them. Settings a
    # call needs go in its own transaction (set_config(..., true), i.e. SET LOCAL).
    return {
        "autocommit": True,
        "prepare_threshold": prepare_threshold,
        "application_name": f"kyu-{role}",
        "connect_timeout": 5,
    }


POOL_MODES = ("auto", "transaction", "session", "direct")
SUPAVISOR_TRANSACTION_PORT = 6543


async def detect_pool_mode(url: str, mode: str) -> tuple[str, str]:
    """The pool mode to work in, and why: ``mode`` unless it is ``auto``.

    ``auto`` connects once: a server that listens on another port than the one we connected to
    (``inet_server_port()``) sits behind a proxy, which we treat as a transaction pooler, the
    safe assumption; so is port 6543 (Supavisor's transaction mode). Otherwise ``direct``.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"pool mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode, "set by KYU_POOL_MODE"
    async with await psycopg.AsyncConnection.connect(
        url, **_conn_kwargs(None, "probe")
    ) as conn:
        cur = await conn.execute("select inet_server_port()")
        row = await cur.fetchone()
        client_port = int(conn.info.port) if conn.info.port else None
    server_port = row[0] if row else None
    if client_port == SUPAVISOR_TRANSACTION_PORT:
        return "transaction", f"port {client_port} is Supavisor's transaction mode"
    if server_port is not None and client_port is not None and server_port != client_port:
        return "transaction", (f"connected to port {client_port} but the server listens on"
                               f" {server_port}: a pooler in between, assumed transaction mode")
    return "direct", "the server answers on the port we connected to"


class Budget(NamedTuple):
    """How a worker's connections are shared out; ``total`` is never exceeded."""

    listen: int  # the LISTEN connection (0 when polling)
    claims: int  # one per claim stream
    upkeep: int  # acknowledgements, heartbeats, progress, releases
    async_handlers: int  # completing transactions of async handlers (transaction=True)
    sync_handlers: int  # ctx.connection of sync handlers

    @property
    def total(self) -> int:
        return sum(self)


class Database:
    """Async access for the worker loop."""

    def __init__(
        self,
        url: str,
        budget: Budget,
        *,
        prepare_threshold: int | None = 0,
        async_claim_commit: bool = True,
    ) -> None:
        self.url = url
        self.budget = budget
        self.prepare_threshold = prepare_threshold
        # a claim lost in a server crash only means the job is still waiting (its lease-less
        # row is claimed again), so its commit need not wait for the WAL flush; set per
        # transaction inside the statement, which every pooler passes through
        self.claim_sql = CLAIM_ASYNC_COMMIT_SQL if async_claim_commit else CLAIM_SQL

        def pool(
            role: str, size: int, min_size: int, configure: Any = None, **extra: Any
        ) -> AsyncConnectionPool:
            return AsyncConnectionPool(
                url,
                kwargs=_conn_kwargs(prepare_threshold, role) | extra,
                configure=configure,
                min_size=min_size,
                max_size=size,
                open=False,
                timeout=5.0,
                reconnect_timeout=24 * 3600.0,
                name=f"kyu-{role}",
            )

        # acknowledgements, heartbeats, progress, releases: durable commits
        self.pool = pool("worker", budget.upkeep, 1)
        self.claim_pool = pool("claim", budget.claims, budget.claims, _configure_claims)
        # the completing transactions of async handlers with transaction=True
        self.tx_pool = (
            pool("transactions", budget.async_handlers, 0, autocommit=False)
            if budget.async_handlers else None
        )

    def _pools(self) -> list[AsyncConnectionPool]:
        return [p for p in (self.pool, self.claim_pool, self.tx_pool) if p is not None]

    def open_connections(self) -> int:
        """Connections the pools hold now (opened, idle or lent)."""
        return sum(p.get_stats().get("pool_size", 0) for p in self._pools())

    async def open(self) -> None:
        for p in self._pools():
            await p.open(wait=False)

    async def close(self) -> None:
        for p in self._pools():
            await p.close(timeout=2.0)

    async def claim(
        self,
        worker_id: str,
        batch_size: int,
        queues: Sequence[str] | None,
        job_types: Sequence[str] | None,
        lease_seconds: int | None,
    ) -> list[ClaimedJob]:
        async with self.claim_pool.connection() as conn:
            cur = await conn.execute(
                self.claim_sql,
                (worker_id, batch_size, queues or None, job_types or None, lease_seconds),
            )
            make = ClaimedJob._make
            return [make(row) for row in await cur.fetchall()]

    async def finish(
        self,
        worker_id: str,
        ids: list[int] | str,
        results: list[str | None] | None,
        attempts: list[int] | str,
        tokens: list[str] | str,
        failures: list[FailedAttempt],
        progress: dict[int, tuple[str, Any]] | None = None,
    ) -> tuple[int, list[str | None]]:
        """Stores pending ``progress``, completes ``ids`` in one statement and records
        ``failures``: one round trip."""
        completed = 0
        statuses: list[str | None] = []
        async with self.pool.connection() as conn:
            async with conn.pipeline():
                for job_id, (token, p) in (progress or {}).items():
                    await conn.execute(PROGRESS_SQL, (job_id, worker_id, json.dumps(p), token))
                cur_c = None
                if ids:
                    cur_c = await conn.execute(
                        COMPLETE_SQL, (ids, worker_id, results, attempts, tokens)
                    )
                fail_curs = [
                    await conn.execute(
                        FAIL_SQL, (f.job_id, worker_id, f.error, f.retryable, f.retry_at, f.attempt,
                                   f.lease_token, f.public_error)
                    )
                    for f in failures
                ]
            if cur_c is not None:
                row = await cur_c.fetchone()
                completed = row[0] if row else 0
            for cur in fail_curs:
                row = await cur.fetchone()
                statuses.append(row[0] if row else None)
        return completed, statuses

    async def heartbeat(
        self, worker_id: str, ids: list[int], tokens: list[str], host: str, pid: int,
        metadata: dict[str, Any],
    ) -> set[int]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                HEARTBEAT_SQL, (worker_id, ids, host, pid, json.dumps(metadata), tokens)
            )
            return {r[0] for r in await cur.fetchall()}

    async def release(self, worker_id: str, ids: list[int], tokens: list[str]) -> int:
        if not ids:
            return 0
        async with self.pool.connection() as conn:
            cur = await conn.execute(RELEASE_SQL, (worker_id, ids, tokens))
            row = await cur.fetchone()
            return row[0] if row else 0

    async def report_progress(self, items: Iterable[tuple[int, str, str, Any]]) -> None:
        async with self.pool.connection() as conn:
            async with conn.pipeline():
                for job_id, worker_id, token, progress in items:
                    await conn.execute(
                        PROGRESS_SQL, (job_id, worker_id, json.dumps(progress), token)
                    )

    async def ensure_job_types(self, specs: list[dict[str, Any]]) -> list[str]:
        """Registers the job types that SQL does not know yet; existing ones keep their settings."""
        if not specs:
            return []
        async with self.pool.connection() as conn:
            added = []
            for s in specs:
                timeout = s.get("timeout")
                cur = await conn.execute(
                    "select queue.ensure_job_type(job_type => %s, queue_name => %s, "
                    "priority => %s::int, max_attempts => %s::int, timeout_seconds => %s::int, "
                    "description => %s)",
                    (
                        s["job_type"],
                        s.get("queue") or "default",
                        s.get("priority") or 50,
                        s.get("max_attempts"),
                        math.ceil(timeout) if timeout else None,
                        s.get("description"),
                    ),
                )
                row = await cur.fetchone()
                if row and row[0]:
                    added.append(s["job_type"])
            return added

    # -- the completing transaction of an async handler (ctx.connection) -------------------

    async def begin_job_transaction(self, timeout: float) -> psycopg.AsyncConnection[Any]:
        """A connection for one handler's transaction; waits up to ``timeout`` for one of the
        budget's connections to come free rather than opening more."""
        if self.tx_pool is None:
            raise RuntimeError("no transaction pool: no async handler asked for transaction=True")
        return await self.tx_pool.getconn(timeout=timeout)

    async def end_job_transaction(
        self,
        conn: psycopg.AsyncConnection[Any],
        commit_job: tuple[int, str, str | None, int, str] | None,
    ) -> bool:
        """Completes the job inside ``conn``'s transaction and commits (or rolls back)."""
        ok = False
        try:
            if commit_job is not None:
                cur = await conn.execute(COMPLETE_ONE_SQL, commit_job)
                row = await cur.fetchone()
                ok = bool(row and row[0])
            if ok:
                await conn.commit()
            else:
                await conn.rollback()
        finally:
            try:
                if not conn.closed and conn.info.transaction_status != IDLE:
                    await conn.rollback()
            except CONNECTION_ERRORS:
                pass
            assert self.tx_pool is not None
            await self.tx_pool.putconn(conn)
        return ok


class Listener:
    """The dedicated LISTEN connection (autocommit, outside the pool)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def connect(self) -> None:
        self.conn = await psycopg.AsyncConnection.connect(
            self.url, **_conn_kwargs(None, "listen")
        )
        await self.conn.execute(f"listen {CHANNEL}")

    async def notifications(self, timeout: float) -> AsyncIterator[str]:
        """Queue names notified within ``timeout`` seconds (stops after the first)."""
        assert self.conn is not None
        async for n in self.conn.notifies(timeout=timeout, stop_after=1):
            yield n.payload

    async def close(self) -> None:
        if self.conn is not None:
            try:
                await self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self.conn = None


class SyncTransactions:
    """Sync connections for sync handlers that use ``ctx.connection`` (opened on first use)."""

    def __init__(self, url: str, size: int, prepare_threshold: int | None) -> None:
        self.url = url
        self.size = size
        self.prepare_threshold = prepare_threshold
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                kwargs = _conn_kwargs(self.prepare_threshold, "handlers") | {"autocommit": False}
                self._pool = ConnectionPool(
                    self.url, kwargs=kwargs, min_size=0, max_size=self.size, open=True,
                    timeout=30.0, reconnect_timeout=24 * 3600.0, name="kyu-handlers",
                )
            return self._pool

    def open_connections(self) -> int:
        pool = self._pool
        return pool.get_stats().get("pool_size", 0) if pool is not None else 0

    def begin(self, timeout: float) -> psycopg.Connection[Any]:
        """A connection for one handler's transaction; waits up to ``timeout`` for one of the
        budget's connections to come free rather than opening more."""
        if self.size < 1:
            raise RuntimeError("no connection for ctx.connection: the worker's connection budget"
                               " leaves none for sync handlers (raise KYU_MAX_CONNECTIONS)")
        return self._get_pool().getconn(timeout=timeout)

    def end(
        self, conn: psycopg.Connection[Any],
        commit_job: tuple[int, str, str | None, int, str] | None,
    ) -> bool:
        ok = False
        try:
            if commit_job is not None:
                row = conn.execute(COMPLETE_ONE_SQL, commit_job).fetchone()
                ok = bool(row and row[0])
            if ok:
                conn.commit()
            else:
                conn.rollback()
        except CONNECTION_ERRORS:
            ok = False
            raise
        finally:
            try:
                if not conn.closed and conn.info.transaction_status != IDLE:
                    conn.rollback()
            except CONNECTION_ERRORS:
                pass
            self._give_back(conn)
        return ok

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        self._get_pool().putconn(conn)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close(timeout=2.0)
                self._pool = None


class ChildTransactions(SyncTransactions):
    """``ctx.connection`` in a handler process (``--isolation process``): a connection opened
    when the handler asks and closed with its transaction, holding one of the budget's
    ``slots`` (a semaphore the worker's handler processes share) meanwhile."""

    def __init__(self, url: str, prepare_threshold: int | None, slots: Any) -> None:
        super().__init__(url, 1, prepare_threshold)
        self.slots = slots

    def begin(self, timeout: float) -> psycopg.Connection[Any]:
        if not self.slots.acquire(timeout=timeout):
            raise TimeoutError(f"no connection of the worker's budget came free in {timeout:g}s")
        try:
            kwargs = _conn_kwargs(self.prepare_threshold, "handlers") | {"autocommit": False}
            return psycopg.connect(self.url, **kwargs)
        except BaseException:
            self.slots.release()
            raise

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.close()
        finally:
            self.slots.release()


class Admin:
    """One-shot operator commands (CLI): status, dead letter, enqueue, and the verbs below."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)

    def queue_stats(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute("select * from queue.queue_stats order by queue_name").fetchall()

    def dead_letter(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute(
                "select id, job_type, queue_name, attempt, max_attempts, last_error, errors,"
                " payload, died_at from queue.dead_letter order by died_at desc, id desc limit %s",
                (limit,),
            ).fetchall()

    def retry(self, job_id: int) -> int:
        with self._connect() as conn:
            row = conn.execute("select queue.retry_job(%s) as id", (job_id,)).fetchone()
            return int(row["id"]) if row else job_id

    def retry_all(self) -> tuple[list[int], list[tuple[int, str]]]:
        """Replays every dead job, one transaction each; returns (retried, [(id, error)])."""
        retried: list[int] = []
        failed: list[tuple[int, str]] = []
        with self._connect() as conn:
            ids = [r["id"] for r in conn.execute("select id from queue.dead_letter order by id")]
            for job_id in ids:
                try:
                    conn.execute("select queue.retry_job(%s)", (job_id,))
                    retried.append(job_id)
                except psycopg.DatabaseError as exc:
                    failed.append((job_id, str(exc).strip()))
        return retried, failed

    def enqueue(
        self,
        job_type: str,
        payload: Any,
        *,
        queue: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        unique_key: str | None = None,
        max_attempts: int | None = None,
    ) -> int:
        with self._connect() as conn:
            row = conn.execute(
                "select queue.enqueue_job(job_type => %s, payload => %s, queue_name => %s,"
                " priority => %s::int, run_at => %s::timestamptz, max_attempts => %s::int,"
                " unique_key => %s) as id",
                (job_type, Jsonb(payload), queue, priority, run_at, max_attempts, unique_key),
            ).fetchone()
            assert row is not None
            return int(row["id"])

    def get_job(self, job_id: int) -> dict[str, Any]:
        with self._connect() as conn:
            row = conn.execute("select * from queue.get_job(%s)", (job_id,)).fetchone()
            assert row is not None
            return row

    def fail_jobs_of_worker(self, worker_id: str, error: str) -> list[int]:
        """Fails every job ``worker_id`` still runs with ``error`` (retryable: SQL decides
        retry or dead letter), as the worker that died would have; returns their ids."""
        with self._connect() as conn:
            rows = conn.execute("select id from queue.fail_worker_jobs(%s, %s) as id",
                                (worker_id, error)).fetchall()
        return [r["id"] for r in rows]

    # ---- the operator's verbs (cli.py: pause, resume, cancel, retry, discard, show, list,
    # workers, health, schedules, queues, metrics); each one queue.* call ----

    def pause(self, queue_name: str) -> None:
        with self._connect() as conn:
            conn.execute("select queue.pause_queue(%s)", (queue_name,))

    def resume(self, queue_name: str) -> None:
        with self._connect() as conn:
            conn.execute("select queue.resume_queue(%s)", (queue_name,))

    def cancel(self, job_id: int) -> bool:
        with self._connect() as conn:
            row = conn.execute("select queue.cancel_job(%s) as ok", (job_id,)).fetchone()
            return bool(row and row["ok"])

    def retry_many(self, job_ids: Iterable[int]) -> tuple[list[int], list[tuple[int, str]]]:
        """Replays each job in its own transaction; returns (retried, [(id, error)])."""
        retried: list[int] = []
        failed: list[tuple[int, str]] = []
        with self._connect() as conn:
            for job_id in job_ids:
                try:
                    conn.execute("select queue.retry_job(%s)", (job_id,))
                    retried.append(job_id)
                except psycopg.DatabaseError as exc:
                    failed.append((job_id, _message(exc)))
        return retried, failed

    def discard_dead(self, job_ids: Sequence[int]) -> list[int]:
        """Deletes dead jobs for good; returns the ids that were in the dead letter."""
        with self._connect() as conn:
            rows = conn.execute("select d as id from queue.discard_dead_jobs(%s::bigint[]) as d",
                                (list(job_ids),)).fetchall()
            return [int(r["id"]) for r in rows]

    def search_jobs(
        self,
        *,
        status: str | None = None,
        job_type: str | None = None,
        queue_name: str | None = None,
        owner_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        payload_contains: Any = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute(
                "select * from queue.search_jobs(status => %s::queue.job_status,"
                " job_type => %s, queue_name => %s, owner_id => %s::uuid,"
                " created_after => %s::timestamptz, created_before => %s::timestamptz,"
                " payload_contains => %s::jsonb, before_id => %s::bigint, lim => %s::int)",
                (status, job_type, queue_name, owner_id, created_after, created_before,
                 None if payload_contains is None else Jsonb(payload_contains), before_id,
                 limit),
            ).fetchall()

    def workers(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute(
                "select * from queue.workers order by alive desc, last_heartbeat desc nulls last,"
                " worker_id"
            ).fetchall()

    def health(self, max_wait: str | None = None, max_failure_rate: float | None = None,
               worker_timeout: str | None = None) -> dict[str, Any]:
        with self._connect() as conn:
            row = conn.execute(
                "select queue.health(max_wait => coalesce(%s::interval, '5 minutes'),"
                " max_failure_rate => coalesce(%s::numeric, 0.2),"
                " worker_timeout => coalesce(%s::interval, '1 minute')) as h",
                (max_wait, max_failure_rate, worker_timeout),
            ).fetchone()
            assert row is not None
            return dict(row["h"])

    def schedules(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute("select * from queue.schedules order by kind, name").fetchall()

    def queue_policies(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute(
                "select * from queue.queue_policies order by queue_name").fetchall()

    def owner_stats(self, queue_name: str | None, limit: int) -> list[dict[str, Any]]:
        """The top owners by live jobs (``queue.owner_stats``), one queue or all."""
        with self._connect() as conn:
            return conn.execute(
                "select * from queue.owner_stats where %s::text is null or queue_name = %s"
                " order by live desc, oldest_waiting_age desc nulls last, queue_name, owner_id"
                " limit %s", (queue_name, queue_name, limit)).fetchall()

    def circuit_breakers(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute(
                "select * from queue.circuit_breaker_states order by service").fetchall()


def _message(exc: psycopg.Error) -> str:
    """The server's message (without CONTEXT lines), as an operator reads it."""
    return exc.diag.message_primary or str(exc).strip()


def run_sync(coro: Any) -> Any:
    """Small helper for the CLI: run one coroutine."""
    return asyncio.run(coro)
