"""Mail sources: enqueueing a folder or an IMAP mailbox, and intake from IMAP by UID (an
in-memory stand-in for imap-tools' MailBox)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from python_worker.context import PermanentError
from python_worker.receipts import mail_source
from python_worker.receipts.settings import get_settings


class FakeMailBox:
    """The part of imap_tools.MailBox the handlers use: one mailbox of raw messages."""

    messages: dict[int, bytes] = {}
    uidvalidity = 7

    def __init__(self, host: str = "imap.example.com") -> None:
        self.host = host
        self.folder = SimpleNamespace(
            set=lambda name: None,
            status=lambda name, items: {"UIDVALIDITY": self.uidvalidity},
        )

    def login(self, user: str, password: str, initial_folder: str = "INBOX") -> FakeMailBox:
        return self

    def __enter__(self) -> FakeMailBox:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def uids(self, criteria: Any = "ALL") -> list[str]:
        return [str(u) for u in sorted(self.messages)]

    def fetch(self, criteria: Any, mark_seen: bool = True, bulk: int = 50):
        wanted = str(criteria)
        for uid, raw in sorted(self.messages.items()):
            if f"UID {uid}" in wanted or wanted == "ALL":
                yield SimpleNamespace(uid=str(uid), raw_bytes=raw)


@pytest.fixture
def imap(monkeypatch: pytest.MonkeyPatch, samples: Path) -> type[FakeMailBox]:
    import imap_tools

    monkeypatch.setattr(imap_tools, "MailBox", FakeMailBox)
    monkeypatch.setattr(FakeMailBox, "messages", {
        5: (samples / "mail" / "03_cloud_en.eml").read_bytes(),
        6: (samples / "mail" / "09_taxi_png.eml").read_bytes(),
    })
    for var, value in (("KYU_IMAP_HOST", "imap.example.com"), ("KYU_IMAP_USER", "me@example.com"),
                       ("KYU_IMAP_PASSWORD", "app-password")):
        monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    yield FakeMailBox
    monkeypatch.undo()
    get_settings.cache_clear()


def test_enqueueing_a_folder_twice_enqueues_each_message_once(db: str, samples: Path, q):
    owner = get_settings().owner_id
    with psycopg.connect(db) as conn:
        first = mail_source.enqueue_eml_folder(conn, samples / "mail", owner)
        second = mail_source.enqueue_eml_folder(conn, samples / "mail", owner)
    assert len(first) == len(list((samples / "mail").glob("*.eml"))) and first == second
    assert q("select count(*) as n from queue.jobs where job_type = 'process_email_receipt'"
             )[0]["n"] == len(first)


def test_imap_messages_are_enqueued_and_read_by_uid(db: str, run, q, imap):
    owner = get_settings().owner_id
    with psycopg.connect(db) as conn:
        ids = mail_source.enqueue_imap_mailbox(conn, imap(), "me@example.com", "INBOX", owner)
    jobs = q("select payload, unique_key from queue.jobs where id = any(%s) order by id", (ids,))
    assert [j["unique_key"] for j in jobs] == [
        "email:imap:me@example.com/INBOX/7/5", "email:imap:me@example.com/INBOX/7/6"]
    payload = jobs[0]["payload"]
    del payload["owner_id"]
    result = run("process_email_receipt", payload)
    message = q("select source, source_key, subject from receipts.email_messages where id = %s",
                (result["email_message_id"],))[0]
    assert message == {"source": "imap", "source_key": "me@example.com/INBOX/7/5",
                       "subject": "Your invoice INV-2026-0412"}
    assert len(result["new_receipts"]) == 1


def test_a_changed_uidvalidity_makes_the_uid_stale(run, imap, monkeypatch):
    monkeypatch.setattr(imap, "uidvalidity", 8)
    with pytest.raises(PermanentError, match="UIDVALIDITY"):
        run("process_email_receipt", {"source": "imap", "account": "me@example.com",
                                      "mailbox": "INBOX", "uidvalidity": 7, "uid": 6})
