"""After reading: where a receipt was filed, its freee outbox rows and the monthly reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.types.json import Jsonb

from .base import Row, fetch_all, fetch_one

# --- filing -------------------------------------------------------------------------------


def set_filed(
    conn: Connection[Any], file_id: int, path: str, backend: str, external_id: str | None
) -> None:
    conn.execute(
        """
        update receipts.files
        set storage_path = %s, storage_backend = %s, external_id = %s, filed_at = now()
        where id = %s
        """,
        (path, backend, external_id, file_id),
    )


# --- freee --------------------------------------------------------------------------------


def summary(conn: Connection[Any], receipt_id: int) -> Row | None:
    """The receipt's row of receipts.receipt_summary (fields, filed path, match, freee)."""
    return fetch_one(conn, "select * from receipts.receipt_summary where receipt_id = %s",
                     (receipt_id,))


def upsert_outbox(
    conn: Connection[Any], owner_id: UUID, receipt_id: int, kind: str, request: Mapping[str, Any]
) -> Row:
    """The outbox row of (receipt, kind); a pending request is refreshed, a sent one kept."""
    row = fetch_one(
        conn,
        """
        insert into receipts.freee_outbox as o (owner_id, receipt_id, kind, request)
        values (%s, %s, %s, %s)
        on conflict on constraint freee_outbox_once do update
        set request = excluded.request, updated_at = now()
        where o.state = 'pending' and o.request is distinct from excluded.request
        returning *
        """,
        (owner_id, receipt_id, kind, Jsonb(dict(request))),
    )
    if row is None:
        row = fetch_one(
            conn,
            "select * from receipts.freee_outbox where receipt_id = %s and kind = %s",
            (receipt_id, kind),
        )
    assert row is not None
    return row


def mark_outbox_sent(
    conn: Connection[Any], outbox_id: int, freee_id: int, request_id: str | None, response: Any
) -> None:
    conn.execute(
        """
        update receipts.freee_outbox
        set state = 'sent', freee_id = %s, request_id = %s, response = %s, sent_at = now(),
            attempts = attempts + 1, last_error = null, updated_at = now()
        where id = %s
        """,
        (freee_id, request_id, Jsonb(response), outbox_id),
    )


def mark_outbox_failed(conn: Connection[Any], outbox_id: int, error: str, permanent: bool) -> None:
    conn.execute(
        """
        update receipts.freee_outbox
        set state = case when %s then 'failed' else state end,
            attempts = attempts + 1, last_error = %s, updated_at = now()
        where id = %s
        """,
        (permanent, error[:2000], outbox_id),
    )


# --- reports ------------------------------------------------------------------------------


def month_rows(conn: Connection[Any], owner_id: UUID, month: date) -> list[Row]:
    """The month's receipts (by issue_date, a Japanese calendar date) from receipt_summary."""
    return fetch_all(
        conn,
        """
        select s.* from receipts.receipt_summary as s
        where s.owner_id = %s
            and s.issue_date >= %s::date
            and s.issue_date < (%s::date + interval '1 month')
        order by s.issue_date, s.vendor, s.receipt_id
        """,
        (owner_id, month, month),
    )


def upsert_report(
    conn: Connection[Any],
    owner_id: UUID,
    month: date,
    paths: Mapping[str, str],
    sha256: Mapping[str, str],
    totals: Mapping[str, Any],
    receipt_count: int,
) -> int:
    row = fetch_one(
        conn,
        """
        insert into receipts.reports as r (owner_id, month, paths, sha256, totals, receipt_count)
        values (%s, %s, %s, %s, %s, %s)
        on conflict on constraint reports_month_once do update
        set paths = excluded.paths, sha256 = excluded.sha256, totals = excluded.totals,
            receipt_count = excluded.receipt_count, generated_at = now()
        returning id
        """,
        (
            owner_id, month, Jsonb(dict(paths)), Jsonb(dict(sha256)),
            Jsonb(json.loads(json.dumps(totals, default=str))), receipt_count,
        ),
    )
    assert row is not None
    return int(row["id"])
