"""The second OCR pass: real tesseract on generated photos (a parking receipt from the large
set whose first reading fails its checks, the unreadable noise image, a text-layer PDF)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from python_worker.receipts.domain import mail as mailparse
from python_worker.receipts.domain.ocr import OcrResult
from python_worker.receipts.domain.parse import ParsedReceipt, parse_receipt
from python_worker.receipts.domain.reading import read_receipt

ROOT = Path(__file__).resolve().parents[3]
TODAY = date(2026, 6, 30)


def load_make_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples",
                                                  ROOT / "scripts" / "make_samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def parse(result: OcrResult) -> ParsedReceipt:
    return parse_receipt(result.text, ocr_confidence=result.confidence, today=TODAY)


def attachment(eml: Path) -> tuple[bytes, str]:
    parsed = mailparse.parse_message(eml.read_bytes())
    return parsed.attachments[0].data, parsed.attachments[0].content_type


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("large")
    truth = load_make_samples().build_large(out, 81, 11)  # mail 080 as in the seed-11 set
    return out, {r["eml"]: r for r in truth["receipts"]}


def test_a_photo_that_fails_its_checks_is_read_again_and_the_passing_reading_kept(
        large: tuple[Path, dict]) -> None:
    out, truth = large
    name = "080_parking_photo.eml"
    data, ctype = attachment(out / "mail" / name)
    assert parse(read_receipt(data, ctype, parse=parse, retries=()).result).review_reasons
    reading = read_receipt(data, ctype, parse=parse)
    assert reading.passes == 2 and reading.parsed.review_reasons == []
    want = truth[name]
    assert (reading.parsed.total, reading.parsed.issue_date.isoformat()) == (
        want["total"], want["date"])
    assert reading.parsed.vendor == want["vendor"]
    assert "lines36" in reading.result.engine  # the preparation that read it is recorded


def test_a_reading_that_never_passes_keeps_the_first_one_and_its_reasons(
        tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(tmp_path)],
                   check=True, capture_output=True)
    data, ctype = attachment(tmp_path / "mail" / "08_unreadable.eml")
    first = read_receipt(data, ctype, parse=parse, retries=())
    reading = read_receipt(data, ctype, parse=parse)
    assert reading.passes == 3
    assert reading.result.engine == first.result.engine  # the first reading stays
    assert reading.parsed.review_reasons == first.parsed.review_reasons != []

    pdf, pdf_type = attachment(tmp_path / "mail" / "03_cloud_en.eml")
    assert read_receipt(pdf, pdf_type, parse=parse).passes == 1  # a text layer: no OCR
