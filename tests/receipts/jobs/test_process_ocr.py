"""process_ocr: fields from a text layer and from tesseract, review instead of guessing,
idempotency, and a human-confirmed receipt left alone."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import eml_payload

from python_worker.context import PermanentError


@pytest.fixture(scope="module")
def receipt_ids(run, samples: Path) -> dict[str, int]:
    ids = {}
    for name in ("01_takashima_iso2022jp", "04_yamada_scanpdf", "08_unreadable",
                 "10_tech_invoice_sjis"):
        ids[name] = run("process_email_receipt", eml_payload(samples, f"{name}.eml"))["receipts"][0]
    return ids


def receipt(q, rid: int) -> dict[str, Any]:
    return q("select * from receipts.receipts where id = %s", (rid,))[0]


def test_text_layer_pdf_gives_every_field_and_enqueues_matching(run, q, receipt_ids, truth):
    rid = receipt_ids["01_takashima_iso2022jp"]
    result = run("process_ocr", {"receipt_id": rid})
    r = receipt(q, rid)
    assert r["status"] == "extracted" and r["text_source"] == "pdf_text"
    assert (r["vendor"], r["issue_date"], r["total_yen"]) == (
        "株式会社髙島ストア", date(2026, 4, 3), 3820)
    assert r["tax"]["8"]["tax"] == 120 and r["tax"]["10"]["tax"] == 200
    assert r["registration_number"] == truth["receipts"][0]["registration_number"]
    assert r["registration_valid"] is True
    assert q("select job_type from queue.jobs where id = %s", (result["next_job"],)) == [
        {"job_type": "match_transaction"}]


def test_reiwa_era_date_is_read(run, q, receipt_ids):
    rid = receipt_ids["10_tech_invoice_sjis"]  # 発行日 R8.4.28
    run("process_ocr", {"receipt_id": rid})
    assert receipt(q, rid)["issue_date"] == date(2026, 4, 28)


def test_bad_check_digit_sends_a_scanned_receipt_to_review(run, q, receipt_ids):
    rid = receipt_ids["04_yamada_scanpdf"]
    run("process_ocr", {"receipt_id": rid})
    r = receipt(q, rid)
    assert r["text_source"] == "ocr"
    assert r["status"] == "needs_review"
    assert "registration_check_digit_failed" in r["review_reasons"]
    assert r["registration_valid"] is False
    assert r["total_yen"] == 770  # the fields it could read are kept for the reviewer


def test_unreadable_image_goes_to_review_and_stops_the_pipeline(run, q, receipt_ids):
    rid = receipt_ids["08_unreadable"]
    result = run("process_ocr", {"receipt_id": rid})
    r = receipt(q, rid)
    assert r["status"] == "needs_review" and r["total_yen"] is None
    assert "total_missing" in r["review_reasons"]
    assert result["next_job"] is None
    assert q("select count(*) as n from queue.jobs where unique_key = %s",
             (f"match:{rid}",))[0]["n"] == 0


def test_second_run_is_skipped_and_enqueues_nothing(run, q, receipt_ids):
    rid = receipt_ids["01_takashima_iso2022jp"]
    before = q("select count(*) as n from queue.all_jobs where job_type = 'match_transaction'")
    again = run("process_ocr", {"receipt_id": rid})
    assert again == {"receipt_id": rid, "skipped": "extracted"}
    after = q("select count(*) as n from queue.all_jobs where job_type = 'match_transaction'")
    assert after == before


def test_forced_rerun_overwrites_the_same_row(run, q, receipt_ids):
    rid = receipt_ids["10_tech_invoice_sjis"]
    run("process_ocr", {"receipt_id": rid, "force": True})
    assert receipt(q, rid)["total_yen"] == 55000
    assert q("select count(*) as n from receipts.receipts where id = %s", (rid,))[0]["n"] == 1


def test_confirmed_receipt_is_never_overwritten(run, q, receipt_ids):
    rid = receipt_ids["08_unreadable"]
    q("select receipts.review_receipt(%s, 'ぼやけた店', '2026-04-22', 500)", (rid,))
    result = run("process_ocr", {"receipt_id": rid, "force": True})
    assert result["skipped"] == "confirmed"
    r = receipt(q, rid)
    assert (r["vendor"], r["total_yen"], r["status"]) == ("ぼやけた店", 500, "confirmed")


def test_unknown_receipt_is_permanent(run):
    with pytest.raises(PermanentError):
        run("process_ocr", {"receipt_id": 999999})
