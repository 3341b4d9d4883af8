"""process_email_receipt on the sample mail: Japanese encodings, HTML-only receipts,
duplicates, idempotency, and the next step enqueued in the same transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import eml_payload

from python_worker.context import PermanentError


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
