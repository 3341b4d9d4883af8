"""Filing paths."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest

from python_worker.receipts.domain.filing import extension_for, filing_path, safe_component


def test_filing_path_layout() -> None:
    path = filing_path(receipt_id=42, issue_date=date(2026, 4, 3), vendor="株式会社髙島ストア",
                       total=3820, ext="PDF")
    assert path == "2026/04/株式会社髙島ストア/2026-04-03_株式会社髙島ストア_3820_42.pdf"


def test_unknown_parts() -> None:
    path = filing_path(receipt_id=7, issue_date=None, vendor=None, total=None, ext="")
    assert path == "unknown/unknown/unknown/unknown_unknown_unknown_7.bin"


@pytest.mark.parametrize(("raw", "expected"), [
    ("A/B\\C", "A_B_C"),
    ("..", "unknown"),
    ("  .hidden.  ", "hidden"),
    ("a\x00b\x1fc\x7f", "a_b_c_"),
    ('x:*?"<>|y', "x_______y"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("ＡＢＣ　商店", "ＡＢＣ 商店"),
    ("", "unknown"),
    ("\u200b", "unknown"),
])
def test_safe_component(raw: str, expected: str) -> None:
    assert safe_component(raw) == expected


def test_safe_component_is_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "ガイド")
    assert safe_component(decomposed) == "ガイド"


def test_long_vendor_is_cut_on_a_character_boundary() -> None:
    name = safe_component("髙" * 100, max_bytes=60)
    assert name == "髙" * 20 and len(name.encode()) <= 60
    path = filing_path(receipt_id=1, issue_date=date(2026, 4, 1), vendor="株" * 300, total=1,
                       ext="pdf")
    assert all(len(part.encode()) <= 210 for part in path.split("/"))
    assert path.endswith("_1_1.pdf")


def test_no_separator_survives_in_any_segment() -> None:
    path = filing_path(receipt_id="../../etc", issue_date=date(2026, 4, 1), vendor="a/../b",
                       total=5, ext="p/df")
    parts = path.split("/")
    assert len(parts) == 4 and ".." not in parts
    assert parts[-1].endswith(".pdf")


def test_extension_for() -> None:
    assert extension_for("application/pdf") == "pdf"
    assert extension_for("image/jpeg; name=x") == "jpg"
    assert extension_for("application/octet-stream", "scan.TIF") == "tif"
    assert extension_for("application/x-unknown") == "bin"
