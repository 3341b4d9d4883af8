"""The receipts CLI: your own mail and bank data through the pipeline, and the decisions.

    python -m python_worker.receipts ingest DIR | MBOX | --imap [--folder F] [--since D]
    python -m python_worker.receipts import-transactions FILE [--profile P] [--account NAME] ...
    python -m python_worker.receipts review
    python -m python_worker.receipts confirm MATCH_ID | reject MATCH_ID
    python -m python_worker.receipts correct RECEIPT_ID [--vendor V] [--date D] [--total N]
    python -m python_worker.receipts report YYYY-MM [--format csv --format pdf]

Every command works on DATABASE_URL for the owner KYU_OWNER_ID. ``--process`` (ingest,
import-transactions, confirm, correct) runs a worker until the queue is drained
(``python -m python_worker process``); without it, a running ``make worker`` picks the jobs up.
Exit status: 0 done, 1 refused (bad input, unknown id; the message says which), 2 usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mailbox
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from . import mail_source, store
from .domain import statements
from .jobs.generate_report import write_month_report
from .settings import get_settings

HANDLERS = "python_worker.receipts.jobs"


class Refused(Exception):
    """Bad input or an unknown id: printed as the message, exit status 1."""


def say(text: str = "") -> None:
    print(text, flush=True)


def yen(v: int | None) -> str:
    return "-" if v is None else f"¥{v:,}"


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(get_settings().database_url)


def process_queue() -> None:
    """Drain what is due with a real worker process (the same as `make queue-process`)."""
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    subprocess.run([sys.executable, "-m", "python_worker", "process", "--handlers", HANDLERS],
                   check=True, env=env, stdout=subprocess.DEVNULL)


# --- ingest -------------------------------------------------------------------------------

def split_mbox(path: Path, into: Path) -> Path:
    """Write each message of an mbox file as ``<sha256>.eml`` under ``into/<stem>``; returns
    that folder. Content-named, so splitting the same mbox again writes nothing new."""
    try:
        box = mailbox.mbox(path, create=False)
        keys = list(box.keys())
    except (OSError, mailbox.Error) as exc:
        raise Refused(f"cannot read mbox {path}: {exc}") from None
    folder = into / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    for key in keys:
        raw = box.get_bytes(key)
        target = folder / f"{hashlib.sha256(raw).hexdigest()[:24]}.eml"
        if not target.exists():
            target.write_bytes(raw)
    return folder


def cmd_ingest(args: argparse.Namespace) -> int:
    s = get_settings()
    with _connect() as conn:
        if args.imap:
            from imap_tools import AND, MailBox  # noqa: PLC0415 - only for IMAP

            if not (s.imap_host and s.imap_user and s.imap_password):
                raise Refused("IMAP needs KYU_IMAP_HOST, KYU_IMAP_USER and KYU_IMAP_PASSWORD")
            criteria: Any = AND(date_gte=args.since) if args.since else "ALL"
            with MailBox(s.imap_host).login(s.imap_user, s.imap_password) as box:
                ids = mail_source.enqueue_imap_mailbox(conn, box, s.imap_user, args.folder,
                                                       s.owner_id, criteria=criteria)
            what = f"IMAP {s.imap_user}/{args.folder}" + (f" since {args.since}"
                                                          if args.since else "")
        elif args.path is None:
            raise Refused("give a folder of .eml files, an mbox file, or --imap")
        elif args.path.is_dir():
            ids = mail_source.enqueue_eml_folder(conn, args.path, s.owner_id)
            what = f"{args.path} (.eml files)"
        elif args.path.is_file():
            folder = split_mbox(args.path, s.blobs_dir.resolve() / "mbox")
            ids = mail_source.enqueue_eml_folder(conn, folder, s.owner_id)
            what = f"{args.path} (mbox)"
        else:
            raise Refused(f"no such folder or mbox file: {args.path}")
    say(f"enqueued {len(ids)} mails from {what}")
    if args.process:
        process_queue()
        say("processed; see `review`")
    return 0


# --- transactions -------------------------------------------------------------------------

def build_profile(args: argparse.Namespace) -> statements.Profile:
    base = statements.load_profile(args.profile)
    fields = base.model_dump()
    flags = {"date": args.date_column, "amount": args.amount_column,
             "debit": args.debit_column, "credit": args.credit_column, "id": args.id_column,
             "encoding": args.encoding, "expense_sign": args.expense_sign,
             "account_kind": args.account_kind}
    if args.description_column:
        fields["description"] = args.description_column
    if args.amount_column:
        fields["debit"] = fields["credit"] = None
    if args.debit_column or args.credit_column:
        fields["amount"] = None
    fields.update({k: v for k, v in flags.items() if v is not None})
    if args.save_profile:
        fields["name"] = args.save_profile.stem
    try:
        return statements.Profile.model_validate(fields)
    except ValueError as exc:
        raise Refused(f"column mapping: {exc}") from None


def cmd_import(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise Refused(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        profile = build_profile(args)
        account = args.account or profile.name
        lines = statements.read_statement(data, profile, account=account)
    except statements.StatementError as exc:
        raise Refused(f"{args.file}: {exc}") from None
    if args.save_profile:
        args.save_profile.write_text(
            json.dumps(profile.model_dump(exclude_none=True), ensure_ascii=False, indent=2)
            + "\n", encoding="utf-8")
        say(f"saved the column mapping as {args.save_profile} (use --profile {args.save_profile})")
    s = get_settings()
    rows = [{"source": f"csv:{account}", "external_id": ln.external_id,
             "account_kind": ln.account_kind, "account_name": account, "txn_date": ln.txn_date,
             "amount_yen": ln.amount_yen, "entry_side": ln.entry_side,
             "description": ln.description} for ln in lines]
    with _connect() as conn:
        new = store.import_transactions(conn, s.owner_id, rows)
        rematch = []
        if new and not args.no_rematch:
            for rid in store.unsettled_receipts(conn, s.owner_id):
                rematch.append(store.enqueue(conn, "match_transaction", {"receipt_id": rid},
                                             unique_key=f"match:{rid}", owner_id=s.owner_id))
    spent = sum(ln.amount_yen for ln in lines if ln.entry_side == "expense")
    say(f"{args.file}: {len(lines)} lines ({profile.name}, {profile.account_kind}), "
        f"{new} new, {len(lines) - new} already there; out {yen(spent)}")
    if rematch:
        say(f"matching again {len(rematch)} receipts that had no settled match")
        if args.process:
            process_queue()
    return 0


# --- review -------------------------------------------------------------------------------

def cmd_review(args: argparse.Namespace) -> int:
    s = get_settings()
    with _connect() as conn:
        todo = store.receipts_to_review(conn, s.owner_id)
        suggested = store.suggested_matches(conn, s.owner_id)
    if args.json:
        say(json.dumps({"receipts": todo, "matches": suggested}, default=str,
                       ensure_ascii=False, indent=1))
        return 0
    say(f"receipts to check ({len(todo)}): fix with `correct RECEIPT_ID --vendor/--date/--total`")
    for r in todo:
        say(f"  receipt {r['receipt_id']:<5} {r['issue_date'] or '-'!s:<10} "
            f"{yen(r['total_yen']):>10}  {r['vendor'] or '-'}  [{r['filename']}]")
        say(f"{'':>16}why: {', '.join(r['review_reasons'])}")
    say(f"suggested matches ({len(suggested)}): `confirm MATCH_ID` or `reject MATCH_ID`")
    for m in suggested:
        say(f"  match {m['match_id']:<7} receipt {m['receipt_id']:<5} {m['issue_date']} "
            f"{yen(m['total_yen']):>10} {m['vendor'] or '-'}")
        say(f"{'':>16}↔ {m['account_kind']} {m['txn_date']} {m['description']}  "
            f"(score {float(m['score']):.2f}, {m['external_id']})")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    decision = "confirmed" if args.command == "confirm" else "rejected"
    with _connect() as conn:
        row = store.decide_match(conn, args.match_id, decision)
    say(f"match {row['id']} (receipt {row['receipt_id']}, transaction {row['transaction_id']}) "
        f"{decision}")
    if decision == "confirmed":
        say("the transaction's description is now an alias of the receipt's vendor")
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    if not any(v is not None for v in (args.vendor, args.date, args.total,
                                       args.registration_number)):
        raise Refused("nothing to correct: give --vendor, --date, --total or "
                      "--registration-number")
    with _connect() as conn:
        row = store.correct_receipt(conn, args.receipt_id, vendor=args.vendor,
                                    issue_date=args.date, total_yen=args.total,
                                    registration_number=args.registration_number)
    say(f"receipt {row['id']} confirmed: {row['vendor'] or '-'} {row['issue_date']} "
        f"{yen(row['total_yen'])}; matching again")
    if args.process:
        process_queue()
    return 0


# --- report -------------------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    s = get_settings()
    with _connect() as conn:
        result = write_month_report(conn, s.owner_id, args.month, args.format or s.report_formats)
    say(f"{args.month}: {result['receipts']} receipts, total {yen(result['grand_total'])}")
    for fmt, path in sorted(result["paths"].items()):
        say(f"  {fmt:<4} {(s.files_dir / path).resolve()}")
    return 0


# --- arguments ----------------------------------------------------------------------------

def _month(value: str) -> str:
    try:
        date.fromisoformat(f"{value}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"month must be YYYY-MM, got {value!r}") from None
    return value


def _day(value: str) -> date:
    try:
        return statements.parse_day(value)
    except statements.StatementError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _yen(value: str) -> int:
    try:
        amount = statements.parse_yen(value)
    except statements.StatementError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if amount is None or amount < 0:
        raise argparse.ArgumentTypeError(f"a total must be a yen amount >= 0, got {value!r}")
    return amount


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m python_worker.receipts",
                                description="Receipts: your own mail and bank data.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ing = sub.add_parser("ingest", help="enqueue mail: a folder of .eml, an mbox file, or IMAP")
    ing.add_argument("path", type=Path, nargs="?", help="folder of .eml files, or an mbox file")
    ing.add_argument("--imap", action="store_true", help="KYU_IMAP_HOST/USER/PASSWORD")
    ing.add_argument("--folder", default="INBOX", help="IMAP folder (default INBOX)")
    ing.add_argument("--since", type=_day, help="IMAP: messages on or after this date")
    ing.add_argument("--process", action="store_true", help="run a worker until drained")
    ing.set_defaults(func=cmd_ingest)

    imp = sub.add_parser("import-transactions", help="load a bank or card CSV export")
    imp.add_argument("file", type=Path)
    imp.add_argument("--profile", default="generic",
                     help=f"{', '.join(statements.BUILTIN_PROFILES)} or a saved JSON profile")
    imp.add_argument("--account", help="a name for the account (default: the profile's)")
    imp.add_argument("--account-kind", choices=["bank", "card"])
    imp.add_argument("--date-column")
    imp.add_argument("--description-column", action="append",
                     help="repeat to join several columns")
    imp.add_argument("--amount-column", help="one signed amount column")
    imp.add_argument("--expense-sign", choices=["positive", "negative"],
                     help="the sign of money out in --amount-column")
    imp.add_argument("--debit-column", help="money out")
    imp.add_argument("--credit-column", help="money in")
    imp.add_argument("--id-column", help="the file's own line id (default: from content)")
    imp.add_argument("--encoding", help="default: detect UTF-8 (BOM or not) or cp932")
    imp.add_argument("--save-profile", type=Path, help="write the mapping to this JSON file")
    imp.add_argument("--no-rematch", action="store_true",
                     help="do not match unmatched receipts again")
    imp.add_argument("--process", action="store_true", help="run a worker until drained")
    imp.set_defaults(func=cmd_import)

    rev = sub.add_parser("review", help="receipts and matches that need a decision")
    rev.add_argument("--json", action="store_true")
    rev.set_defaults(func=cmd_review)

    for name, text in (("confirm", "confirm a suggested match"),
                       ("reject", "reject a suggested or automatic match")):
        d = sub.add_parser(name, help=text)
        d.add_argument("match_id", type=int)
        d.set_defaults(func=cmd_decide)

    cor = sub.add_parser("correct", help="correct a receipt's fields (confirms it)")
    cor.add_argument("receipt_id", type=int)
    cor.add_argument("--vendor")
    cor.add_argument("--date", type=_day)
    cor.add_argument("--total", type=_yen)
    cor.add_argument("--registration-number")
    cor.add_argument("--process", action="store_true", help="run a worker until drained")
    cor.set_defaults(func=cmd_correct)

    rep = sub.add_parser("report", help="a month's report (CSV, HTML, PDF)")
    rep.add_argument("month", type=_month, help="YYYY-MM")
    rep.add_argument("--format", action="append", choices=["csv", "html", "pdf"])
    rep.set_defaults(func=cmd_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (psycopg.errors.NoDataFound, psycopg.errors.InvalidParameterValue,
            psycopg.errors.UniqueViolation, psycopg.errors.CheckViolation) as exc:
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        print(f"error: {exc.diag.message_primary}{hint}", file=sys.stderr)
        return 1

