"""Matching: bank/card lines and the scored matches of a receipt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.types.json import Jsonb

from .base import Row, fetch_all, fetch_one

# --- matching -----------------------------------------------------------------------------


def candidate_transactions(
    conn: Connection[Any], owner_id: UUID, total: int, issue_date: date, days: int = 60
) -> list[Row]:
    """This owner's expense lines of exactly ``total`` yen within ``days`` of the date."""
    return fetch_all(
        conn,
        """
        select t.* from receipts.transactions as t
        where t.owner_id = %(owner_id)s
            and t.amount_yen = %(total)s
            and t.entry_side = 'expense'
            and t.txn_date between %(day)s::date - %(days)s and %(day)s::date + %(days)s
        order by t.id
        """,
        {"owner_id": owner_id, "total": total, "day": issue_date, "days": days},
    )


def matches_of_receipt(conn: Connection[Any], receipt_id: int) -> list[Row]:
    return fetch_all(
        conn, "select * from receipts.matches where receipt_id = %s order by id", (receipt_id,)
    )


def settled_elsewhere(
    conn: Connection[Any], receipt_id: int, transaction_ids: list[int]
) -> set[int]:
    """Which of the transactions are already auto/confirmed matches of other receipts."""
    rows = fetch_all(
        conn,
        """
        select m.transaction_id from receipts.matches as m
        where m.transaction_id = any(%s) and m.receipt_id <> %s
            and m.status in ('auto', 'confirmed')
        """,
        (transaction_ids, receipt_id),
    )
    return {int(r["transaction_id"]) for r in rows}


def replace_machine_matches(
    conn: Connection[Any], owner_id: UUID, receipt_id: int, rows: list[Row]
) -> list[Row]:
    """Replace this receipt's auto/suggested matches by ``rows`` (status, transaction_id,
    score, components, rank); confirmed and rejected rows stay. An auto row that loses a race
    for its transaction (the one-to-one index) is stored as a suggestion. Returns the rows."""
    conn.execute(
        "delete from receipts.matches where receipt_id = %s and status in ('auto', 'suggested')",
        (receipt_id,),
    )
    stored: list[Row] = []
    for r in rows:
        params = {
            "owner_id": owner_id,
            "receipt_id": receipt_id,
            "transaction_id": r["transaction_id"],
            "score": r["score"],
            "components": Jsonb(r["components"]),
            "rank": r["rank"],
        }
        status = r["status"]
        row = fetch_one(
            conn,
            """
            insert into receipts.matches
                (owner_id, receipt_id, transaction_id, status, score, components, rank)
            values (%(owner_id)s, %(receipt_id)s, %(transaction_id)s, %(status)s, %(score)s,
                    %(components)s, %(rank)s)
            on conflict do nothing
            returning *
            """,
            params | {"status": status},
        )
        if row is None and status == "auto":
            row = fetch_one(
                conn,
                """
                insert into receipts.matches
                    (owner_id, receipt_id, transaction_id, status, score, components, rank)
                values (%(owner_id)s, %(receipt_id)s, %(transaction_id)s, 'suggested', %(score)s,
                        %(components)s, %(rank)s)
                on conflict do nothing
                returning *
                """,
                params,
            )
        if row is not None:
            stored.append(row)
    return stored


def import_transactions(
    conn: Connection[Any], owner_id: UUID, rows: Iterable[Mapping[str, Any]]
) -> int:
    """Insert statement lines once per (source, external_id); returns how many were new."""
    count = 0
    for r in rows:
        cur = conn.execute(
            """
            insert into receipts.transactions
                (owner_id, source, external_id, account_kind, account_name, txn_date, amount_yen,
                 entry_side, description)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict on constraint transactions_external_once do nothing
            """,
            (
                owner_id, r["source"], r["external_id"], r["account_kind"],
                r.get("account_name"), r["txn_date"], r["amount_yen"],
                r.get("entry_side", "expense"), r.get("description", ""),
            ),
        )
        count += cur.rowcount
    return count
