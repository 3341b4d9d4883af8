"""`make demo`: the receipt pipeline end to end on generated sample mail.

Generates the samples (scripts/make_samples.py), loads the bank/card CSV and the demo's vendor
aliases (supabase/seed.sql), enqueues one process_email_receipt per .eml, runs a real worker
(``python -m python_worker run``) until the pipeline drains, then generate_report for each
month, and prints a summary per receipt, the extraction accuracy against truth.json and the
report paths. Re-runnable: a second run finds every message, file and row already there.

    DATABASE_URL=... python -m python_worker.receipts.demo [--samples out/samples] [--timeout 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import mail_source, store
from .settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ("process_email_receipt", "process_ocr", "match_transaction", "organize_file",
            "sync_freee", "generate_report")
SHORT = {"process_email_receipt": "mail", "process_ocr": "ocr", "match_transaction": "match",
         "organize_file": "file", "sync_freee": "freee", "generate_report": "report"}
TAX_FIELDS = ("net", "tax")


def say(text: str = "") -> None:
    print(text, flush=True)


# --- setup --------------------------------------------------------------------------------

def generate_samples(out: Path, large: int | None = None, seed: int = 7) -> dict[str, Any]:
    extra = ["--large", str(large), "--seed", str(seed)] if large else []
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(out), *extra],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "truth.json").read_text(encoding="utf-8"))


def read_transactions(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            {"source": r["source"], "external_id": r["external_id"],
             "account_kind": r["account_kind"], "txn_date": date.fromisoformat(r["date"]),
             "amount_yen": abs(int(r["amount"])),
             "entry_side": "expense" if int(r["amount"]) > 0 else "income",
             "description": r["description"]}
            for r in csv.DictReader(handle)
        ]


# --- running ------------------------------------------------------------------------------

def start_worker(log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    handle = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "python_worker", "run", "--handlers", "python_worker.receipts.jobs",
         "--concurrency", "2-8", "--poll-interval", "0.5"],
        cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def job_counts(conn: psycopg.Connection[Any], since: datetime,
               ids: list[int]) -> dict[str, Counter[str]]:
    """Pipeline jobs by type and status: those created since the demo started, plus the
    enqueued ids (a live job left by an interrupted run is reused, not re-created)."""
    rows = conn.execute(
        "select job_type, status::text, count(*) from queue.all_jobs"
        " where (created_at >= %s or id = any(%s)) and job_type = any(%s) group by 1, 2",
        (since, ids, list(PIPELINE)),
    ).fetchall()
    out: dict[str, Counter[str]] = {t: Counter() for t in PIPELINE}
    for job_type, status, n in rows:
        out[job_type][status] += n
    return out


def wait_for_drain(conn: psycopg.Connection[Any], since: datetime, ids: list[int],
                   proc: subprocess.Popen[bytes], timeout: float,
                   started: float) -> dict[str, Counter[str]]:
    """Print progress until no pipeline job created since `since` is waiting or running."""
    deadline = time.monotonic() + timeout
    last = ""
    tty = sys.stdout.isatty()
    while True:
        counts = job_counts(conn, since, ids)
        live = sum(c[s] for c in counts.values() for s in ("pending", "running", "retrying"))
        parts = []
        for t in PIPELINE:
            c = counts[t]
            total = sum(c.values())
            if total:
                done = c["completed"] + c["dead"] + c["cancelled"]
                extra = f" ({c['dead']} dead)" if c["dead"] else ""
                parts.append(f"{SHORT[t]} {done}/{total}{extra}")
        state = "  ".join(parts)
        if tty or state != last:
            line = f"  [{time.monotonic() - started:5.1f}s] {state}"
            print(("\r" + line.ljust(100)) if tty else line, end="" if tty else "\n", flush=True)
            last = state
        if live == 0:
            if tty:
                print()
            return counts
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}; see its log")
        if time.monotonic() > deadline:
            raise SystemExit(f"the pipeline did not drain in {timeout:.0f}s")
        time.sleep(0.5)


# --- reporting ----------------------------------------------------------------------------

def receipts_by_eml(conn: psycopg.Connection[Any], owner: Any) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            select s.*, m.source_key from receipts.receipt_summary as s
            inner join receipts.email_messages as m on m.id = s.email_message_id
            where s.owner_id = %s
            order by s.receipt_id
            """,
            (owner,),
        )
        return {Path(r["source_key"]).name: r for r in cur.fetchall()}


