"""Enqueue process_email_receipt for a mail source: every ``.eml`` in a folder, or every
message of an IMAP mailbox. Each job carries a unique_key derived from the message's source
key, so enqueueing a source again only adds what is new (intake itself is idempotent too).

    python -m python_worker.receipts.mail_source eml out/samples/mail
    python -m python_worker.receipts.mail_source imap --mailbox INBOX   # KYU_IMAP_* settings
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from . import store
from .jobs.process_email_receipt import EmailReceiptJob
from .settings import get_settings


def _enqueue(conn: psycopg.Connection[Any], job: EmailReceiptJob, owner: UUID) -> int:
    payload = job.model_dump(mode="json", exclude_none=True)
    return store.enqueue(conn, "process_email_receipt", payload, unique_key=job.unique_key,
                         owner_id=owner)


def enqueue_eml_folder(conn: psycopg.Connection[Any], folder: Path, owner: UUID) -> list[int]:
    """One job per ``*.eml`` under ``folder`` (sorted); returns the job ids."""
    root = folder.resolve()
    return [
        _enqueue(conn, EmailReceiptJob(source="eml", folder=str(root),
                                       path=eml.relative_to(root).as_posix(), owner_id=owner),
                 owner)
        for eml in sorted(root.rglob("*.eml")) if eml.is_file()
    ]


def enqueue_imap_mailbox(conn: psycopg.Connection[Any], box: Any, account: str, mailbox: str,
                         owner: UUID, criteria: Any = "ALL") -> list[int]:
    """One job per message UID of ``mailbox`` in a logged-in imap-tools ``MailBox``."""
    box.folder.set(mailbox)
    uidvalidity = int(box.folder.status(mailbox, ["UIDVALIDITY"])["UIDVALIDITY"])
    return [
        _enqueue(conn, EmailReceiptJob(source="imap", account=account, mailbox=mailbox,
                                       uidvalidity=uidvalidity, uid=int(uid), owner_id=owner),
                 owner)
        for uid in box.uids(criteria)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m python_worker.receipts.mail_source",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="source", required=True)
    eml = sub.add_parser("eml", help="every .eml file under a folder")
    eml.add_argument("folder", type=Path)
    imap = sub.add_parser("imap", help="every message of an IMAP mailbox (KYU_IMAP_*)")
    imap.add_argument("--mailbox", default="INBOX")
    args = p.parse_args(argv)
    s = get_settings()
    with psycopg.connect(s.database_url) as conn:
        if args.source == "eml":
            ids = enqueue_eml_folder(conn, args.folder, s.owner_id)
        else:
            from imap_tools import MailBox  # noqa: PLC0415 - only for IMAP

            if not (s.imap_host and s.imap_user and s.imap_password):
                raise SystemExit("set KYU_IMAP_HOST, KYU_IMAP_USER and KYU_IMAP_PASSWORD")
            with MailBox(s.imap_host).login(s.imap_user, s.imap_password) as box:
                ids = enqueue_imap_mailbox(conn, box, s.imap_user, args.mailbox, s.owner_id)
    print(f"enqueued {len(ids)} process_email_receipt jobs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
