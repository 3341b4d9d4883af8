"""Tax bands by rate (8 %, 10 %) from 対象 / 消費税 / JCT lines, and the total two printed
figures agree on when OCR garbled it (a part of parse.py's work)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .amounts import NOT_TOTAL as _NOT_TOTAL
from .amounts import TOTAL_RE as _TOTAL_RE
from .amounts import amounts_in as _amounts


@dataclass(frozen=True)
class TaxBand:
    rate: int
    net: int | None
    tax: int | None
    gross: int | None


# --- tax bands --------------------------------------------------------------------------

# "19%" is 10% with the 0 read as 9 (no 19% rate exists in Japan)
_RATE = re.compile(r"(?<![\d.,¥])(1[09]|8)\s*(?:%|96(?=\s*(?:対象|[)\]])))")
_BASE_KW = re.compile(r"対象|taxable", re.I)
_TAX_KW = re.compile(r"(?:内\s*)?消費税(?:等)?|税額|内税|(?<![a-z])(?:consumption\s*)?tax"
                     r"(?![a-z])|(?<![A-Za-z])JCT(?![A-Za-z])", re.I)
# "JCT (10% on ¥15,000) ¥1,500": the amount in the brackets is the taxable base, not the tax
_RATE_ON_BASE = re.compile(r"\(\s*(8|10)\s*%\s*on\s*(¥?\s*\d[\d,. ]*\d)\s*\)", re.I)
_REDUCED = re.compile(r"軽減|※|軽")
# "Total (incl. tax)" and 税込 mention tax without being a tax line.
# But "(incl. tax 10% ¥835)" is one: a rate and an amount follow, so it is left alone.
_TAX_INCLUDED = re.compile(r"incl(?:uding|\.)?\s*(?:consumption\s*)?tax"
                           r"(?!\s*:?\s*\(?\s*(?:8|10)\s*%)|tax\s*incl(?:uded|\.)?|税込み?", re.I)


_SUBTOTAL = re.compile(r"小計|sub\s*-?\s*total", re.I)


def _subtotal(lines: list[str]) -> int | None:
    for line in lines:
        if _SUBTOTAL.search(line) and (found := _amounts(line[_SUBTOTAL.search(line).end():])):
            return found[0][0]
    return None


def _base_first(line: str) -> str:
    """'JCT (10% on ¥15,000) ¥1,500' → '10%対象 ¥15,000 消費税 ¥1,500'."""
    m = _RATE_ON_BASE.search(line)
    return f"{m[1]}%対象 {m[2]} 消費税 {line[m.end():]}" if m else line


def _consistent(tax: int, amount: int, rate: int, inclusive: bool) -> bool:
    expected = amount * rate // ((100 + rate) if inclusive else 100)
    return abs(tax - expected) <= 1


def find_tax_bands(lines: list[str], total: int | None) -> tuple[dict[int, TaxBand], list[str]]:
    """Tax per rate from 対象/消費税 lines, resolved to net/tax/gross; review reasons."""
    raw: dict[int | None, dict[str, int]] = {}
    last_rate: int | None = None
    for line in (_base_first(_TAX_INCLUDED.sub(" ", x)) for x in lines):
        base_kw, tax_kw = _BASE_KW.search(line), _TAX_KW.search(line)
        rate_m = _RATE.search(line)
        rate = (10 if rate_m[1] == "19" else int(rate_m[1])) if rate_m else None
        if not (base_kw or tax_kw):
            last_rate = rate if rate is not None else None
            continue
        if rate is None:
            rate = last_rate
            if rate is None and _REDUCED.search(line) and base_kw:
                rate = 8
        slot = raw.setdefault(rate, {})
        if base_kw:
            end = tax_kw.start() if tax_kw and tax_kw.start() > base_kw.end() else len(line)
            found = _amounts(line[base_kw.end():end]) or (
                _amounts(line[:base_kw.start()]) if not tax_kw else [])
            if found:
                slot.setdefault("base", found[0][0])
        if tax_kw:
            found = _amounts(line[tax_kw.end():])
            if found:
                slot.setdefault("tax", found[0][0])
        last_rate = rate
    reasons: list[str] = []
    if None in raw:
        unknown = raw.pop(None)
        if "tax" in unknown and not raw and total is not None:
            for r in (10, 8):  # a single band without a printed rate: infer it from the total
                if _consistent(unknown["tax"], total, r, True) or _consistent(
                        unknown["tax"], total - unknown["tax"], r, False):
                    raw[r] = unknown
                    break
    known = {r: slot for r, slot in raw.items() if r is not None}
    bands: dict[int, TaxBand] = {}
    for rate, slot in sorted(known.items(), reverse=True):
        base, tax = slot.get("base"), slot.get("tax")
        if base is None and tax is not None and len(known) == 1 and total is not None:
            base = total  # single band: the total is its gross amount
            subtotal = _subtotal(lines)
            if (subtotal is not None and not _consistent(tax, base, rate, True)
                    and not _consistent(tax, base, rate, False)
                    and _consistent(tax, subtotal, rate, False)):
                base = subtotal  # 外税: 小計 + 消費税 = 合計, and the total was misread
        if base is not None and tax is not None:
            if _consistent(tax, base, rate, True):
                bands[rate] = TaxBand(rate, base - tax, tax, base)
            elif _consistent(tax, base, rate, False):
                bands[rate] = TaxBand(rate, base, tax, base + tax)
            else:
                reasons.append("tax_band_inconsistent")
                bands[rate] = TaxBand(rate, None, tax, None)
        else:
            bands[rate] = TaxBand(rate, None, tax, base if tax is None else None)
            if tax is None:
                reasons.append("tax_amount_missing")
    grosses = [b.gross for b in bands.values()]
    if bands and total is not None and all(g is not None for g in grosses):
        if sum(g for g in grosses if g is not None) != total:
            reasons.append("tax_bands_mismatch")
    return bands, reasons




def agreed_total(lines: list[str], bands: dict[int, TaxBand]) -> int | None:
    """The sum of the tax bands' gross amounts, when it is also printed on the subtotal line
    or as another amount on a total line; else None."""
    grosses = [b.gross for b in bands.values()]
    if not grosses or any(g is None for g in grosses):
        return None
    wanted = sum(g for g in grosses if g is not None)
    for line in lines:
        labelled = _SUBTOTAL.search(line) or (
            not _NOT_TOTAL.search(line) and any(p.search(line) for p in _TOTAL_RE[:-1]))
        if labelled and wanted in (a for a, _, _ in _amounts(line)):
            return wanted
    # one misread last digit in the total ('¥4,.136' for 4,130), when a single band's amount
    # is printed on another line too (乗車料金 ¥4,130): two figures against one
    totals = [i for i, line in enumerate(lines)
              if not _NOT_TOTAL.search(line) and any(p.search(line) for p in _TOTAL_RE[:-1])]
    elsewhere = [i for i, line in enumerate(lines) if i not in totals
                 and not _BASE_KW.search(line) and wanted in (a for a, _, _ in _amounts(line))]
    if len(grosses) == 1 and elsewhere:
        for i in totals:
            read = [a for a, _, _ in _amounts(lines[i])]
            if read and len(str(read[0])) == len(str(wanted)) and read[0] // 10 == wanted // 10:
                return wanted
    return None
