"""process_email_receipt on the sample mail: Japanese encodings, HTML-only receipts,
duplicates, idempotency, and the next step enqueued in the same transaction."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from conftest import eml_payload, held_job

from python_worker.context import JobContext, PermanentError
from python_worker.registry import registry


def test_iso2022jp_mail_keeps_nec_and_ibm_characters_and_enqueues_ocr(run, q, samples: Path):
    result = run("process_email_receipt", eml_payload(samples, "01_takashima_iso2022jp.eml"))
    assert len(result["new_receipts"]) == 1
    message = q("select * from receipts.email_messages where id = %s",
                (result["email_message_id"],))[0]
    assert "㈱髙島ストア" in message["subject"] and "①" in message["subject"]
    assert message["receipt_count"] == 1
    file = q("select f.* from receipts.files as f join receipts.receipts as r on r.file_id = f.id"
             " where r.id = %s", (result["new_receipts"][0],))[0]
    assert file["filename"] == "領収書_㈱髙島ストア.pdf"
    assert file["content_type"] == "application/pdf"
    jobs = q("select job_type, payload, unique_key from queue.jobs where unique_key = %s",
             (f"ocr:{result['new_receipts'][0]}",))
    rid = result["new_receipts"][0]
    assert jobs == [{"job_type": "process_ocr", "payload": {"receipt_id": rid},
                     "unique_key": f"ocr:{rid}"}]


def test_running_intake_twice_leaves_one_message_one_receipt_one_ocr_job(run, q, samples: Path):
    payload = eml_payload(samples, "02_family_sjis.eml")
    first = run("process_email_receipt", payload)
    second = run("process_email_receipt", payload)
    assert second["email_message_id"] == first["email_message_id"]
    assert second["receipts"] == first["receipts"] and second["new_receipts"] == []
    assert q("select count(*) as n from receipts.email_messages where source_key like %s",
             ("%02_family_sjis.eml",))[0]["n"] == 1
    assert q("select count(*) as n from queue.all_jobs where unique_key = %s",
             (f"ocr:{first['receipts'][0]}",))[0]["n"] == 1
    subject = q("select subject from receipts.email_messages where id = %s",
                (first["email_message_id"],))[0]["subject"]
    assert subject == "ご利用明細～ファミリーストア①"  # Shift_JIS label decoded as cp932


def test_duplicate_message_under_another_name_creates_nothing(run, q, samples: Path):
    original = run("process_email_receipt", eml_payload(samples, "01_takashima_iso2022jp.eml"))
    before = q("select count(*) as n from receipts.receipts")[0]["n"]
    dup = run("process_email_receipt", eml_payload(samples, "07_duplicate_of_01.eml"))
    assert dup["duplicate_of"] is not None and dup["new_receipts"] == []
    assert dup["email_message_id"] == original["email_message_id"]
    assert q("select count(*) as n from receipts.receipts")[0]["n"] == before


def test_html_only_receipt_is_rendered_to_a_pdf_file(run, q, samples: Path):
    result = run("process_email_receipt", eml_payload(samples, "06_bookstore_html.eml"))
    assert len(result["new_receipts"]) == 1
    file = q("select f.content_type, f.filename, f.blob_key from receipts.files as f"
             " join receipts.receipts as r on r.file_id = f.id where r.id = %s",
             (result["new_receipts"][0],))[0]
    assert file["content_type"] == "application/pdf"
    assert file["blob_key"].endswith(".pdf")


def test_octet_stream_pdf_attachment_counts_as_a_receipt(run, q, samples: Path):
    result = run("process_email_receipt", eml_payload(samples, "10_tech_invoice_sjis.eml"))
    file = q("select f.content_type, f.filename from receipts.files as f"
             " join receipts.receipts as r on r.file_id = f.id where r.id = %s",
             (result["receipts"][0],))[0]
    assert file == {"content_type": "application/pdf", "filename": "請求書_202604.pdf"}


def test_missing_eml_file_is_permanent(run, samples: Path):
    with pytest.raises(PermanentError, match="gone"):
        run("process_email_receipt", eml_payload(samples, "99_missing.eml"))


def test_path_outside_the_folder_is_refused(run, samples: Path):
    with pytest.raises(PermanentError, match="escapes"):
        run("process_email_receipt", eml_payload(samples, "../truth.json"))


def test_payload_with_unknown_keys_is_rejected(run, samples: Path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        run("process_email_receipt", eml_payload(samples, "01_takashima_iso2022jp.eml")
            | {"bogus": 1})


def test_same_attachment_in_another_message_is_one_receipt(run, q, samples: Path, tmp_path):
    first = run("process_email_receipt", eml_payload(samples, "03_cloud_en.eml"))
    raw = (samples / "mail" / "03_cloud_en.eml").read_bytes()
    (tmp_path / "resent.eml").write_bytes(b"X-Resent: yes\r\n" + raw)  # other bytes, same PDF
    again = run("process_email_receipt", {"source": "eml", "folder": str(tmp_path),
                                          "path": "resent.eml"})
    assert again["email_message_id"] != first["email_message_id"]
    assert again["receipts"] == first["receipts"] and again["new_receipts"] == []


# --- which message owns a receipt: the same whatever order intake ran in ----------------------

def _intake(url: str, payload: dict[str, Any], owner: UUID) -> Any:
    """process_email_receipt's handler on its own uncommitted transaction: (connection, result)."""
    import python_worker.receipts.jobs  # noqa: F401 - registers the handlers

    h = registry.get("process_email_receipt")
    assert h is not None
    conn = psycopg.connect(url)
    job_id, token = held_job(conn, h.job_type, owner)
    ctx = JobContext(id=job_id, job_type=h.job_type, queue_name=h.queue, attempt=1,
                     max_attempts=5, worker_id="test", lease_seconds=60,
                     _progress=lambda _i, _t, _p: None, _conn=conn, lease_token=token)
    return conn, h.func(h.payload(dict(payload, owner_id=str(owner))), ctx)


