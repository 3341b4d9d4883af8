"""match_transaction: score a receipt against bank/card lines and store auto/suggested matches.

The domain code decides (amount gate, account date window, vendor similarity with aliases);
this handler replaces the receipt's machine matches, never a human's confirmed or rejected
one, and the one-to-one index settles races between receipts. Filing follows either way.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from python_worker import JobContext, handler

from .. import store
from ..domain import matching
from .common import ReceiptJob, locked_receipt


class MatchJob(ReceiptJob):
    """{"receipt_id": N}"""


@handler("match_transaction", queue="receipts", max_attempts=5, timeout=60)
def match_transaction(job: MatchJob, ctx: JobContext) -> dict[str, Any]:
    """Match one receipt; enqueue organize_file."""
    conn = ctx.connection
    receipt = locked_receipt(conn, job.receipt_id)
    owner = receipt["owner_id"]
    result: dict[str, Any] = {"receipt_id": job.receipt_id}
    if receipt["total_yen"] is None or receipt["issue_date"] is None:
        result |= {"status": "unmatched", "reasons": ["receipt_incomplete"]}
    else:
        rows = store.candidate_transactions(conn, owner, receipt["total_yen"],
                                            receipt["issue_date"])
        txns = [
            matching.Transaction(str(r["id"]), r["account_kind"], r["txn_date"], r["amount_yen"],
                                 r["description"], r["entry_side"])
            for r in rows
        ]
        existing = [
            matching.ExistingDecision(str(m["transaction_id"]), m["status"])
            for m in store.matches_of_receipt(conn, job.receipt_id)
            if m["status"] in ("confirmed", "rejected")
        ]
        taken = store.settled_elsewhere(conn, job.receipt_id, [r["id"] for r in rows])
        decision = matching.match_receipt(
            matching.ReceiptFacts(receipt["total_yen"], receipt["issue_date"], receipt["vendor"],
                                  receipt["due_date"]),
            txns,
            aliases=store.vendor_aliases(conn, owner),
            existing=existing,
            taken={str(t) for t in taken},
        )
        to_store: list[dict[str, Any]] = []
        if decision.status in ("auto", "suggested"):
            for rank, cand in enumerate(decision.candidates, start=1):
                auto = decision.status == "auto" and cand.transaction_id == decision.transaction_id
                to_store.append({
                    "transaction_id": int(cand.transaction_id),
                    "status": "auto" if auto else "suggested",
                    "score": min(1.0, cand.score),
                    "components": asdict(cand.components),
                    "rank": rank,
                })
        stored = []
        if decision.status != "confirmed":
            stored = store.replace_machine_matches(conn, owner, job.receipt_id, to_store)
        settled = next((m for m in stored if m["status"] == "auto"), None)
        status = decision.status
        if status == "auto" and settled is None:
            status = "suggested"  # lost its transaction to a concurrent receipt
        result |= {
            "status": status,
            "transaction_id": settled["transaction_id"] if settled else (
                int(decision.transaction_id)
                if status == "confirmed" and decision.transaction_id else None),
            "candidates": [m["transaction_id"] for m in stored],
            "reasons": decision.reasons,
        }
    result["next_job"] = store.enqueue(conn, "organize_file", {"receipt_id": job.receipt_id},
                                       unique_key=f"file:{job.receipt_id}", owner_id=owner)
    return result
