"""The receipts CLI through the real database: ingest, import-transactions, review, confirm,
reject, correct, report. Commands run in-process (``cli.main``); ``--process`` starts a real
worker subprocess on this module's database."""

from __future__ import annotations

import csv
import json
import mailbox
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from python_worker.receipts import cli
from python_worker.receipts.settings import get_settings

Q = Callable[..., list[dict[str, Any]]]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_cp932_bank_and_card_exports_then_reimport_adds_nothing(
        db: str, samples: Path, q: Q, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "import-transactions", str(samples / "bank-jp.csv"),
                           "--profile", "bank-jp", "--account", "mizuho", "--no-rematch")
    assert code == 0 and "4 lines (bank-jp, bank), 4 new" in out
    code, out, _ = run_cli(capsys, "import-transactions", str(samples / "card-jp.csv"),
                           "--profile", "card-jp", "--account", "visa", "--no-rematch")
    assert code == 0 and "10 lines (card-jp, card), 10 new" in out
    for file, profile, account in (("bank-jp.csv", "bank-jp", "mizuho"),
                                   ("card-jp.csv", "card-jp", "visa")):
        code, out, _ = run_cli(capsys, "import-transactions", str(samples / file),
                               "--profile", profile, "--account", account)
        assert code == 0 and ", 0 new," in out
    rows = q("select source, account_kind, txn_date::text, amount_yen, entry_side, description"
             " from receipts.transactions order by source, txn_date, id")
    assert len(rows) == 14
    salary = [r for r in rows if r["entry_side"] == "income" and r["source"] == "csv:mizuho"]
    assert [(r["amount_yen"], r["account_kind"]) for r in salary] == [(300000, "bank")]
    transfer = [r for r in rows if r["amount_yen"] == 55000]
    assert transfer[0]["description"] == "ﾌﾘｺﾐ ｶ)ﾃﾂｸｻ-ﾋﾞｽ"
    assert transfer[0]["txn_date"] == "2026-04-30"