def _owner_of_receipt(q, owner: UUID) -> list[str]:
    rows = q("select m.source_key from receipts.receipts as r"
             " join receipts.email_messages as m on m.id = r.email_message_id"
             " where r.owner_id = %s", (owner,))
    return [Path(r["source_key"]).name for r in rows]


def _run_pair(db: str, first: dict[str, Any], second: dict[str, Any], owner: UUID,
              concurrent: bool) -> None:
    """Intake ``first`` then ``second``; concurrently: ``second`` starts while ``first`` holds
    its uncommitted writes, and blocks on them until ``first`` commits."""
    conn_a, _ = _intake(db, first, owner)
    if not concurrent:
        conn_a.commit()
        conn_a.close()
    box: dict[str, Any] = {}

    def second_intake() -> None:
        conn_b, box["result"] = _intake(db, second, owner)
        conn_b.commit()
        conn_b.close()

    t = threading.Thread(target=second_intake)
    t.start()
    if concurrent:
        t.join(timeout=1.0)
        assert t.is_alive(), "the second intake should wait for the first one's commit"
        conn_a.commit()
        conn_a.close()
    t.join(timeout=60)
    assert not t.is_alive() and "result" in box


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
@pytest.mark.parametrize("duplicate_first", [False, True], ids=["original-first",
                                                               "duplicate-first"])
def test_the_same_message_twice_is_owned_by_the_first_key_whatever_the_order(
        db, q, samples: Path, duplicate_first: bool, concurrent: bool):
    owner = uuid4()
    original = eml_payload(samples, "01_takashima_iso2022jp.eml")
    duplicate = eml_payload(samples, "07_duplicate_of_01.eml")
    pair = (duplicate, original) if duplicate_first else (original, duplicate)
    _run_pair(db, *pair, owner, concurrent)
    messages = q("select source_key from receipts.email_messages where owner_id = %s", (owner,))
    assert [Path(m["source_key"]).name for m in messages] == ["01_takashima_iso2022jp.eml"]
    assert _owner_of_receipt(q, owner) == ["01_takashima_iso2022jp.eml"]
    assert q("select count(*) as n from queue.jobs where job_type = 'process_ocr'"
             " and owner_id = %s", (owner,))[0]["n"] == 1


def _with_headers(raw: bytes, date: str, message_id: str) -> bytes:
    """The same message with another Date: and Message-ID: (other bytes, same attachment)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n")
             if not ln.lower().startswith((b"date:", b"message-id:"))]
    lines += [b"Date: " + date.encode(), b"Message-ID: " + message_id.encode()]
    return b"\r\n".join(lines) + sep + body


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
@pytest.mark.parametrize("later_first", [False, True], ids=["earlier-first", "later-first"])
def test_a_receipt_in_two_messages_belongs_to_the_earliest_sent(
        db, q, samples: Path, tmp_path: Path, later_first: bool, concurrent: bool):
    raw = (samples / "mail" / "03_cloud_en.eml").read_bytes()
    assert b"\r\n\r\n" in raw
    # "z-early" sorts after "a-late" by name: only the Date: header may decide
    (tmp_path / "z-early.eml").write_bytes(
        _with_headers(raw, "Wed, 01 Apr 2026 09:00:00 +0900", "<early@example.com>"))
    (tmp_path / "a-late.eml").write_bytes(
        _with_headers(raw, "Thu, 02 Apr 2026 09:00:00 +0900", "<late@example.com>"))
    early = {"source": "eml", "folder": str(tmp_path), "path": "z-early.eml"}
    late = {"source": "eml", "folder": str(tmp_path), "path": "a-late.eml"}
    owner = uuid4()
    pair = (late, early) if later_first else (early, late)
    _run_pair(db, *pair, owner, concurrent)
    assert q("select count(*) as n from receipts.email_messages where owner_id = %s",
             (owner,))[0]["n"] == 2
    assert _owner_of_receipt(q, owner) == ["z-early.eml"]
