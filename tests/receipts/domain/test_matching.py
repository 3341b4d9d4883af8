"""Receipt ↔ transaction matching."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from python_worker.receipts.domain.matching import (
    DateWindow,
    ExistingDecision,
    MatchConfig,
    ReceiptFacts,
    Transaction,
    match_receipt,
    normalize_vendor,
    vendor_similarity,
)

DAY = date(2026, 4, 3)
RECEIPT = ReceiptFacts(total=3820, issue_date=DAY, vendor="サンプルショウジ株式会社")


def txn(tid: str, amount: int = 3820, days: int = 0, kind: str = "card",
        desc: str = "ｶ)ｻﾝﾌﾟﾙｼﾖｳｼﾞ") -> Transaction:
    return Transaction(tid, kind, DAY + timedelta(days=days), amount, desc)  # type: ignore[arg-type]


@pytest.mark.parametrize(("raw", "expected"), [
    ("ｶ)ｻﾝﾌﾟﾙｼﾖｳｼﾞ", "サンプルシヨウジ"),
    ("株式会社サンプル商事", "サンプル商事"),
    ("㈱髙島屋", "髙島屋"),
    ("(株)たかしまや", "タカシマヤ"),
    ("ﾌﾘｺﾐ ｶ)ﾃﾂｸｻ-ﾋﾞｽ", "テツクサビス"),
    ("株式会社テックサービス", "テツクサビス"),
    ("Example Cloud Co., Ltd.", "EXAMPLECLOUD"),
    ("Prince Hotels, Inc.", "PRINCEHOTELS"),
])
def test_normalize_vendor(raw: str, expected: str) -> None:
    assert normalize_vendor(raw) == expected


def test_bank_kana_matches_receipt_kana() -> None:
    assert vendor_similarity(normalize_vendor("ﾌﾘｺﾐ ｶ)ﾃﾂｸｻ-ﾋﾞｽ"),
                             normalize_vendor("株式会社テックサービス")) == 1.0


def test_exact_amount_gate() -> None:
    result = match_receipt(RECEIPT, [txn("a", amount=3821), txn("b", amount=-3819)])
    assert result.status == "unmatched" and result.candidates == []
    negative = match_receipt(RECEIPT, [txn("c", amount=-3820, desc="ｻﾝﾌﾟﾙ")])
    assert negative.status == "auto"  # sign is the feed's convention; the size must be exact


def test_income_lines_never_match() -> None:
    income = Transaction("i", "bank", DAY, 3820, "ｻﾝﾌﾟﾙ", entry_side="income")
    assert match_receipt(RECEIPT, [income]).status == "unmatched"


def test_date_window_depends_on_account_kind() -> None:
    # Card lines may post days later; bank lines may not (defaults: card +7, bank +3).
    assert match_receipt(RECEIPT, [txn("card", days=5, kind="card")]).candidates
    assert not match_receipt(RECEIPT, [txn("bank", days=5, kind="bank")]).candidates
    assert not match_receipt(RECEIPT, [txn("early", days=-2, kind="card")]).candidates
    wide = MatchConfig(windows={"bank": DateWindow(before=3, after=60)})
    assert match_receipt(RECEIPT, [txn("inv", days=40, kind="bank")], config=wide).candidates


def test_closer_date_scores_higher() -> None:
    result = match_receipt(RECEIPT, [txn("far", days=6), txn("near", days=1)])
    assert [c.transaction_id for c in result.candidates] == ["near", "far"]
    assert result.candidates[0].components.days_delta == 1


def test_clear_best_is_auto_with_components() -> None:
    result = match_receipt(RECEIPT, [txn("hit", days=1), txn("other", days=1, desc="ﾃﾞﾝｷﾀﾞｲ")])
    assert result.status == "auto" and result.transaction_id == "hit"
    comp = result.candidates[0].components
    assert comp.amount == 1.0 and comp.vendor == 1.0 and comp.vendor_method == "fuzzy"


def test_alias_table_links_kanji_vendor_to_romaji_description() -> None:
    receipt = ReceiptFacts(2420, DAY, "株式会社ブックストア")
    line = txn("bk", amount=2420, days=2, desc="BOOKSTORE JP")
    assert match_receipt(receipt, [line]).status == "suggested"
    result = match_receipt(receipt, [line], aliases={"ブックストア": ["BOOKSTORE JP"]})
    assert result.status == "auto"
    assert result.candidates[0].components.vendor_method == "alias"


def test_two_equal_best_candidates_never_auto_match() -> None:
    taxi = ReceiptFacts(1100, DAY, "日本交通タクシー株式会社")
    lines = [txn("t1", 1100, desc="ﾆﾎﾝｺｳﾂｳ ﾀｸｼ-"), txn("t2", 1100, desc="ﾆﾎﾝｺｳﾂｳ ﾀｸｼ-")]
    result = match_receipt(taxi, lines)
    assert result.status == "suggested" and result.transaction_id is None
    assert "tie" in result.reasons
    assert {c.transaction_id for c in result.candidates} == {"t1", "t2"}


def test_small_margin_is_only_suggested() -> None:
    result = match_receipt(RECEIPT, [txn("a", days=0), txn("b", days=1)])
    assert result.status == "suggested" and "small_margin" in result.reasons


def test_confirmed_decision_is_returned_as_is() -> None:
    result = match_receipt(RECEIPT, [txn("better")],
                           existing=[ExistingDecision("user-picked", "confirmed")])
    assert result.status == "confirmed" and result.transaction_id == "user-picked"
    assert result.candidates == []


def test_rejected_pair_is_never_proposed_again() -> None:
    result = match_receipt(RECEIPT, [txn("bad"), txn("ok", days=3)],
                           existing=[ExistingDecision("bad", "rejected"),
                                     ExistingDecision("ok", "suggested")])
    assert [c.transaction_id for c in result.candidates] == ["ok"]
    assert result.status == "auto" and result.transaction_id == "ok"


def test_transaction_taken_by_another_receipt_is_not_auto_matched() -> None:
    result = match_receipt(RECEIPT, [txn("hit")], taken={"hit"})
    assert result.status == "suggested" and "transaction_taken" in result.reasons


def test_incomplete_receipt_is_unmatched() -> None:
    result = match_receipt(ReceiptFacts(None, DAY, "x"), [txn("a")])
    assert result.status == "unmatched" and result.reasons == ["receipt_incomplete"]


def test_missing_vendor_caps_score_below_auto() -> None:
    result = match_receipt(ReceiptFacts(3820, DAY, None), [txn("a")])
    assert result.status == "suggested"
    assert result.candidates[0].score == pytest.approx(0.8)
