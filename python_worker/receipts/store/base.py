"""The shared pieces of the receipt handlers' SQL: row helpers, enqueueing the next step and
circuit-breaker reports, always on the connection handed in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from python_worker import JobContext

Row = dict[str, Any]


Params = Mapping[str, Any] | tuple[Any, ...]


def fetch_one(conn: Connection[Any], sql: str, params: Params) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def fetch_all(conn: Connection[Any], sql: str, params: Params) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def enqueue(
    conn: Connection[Any],
    job_type: str,
    payload: Mapping[str, Any],
    *,
    unique_key: str,
    owner_id: UUID | None = None,
    parent: JobContext | None = None,
) -> int:
    """Enqueue the next step in the current transaction; a live job holding unique_key wins.

    From a handler, ``parent`` is its ``ctx``: the step is a child of the job being handled
    (``queue.enqueue_child_job``, proved by its lease token), owned by that job's owner, so
    ``owner_id`` is not used; the job type must be in the parent type's ``chains_to``. Without a
    parent (intake, the demo) it is a root job owned by ``owner_id``.
    """
    if parent is not None:
        row = fetch_one(
            conn,
            "select queue.enqueue_child_job(parent_id => %s, lease_token => %s::uuid,"
            " job_type => %s, payload => %s, unique_key => %s) as id",
            (parent.id, parent.lease_token, job_type, Jsonb(dict(payload)), unique_key),
        )
        assert row is not None
        return int(row["id"])
    row = fetch_one(
        conn,
        "select queue.enqueue_job(job_type => %s, payload => %s, unique_key => %s, owner_id => %s)"
        " as id",
        (job_type, Jsonb(dict(payload)), unique_key, owner_id),
    )
    assert row is not None
    return int(row["id"])


def report_service(conn: Connection[Any], service: str, ok: bool, error: str | None = None) -> None:
    """A call's outcome for the service's circuit breaker (queue.report_service)."""
    conn.execute("select queue.report_service(%s, %s, %s)", (service, ok, error))
