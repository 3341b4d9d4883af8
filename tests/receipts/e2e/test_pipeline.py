"""The whole receipt pipeline through a real worker process (``python -m python_worker run``),
driven by the demo: sample mail in, summary out; the summary must agree with truth.json, and a
second run must not duplicate anything."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from python_worker.receipts import demo
from python_worker.receipts.settings import get_settings

TABLES = ("email_messages", "files", "receipts", "matches", "freee_outbox", "reports",
          "transactions")


@pytest.fixture(scope="module")
def env(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", module_db_url)  # the worker subprocess inherits these
    mp.setenv("KYU_FILES_DIR", str(tmp / "files"))
    mp.setenv("KYU_BLOBS_DIR", str(tmp / "blobs"))
    get_settings.cache_clear()
    yield tmp
    mp.undo()
    get_settings.cache_clear()


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"select count(*) from receipts.{t}").fetchone()[0]  # type: ignore[index]
                for t in TABLES}


def judged(truth: dict[str, Any], row: dict[str, Any]) -> dict[str, bool]:
    """Each extracted field against truth.json, judged here rather than by the demo's own
    scoring (a bug there must not hide one in the pipeline)."""
    def same_text(a: str | None, b: str | None) -> bool:
        return "".join(unicodedata.normalize("NFKC", a or "").split()) == \
            "".join(unicodedata.normalize("NFKC", b or "").split())

    got = row["tax"] or {}
    want_tax = {rate: {k: v for k, v in band.items() if k in ("net", "tax")}
                for rate, band in truth["tax"].items()}
    # the same rates, and each amount the truth states (a band may state only its tax)
    tax_ok = set(got) == set(want_tax) and all(
        {k: got[rate].get(k) for k in band} == band for rate, band in want_tax.items())
    return {
        "vendor": same_text(row["vendor"], truth["vendor"]),
        "date": str(row["issue_date"]) == truth["date"],
        "total": row["total_yen"] == truth["total"],
        "tax": tax_ok,
        "registration_number": row["registration_number"] == truth["registration_number"],
    }


def run_demo(tmp: Path) -> None:
    code = demo.main(["--samples", str(tmp / "samples"), "--timeout", "240",
                      "--log", str(tmp / "worker.log")])
    assert code == 0


def test_pipeline_summary_matches_truth_and_reruns_add_nothing(
    env: Path, module_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_demo(env)
    out = capsys.readouterr().out
    assert "extraction accuracy:" in out and "reports:" in out
    truth: dict[str, Any] = json.loads((env / "samples" / "truth.json").read_text("utf-8"))
    owner = get_settings().owner_id

    with psycopg.connect(module_db_url) as conn:
        rows = demo.receipts_by_eml(conn, owner)
        dead = conn.execute("select count(*) from queue.job_history where status = 'dead'")
        assert dead.fetchone() == (0,)
        correct = total = 0
        for t in truth["receipts"]:
            row = rows.get(t["eml"])
            if t["kind"] == "duplicate":
                assert row is None, "the duplicate message must not make a second receipt"
                continue
            assert row is not None, t["eml"]
            expected = t["expected_match"]
            got = row["match_status"] or "unmatched"
            assert got == expected["status"], (t["eml"], got)
            if expected["transaction"]:
                assert demo.txn_external_id(conn, row["transaction_id"]) == expected["transaction"]
            if t.get("expect_review"):
                assert row["status"] == "needs_review", t["eml"]
            if t["kind"] == "unreadable":
                continue
            checks = judged(t, row)
            correct += sum(checks.values())
            total += len(checks)
            # totals and dates decide matching: they must be right for every readable receipt
            assert checks["total"] and checks["date"], (t["eml"], checks)
            if t["kind"] in ("pdf_text", "html"):  # a text layer is exact
                assert all(checks.values()), (t["eml"], checks)
            assert row["storage_path"], t["eml"]
            deal = "pending" if row["status"] == "extracted" else None  # review holds the deal
            assert (row["freee_upload_state"], row["freee_deal_state"]) == ("pending", deal)
        assert correct / total >= 0.85, f"{correct}/{total} fields"
        reports = conn.execute("select paths from receipts.reports").fetchall()
    assert len(reports) == 1
    files_dir = get_settings().files_dir
    assert all((files_dir / p).is_file() for p in reports[0][0].values())

    before = counts(module_db_url)
    run_demo(env)
    assert counts(module_db_url) == before
