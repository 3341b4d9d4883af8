"""Intake and reading: mail messages, files by content, receipts and their extracted fields,
vendor aliases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.types.json import Jsonb

from .base import Row, fetch_all, fetch_one

# --- intake -------------------------------------------------------------------------------


# Which message owns a receipt must not depend on which intake job ran first (a duplicate mail
# can finish intake before the original). A bookkeeper expects the first mail sent: the earliest
# Date: header wins, then the Message-ID, then the source and its key in sort order; a message
# without a date or id sorts after those that have one. Both orders and concurrent intakes end
# the same (tests/handlers/test_process_email_receipt.py).
def _owner_order(m: str) -> str:
    """The owner rule's sort key over the email_messages alias (or parameter prefix) ``m``."""
    return (f"({m}sent_at is null, coalesce({m}sent_at, 'epoch'), {m}message_id is null,"
            f" coalesce({m}message_id, ''), {m}source, {m}source_key)")


def insert_email_message(conn: Connection[Any], **fields: Any) -> tuple[Row, bool]:
    """(row, created). An existing row with the same source key or raw bytes is returned.

    The same bytes under another key (a message saved twice) stay one row; it keeps the key that
    comes first by the owner rule, whichever intake ran first."""
    created = fetch_one(
        conn,
        """
        insert into receipts.email_messages
            (owner_id, source, source_key, message_id, raw_sha256, raw_key, from_addr, from_name,
             subject, sent_at)
        values (%(owner_id)s, %(source)s, %(source_key)s, %(message_id)s, %(raw_sha256)s,
                %(raw_key)s, %(from_addr)s, %(from_name)s, %(subject)s, %(sent_at)s)
        on conflict do nothing
        returning *
        """,
        {"from_name": None, **fields},
    )
    if created is not None:
        return created, True
    existing = fetch_one(
        conn,
        """
        select * from receipts.email_messages as m
        where m.owner_id = %(owner_id)s
            and ((m.source = %(source)s and m.source_key = %(source_key)s)
                or m.raw_sha256 = %(raw_sha256)s)
        order by (m.source = %(source)s and m.source_key = %(source_key)s) desc, m.id
        limit 1
        """,
        fields,
    )
    assert existing is not None
    same_key = (existing["source"], existing["source_key"]) == (fields["source"],
                                                              fields["source_key"])
    if not same_key:
        # same bytes: date and id are equal, so the key decides; the row lock orders racers
        moved = fetch_one(
            conn,
            """
            update receipts.email_messages as m
            set source = %(source)s, source_key = %(source_key)s, raw_key = %(raw_key)s
            where m.id = %(id)s
                and m.raw_sha256 = %(raw_sha256)s
                and (%(source)s, %(source_key)s) < (m.source, m.source_key)
            returning *
            """,
            dict(fields, id=existing["id"]),
        )
        existing = moved or existing
    return existing, False


def set_receipt_count(conn: Connection[Any], email_message_id: int, count: int) -> None:
    conn.execute(
        "update receipts.email_messages set receipt_count = %s where id = %s",
        (count, email_message_id),
    )


def upsert_file(conn: Connection[Any], **fields: Any) -> int:
    """The file id for this owner's content (created once per sha256)."""
    row = fetch_one(
        conn,
        """
        insert into receipts.files
            (owner_id, sha256, filename, content_type, size_bytes, blob_key)
        values (%(owner_id)s, %(sha256)s, %(filename)s, %(content_type)s, %(size_bytes)s,
                %(blob_key)s)
        on conflict on constraint files_content_once do nothing
        returning id
        """,
        fields,
    )
    if row is None:
        # a second statement: one that waited for a racing intake's commit cannot see its row
        # in its own snapshot (a "select ... union all" in the same statement found nothing)
        row = fetch_one(
            conn,
            "select f.id from receipts.files as f"
            " where f.owner_id = %(owner_id)s and f.sha256 = %(sha256)s",
            fields,
        )
    assert row is not None
    return int(row["id"])


