"""A tie between the best candidates decides the band on its own, whatever the margin setting:
it is never matched automatically, and it is always offered for a decision."""

from __future__ import annotations

from datetime import date, timedelta

from python_worker.receipts.domain.matching import (
    MatchConfig,
    ReceiptFacts,
    Transaction,
    match_receipt,
)

DAY = date(2026, 4, 10)


def twin_lines(desc: str, days: int = 0) -> list[Transaction]:
    return [Transaction(id=i, account_kind="card", date=DAY + timedelta(days=days), amount=1100,
                        description=desc) for i in ("t1", "t2")]


def test_a_tie_never_auto_matches_even_with_no_margin_required() -> None:
    receipt = ReceiptFacts(1100, DAY, "日本交通タクシー株式会社")
    lines = twin_lines("ﾆﾎﾝｺｳﾂｳ ﾀｸｼ-")
    no_margin = MatchConfig(auto_margin=0.0)
    assert match_receipt(receipt, lines[:1], config=no_margin).status == "auto"  # one is auto
    result = match_receipt(receipt, lines, config=no_margin)
    assert (result.status, result.transaction_id) == ("suggested", None)


def test_a_tie_below_the_suggest_threshold_is_still_offered() -> None:
    receipt = ReceiptFacts(1100, DAY, "株式会社まったく別の名前")
    lines = twin_lines("ZZZZ QQQQ", days=6)  # same amount, far in the window, no vendor likeness
    high_bar = MatchConfig(suggest_threshold=0.99, auto_threshold=0.995)
    assert match_receipt(receipt, lines[:1], config=high_bar).status == "unmatched"
    result = match_receipt(receipt, lines, config=high_bar)
    assert result.status == "suggested"
    assert {c.transaction_id for c in result.candidates} == {"t1", "t2"}
