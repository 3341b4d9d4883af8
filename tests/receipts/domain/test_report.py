"""Monthly report: CSV, HTML and PDF, deterministic bytes."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import date
from pathlib import Path

import pytest

from python_worker.receipts.domain.parse import TaxBand
from python_worker.receipts.domain.report import (
    CSV_COLUMNS,
    ReportRow,
    render_csv,
    render_html,
    render_pdf,
    summarize,
)

ROWS = [
    ReportRow(3, "株式会社髙島ストア", date(2026, 4, 3), 3820,
              {8: TaxBand(8, 1500, 120, 1620), 10: TaxBand(10, 2000, 200, 2200)}, "auto",
              "2026/04/株式会社髙島ストア/2026-04-03_株式会社髙島ストア_3820_3.pdf"),
    ReportRow(1, "ファミリーストア", date(2026, 4, 7), 310, {8: TaxBand(8, 288, 22, 310)},
              "suggested", None),
    ReportRow(2, "<script>alert(1)</script>", date(2026, 4, 3), 1100,
              {10: TaxBand(10, 1000, 100, 1100)}, "confirmed", "x.pdf"),
    ReportRow(4, None, None, None, {}, "unmatched", None),
]


def test_csv_has_bom_header_and_stable_order() -> None:
    data = render_csv(ROWS, "2026-04")
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[0].split(",") == CSV_COLUMNS
    assert [line.split(",")[0] for line in lines[1:5]] == ["2", "3", "1", "4"]
    assert lines[2].startswith("3,2026-04-03,株式会社髙島ストア,3820,2000,200,1500,120,auto,")
    assert render_csv(list(reversed(ROWS)), "2026-04") == data


def test_summary_totals() -> None:
    summary = summarize(ROWS)
    assert summary.count == 4 and summary.grand_total == 5230 and summary.missing_total == 1
    assert summary.by_vendor[0] == ("株式会社髙島ストア", 1, 3820)
    by_rate = {r.rate: (r.net, r.tax, r.gross, r.receipts) for r in summary.by_rate}
    assert by_rate == {10: (3000, 300, 3300, 2), 8: (1788, 142, 1930, 2)}
    assert summary.by_status == [("auto", 1, 3820), ("confirmed", 1, 1100),
                                 ("suggested", 1, 310), ("unmatched", 1, 0)]


def test_html_escapes_and_shows_totals() -> None:
    html = render_html(ROWS, "2026-04").decode("utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "¥5,230" in html and "¥3,300" in html and "髙島" in html
    assert render_html(list(reversed(ROWS)), "2026-04").decode() == html


def test_bad_period_is_rejected() -> None:
    with pytest.raises(ValueError):
        render_html(ROWS, "April")


def test_pdf_is_deterministic_and_has_japanese_text(tmp_path: Path) -> None:
    first = render_pdf(ROWS, "2026-04")
    second = render_pdf(list(reversed(ROWS)), "2026-04")
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    assert render_pdf(ROWS[:2], "2026-04") != first
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(first)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "株式会社髙島ストア" in text and "¥5,230" in text and "2026-04" in text
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True,
                           check=True).stdout
    assert "IPAGothic" in fonts
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                          check=True).stdout
    assert "2026" in next(line for line in info.splitlines() if line.startswith("CreationDate"))
