"""Field extraction from receipt text."""

from __future__ import annotations

from datetime import date

import pytest

from python_worker.receipts.domain import parse

TODAY = date(2026, 5, 1)


def _parse(text: str, **kw: object) -> parse.ParsedReceipt:
    return parse.parse_receipt(text, today=TODAY, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("令和元年5月1日", date(2019, 5, 1)),
    ("令和 元 年 5 月 1 日", date(2019, 5, 1)),
    ("平成31年4月30日", date(2019, 4, 30)),
    ("令和8年4月18日(土)", date(2026, 4, 18)),
    ("R6.4.1", date(2024, 4, 1)),
    ("H30/12/31", date(2018, 12, 31)),
    ("2026年4月3日 14:22", date(2026, 4, 3)),
    ("２０２６年４月３日", date(2026, 4, 3)),
    ("2026/04/15", date(2026, 4, 15)),
    ("2026-04-15", date(2026, 4, 15)),
    ("26/04/15 12:01", date(2026, 4, 15)),
    ("Date: April 12, 2026", date(2026, 4, 12)),
    ("12 Apr 2026", date(2026, 4, 12)),
])
def test_date_formats(text: str, expected: date) -> None:
    assert parse.find_date([parse.normalize_text(text)])[0] == expected


def test_invalid_calendar_date_is_ignored() -> None:
    assert parse.find_date(["2026/02/30"]) == (None, 0.0)


def test_issue_date_preferred_over_due_date() -> None:
    lines = ["お支払期限 2026年5月31日", "発行日 2026年4月28日"]
    assert parse.find_date(lines)[0] == date(2026, 4, 28)


def test_future_and_old_dates_go_to_review() -> None:
    assert "date_in_future" in _parse("合計 ¥100\n2027年1月1日").review_reasons
    assert "date_too_old" in _parse("合計 ¥100\n2015年1月1日").review_reasons


# 国税庁's own 法人番号 (public) is a real check-digit vector for the formula.
@pytest.mark.parametrize("number", ["7000012050002", "2010001008824", "4010401022860"])
def test_corporate_number_check_digit_real_numbers(number: str) -> None:
    assert parse.is_valid_corporate_number(number)
    assert parse.corporate_number_check_digit(number[1:]) == int(number[0])


def test_corporate_number_check_digit_rejects_a_changed_digit() -> None:
    assert not parse.is_valid_corporate_number("7000012050003")
    assert not parse.is_valid_corporate_number("8000012050002")
    assert not parse.is_valid_corporate_number("700001205000")


@pytest.mark.parametrize(("text", "expected"), [
    ("登録番号 T7000012050002", ("T7000012050002", True)),
    ("登録番号：T-7000-0120-50002", ("T7000012050002", True)),
    ("登録番号 17000012050002", ("T7000012050002", True)),  # "T" OCR'd as "1"
    ("適格請求書発行事業者 T7000012050002", ("T7000012050002", True)),
    ("Registration No. T7000012050003", ("T7000012050003", False)),
    ("番号 7000012050002", ("T7000012050002", True)),  # bare, but the check digit holds
    ("会員番号 1234567890123", (None, None)),  # bare and the check digit fails
])
def test_registration_number(text: str, expected: tuple[str | None, bool | None]) -> None:
    assert parse.find_registration_number(parse.normalize_text(text)) == expected


def test_failed_check_digit_is_a_review_reason_not_a_rejection() -> None:
    result = _parse("山田文具店\n2026/04/15\n合計 ¥770\n登録番号 T4987654321098")
    assert result.registration_number == "T4987654321098"
    assert result.registration_checked is False
    assert "registration_check_digit_failed" in result.review_reasons


RECEIPT = """領収書
株式会社髙島ストア
東京都中央区日本橋1-2-3
TEL 03-1234-5678
登録番号 T7000012050002
2026年4月3日 14:22
コーヒー豆 ※ ¥1,620
マグカップ ¥2,200
小計 ¥3,820
8%対象 ¥1,620 (内消費税 ¥120)
10%対象 ¥2,200 (内消費税 ¥200)
合計 ¥3,820
お預り ¥5,000
お釣り ¥1,180
"""


