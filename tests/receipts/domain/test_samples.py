"""End to end over the generated samples: mail → OCR → parse → match, scored against truth.

Run `pytest tests/receipts/test_samples.py -s` to see the measured accuracy.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from python_worker.receipts.domain import mail, ocr, parse
from python_worker.receipts.domain.matching import (
    MatchResult,
    ReceiptFacts,
    Transaction,
    match_receipt,
)

ROOT = Path(__file__).resolve().parents[3]
TODAY = date(2026, 5, 1)
FIELDS = ("vendor", "date", "total", "tax", "registration_number")
# Measured with tesseract 5.3.0 (Debian bookworm, tessdata_fast jpn): 43/45 fields.
# The misses are OCR'd digits (a 0 read as 9 in a registration number: the 法人番号 check digit
# cannot see 0↔9 swaps, both weigh 0 mod 9) and an unreadable 内税 label.
MIN_FIELD_ACCURACY = 0.85


@dataclass
class Processed:
    key: str
    mail: mail.ParsedMail
    text_source: str | None = None
    result: parse.ParsedReceipt | None = None
    error: str | None = None


def _load_make_samples() -> Any:
    if "make_samples" in sys.modules:
        return sys.modules["make_samples"]
    spec = importlib.util.spec_from_file_location("make_samples",
                                                  ROOT / "scripts" / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("samples")
    _load_make_samples().build(out)
    return out, json.loads((out / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def processed(samples: tuple[Path, dict[str, Any]]) -> dict[str, Processed]:
    """What the intake and OCR handlers would store, one receipt file per mail."""
    root, truth = samples
    seen: set[str] = set()
    out: dict[str, Processed] = {}
    for key, raw in mail.iter_eml_dir(root / "mail"):
        parsed = mail.parse_message(raw)
        item = Processed(key, parsed)
        out[key] = item
        if parsed.raw_sha256 in seen:
            item.error = "duplicate"
            continue
        seen.add(parsed.raw_sha256)
        if parsed.attachments:
            data, ctype = parsed.attachments[0].data, parsed.attachments[0].content_type
        elif mail.is_html_only_receipt(parsed) and parsed.html_body:
            data, ctype = mail.render_html_to_pdf(parsed.html_body), "application/pdf"
        else:
            item.error = "no receipt"
            continue
        try:
            extracted = ocr.extract_text(data, ctype)
        except ocr.UnreadableDocument as exc:
            item.error = str(exc)
            continue
        item.text_source = extracted.source
        item.result = parse.parse_receipt(extracted.text, ocr_confidence=extracted.confidence,
                                          aliases=truth["aliases"], today=TODAY)
    return out


def _field_ok(name: str, expected: Any, got: parse.ParsedReceipt | None) -> bool:
    if got is None:
        return expected in (None, {})
    if name == "vendor":
        if expected is None or got.vendor is None:
            return expected is got.vendor
        from python_worker.receipts.domain.matching import normalize_vendor
        return normalize_vendor(expected) == normalize_vendor(got.vendor)
    if name == "date":
        return expected == (got.issue_date.isoformat() if got.issue_date else None)
    if name == "tax":
        return expected == {str(rate): {"net": band.net, "tax": band.tax}
                            for rate, band in got.tax.items()}
    return bool(expected == getattr(got, name))


def test_field_accuracy_against_truth(samples, processed) -> None:
    _, truth = samples
    correct = total = 0
    misses = []
    for receipt in truth["receipts"]:
        if receipt.get("duplicate_of"):
            continue
        result = processed[receipt["eml"]].result
        for name in FIELDS:
            total += 1
            if _field_ok(name, receipt[name], result):
                correct += 1
            else:
                misses.append((receipt["id"], name, receipt[name],
                               getattr(result, "issue_date" if name == "date" else name, None)))
    accuracy = correct / total
    print(f"\nsample field accuracy: {correct}/{total} = {accuracy:.1%}; misses: {misses}")
    assert accuracy >= MIN_FIELD_ACCURACY, misses


def test_text_layer_pdfs_are_exact(samples, processed) -> None:
    _, truth = samples
    for receipt in truth["receipts"]:
        if receipt["kind"] in ("pdf_text", "html"):
            item = processed[receipt["eml"]]
            assert item.text_source == "pdf_text"
            assert all(_field_ok(name, receipt[name], item.result) for name in FIELDS), item.key


def test_duplicate_message_is_recognised_by_raw_hash(processed) -> None:
    assert processed["07_duplicate_of_01.eml"].error == "duplicate"
    assert processed["07_duplicate_of_01.eml"].mail.message_id == \
        processed["01_takashima_iso2022jp.eml"].mail.message_id


def test_japanese_headers_decode(processed) -> None:
    assert processed["01_takashima_iso2022jp.eml"].mail.subject == \
        "【領収書】㈱髙島ストア ご利用分①"
    assert processed["02_family_sjis.eml"].mail.subject == "ご利用明細～ファミリーストア①"
    names = [a.filename for a in processed["10_tech_invoice_sjis.eml"].mail.attachments]
    assert names == ["請求書_202604.pdf"]


def test_unreadable_attachment_goes_to_review(processed) -> None:
    result = processed["08_unreadable.eml"].result
    assert result is not None
    assert {"total_missing", "date_missing", "low_ocr_confidence"} <= set(result.review_reasons)


def _transactions(root: Path) -> list[Transaction]:
    with (root / "transactions.csv").open(encoding="utf-8") as handle:
        return [Transaction(row["external_id"], row["account_kind"],  # type: ignore[arg-type]
                            date.fromisoformat(row["date"]), int(row["amount"]),
                            row["description"]) for row in csv.DictReader(handle)]


def test_matching_against_transactions(samples, processed) -> None:
    root, truth = samples
    txns = _transactions(root)
    taken: set[str] = set()
    outcomes: dict[str, MatchResult] = {}
    for receipt in truth["receipts"]:
        result = processed[receipt["eml"]].result
        if receipt.get("duplicate_of"):
            continue
        facts = ReceiptFacts(result.total, result.issue_date, result.vendor) if result \
            else ReceiptFacts(None, None, None)
        outcome = match_receipt(facts, txns, aliases=truth["aliases"], taken=taken)
        if outcome.status == "auto" and outcome.transaction_id:
            taken.add(outcome.transaction_id)
        outcomes[receipt["id"]] = outcome
    right = 0
    for receipt in truth["receipts"]:
        expected = receipt["expected_match"]
        if receipt["id"] not in outcomes:
            continue
        got = outcomes[receipt["id"]]
        ok = got.status == expected["status"] and got.transaction_id == expected["transaction"]
        if expected.get("candidates"):
            ok = ok and {c.transaction_id for c in got.candidates} == set(expected["candidates"])
        right += ok
    print(f"\nsample match accuracy: {right}/{len(outcomes)}")
    assert right == len(outcomes), {k: (v.status, v.transaction_id) for k, v in outcomes.items()}
    assert outcomes["r09"].status == "suggested" and "tie" in outcomes["r09"].reasons


def test_sample_generation_is_deterministic(tmp_path: Path) -> None:
    module = _load_make_samples()
    module.build(tmp_path / "a")
    module.build(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert len(files) == 14  # 10 mails, transactions.csv, bank-jp.csv, card-jp.csv, truth
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_large_set_is_seeded_and_covers_every_kind_and_failure_class(tmp_path: Path) -> None:
    module = _load_make_samples()
    truth = module.build_large(tmp_path / "a", 40, 3)
    module.build_large(tmp_path / "b", 40, 3)
    for rel in ("truth.json", "bank-jp.csv", "card-jp.csv", "mail/005_" + truth["receipts"][5][
            "eml"].split("_", 1)[1]):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    rows = truth["receipts"]
    assert len(rows) == 40
    assert {r["kind"] for r in rows} >= {"pdf_text", "pdf_scan", "photo", "html"}
    invoices = [r for r in rows if r["document"] == "invoice_jp"]
    assert invoices and all(r["due_date"] > r["date"] for r in invoices)
    bank = [r["expected_match"]["transaction"] for r in invoices
            if r["expected_match"]["transaction"]]
    assert all(t["description"].startswith("ﾌﾘｺﾐ ") for t in bank)  # paid by transfer