def test_column_flags_save_a_profile_that_imports_the_same_lines(
        db: str, tmp_path: Path, q: Q, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "shop-card.csv"
    src.write_bytes("利用日,お店,金額(円)\n2026/05/01,ｺﾝﾋﾞﾆ,４８０\n2026/05/02,ｶﾌｴ,\"1,200\"\n"
                    .encode("cp932"))
    profile = tmp_path / "shop-card.json"
    code, out, _ = run_cli(capsys, "import-transactions", str(src), "--account-kind", "card",
                           "--date-column", "利用日", "--description-column", "お店",
                           "--amount-column", "金額(円)", "--expense-sign", "positive",
                           "--id-column", "", "--save-profile", str(profile), "--no-rematch")
    assert code == 0 and "2 new" in out, out
    saved = json.loads(profile.read_text(encoding="utf-8"))
    assert saved["amount"] == "金額(円)" and saved["account_kind"] == "card"
    code, out, _ = run_cli(capsys, "import-transactions", str(src), "--profile", str(profile),
                           "--account", "shop-card")
    assert code == 0 and "0 new" in out, out
    assert [r["amount_yen"] for r in q(
        "select amount_yen from receipts.transactions where source = 'csv:shop-card'"
        " order by txn_date")] == [480, 1200]


def test_bad_input_is_refused_with_what_was_wrong(
        db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,amount,description\n2026-04-01,12x,a\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "import-transactions", str(bad))
    assert code == 1 and "line 2: not a yen amount: '12x'" in err
    code, _, err = run_cli(capsys, "import-transactions", str(bad), "--profile", "bank-jp")
    assert code == 1 and "no header row with the columns 取引日" in err
    code, _, err = run_cli(capsys, "confirm", "999999")
    assert code == 1 and "match 999999 not found" in err
    code, _, err = run_cli(capsys, "correct", "999999", "--total", "100")
    assert code == 1 and "receipt 999999 not found" in err
    code, _, err = run_cli(capsys, "ingest", str(tmp_path / "nowhere"))
    assert code == 1 and "no such folder or mbox file" in err
    with pytest.raises(SystemExit):
        cli.main(["report", "2026-13"])
    assert "month must be YYYY-MM, got '2026-13'" in capsys.readouterr().err


def test_ingest_a_folder_and_an_mbox_enqueues_each_mail_once(
        db: str, samples: Path, tmp_path: Path, q: Q,
        capsys: pytest.CaptureFixture[str]) -> None:
    box_path = tmp_path / "archive.mbox"
    box = mailbox.mbox(box_path)
    for name in ("03_cloud_en.eml", "06_bookstore_html.eml"):
        box.add(mailbox.mboxMessage((samples / "mail" / name).read_bytes()))
    box.flush()
    box.close()
    for _ in range(2):
        code, out, _ = run_cli(capsys, "ingest", str(box_path))
        assert code == 0 and "enqueued 2 mails" in out
    jobs = q("select payload from queue.all_jobs where job_type = 'process_email_receipt'")
    assert len(jobs) == 2  # the second run found the same live jobs
    folder = Path(jobs[0]["payload"]["folder"])
    assert folder.is_relative_to(get_settings().blobs_dir.resolve())
    assert sorted(p.suffix for p in folder.iterdir()) == [".eml", ".eml"]


def test_process_review_confirm_reject_correct_and_report(
        db: str, samples: Path, tmp_path: Path, q: Q,
        capsys: pytest.CaptureFixture[str]) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    for name in ("01_takashima_iso2022jp.eml", "03_cloud_en.eml", "09_taxi_png.eml",
                 "08_unreadable.eml"):
        shutil.copy(samples / "mail" / name, mail / name)
    q("delete from receipts.transactions")
    code, out, _ = run_cli(capsys, "import-transactions", str(samples / "transactions.csv"))
    assert code == 0 and "12 new" in out
    code, out, _ = run_cli(capsys, "ingest", str(mail), "--process")
    assert code == 0 and "enqueued 4 mails" in out
    assert not q("select id from queue.all_jobs where status in ('pending', 'running', 'dead')"
                 " and job_type <> 'sync_freee'")

    code, out, _ = run_cli(capsys, "review", "--json")
    listed = json.loads(out)
    unreadable = [r for r in listed["receipts"] if r["filename"] == "blurry.png"]
    assert unreadable and unreadable[0]["review_reasons"]
    taxi = [m for m in listed["matches"] if m["total_yen"] == 1100]
    assert sorted(m["external_id"] for m in taxi) == ["C-1008", "C-1009"]  # the tie
    code, out, _ = run_cli(capsys, "review")
    assert f"match {taxi[0]['match_id']}" in out and "why:" in out

    first, second = sorted(taxi, key=lambda m: m["external_id"])
    code, out, _ = run_cli(capsys, "reject", str(second["match_id"]))
    assert code == 0 and "rejected" in out
    code, out, _ = run_cli(capsys, "confirm", str(first["match_id"]))
    assert code == 0 and "confirmed" in out
    rows = q("select status from receipts.matches where receipt_id = %s order by id",
             (first["receipt_id"],))
    assert sorted(r["status"] for r in rows) == ["confirmed", "rejected"]
    alias = q("select vendor from receipts.vendor_aliases where alias = 'ﾆﾎﾝｺｳﾂｳ ﾀｸｼ-'")
    assert alias and alias[0]["vendor"] == first["vendor"]

    bad = unreadable[0]["receipt_id"]
    code, _, err = run_cli(capsys, "correct", str(bad), "--vendor", "ﾃﾞﾝｷﾀﾞｲ")
    assert code == 1 and "issue_date and total_yen are required" in err
    code, out, _ = run_cli(capsys, "correct", str(bad), "--vendor", "電気大学生協",
                           "--date", "2026/04/10", "--total", "￥12,000", "--process")
    assert code == 0 and "confirmed" in out
    got = q("select status, vendor, total_yen, issue_date::text from receipts.receipts"
            " where id = %s", (bad,))[0]
    assert got == {"status": "confirmed", "vendor": "電気大学生協", "total_yen": 12000,
                   "issue_date": "2026-04-10"}
    # matching ran again for the corrected receipt: B-2003 (¥12,000, 04-10) is its line
    matched = q("select t.external_id from receipts.matches as m join receipts.transactions"
                " as t on t.id = m.transaction_id where m.receipt_id = %s", (bad,))
    assert [m["external_id"] for m in matched] == ["B-2003"]

    cloud = q("select id, vendor from receipts.receipts where total_yen = 9900")[0]
    code, out, _ = run_cli(capsys, "correct", str(cloud["id"]), "--vendor", "Example Cloud")
    assert code == 0
    learned = q("select vendor from receipts.vendor_aliases where alias = %s",
                (cloud["vendor"],))
    assert learned == [{"vendor": "Example Cloud"}]  # the correction feeds the aliases

    april = q("select count(*) as n, sum(total_yen) as yen from receipts.receipts"
              " where issue_date between '2026-04-01' and '2026-04-30'")[0]
    code, out, _ = run_cli(capsys, "report", "2026-04", "--format", "csv")
    assert code == 0 and f"{april['n']} receipts, total ¥{april['yen']:,}" in out, out
    path = Path(out.strip().splitlines()[-1].split(None, 1)[1])
    with path.open(encoding="utf-8-sig") as handle:
        report = list(csv.reader(handle))
    assert any("Example Cloud" in row for row in report)
    assert q("select count(*) as n from receipts.reports where month = '2026-04-01'")[0]["n"] == 1


def test_ingest_imap_since_a_date_enqueues_by_uid(
        db: str, samples: Path, q: Q, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    import imap_tools

    asked: list[str] = []

    class Box:
        """The part of imap_tools.MailBox the CLI uses."""

        def __init__(self, host: str) -> None:
            self.folder = SimpleNamespace(set=lambda name: asked.append(f"folder {name}"),
                                          status=lambda name, items: {"UIDVALIDITY": 9})

        def login(self, user: str, password: str) -> Box:
            return self

        def __enter__(self) -> Box:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def uids(self, criteria: object) -> list[str]:
            asked.append(str(criteria))
            return ["11", "12"]

    monkeypatch.setattr(imap_tools, "MailBox", Box)
    for var, value in (("KYU_IMAP_HOST", "imap.example.com"), ("KYU_IMAP_USER", "me@example.com"),
                       ("KYU_IMAP_PASSWORD", "app-password")):
        monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    try:
        code, out, _ = run_cli(capsys, "ingest", "--imap", "--folder", "Receipts",
                               "--since", "2026-04-01")
    finally:
        get_settings.cache_clear()
    assert code == 0 and "enqueued 2 mails from IMAP me@example.com/Receipts since" in out
    assert asked == ["folder Receipts", "(SINCE 1-Apr-2026)"]
    jobs = q("select payload from queue.all_jobs where job_type = 'process_email_receipt'"
             " and payload->>'source' = 'imap' order by id")
    assert [(j["payload"]["mailbox"], j["payload"]["uid"], j["payload"]["uidvalidity"])
            for j in jobs] == [("Receipts", 11, 9), ("Receipts", 12, 9)]
