"""generate_report: CSV (UTF-8 with BOM), HTML and PDF for a month through storage, one
reports row, and identical bytes on a re-run."""

from __future__ import annotations

import subprocess
from datetime import date

import pytest
from conftest import make_receipt
from pydantic import ValidationError

from python_worker.receipts.settings import get_settings

TAX = {"10": {"net": 2000, "tax": 200, "gross": 2200}}


@pytest.fixture(scope="module")
def april(q) -> list[int]:
    return [
        make_receipt(q, "rep-1", "株式会社髙島ストア", date(2026, 4, 3), 2200, TAX),
        make_receipt(q, "rep-2", "山田文具店", date(2026, 4, 15), 770),
        make_receipt(q, "rep-3", "翌月の店", date(2026, 5, 1), 999),
    ]


def test_report_files_and_row_for_the_month(run, q, april):
    result = run("generate_report", {"period": "2026-04"})
    assert result["receipts"] == 2 and result["grand_total"] == 2970
    root = get_settings().files_dir
    csv_bytes = (root / result["paths"]["csv"]).read_bytes()
    assert csv_bytes.startswith(b"\xef\xbb\xbf")
    text = csv_bytes.decode("utf-8-sig")
    assert "株式会社髙島ストア" in text and "翌月の店" not in text
    assert "株式会社髙島ストア" in (root / result["paths"]["html"]).read_text(encoding="utf-8")
    pdf_text = subprocess.run(["pdftotext", str(root / result["paths"]["pdf"]), "-"],
                              capture_output=True, text=True, check=True).stdout
    assert "山田文具店" in pdf_text
    row = q("select to_char(month, 'YYYY-MM') as month, paths, receipt_count"
            " from receipts.reports")[0]
    assert row == {"month": "2026-04", "paths": result["paths"], "receipt_count": 2}


def test_rerun_gives_the_same_bytes_and_one_row(run, q, april):
    first = run("generate_report", {"period": "2026-04"})
    second = run("generate_report", {"period": "2026-04"})
    assert first["sha256"] == second["sha256"]
    assert q("select count(*) as n from receipts.reports where month = '2026-04-01'")[0]["n"] == 1


def test_a_bad_period_is_rejected(run):
    with pytest.raises(ValidationError):
        run("generate_report", {"period": "2026-13"})


def test_without_a_period_the_previous_japanese_month_is_reported():
    from datetime import UTC, datetime

    from python_worker.receipts.jobs.generate_report import previous_month

    # 16:00 UTC on 31 May is 01:00 JST on 1 June: May is the month to report
    assert previous_month(datetime(2026, 5, 31, 16, 0, tzinfo=UTC)) == "2026-05"
    assert previous_month(datetime(2026, 5, 31, 14, 0, tzinfo=UTC)) == "2026-04"
    assert previous_month(datetime(2026, 1, 15, tzinfo=UTC)) == "2025-12"