def txn_external_id(conn: psycopg.Connection[Any], txn_id: int | None) -> str | None:
    if txn_id is None:
        return None
    row = conn.execute("select external_id from receipts.transactions where id = %s",
                       (txn_id,)).fetchone()
    return row[0] if row else None


def _norm(text: str | None) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").split())


def field_checks(truth: dict[str, Any], row: dict[str, Any] | None) -> dict[str, bool]:
    """Per extracted field: does the stored receipt agree with truth.json?"""
    if row is None:
        return dict.fromkeys(("vendor", "date", "total", "tax", "registration_number"), False)
    tax = row["tax"] or {}
    tax_ok = set(tax) == set(truth["tax"]) and all(
        tax[rate].get(f) == band.get(f) for rate, band in truth["tax"].items() for f in TAX_FIELDS
        if f in band)
    return {
        "vendor": _norm(row["vendor"]) == _norm(truth["vendor"]),
        "date": (row["issue_date"].isoformat() if row["issue_date"] else None) == truth["date"],
        "total": row["total_yen"] == truth["total"],
        "tax": tax_ok,
        "registration_number": row["registration_number"] == truth["registration_number"],
    }


def cell(text: str, width: int, right: bool = False) -> str:
    """Pad to a display width (East Asian wide characters take two columns)."""
    shown = ""
    used = 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if used + w > width:
            break
        shown += ch
        used += w
    pad = " " * (width - used)
    return pad + shown if right else shown + pad


def yen(v: int | None) -> str:
    return "-" if v is None else f"¥{v:,}"


