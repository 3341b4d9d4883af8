"""`make demo-large`: the pipeline on a large generated set (``make_samples.py --large N``) as
a new user: its own owner id, no vendor aliases, the bank and card lines imported from the
generator's cp932 bank export and card export through the same code as
``import-transactions``. Prints accuracy by field and kind of document, and matching.

    DATABASE_URL=... python -m python_worker.receipts.demo --large 200 [--seed 7] [--fresh]
    ... --large 200 --reparse    # re-read the stored text with the current parse code only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from . import accuracy, mail_source, store
from .demo import generate_samples, say, start_worker, stop_worker, wait_for_drain
from .domain import statements
from .domain.parse import parse_receipt
from .jobs.process_ocr import tax_json
from .settings import get_settings

OWNED = ("matches", "freee_outbox", "reports", "vendor_aliases", "receipts", "files",
         "email_messages", "transactions")


def large_owner(seed: int) -> UUID:
    """One owner per seed, apart from the demo's single-tenant owner."""
    return UUID(int=0x6B79_0000_0000 + seed)


def forget(conn: psycopg.Connection[Any], owner: UUID) -> None:
    for table in OWNED:
        conn.execute(f"delete from receipts.{table} where owner_id = %s", (owner,))


def load_statements(conn: psycopg.Connection[Any], samples: Path, owner: UUID) -> tuple[int, int]:
    rows = []
    for file, profile, account in (("bank-jp.csv", "bank-jp", "large-bank"),
                                   ("card-jp.csv", "card-jp", "large-card")):
        for ln in statements.read_statement((samples / file).read_bytes(),
                                            statements.load_profile(profile), account=account):
            rows.append({"source": f"csv:{account}", "external_id": ln.external_id,
                         "account_kind": ln.account_kind, "account_name": account,
                         "txn_date": ln.txn_date, "amount_yen": ln.amount_yen,
                         "entry_side": ln.entry_side, "description": ln.description})
    return len(rows), store.import_transactions(conn, owner, rows)


def rows_by_eml(conn: psycopg.Connection[Any], owner: UUID) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            select s.*, m.source_key, m.from_name, r.ocr_text, r.confidence as ocr_confidence
            from receipts.receipt_summary as s
            inner join receipts.email_messages as m on m.id = s.email_message_id
            inner join receipts.receipts as r on r.id = s.receipt_id
            where s.owner_id = %s
            """,
            (owner,),
        )
        return {Path(r["source_key"]).name: r for r in cur.fetchall()}


def report(truth: dict[str, Any], rows: dict[str, dict[str, Any]], reparse: bool,
           verbose: bool) -> None:
    tally = accuracy.Tally()
    matches = accuracy.MatchTally()
    for t in truth["receipts"]:
        row = rows.get(t["eml"])
        got = row
        if reparse and row is not None and row["ocr_text"]:
            parsed = parse_receipt(row["ocr_text"], sender=row["from_name"],
                                   ocr_confidence=float(row["ocr_confidence"] or 1.0))
            got = {"vendor": parsed.vendor, "issue_date": parsed.issue_date,
                   "total_yen": parsed.total, "tax": tax_json(parsed),
                   "registration_number": parsed.registration_number}
        checks = accuracy.field_checks(t, got)
        tally.add(t["kind"], t["eml"], checks)
        if verbose and not all(checks.values()) and got is not None:
            wrong = [k for k, ok in checks.items() if not ok]
            say(f"  {t['eml']}: {', '.join(wrong)}: got {got['vendor']!r} {got['issue_date']} "
                f"{got['total_yen']} {dict(got['tax'] or {})}")
        if not reparse:
            matches.add(t["eml"], t["expected_match"], row)
    say()
    for line in accuracy.table(tally):
        say(line)
    right, seen = tally.share(accuracy.DIGITAL)
    other_right, other_seen = tally.share(tuple(
        k for k in {k for k, _ in tally.seen} if k not in accuracy.DIGITAL))
    say(f"born-digital (pdf_text, html): {right}/{seen} fields "
        f"({100 * right / max(seen, 1):.1f}%; target 97%); photos and scans: "
        f"{other_right}/{other_seen} ({100 * other_right / max(other_seen, 1):.1f}%; target 90%)")
    if not reparse:
        for line in matches.lines():
            say(line)


def run_large(args: argparse.Namespace) -> int:
    started = time.monotonic()
    settings = get_settings()
    owner = large_owner(args.seed)
    samples = (args.samples or Path("out/samples-large")).resolve()
    say(f"Kyu receipts, large set: {args.large} mails, seed {args.seed}, owner {owner}")
    truth = generate_samples(samples, args.large, args.seed)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        if args.reparse:
            report(truth, rows_by_eml(conn, owner), True, True)
            return 0
        if args.fresh:
            forget(conn, owner)
        since = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
        with conn.transaction():
            lines, new = load_statements(conn, samples, owner)
            ids = mail_source.enqueue_eml_folder(conn, samples / "mail", owner)
        say(f"imported {lines} statement lines ({new} new) from bank-jp.csv (cp932) and "
            f"card-jp.csv; enqueued {len(ids)} mails; running a worker")
        proc = start_worker(Path(args.log).resolve())
        try:
            wait_for_drain(conn, since, ids, proc, max(args.timeout, 60.0 * args.large),
                           started)
        finally:
            stop_worker(proc)
        report(truth, rows_by_eml(conn, owner), False, args.verbose)
    say(f"done in {time.monotonic() - started:.0f}s")
    return 0