def test_full_receipt_with_two_tax_bands() -> None:
    result = _parse(RECEIPT)
    assert result.vendor == "株式会社髙島ストア"
    assert result.issue_date == date(2026, 4, 3)
    assert result.total == 3820  # the labelled total, not お預り ¥5,000
    assert result.tax == {8: parse.TaxBand(8, 1500, 120, 1620),
                          10: parse.TaxBand(10, 2000, 200, 2200)}
    assert result.registration_number == "T7000012050002"
    assert result.registration_checked is True
    assert result.review_reasons == []
    assert result.confidence["total"] >= 0.9


def test_exclusive_tax_invoice() -> None:
    text = ("請求書\n合同会社サンプル商事 御中\n株式会社テックサービス\n発行日 R8.4.28\n"
            "小計 ¥50,000\n消費税(10%) ¥5,000\nご請求金額 ¥55,000\n")
    result = _parse(text)
    assert result.vendor == "株式会社テックサービス"  # the 御中 line is the customer
    assert result.total == 55000
    assert result.tax == {10: parse.TaxBand(10, 50000, 5000, 55000)}


def test_exclusive_band_with_printed_base() -> None:
    result = _parse("合計 ¥11,000\n10%対象 ¥10,000 消費税 ¥1,000")
    assert result.tax == {10: parse.TaxBand(10, 10000, 1000, 11000)}
    assert result.review_reasons == ["date_missing", "vendor_missing"]


def test_tax_bands_not_summing_to_total_go_to_review() -> None:
    result = _parse("店\n2026/4/1\n合計 ¥3,000\n8%対象 ¥1,620 内消費税 ¥120\n"
                    "10%対象 ¥2,200 内消費税 ¥200")
    assert "tax_bands_mismatch" in result.review_reasons


def test_inconsistent_band_goes_to_review() -> None:
    result = _parse("合計 ¥1,100\n10%対象 ¥1,100 内消費税 ¥300")
    assert "tax_band_inconsistent" in result.review_reasons


def test_ocr_misread_percent_sign_recovers_the_rate() -> None:
    result = _parse("合計 ¥1,100\n(1096対象 ¥1,100 内消費税 ¥100)")
    assert result.tax == {10: parse.TaxBand(10, 1000, 100, 1100)}


def test_single_tax_amount_without_rate_is_inferred_from_total() -> None:
    result = _parse("合計 ¥1,080\n(内消費税等 ¥80)")
    assert result.tax == {8: parse.TaxBand(8, 1000, 80, 1080)}


@pytest.mark.parametrize(("text", "expected"), [
    ("合計　￥１，１００", 1100),
    ("お買上計 １，１００円", 1100),
    ("合計 \\1.100", 1100),  # OCR: yen as backslash, comma as period
    ("総合計 ¥12,345-", 12345),
    ("合計 3点 ¥1,100", 1100),  # the item count is not the total
    ("Total (tax incl.) ¥9,900", 9900),
    ("Amount due JPY 5,500", 5500),
])
def test_total_labels_and_full_width_digits(text: str, expected: int) -> None:
    assert _parse(text).total == expected


def test_total_on_the_line_after_its_label() -> None:
    assert _parse("ご請求金額\n¥55,000\n").total == 55000


def test_unlabelled_total_is_flagged() -> None:
    result = _parse("店名\n2026/4/1\nコーヒー ¥400\nケーキ ¥600")
    assert result.total == 600
    assert "total_unlabelled" in result.review_reasons


def test_missing_fields_and_low_ocr_confidence_are_review_reasons() -> None:
    result = _parse("ぼやけた文字", ocr_confidence=0.3)
    assert result.total is None and result.issue_date is None and result.vendor is None
    assert {"total_missing", "date_missing", "vendor_missing",
            "low_ocr_confidence"} <= set(result.review_reasons)


def test_vendor_alias_returns_the_canonical_name() -> None:
    result = _parse("ﾌｧﾐﾘｰｽﾄｱ 新宿店\n合計 ¥310",
                    aliases={"ファミリーストア": ["ﾌｧﾐﾘｰｽﾄｱ"]})
    assert result.vendor == "ファミリーストア"
    assert result.confidence["vendor"] == pytest.approx(0.95)


def test_vendor_skips_title_and_address_lines() -> None:
    assert parse.find_vendor(["領 収 書", "〒103-0027", "山田文具店", "2026/04/15"]) == \
        ("山田文具店", 0.6)
