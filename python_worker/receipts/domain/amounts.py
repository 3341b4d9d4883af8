"""Amounts in yen and the receipt's total, from normalised text (a part of parse.py's work).

`normalize_text(text)`, `parse_amount(s)`, `find_total(lines)`; `amounts_in(segment)` gives
every money-like number with its offset and whether it carried a yen marker.
"""

from __future__ import annotations

import re
import unicodedata

# --- normalisation and amounts ----------------------------------------------------------

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"


def normalize_text(text: str) -> str:
    """NFKC (full-width digits, ￥, ，), backslash-as-yen before digits, dashes to '-',
    collapsed spaces, blank lines dropped."""
    t = unicodedata.normalize("NFKC", text)
    t = re.sub(r"\\(?=\s*\d)", "¥", t)  # JIS-Roman yen is often read as a backslash
    t = re.sub(f"[{_DASHES}](?=\\s*\\d)", "-", t)
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in t.splitlines())
    return "\n".join(line for line in lines if line)


# OCR puts spaces after separators ("1, 100") and stray marks after the yen sign ("¥*480").
_AMOUNT = re.compile(
    r"(?<![\d.,])(?P<yen>¥\s*[*'`]?\s*)?(?P<num>\d{1,3}(?:[,.]{1,2} ?\d{3})+(?![\d.,]\d)|\d+)"
    r"(?P<suffix>\s*円|\s*-(?!\d)|\s*(?:点|個|品|%|件|枚))?"
)


def _amounts(segment: str) -> list[tuple[int, int, bool]]:
    """(value, start offset, has yen marker) for money-like numbers in `segment`."""
    out = []
    for m in _AMOUNT.finditer(segment):
        suffix = (m["suffix"] or "").strip()
        if suffix and suffix not in ("円", "-"):
            continue  # counts (3点) and rates (10%) are not money
        if m["yen"] is None and not suffix and len(m["num"]) > 9:
            continue  # long digit runs: phone, card or registration numbers
        out.append((int(re.sub(r"[,. ]", "", m["num"])), m.start(), bool(m["yen"] or suffix)))
    return out


def parse_amount(s: str) -> int | None:
    """First amount in `s` in yen: '¥1,100' → 1100, '１，１００円' → 1100, '1.100-' → 1100."""
    found = _amounts(normalize_text(s))
    return found[0][0] if found else None


# --- total ------------------------------------------------------------------------------

_TOTAL_LABELS = [
    r"総合計", r"お支払(?:い)?(?:金額|合計)", r"ご?請求(?:金)?額", r"領収金額", r"税込合計",
    r"合計金額", r"お買上げ?(?:合)?計", r"お買い上げ合計", r"合\s*計", r"grand\s*total",
    r"amount\s*(?:due|paid)", r"total\s*(?:due|amount|\(.*?\))?", r"金額",
]
_TOTAL_RE = [re.compile(p, re.I) for p in _TOTAL_LABELS]
_NOT_TOTAL = re.compile(
    r"小計|対象|内税|消費税|税額|お預|お釣|釣銭|点数|sub\s*-?\s*total|total\s*tax|tax\s*total|"
    r"change|tendered|^\s*(?:consumption\s*)?tax", re.I)


def find_total(lines: list[str]) -> tuple[int | None, float]:
    """The labelled total (best label wins, first occurrence); else the largest yen-marked
    amount at low confidence. Returns (total, rule confidence)."""
    best: tuple[int, int, int] | None = None  # (label rank, line index, amount)
    for i, line in enumerate(lines):
        if _NOT_TOTAL.search(line):
            continue
        for rank, pattern in enumerate(_TOTAL_RE):
            m = pattern.search(line)
            if not m:
                continue
            found = _amounts(line[m.end():])
            if not found and i + 1 < len(lines) and not _NOT_TOTAL.search(lines[i + 1]):
                found = _amounts(lines[i + 1])  # label and value on separate lines
            if found and (best is None or rank < best[0]):
                best = (rank, i, found[0][0])
            break
    if best is not None:
        return best[2], 0.95 if best[0] < len(_TOTAL_RE) - 1 else 0.7
    marked = [a for line in lines if not _NOT_TOTAL.search(line)
              for a, _, yen in _amounts(line) if yen]
    return (max(marked), 0.4) if marked else (None, 0.0)


amounts_in = _amounts
TOTAL_RE = _TOTAL_RE
NOT_TOTAL = _NOT_TOTAL
