"""Accuracy against a generated set's truth.json: fields right by field and by kind of document,
and how matching did (automatic matches right and wrong, matchable receipts matched).

Used by ``demo --large N`` after the pipeline ran, and by ``demo --large N --reparse`` to
re-read the stored text with the current parsing code (no OCR) while working on ``domain/``.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("vendor", "date", "total", "tax", "registration_number")
TAX_FIELDS = ("net", "tax")
DIGITAL = ("pdf_text", "html")


def _norm(text: str | None) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").split())


def field_checks(truth: dict[str, Any], got: dict[str, Any] | None) -> dict[str, bool]:
    """Per field: does the extraction agree with truth? `got` has vendor, issue_date (date),
    total_yen, tax ({"10": {"net", "tax", ...}}), registration_number."""
    if got is None:
        return dict.fromkeys(FIELDS, False)
    tax = got["tax"] or {}
    tax_ok = set(tax) == set(truth["tax"]) and all(
        tax[rate].get(f) == band.get(f) for rate, band in truth["tax"].items()
        for f in TAX_FIELDS if f in band)
    day = got["issue_date"]
    return {
        "vendor": _norm(got["vendor"]) == _norm(truth["vendor"]),
        "date": (day.isoformat() if day else None) == truth["date"],
        "total": got["total_yen"] == truth["total"],
        "tax": tax_ok,
        "registration_number": got["registration_number"] == truth["registration_number"],
    }


@dataclass
class Tally:
    right: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, field)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, eml: str, checks: dict[str, bool]) -> None:
        for name, ok in checks.items():
            self.seen[kind, name] += 1
            self.right[kind, name] += ok
            if not ok:
                self.misses[name].append(eml)

    def share(self, kinds: tuple[str, ...] | None = None) -> tuple[int, int]:
        keys = [k for k in self.seen if kinds is None or k[0] in kinds]
        return sum(self.right[k] for k in keys), sum(self.seen[k] for k in keys)


def table(tally: Tally) -> list[str]:
    """Rows: kinds of document; columns: fields, then all fields."""
    kinds = sorted({k for k, _ in tally.seen})
    head = f"{'kind':<10}{'n':>5}" + "".join(f"{f[:12]:>14}" for f in FIELDS) + f"{'all':>14}"
    out = [head]

    def pct(right: int, seen: int) -> str:
        return f"{right}/{seen} {100 * right / seen:3.0f}%" if seen else "-"

    for kind in [*kinds, "*"]:
        pick = kinds if kind == "*" else [kind]
        n = max((tally.seen[k, "total"] for k in pick), default=0) if kind != "*" else sum(
            tally.seen[k, "total"] for k in kinds)
        cells = [pct(sum(tally.right[k, f] for k in pick), sum(tally.seen[k, f] for k in pick))
                 for f in FIELDS]
        right, seen = tally.share(tuple(pick))
        out.append(f"{'all' if kind == '*' else kind:<10}{n:>5}"
                   + "".join(f"{c:>14}" for c in cells) + f"{pct(right, seen):>14}")
    return out


@dataclass
class MatchTally:
    matchable: int = 0
    auto_right: int = 0
    auto_wrong: int = 0
    suggested_right: int = 0
    unmatched_expected: int = 0
    wrong: list[str] = field(default_factory=list)

    def add(self, eml: str, expected: dict[str, Any], row: dict[str, Any] | None) -> None:
        want = expected.get("transaction")
        status = (row or {}).get("match_status") or "unmatched"
        got = None
        if row is not None and row.get("transaction_date") is not None:
            got = {"date": row["transaction_date"].isoformat(), "amount": row["total_yen"],
                   "description": row["transaction_description"]}
        same = isinstance(want, dict) and got is not None and all(
            got[k] == want[k] for k in ("date", "amount", "description"))
        if isinstance(want, dict):
            self.matchable += 1
        else:
            self.unmatched_expected += 1
        if status in ("auto", "confirmed"):
            if same:
                self.auto_right += 1
            else:
                self.auto_wrong += 1
                self.wrong.append(eml)
        elif status == "suggested" and same:
            self.suggested_right += 1

    def lines(self) -> list[str]:
        share = 100 * self.auto_right / self.matchable if self.matchable else 0.0
        return [
            f"matching: {self.matchable} matchable receipts; automatic and right "
            f"{self.auto_right} ({share:.0f}%), right one suggested {self.suggested_right}; "
            f"WRONG automatic matches: {self.auto_wrong}"
            + (f" ({', '.join(self.wrong[:8])})" if self.wrong else ""),
        ]