def print_summary(conn: psycopg.Connection[Any], truth: dict[str, Any],
                  owner: Any) -> tuple[int, int, int, int]:
    rows = receipts_by_eml(conn, owner)
    say(f"{'mail':<24} {'status':<12} {'vendor':<24} {'date':<10} {'total':>9}  {'match':<18} "
        f"{'freee':<15} filed as")
    correct = fields = match_ok = match_n = 0
    grand = 0
    statuses: Counter[str] = Counter()
    for t in truth["receipts"]:
        row = rows.get(t["eml"])
        name = t["eml"].removesuffix(".eml")[:24]
        if t["kind"] == "duplicate":
            say(f"{name:<24} {'duplicate':<12} (same message as {t['duplicate_of']}: "
                "no second receipt)" + ("" if row is None else "  UNEXPECTED RECEIPT"))
            continue
        if row is None:
            say(f"{name:<24} (no receipt)")
            continue
        ext = txn_external_id(conn, row["transaction_id"])
        match = f"{row['match_status'] or 'unmatched'}{' ' + ext if ext else ''}"
        if row["match_status"] == "suggested":
            n = conn.execute("select count(*) from receipts.matches where receipt_id = %s"
                             " and status = 'suggested'", (row["receipt_id"],)).fetchone()
            match = f"suggested ({n[0] if n else 0})"
            ext = None
        freee = "/".join(s or "-" for s in (row["freee_upload_state"], row["freee_deal_state"]))
        filed = row["storage_path"] or "-"
        say(f"{name:<24} {row['status']:<12} {cell(row['vendor'] or '-', 24)} "
            f"{str(row['issue_date'] or '-'):<10} {yen(row['total_yen']):>9}  {match:<18} "
            f"{freee:<15} {filed}")
        if row["review_reasons"]:
            say(f"{'':<24}   review: {', '.join(row['review_reasons'])}")
        grand += row["total_yen"] or 0
        statuses[row["match_status"] or "unmatched"] += 1
        if t["kind"] != "unreadable":
            checks = field_checks(t, row)
            fields += len(checks)
            correct += sum(checks.values())
            wrong = [k for k, ok in checks.items() if not ok]
            if wrong:
                say(f"{'':<24}   differs from truth: {', '.join(wrong)}")
        expected = t["expected_match"]
        match_n += 1
        got_status = row["match_status"] or "unmatched"
        match_ok += got_status == expected["status"] and (expected["transaction"] is None
                                                          or ext == expected["transaction"])
    say()
    say(f"receipts: {sum(statuses.values())}, total {yen(grand)}; matches: "
        + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    states = conn.execute(
        "select state, count(*) from receipts.freee_outbox where owner_id = %s group by 1"
        " order by 1", (owner,)).fetchall()
    say("freee outbox: " + (", ".join(f"{n} {state}" for state, n in states) or "empty")
        + ("" if get_settings().freee_configured else
           " (offline: set KYU_FREEE_CLIENT_ID, _SECRET and _COMPANY_ID, then"
           " `select receipts.enqueue_freee_drain()` sends them)"))
    return correct, fields, match_ok, match_n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m python_worker.receipts.demo",
                                description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=Path, default=None,
                   help="default out/samples (out/samples-large with --large)")
    p.add_argument("--large", type=int, metavar="N",
                   help="N generated mails of every failure class, as a new user with no aliases;"
                        " prints accuracy by field and kind of document")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fresh", action="store_true", help="--large: forget the earlier run first")
    p.add_argument("--verbose", action="store_true", help="--large: each receipt that differs")
    p.add_argument("--reparse", action="store_true",
                   help="--large: re-read the stored text with the current code (no OCR, no DB"
                        " writes)")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--log", type=Path, default=Path("out/demo-worker.log"),
                   help="where the worker's log goes")
    args = p.parse_args(argv)
    if args.large:
        from .demo_large import run_large

        return run_large(args)
    args.samples = args.samples or Path("out/samples")
    started = time.monotonic()
    settings = get_settings()
    owner = settings.owner_id
    samples = args.samples.resolve()

    say(f"Kyu receipt demo  (database {settings.database_url.rsplit('@', 1)[-1]})")
    say(f"1. generating sample mail in {samples}")
    truth = generate_samples(samples)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        if conn.execute("select to_regclass('receipts.receipts')").fetchone() == (None,):
            raise SystemExit("schema receipts is missing: run `make migrate` first")
        conn.execute((ROOT / "supabase" / "seed.sql").read_text(encoding="utf-8"))
        txns = read_transactions(samples / "transactions.csv")
        since = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
        with conn.transaction():
            new_txns = store.import_transactions(conn, owner, txns)
            ids = mail_source.enqueue_eml_folder(conn, samples / "mail", owner)
        say(f"2. loaded {len(txns)} bank/card lines ({new_txns} new); enqueued {len(ids)} mails")
        log_path = args.log.resolve()
        say(f"3. running a worker (log: {log_path})")
        proc = start_worker(log_path)
        try:
            wait_for_drain(conn, since, ids, proc, args.timeout, started)
            months = [r[0] for r in conn.execute(
                "select distinct to_char(issue_date, 'YYYY-MM') from receipts.receipts"
                " where owner_id = %s and issue_date is not null order by 1", (owner,))]
            with conn.transaction():
                for month in months:
                    ids.append(store.enqueue(conn, "generate_report",
                                             {"period": month, "owner_id": str(owner)},
                                             unique_key=f"report:{owner}:{month}",
                                             owner_id=owner))
            say(f"4. generating the report for {', '.join(months) or 'no month'}")
            counts = wait_for_drain(conn, since, ids, proc, args.timeout, started)
        finally:
            stop_worker(proc)

        say()
        correct, fields, match_ok, match_n = print_summary(conn, truth, owner)
        dead = sum(c["dead"] for c in counts.values())
        say(f"extraction accuracy: {correct}/{fields} fields correct against truth.json "
            f"({100 * correct / max(fields, 1):.0f}%); matches as expected: {match_ok}/{match_n}")
        if dead:
            say(f"dead jobs: {dead} (python -m python_worker dead-letter)")
        say()
        say("reports:")
        for row in conn.execute(
                "select to_char(month, 'YYYY-MM'), paths from receipts.reports"
                " where owner_id = %s order by month", (owner,)):
            for fmt, path in sorted(row[1].items()):
                say(f"  {row[0]} {fmt:<4} {(settings.files_dir / path).resolve()}")
    say(f"done in {time.monotonic() - started:.1f}s "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
