"""process_email_receipt: one mail message → its receipt files → one process_ocr per new receipt.

Sources: ``eml`` (a file under a folder, the offline default) and ``imap`` (a UID in a mailbox,
``KYU_IMAP_HOST``/``USER``/``PASSWORD``). Idempotent: the message is keyed by its source key and
its raw SHA-256, each file by content; a re-run or a duplicate message creates nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator

from python_worker import JobContext, PermanentError, handler

from .. import blobs, store
from ..domain import mail as mailparse
from ..settings import get_settings


class EmailReceiptJob(BaseModel):
    """eml: ``folder`` + ``path`` (relative to it); imap: ``account``, ``mailbox``,
    ``uidvalidity``, ``uid``."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["eml", "imap"] = "eml"
    folder: str | None = None
    path: str | None = None
    account: str | None = None
    mailbox: str = "INBOX"
    uidvalidity: int | None = None
    uid: int | None = None
    owner_id: UUID | None = None

    @model_validator(mode="after")
    def _ref(self) -> EmailReceiptJob:
        if self.source == "eml" and not (self.folder and self.path):
            raise ValueError("source eml needs folder and path")
        if self.source == "imap" and not (self.account and self.uidvalidity and self.uid):
            raise ValueError("source imap needs account, uidvalidity and uid")
        return self

    @property
    def source_key(self) -> str:
        if self.source == "eml":
            return f"{self.folder}/{self.path}"
        assert self.account and self.uidvalidity and self.uid
        return mailparse.imap_source_key(self.account, self.mailbox, self.uidvalidity, self.uid)

    @property
    def unique_key(self) -> str:
        return f"email:{self.source}:{self.source_key}"


def read_raw(job: EmailReceiptJob) -> bytes:
    """The message's exact bytes from its source."""
    if job.source == "eml":
        assert job.folder and job.path
        folder = Path(job.folder).resolve()
        file = (folder / job.path).resolve()
        if folder not in file.parents:
            raise PermanentError(f"eml path escapes its folder: {job.path}")
        try:
            return file.read_bytes()
        except FileNotFoundError:
            raise PermanentError(f"eml file is gone: {file}") from None
    return _fetch_imap(job)


def _fetch_imap(job: EmailReceiptJob) -> bytes:
    from imap_tools import AND, MailBox  # noqa: PLC0415 - only for IMAP sources

    s = get_settings()
    if not (s.imap_host and s.imap_user and s.imap_password):
        raise PermanentError("IMAP source needs KYU_IMAP_HOST, KYU_IMAP_USER and KYU_IMAP_PASSWORD")
    box_login = MailBox(s.imap_host).login(s.imap_user, s.imap_password,
                                           initial_folder=job.mailbox)
    with box_login as box:
        status = box.folder.status(job.mailbox, ["UIDVALIDITY"])
        if int(status["UIDVALIDITY"]) != job.uidvalidity:
            raise PermanentError(f"UIDVALIDITY of {job.mailbox} changed: UID {job.uid} is stale")
        for key, raw in mailparse.iter_imap(box, job.account or s.imap_user, job.mailbox,
                                            AND(uid=str(job.uid))):
            del key
            return raw
    raise PermanentError(f"IMAP message {job.source_key} is gone")


def receipt_files(parsed: mailparse.ParsedMail) -> list[tuple[str, str, bytes]]:
    """(filename, content type, bytes) of every receipt in the message; an HTML-only receipt
    becomes a PDF of its body."""
    files = [(a.filename, a.content_type, a.data) for a in parsed.attachments]
    if not files and mailparse.is_html_only_receipt(parsed):
        assert parsed.html_body is not None
        files.append(("receipt.html.pdf", "application/pdf",
                      mailparse.render_html_to_pdf(parsed.html_body)))
    return files


@handler("process_email_receipt", queue="receipts", priority=40, max_attempts=5, timeout=120)
def process_email_receipt(job: EmailReceiptJob, ctx: JobContext) -> dict[str, Any]:
    """Store a mail message and its receipt files; enqueue OCR for each new receipt."""
    owner = job.owner_id or get_settings().owner_id
    raw = read_raw(job)
    parsed = mailparse.parse_message(raw)
    conn = ctx.connection
    message, created = store.insert_email_message(
        conn,
        owner_id=owner,
        source=job.source,
        source_key=job.source_key,
        message_id=parsed.message_id,
        raw_sha256=parsed.raw_sha256,
        raw_key=blobs.put(raw, "eml"),
        from_addr=parsed.from_addr,
        from_name=parsed.from_name,
        subject=parsed.subject,
        sent_at=parsed.date,
    )
    if not created:
        same_key = message["source"] == job.source and message["source_key"] == job.source_key
        return {
            "email_message_id": message["id"],
            "duplicate_of": None if same_key else message["source_key"],
            "receipts": store.receipts_of_message(conn, message["id"]),
            "new_receipts": [],
        }

    new: list[int] = []
    all_ids: list[int] = []
    for filename, content_type, data in receipt_files(parsed):
        ext = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        file_id = store.upsert_file(
            conn,
            owner_id=owner,
            sha256=hashlib.sha256(data).hexdigest(),
            filename=filename,
            content_type=content_type,
            size_bytes=len(data),
            blob_key=blobs.put(data, ext),
        )
        receipt_id, is_new = store.insert_receipt(conn, owner, file_id, message["id"])
        all_ids.append(receipt_id)
        if is_new:
            new.append(receipt_id)
            store.enqueue(conn, "process_ocr", {"receipt_id": receipt_id},
                          unique_key=f"ocr:{receipt_id}", owner_id=owner)
    store.set_receipt_count(conn, message["id"], len(all_ids))
    ctx.report_progress({"receipts": len(all_ids)})
    return {"email_message_id": message["id"], "duplicate_of": None, "receipts": all_ids,
            "new_receipts": new}