def insert_receipt(
    conn: Connection[Any], owner_id: UUID, file_id: int, email_message_id: int
) -> tuple[int, bool]:
    """(receipt id, created): one receipt per file. When the file is already a receipt, it moves
    to this message if this message comes first by the owner rule."""
    row = fetch_one(
        conn,
        """
        insert into receipts.receipts (owner_id, file_id, email_message_id)
        values (%s, %s, %s)
        on conflict on constraint receipts_one_per_file do nothing
        returning id
        """,
        (owner_id, file_id, email_message_id),
    )
    if row is not None:
        return int(row["id"]), True
    # the insert waited for a racing intake to commit, so its message is visible here
    conn.execute(
        f"""
        update receipts.receipts as r
        set email_message_id = n.id, updated_at = now()
        from receipts.email_messages as n, receipts.email_messages as o
        where r.file_id = %s
            and n.id = %s
            and o.id = r.email_message_id
            and {_owner_order("n.")} < {_owner_order("o.")}
        """,
        (file_id, email_message_id),
    )
    existing = fetch_one(conn, "select id from receipts.receipts where file_id = %s", (file_id,))
    assert existing is not None
    return int(existing["id"]), False


def receipts_of_message(conn: Connection[Any], email_message_id: int) -> list[int]:
    rows = fetch_all(
        conn,
        "select id from receipts.receipts where email_message_id = %s order by id",
        (email_message_id,),
    )
    return [int(r["id"]) for r in rows]


# --- receipts -----------------------------------------------------------------------------


def load_receipt(conn: Connection[Any], receipt_id: int, *, lock: bool = False) -> Row | None:
    """The receipt joined with its file (locked for update when asked)."""
    return fetch_one(
        conn,
        f"""
        select r.*, f.sha256, f.filename, f.content_type, f.blob_key, f.storage_path,
            f.storage_backend, f.size_bytes, m.from_addr, m.from_name
        from receipts.receipts as r
        inner join receipts.files as f on f.id = r.file_id
        left join receipts.email_messages as m on m.id = r.email_message_id
        where r.id = %s
        {"for update of r" if lock else ""}
        """,
        (receipt_id,),
    )


def save_extraction(conn: Connection[Any], receipt_id: int, **fields: Any) -> None:
    fields = {"due_date": None, **fields, "receipt_id": receipt_id, "tax": Jsonb(fields["tax"])}
    conn.execute(
        """
        update receipts.receipts
        set status = %(status)s,
            text_source = %(text_source)s,
            ocr_text = %(ocr_text)s,
            confidence = %(confidence)s,
            engine_version = %(engine_version)s,
            vendor = %(vendor)s,
            issue_date = %(issue_date)s,
            due_date = %(due_date)s,
            total_yen = %(total_yen)s,
            tax = %(tax)s,
            registration_number = %(registration_number)s,
            registration_valid = %(registration_valid)s,
            review_reasons = %(review_reasons)s,
            extracted_at = now(),
            updated_at = now()
        where id = %(receipt_id)s and status <> 'confirmed'
        """,
        fields,
    )


def vendor_aliases(conn: Connection[Any], owner_id: UUID) -> dict[str, list[str]]:
    """{vendor: [aliases]} of one owner, the shape receipts.parse and receipts.matching take."""
    rows = fetch_all(
        conn,
        "select vendor, alias from receipts.vendor_aliases where owner_id = %s"
        " order by vendor, alias",
        (owner_id,),
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["vendor"], []).append(r["alias"])
    return out


def add_vendor_aliases(
    conn: Connection[Any], owner_id: UUID, aliases: Mapping[str, Iterable[str]]
) -> int:
    count = 0
    for vendor, names in aliases.items():
        for alias in names:
            cur = conn.execute(
                """
                insert into receipts.vendor_aliases (owner_id, alias, vendor)
                values (%s, %s, %s)
                on conflict on constraint vendor_aliases_alias_once do nothing
                """,
                (owner_id, alias, vendor),
            )
            count += cur.rowcount
    return count
