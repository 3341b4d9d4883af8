"""Review: what waits for a human, and the human's decisions (through the SQL functions
``receipts.review_match`` and ``receipts.review_receipt``, the same ones RPC clients call)."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from psycopg import Connection

from .base import Row, fetch_all, fetch_one


def receipts_to_review(conn: Connection[Any], owner_id: UUID) -> list[Row]:
    """Receipts in needs_review, oldest first, with their file name and reasons."""
    return fetch_all(
        conn,
        """
        select s.receipt_id, s.vendor, s.issue_date, s.total_yen, s.registration_number,
            s.review_reasons, s.filename, s.text_source
        from receipts.receipt_summary as s
        where s.owner_id = %s and s.status = 'needs_review'
        order by s.receipt_id
        """,
        (owner_id,),
    )


def suggested_matches(conn: Connection[Any], owner_id: UUID) -> list[Row]:
    """Suggested matches of receipts that have no settled (auto/confirmed) match."""
    return fetch_all(
        conn,
        """
        select m.id as match_id, m.receipt_id, m.rank, m.score, m.components,
            r.vendor, r.issue_date, r.total_yen,
            t.external_id, t.txn_date, t.description, t.account_kind, t.source
        from receipts.matches as m
        inner join receipts.receipts as r on r.id = m.receipt_id
        inner join receipts.transactions as t on t.id = m.transaction_id
        where m.owner_id = %s and m.status = 'suggested'
            and not exists (
                select 1 from receipts.matches as s
                where s.receipt_id = m.receipt_id and s.status in ('auto', 'confirmed'))
        order by m.receipt_id, m.rank
        """,
        (owner_id,),
    )


def decide_match(conn: Connection[Any], match_id: int, decision: str) -> Row:
    row = fetch_one(conn, "select * from receipts.review_match(%s, %s)", (match_id, decision))
    assert row is not None  # the function returns the row or raises
    return row


def correct_receipt(conn: Connection[Any], receipt_id: int, *, vendor: str | None,
                    issue_date: date | None, total_yen: int | None,
                    registration_number: str | None) -> Row:
    """A human's fields; what is not given keeps its stored value. Raises when the receipt
    still lacks a date or total (review_receipt needs both)."""
    row = fetch_one(
        conn,
        """
        select * from receipts.review_receipt(
            %(id)s,
            coalesce(%(vendor)s, (select r.vendor from receipts.receipts as r where r.id = %(id)s)),
            coalesce(%(day)s::date,
                     (select r.issue_date from receipts.receipts as r where r.id = %(id)s)),
            coalesce(%(total)s::bigint,
                     (select r.total_yen from receipts.receipts as r where r.id = %(id)s)),
            %(reg)s)
        """,
        {"id": receipt_id, "vendor": vendor, "day": issue_date, "total": total_yen,
         "reg": registration_number},
    )
    assert row is not None
    return row


def unsettled_receipts(conn: Connection[Any], owner_id: UUID) -> list[int]:
    """Readable receipts (total and date known) with no auto or confirmed match: worth
    matching again after new statement lines arrive."""
    rows = fetch_all(
        conn,
        """
        select r.id from receipts.receipts as r
        where r.owner_id = %s and r.status in ('extracted', 'confirmed')
            and r.total_yen is not null and r.issue_date is not null
            and not exists (
                select 1 from receipts.matches as m
                where m.receipt_id = r.id and m.status in ('auto', 'confirmed'))
        order by r.id
        """,
        (owner_id,),
    )
    return [int(r["id"]) for r in rows]
