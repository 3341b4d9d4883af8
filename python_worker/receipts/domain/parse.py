"""Receipt fields from extracted text: total, date, vendor, tax bands, registration number.

Public API (pure, no database):

- `parse_receipt(text: str, *, ocr_confidence: float = 1.0, aliases: Mapping[str, Iterable[str]]
  | None = None, sender: str | None = None, today: date | None = None,
  min_ocr_confidence: float = 0.6, retention_years: int = 7) -> ParsedReceipt`; `sender` is
  the mail's From: display name, a cross-check of the vendor's spelling
- `ParsedReceipt(vendor, issue_date, total, tax: dict[int, TaxBand], registration_number,
  registration_checked, confidence: dict[str, float], review_reasons: list[str])`
- `TaxBand(rate, net, tax, gross)`: yen, `net + tax == gross` when all are known; `net` is the
  tax-exclusive amount whether the receipt printed it inclusive (内税) or exclusive (外税).
- `normalize_text(text) -> str`, `parse_amount(s) -> int | None`, `find_total(lines)`
  (amounts.py), `find_date(lines)`, `find_due_date(lines)`, `find_vendor(lines, aliases)`,
  `find_tax_bands(lines, total)` (tax.py), `find_registration_number(text)`,
  `corporate_number_check_digit(digits12) -> int`, `is_valid_corporate_number(digits13)`
  (registration.py); all importable from here.

Nothing is guessed: a field that is absent or doubtful is None or carries a `review_reasons`
entry: `total_missing`, `total_unlabelled`, `date_missing`, `date_in_future`, `date_too_old`,
`vendor_missing`, `low_ocr_confidence`, `tax_missing`, `tax_amount_missing`,
`tax_band_inconsistent`, `tax_bands_mismatch`, `registration_check_digit_failed`.

The registration number (T + 13 digits) of a corporation is T + its 法人番号, whose first
digit is a check digit (receipts-domain.md §4, [O3]). A sole proprietor's number is not a
法人番号 and may fail the check, so a failure is a review flag, not a rejection. The check
cannot see a 0 read as 9 (both weigh 0 mod 9), a common tesseract jpn error: OCR'd numbers
still deserve the NTA lookup before they are trusted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from .amounts import find_total, normalize_text, parse_amount
from .matching import normalize_vendor
from .registration import (
    corporate_number_check_digit,
    find_registration_number,
    is_valid_corporate_number,
)
from .tax import TaxBand, agreed_total, find_tax_bands

__all__ = [
    "ParsedReceipt", "TaxBand", "corporate_number_check_digit", "find_date", "find_due_date",
    "find_registration_number", "find_tax_bands", "find_total", "find_vendor",
    "is_valid_corporate_number", "normalize_text", "parse_amount", "parse_receipt",
]


@dataclass(frozen=True)
class ParsedReceipt:
    vendor: str | None
    issue_date: date | None
    total: int | None
    tax: dict[int, TaxBand]
    registration_number: str | None
    registration_checked: bool | None  # True: 法人番号 check digit holds; None: no number
    confidence: dict[str, float] = field(default_factory=dict)
    review_reasons: list[str] = field(default_factory=list)
    due_date: date | None = None  # an invoice's お支払期限 / due date, when printed


# --- date -------------------------------------------------------------------------------

_ERA = re.compile(r"(令和|平成|(?<![A-Za-z])[RH])\s*(\d{1,2}|元)\s*[年./-]\s*(\d{1,2})\s*"
                  r"[月./-]\s*(\d{1,2})")
_WESTERN = re.compile(r"(?<!\d)(20\d{2})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})(?!\d)")
_SHORT = re.compile(r"(?<![\d/])(\d{2})/(\d{1,2})/(\d{1,2})(?![\d/])")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_EN_MDY = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+"
                     r"(\d{1,2}),?\s+(20\d{2})", re.I)
_EN_DMY = re.compile(r"\b(\d{1,2})\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
                     r"\.?,?\s+(20\d{2})", re.I)
_DATE_LABEL = re.compile(r"日付|発行日|ご?利用日|取引日|購入日|ご?注文日|領収日|date|issued", re.I)
_NOT_ISSUE = re.compile(r"期限|有効|締切|支払日|due|expir|valid", re.I)


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _zero_read_as_nine(year: int, month: str, day: str) -> date | None:
    """tesseract's jpn model reads 0 as 9: '2026/94/18' is 2026-04-18. Tried only when the
    date as read is impossible, and only on a leading 9 of a two-digit month or day."""
    fixed = [("0" + x[1:]) if len(x) == 2 and x[0] == "9" else x for x in (month, day)]
    if fixed == [month, day]:
        return None
    return _safe_date(year, int(fixed[0]), int(fixed[1]))


def _dates_in(line: str) -> list[tuple[date, float]]:
    found: list[tuple[int, date, float]] = []
    for m in _ERA.finditer(line):
        n = 1 if m[2] == "元" else int(m[2])
        year = (2018 if m[1] in ("令和", "R") else 1988) + n
        if (dt := _safe_date(year, int(m[3]), int(m[4]))) is not None:
            found.append((m.start(), dt, 0.95))
    for m in _WESTERN.finditer(line):
        if (dt := _safe_date(int(m[1]), int(m[2]), int(m[3]))) is not None:
            found.append((m.start(), dt, 0.95))
        elif (dt := _zero_read_as_nine(int(m[1]), m[2], m[3])) is not None:
            found.append((m.start(), dt, 0.7))
    for m in _EN_MDY.finditer(line):
        if (dt := _safe_date(int(m[3]), _MONTHS[m[1][:3].lower()], int(m[2]))) is not None:
            found.append((m.start(), dt, 0.9))
    for m in _EN_DMY.finditer(line):
        if (dt := _safe_date(int(m[3]), _MONTHS[m[2][:3].lower()], int(m[1]))) is not None:
            found.append((m.start(), dt, 0.9))
    if not found:
        for m in _SHORT.finditer(line):
            if (dt := _safe_date(2000 + int(m[1]), int(m[2]), int(m[3]))) is not None:
                found.append((m.start(), dt, 0.7))
    return [(dt, conf) for _, dt, conf in sorted(found, key=lambda x: x[0])]


_DUE = re.compile(r"支払(?:い)?期[限日]|振込期[限日]|due\s*(?:date|by|on)?|payment\s*due", re.I)


def find_due_date(lines: list[str]) -> date | None:
    """The payment due date of an invoice: the first date on a due line."""
    for line in lines:
        if _DUE.search(line) and (dates := _dates_in(line)):
            return dates[0][0]
    return None


def find_date(lines: list[str]) -> tuple[date | None, float]:
    """The issue date: a date on a labelled line first, then the first date not on a
    due/expiry line, then any date at lower confidence."""
    plain: list[tuple[date, float]] = []
    due: list[tuple[date, float]] = []
    for line in lines:
        dates = _dates_in(line)
        if not dates:
            continue
        if _NOT_ISSUE.search(line):
            due.extend(dates)
        elif _DATE_LABEL.search(line):
            return dates[0]
        else:
            plain.extend(dates)
    if plain:
        return plain[0][0], plain[0][1] * 0.95
    if due:
        return due[0][0], 0.4
    return None, 0.0


# --- vendor -----------------------------------------------------------------------------

_LEGAL_FORM = re.compile(r"株式会社|有限会社|合同会社|合資会社|\((?:株|有)\)|"
                         r"\bco\.?,?\s*ltd\b|\binc\b\.?|\bllc\b|\bk\.k\.|\bcorporation\b", re.I)
_TITLE = re.compile(r"^(?:御?領収[書証]|レシート|ご?請求書|納品書|(?:お買上|ご利用)?明細書?|"
                    r"控え?|再発行|receipt|invoice|taxinvoice|orderconfirmation|"
                    r"ご注文(?:確認|内容)?(?:の確認)?)\W*$", re.I)  # matched with spaces removed
_CUSTOMER = re.compile(r"(?:様|御中|殿)\s*$")
_NOISE = re.compile(r"\d{4,}|[¥円%〒@]|\btel\b|\bfax\b|電話|http|www\.|登録番号|\bno\.|^\W*$",
                    re.I)
_VENDOR_TAIL = re.compile(r"\s*(?:TEL|電話|登録番号|T\d{13}).*$", re.I)
_LABEL_PREFIX = re.compile(r"^(?:発行元|店舗名?|販売元|事業者名?|from|seller|vendor)\s*[:：]\s*",
                           re.I)


# OCR noise around a name: leading 、 . | and the like, a trailing | or a stray Latin letter or
# two after a Japanese name ("株式会社さくら珈琲 l").
_NOISE_LEAD = re.compile(r"^[\s、。,.|:;'\"`・_~=*\-]+")
_NOISE_TAIL = re.compile(r"(?:\s+[|:;'\"`_~=*]+|\s+[A-Za-z]{1,2}(?<=[A-Za-z]))+$")
_CJK_END = re.compile(r"[\u3040-\u30ff\u3400-\u9fff)）]$")
_BILL_TO = re.compile(r"^(?:billed\s*to|bill\s*to|sold\s*to|ship\s*to|customer|請求先|宛先)\b"
                      r"\s*:?\s*", re.I)
_FROM_HEADING = re.compile(r"^(?:receipt|invoice|tax\s*invoice)\s+from\s+(?P<name>.+)$", re.I)


_LATIN_FORM_COMMA = re.compile(r"\b(Inc|Ltd|Co|Corp|K\.K|LLC)\s*,$")


def _clean_vendor(line: str) -> str:
    name = _VENDOR_TAIL.sub("", _LABEL_PREFIX.sub("", line))
    name = _NOISE_LEAD.sub("", name).rstrip(" |")
    bare = _NOISE_TAIL.sub("", name)
    if bare != name and _CJK_END.search(bare):
        name = bare  # only after a Japanese name: "Example Cloud Inc" keeps its letters
    name = _LATIN_FORM_COMMA.sub(r"\1.", name)  # "Inc," is "Inc." with the dot misread
    return name.strip(" :・-|")


def _maybe_addressee(line: str) -> bool:
    """A Japanese name followed by a stray Latin token ("株式会社キュウ・トレーディング KR"):
    often 様 misread, so the line may name the customer."""
    bare = _NOISE_TAIL.sub("", line.rstrip(" |"))
    return bare != line.rstrip(" |") and bool(_CJK_END.search(bare))


def _same_name_other_spelling(found: str, sender: str | None) -> str | None:
    """The sender's display name when it is the found name with a few characters read
    differently (髙 read as 高): same length, at most 2 characters apart."""
    if not sender:
        return None
    a, b = re.sub(r"\s+", "", found), re.sub(r"\s+", "", sender)
    if a == b or len(a) != len(b) or len(a) < 4:
        return None
    differing = sum(x != y for x, y in zip(a, b, strict=True))
    return sender.strip() if differing <= min(2, len(a) // 4) else None


def _addressee_lines(lines: list[str]) -> set[int]:
    """Indexes of an English 'Bill to' block: the label line and the name (and address)
    under it, which name the customer, never the issuer."""
    skip: set[int] = set()
    for i, line in enumerate(lines):
        m = _BILL_TO.match(line)
        if m:
            rest = line[m.end():].strip()
            skip.update(range(i, i + (2 if rest else 3)))
    return skip


def find_vendor(lines: list[str],
                aliases: Mapping[str, Iterable[str]] | None = None) -> tuple[str | None, float]:
    """Alias table hit (canonical name) > first line with a legal form > first plausible
    line near the top (not a title, customer, address, phone or amount line)."""
    if aliases:
        norm_lines = [normalize_vendor(line) for line in lines]
        for vendor, names in aliases.items():
            for name in (vendor, *names):
                key = normalize_vendor(name)
                if key and any(key == nl or (len(key) >= 3 and key in nl) for nl in norm_lines):
                    return vendor, 0.95
    for line in lines[:6]:
        if (m := _FROM_HEADING.match(line)) is not None:
            cleaned = _clean_vendor(m["name"])
            if len(cleaned) >= 2:
                return cleaned, 0.85
    customer = _addressee_lines(lines)
    formal = [(i, line) for i, line in enumerate(lines)
              if _LEGAL_FORM.search(line) and not _CUSTOMER.search(line) and i not in customer]
    # a clean legal-form line before one that may be an addressee with 様 misread
    formal.sort(key=lambda x: (_maybe_addressee(x[1]), x[0]))
    for _, line in formal:
        cleaned = _clean_vendor(line)
        if len(cleaned) >= 2:
            return cleaned, 0.85
    for i, line in enumerate(lines[:8]):
        if (_TITLE.match(re.sub(r"\s+", "", line)) or _CUSTOMER.search(line)
                or _NOISE.search(line) or i in customer):
            continue
        cleaned = _clean_vendor(line)
        if len(cleaned) >= 2 and not _DATE_LABEL.search(cleaned) and not _dates_in(cleaned):
            return cleaned, 0.6
    return None, 0.0


# --- entry point ------------------------------------------------------------------------

def parse_receipt(text: str, *, ocr_confidence: float = 1.0,
                  aliases: Mapping[str, Iterable[str]] | None = None,
                  sender: str | None = None,
                  today: date | None = None, min_ocr_confidence: float = 0.6,
                  retention_years: int = 7) -> ParsedReceipt:
    """Extract every field from `text` (a text layer or OCR output). `today` bounds plausible
    dates (default: date.today())."""
    today = today or date.today()
    norm = normalize_text(text)
    lines = norm.splitlines()
    reasons: list[str] = []

    total, total_conf = find_total(lines)
    if total is None:
        reasons.append("total_missing")
    elif total_conf < 0.5:
        reasons.append("total_unlabelled")

    issue_date, date_conf = find_date(lines)
    if issue_date is None:
        reasons.append("date_missing")
    elif issue_date > today + timedelta(days=1):
        reasons.append("date_in_future")
    elif issue_date < today - timedelta(days=366 * retention_years):
        reasons.append("date_too_old")

    vendor, vendor_conf = find_vendor(lines, aliases)
    if vendor is not None and (spelled := _same_name_other_spelling(vendor, sender)):
        vendor = spelled  # the mail's From: name spells it as the vendor does (髙, not 高)
    if vendor_conf < 0.7 and ocr_confidence < min_ocr_confidence:
        vendor, vendor_conf = None, 0.0  # "first plausible line" of garbage is a guess
    if vendor is None:
        reasons.append("vendor_missing")

    bands, tax_reasons = find_tax_bands(lines, total)
    if "tax_bands_mismatch" in tax_reasons and (agreed := agreed_total(lines, bands)):
        total = agreed  # OCR noise in the total ("¥1,.040" read as 1): two printed figures agree
        bands, tax_reasons = find_tax_bands(lines, total)
    if not bands and total is not None:
        tax_reasons.append("tax_missing")  # 適格簡易請求書 must show tax or rate per band
    reasons.extend(tax_reasons)

    reg, reg_ok = find_registration_number(norm)
    if reg is not None and not reg_ok:
        reasons.append("registration_check_digit_failed")

    if ocr_confidence < min_ocr_confidence:
        reasons.append("low_ocr_confidence")

    scale = max(0.0, min(1.0, ocr_confidence))
    tax_conf = 0.0 if not bands else (0.3 if tax_reasons else 0.9)
    reg_conf = 0.0 if reg is None else (0.95 if reg_ok else 0.4)
    confidence = {
        "total": round(total_conf * scale, 3),
        "issue_date": round(date_conf * scale, 3),
        "vendor": round(vendor_conf * scale, 3),
        "tax": round(tax_conf * scale, 3),
        "registration_number": round(reg_conf * scale, 3),
    }
    due = find_due_date(lines)
    if due is not None and issue_date is not None and not (
            issue_date <= due <= issue_date + timedelta(days=120)):
        due = None  # a due date before the issue date, or months later, is a misreading
    return ParsedReceipt(vendor, issue_date, total, bands, reg, reg_ok, confidence,
                         list(dict.fromkeys(reasons)), due)
