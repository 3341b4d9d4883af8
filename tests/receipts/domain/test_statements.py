"""Statement CSVs: encodings, sign conventions, full-width amounts, profiles, content ids."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from python_worker.receipts.domain.statements import (
    Profile,
    StatementError,
    decode_csv,
    load_profile,
    parse_day,
    parse_yen,
    read_statement,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(out)],
                   check=True, capture_output=True)
    return out


def test_encodings_are_told_apart_strictly() -> None:
    text = "取引日,摘要\n2026/04/01,ｶ)ｻﾝﾌﾟﾙ ①\n"
    assert decode_csv(text.encode("cp932")) == (text, "cp932")
    assert decode_csv(text.encode("utf-8")) == (text, "utf-8")
    assert decode_csv(b"\xef\xbb\xbf" + text.encode("utf-8")) == (text, "utf-8-sig")
    with pytest.raises(StatementError, match="neither UTF-8 nor cp932"):
        decode_csv(b"\x81\x20\xff\xfe")


@pytest.mark.parametrize(("raw", "expected"), [
    ("￥３，８２０", 3820), ("¥1,100", 1100), ("1,100円", 1100), ("-1,100", -1100),
    ("▲500", -500), ("(2,000)", -2000), ("", None), ("  ", None), ("12000", 12000),
])
def test_yen_amounts(raw: str, expected: int | None) -> None:
    assert parse_yen(raw) == expected


def test_a_bad_amount_is_named() -> None:
    with pytest.raises(StatementError, match="not a yen amount: '12a0'"):
        parse_yen("12a0")


@pytest.mark.parametrize("raw", ["2026/04/03", "2026-4-3", "2026年4月3日", "20260403",
                                 "２０２６/０４/０３", "令和8年4月3日", "R8.4.3"])
def test_dates(raw: str) -> None:
    assert parse_day(raw) == date(2026, 4, 3)


def test_cp932_bank_export_with_preamble_and_debit_credit(exports: Path) -> None:
    lines = read_statement((exports / "bank-jp.csv").read_bytes(), load_profile("bank-jp"))
    assert [(ln.txn_date.isoformat(), ln.amount_yen, ln.entry_side) for ln in lines] == [
        ("2026-04-10", 12000, "expense"), ("2026-04-24", 300000, "income"),
        ("2026-04-25", 770, "expense"), ("2026-04-30", 55000, "expense")]
    assert lines[3].description == "ﾌﾘｺﾐ ｶ)ﾃﾂｸｻ-ﾋﾞｽ" and lines[3].account_kind == "bank"
    assert lines[0].row == 5  # the preamble is skipped, rows keep their file numbers


def test_card_export_full_width_yen_refund_and_a_tie_keep_distinct_ids(exports: Path) -> None:
    data = (exports / "card-jp.csv").read_bytes()
    lines = read_statement(data, load_profile("card-jp"), account="my card")
    taxis = [ln for ln in lines if ln.description.startswith("ﾆﾎﾝｺｳﾂｳ")]
    assert [t.amount_yen for t in taxis] == [1100, 1100]
    assert taxis[0].external_id != taxis[1].external_id  # same day, amount, text: two lines
    refund = lines[-1]
    assert (refund.amount_yen, refund.entry_side) == (1100, "income")
    again = read_statement(data, load_profile("card-jp"), account="my card")
    assert [ln.external_id for ln in again] == [ln.external_id for ln in lines]
    other = read_statement(data, load_profile("card-jp"), account="another card")
    assert not {ln.external_id for ln in other} & {ln.external_id for ln in lines}


def test_generic_profile_reads_the_demo_csv_with_its_ids_and_kinds(exports: Path) -> None:
    lines = read_statement((exports / "transactions.csv").read_bytes(), load_profile("generic"))
    assert lines[0].external_id == "C-1001" and lines[0].account_kind == "card"
    assert {ln.account_kind for ln in lines if ln.external_id.startswith("B-")} == {"bank"}


def test_signed_amount_with_negative_expenses() -> None:
    profile = Profile(name="x", account_kind="bank", date="Date", description=["Memo"],
                      amount="Amount", expense_sign="negative")
    lines = read_statement(b"Date,Memo,Amount\n2026-04-01,RENT,-80000\n2026-04-02,PAY,5000\n",
                           profile)
    assert [(ln.amount_yen, ln.entry_side) for ln in lines] == [(80000, "expense"),
                                                               (5000, "income")]


def test_missing_columns_and_bad_rows_are_named() -> None:
    with pytest.raises(StatementError, match="no header row with the columns 取引日"):
        read_statement(b"date,amount\n2026-04-01,1\n", load_profile("bank-jp"))
    with pytest.raises(StatementError, match="line 3: not a date: '2026/13/01'"):
        read_statement(b"date,amount,description\n2026-04-01,1,a\n2026/13/01,2,b\n",
                       load_profile("generic"))


def test_saved_profile_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "mybank.json"
    good.write_text(json.dumps({"name": "mybank", "account_kind": "bank", "date": "日付",
                                "description": ["内容"], "debit": "出金", "credit": "入金"}),
                    encoding="utf-8")
    assert load_profile(str(good)).debit == "出金"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "b", "account_kind": "bank", "date": "d",
                               "description": ["x"], "amount": "a", "debit": "o"}))
    with pytest.raises(StatementError, match="either amount"):
        load_profile(str(bad))
    with pytest.raises(StatementError, match="unknown profile 'nope'"):
        load_profile("nope")
