"""match_transaction: the amount gate and window, ties, one-to-one settling, idempotency and
a human's decision that a re-run never overwrites."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import make_receipt

from python_worker.receipts import store
from python_worker.receipts.demo import read_transactions
from python_worker.receipts.settings import get_settings


@pytest.fixture(scope="module")
def loaded(db: str, samples: Path) -> None:
    import psycopg

    with psycopg.connect(db) as conn:
        store.import_transactions(conn, get_settings().owner_id,
                                  read_transactions(samples / "transactions.csv"))
        store.add_vendor_aliases(conn, get_settings().owner_id, {"株式会社髙島ストア": ["ﾀｶｼﾏｽﾄｱ"]})


def matches(q, rid: int) -> list[dict[str, Any]]:
    return q("select m.status, t.external_id from receipts.matches as m"
             " join receipts.transactions as t on t.id = m.transaction_id"
             " where m.receipt_id = %s order by m.rank", (rid,))


def test_exact_amount_in_window_with_alias_is_an_auto_match(run, q, loaded):
    rid = make_receipt(q, "a", "株式会社髙島ストア", date(2026, 4, 3), 3820)
    result = run("match_transaction", {"receipt_id": rid})
    assert result["status"] == "auto"
    # C-1002 has the same amount but falls outside the card window
    assert matches(q, rid) == [{"status": "auto", "external_id": "C-1001"}]
    assert q("select job_type from queue.jobs where id = %s", (result["next_job"],)) == [
        {"job_type": "organize_file"}]


def test_running_twice_leaves_one_auto_match(run, q, loaded):
    rid = make_receipt(q, "b", "Example Cloud Inc.", date(2026, 4, 12), 9900)
    run("match_transaction", {"receipt_id": rid})
    run("match_transaction", {"receipt_id": rid})
    assert matches(q, rid) == [{"status": "auto", "external_id": "C-1004"}]


def test_a_tie_is_suggested_never_auto(run, q, loaded):
    rid = make_receipt(q, "c", "日本交通タクシー株式会社", date(2026, 4, 24), 1100)
    result = run("match_transaction", {"receipt_id": rid})
    assert result["status"] == "suggested" and "tie" in result["reasons"]
    assert sorted(m["external_id"] for m in matches(q, rid)) == ["C-1008", "C-1009"]
    assert {m["status"] for m in matches(q, rid)} == {"suggested"}


def test_a_transaction_settled_by_another_receipt_is_not_auto_matched(run, q, loaded):
    first = make_receipt(q, "d", "マルサン", date(2026, 4, 18), 904)
    assert run("match_transaction", {"receipt_id": first})["status"] == "auto"
    second = make_receipt(q, "e", "マルサン", date(2026, 4, 18), 904)
    result = run("match_transaction", {"receipt_id": second})
    assert result["status"] == "suggested"
    assert matches(q, second) == [{"status": "suggested", "external_id": "C-1006"}]


def test_confirmed_and_rejected_decisions_survive_a_rerun(run, q, loaded):
    rid = make_receipt(q, "f", "日本交通タクシー株式会社", date(2026, 4, 24), 1100)
    run("match_transaction", {"receipt_id": rid})
    rows = q("select m.id, t.external_id from receipts.matches as m join receipts.transactions"
             " as t on t.id = m.transaction_id where m.receipt_id = %s order by t.external_id",
             (rid,))
    q("select receipts.review_match(%s, 'rejected')", (rows[0]["id"],))
    q("select receipts.review_match(%s, 'confirmed')", (rows[1]["id"],))
    result = run("match_transaction", {"receipt_id": rid})
    assert result["status"] == "confirmed"
    assert sorted((m["status"], m["external_id"]) for m in matches(q, rid)) == [
        ("confirmed", "C-1009"), ("rejected", "C-1008")]


def test_no_line_with_the_amount_is_unmatched_and_still_filed(run, q, loaded):
    rid = make_receipt(q, "g", "山田文具店", date(2026, 4, 15), 770)  # the bank line is too late
    result = run("match_transaction", {"receipt_id": rid})
    assert result["status"] == "unmatched" and matches(q, rid) == []
    assert result["next_job"] is not None
