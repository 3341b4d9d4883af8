"""Invoice registration numbers (適格請求書発行事業者登録番号, T + 13 digits) and the 法人番号
check digit (a part of parse.py's work)."""

from __future__ import annotations

import re

# --- registration number ----------------------------------------------------------------

# 登録番号, or the English labels of SaaS invoices; up to 15 digits, because OCR reads the "T"
# as "1", "7" or "17" in front of the 13.
_REG_LABELLED = re.compile(r"(?:登\s*録\s*番\s*号|registration\s*(?:no\.?|number|#)|reg\.\s*no\.?)"
                           r"[^\w\n]{0,4}([TtIl|])?\s*-?\s*((?:\d[ -]?){13,15})(?!\d)", re.I)
_REG_T = re.compile(r"(?<![A-Za-z0-9])T\s*-?\s*(\d(?:\s*-?\s*\d){12})(?!\d)")
_REG_BARE = re.compile(r"(?<![\d-])(\d{13})(?!\d)")


def corporate_number_check_digit(digits12: str) -> int:
    """法人番号 check digit: 9 − (Σ Pn·Qn mod 9), Pn the n-th digit from the right,
    Qn = 1 for odd n and 2 for even n."""
    total = sum(int(c) * (1 if n % 2 else 2) for n, c in enumerate(reversed(digits12), 1))
    return 9 - total % 9


def is_valid_corporate_number(digits13: str) -> bool:
    return (len(digits13) == 13 and digits13.isdigit()
            and int(digits13[0]) == corporate_number_check_digit(digits13[1:]))


def find_registration_number(text: str) -> tuple[str | None, bool | None]:
    """('T' + 13 digits, check digit holds) or (None, None).

    Labelled (登録番号) first, tolerating a 'T' misread as 1/I/l/|/7; then an unlabelled
    T + 13 digits; then a bare 13-digit run only when its 法人番号 check digit holds.
    """
    m = _REG_LABELLED.search(text)
    if m:
        digits = re.sub(r"\D", "", m[2])
        if len(digits) > 13:  # a misread T in front: the number is the last 13 digits ...
            right, left = digits[-13:], digits[:13]
            digits = left if (is_valid_corporate_number(left)
                              and not is_valid_corporate_number(right)) else right
        return "T" + digits, is_valid_corporate_number(digits)
    m = _REG_T.search(text)
    if m:
        digits = re.sub(r"\D", "", m[1])
        return "T" + digits, is_valid_corporate_number(digits)
    for m in _REG_BARE.finditer(text):
        if is_valid_corporate_number(m[1]):
            return "T" + m[1], True
    return None, None
