"""sync_freee: the receipt's freee requests (evidence upload, then an expense deal) go to
``receipts.freee_outbox``; with freee configured they are sent right away.

Offline (the default) the rows stay ``pending``; re-running sync_freee with freee configured
drains them. freee has no idempotency key, so any attempt after the first reconciles before
posting (the client searches for ``kyu:<id>`` in receipt descriptions and ``kyu-<id>`` as a
deal's ref_number). Throttles and rate limits retry at freee's reset time (RetryLater) and
count against the ``freee`` circuit breaker. A request freee refuses (400 validation) marks its
outbox row ``failed`` with the reason, which is where a human looks; an account problem
(re-authorization, plan, permission) dead-letters the job and leaves the rows pending for a
drain. A receipt in review gets its evidence upload but no deal until a human confirms it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from python_worker import JobContext, PermanentError, handler

from .. import blobs, services, store
from ..adapters.errors import PermanentServiceError, ServiceError
from ..adapters.freee import PERMANENT_403_CODES, REAUTH_CODES, DealDetail, FreeeClient, Payment
from ..settings import ReceiptSettings, get_settings
from .common import ReceiptJob, locked_receipt

WALLETABLE_TYPES = {"card": "credit_card", "bank": "bank_account"}
# permanent failures of the freee account (auth, plan, permission), not of one request
ACCOUNT_CODES = frozenset({services.CREDENTIALS_CODE, *REAUTH_CODES, *PERMANENT_403_CODES})


class FreeeJob(ReceiptJob):
    company_id: int | None = None


def upload_request(s: dict[str, Any]) -> dict[str, Any]:
    """The evidence upload (POST /api/1/receipts) as stored in the outbox."""
    return {
        "filename": s["filename"],
        "content_type": s["content_type"],
        "reconcile_token": f"kyu:{s['receipt_id']}",
        "description": " ".join(
            str(x) for x in (s["vendor"], s["issue_date"], s["total_yen"]) if x),
        "partner_name": s["vendor"],
        "issue_date": s["issue_date"].isoformat() if s["issue_date"] else None,
        "amount": s["total_yen"],
        "qualified_invoice": "qualified" if s["registration_valid"] else "unselected",
        "document_type": "receipt",
    }


def deal_request(s: dict[str, Any]) -> dict[str, Any]:
    """The expense deal (POST /api/1/deals): one detail per tax rate (tax-included amounts),
    paid from the matched account when there is a settled match."""
    bands = s["tax"] or {}
    details = [
        {"rate": int(rate),
         "amount": band.get("gross") or (band.get("net") or 0) + (band.get("tax") or 0),
         "vat": band.get("tax")}
        for rate, band in sorted(bands.items(), key=lambda kv: -int(kv[0]))
    ]
    if not details or sum(d["amount"] for d in details) != s["total_yen"]:
        details = [{"rate": 10, "amount": s["total_yen"], "vat": None}]
    payment = None
    if s["match_status"] in ("auto", "confirmed"):
        payment = {"account_kind": s["account_kind"], "date": s["transaction_date"].isoformat(),
                   "amount": s["total_yen"]}
    return {
        "issue_date": s["issue_date"].isoformat(),
        "ref_number": f"kyu-{s['receipt_id']}",
        "partner_name": s["vendor"],
        "details": details,
        "payment": payment,
    }


def _send(client: FreeeClient, settings: ReceiptSettings, row: dict[str, Any],
          upload_id: int | None, summary: dict[str, Any], reconcile: bool) -> Any:
    req = row["request"]
    if row["kind"] == "upload_receipt":
        return client.upload_receipt(
            content=blobs.get(summary["blob_key"]), filename=req["filename"],
            content_type=req["content_type"], reconcile_token=req["reconcile_token"],
            description=req["description"], partner_name=req["partner_name"],
            issue_date=date.fromisoformat(req["issue_date"]) if req["issue_date"] else None,
            amount=req["amount"], qualified_invoice=req["qualified_invoice"],
            document_type=req["document_type"], reconcile=reconcile,
            reconcile_since=row["created_at"].date(),
        )
    if settings.freee_account_item_id is None:
        raise PermanentServiceError("KYU_FREEE_ACCOUNT_ITEM_ID is not set (勘定科目 for expenses)")
    details = []
    for d in req["details"]:
        code = settings.freee_tax_codes.get(int(d["rate"]))
        if code is None:
            raise PermanentServiceError(f"no freee tax_code for {d['rate']}% (KYU_FREEE_TAX_CODES)")
        details.append(DealDetail(settings.freee_account_item_id, code, int(d["amount"]), d["vat"]))
    payments = []
    pay = req.get("payment")
    if pay and pay["account_kind"] in settings.freee_walletables:
        payments.append(Payment(int(pay["amount"]), WALLETABLE_TYPES[pay["account_kind"]],  # type: ignore[arg-type]
                                settings.freee_walletables[pay["account_kind"]],
                                date.fromisoformat(pay["date"])))
    return client.create_expense_deal(
        issue_date=date.fromisoformat(req["issue_date"]), ref_number=req["ref_number"],
        details=details, receipt_ids=[upload_id] if upload_id else [], payments=payments,
        reconcile=reconcile,
    )


@handler("sync_freee", queue="freee", priority=70, max_attempts=10, timeout=120)
def sync_freee(job: FreeeJob, ctx: JobContext) -> dict[str, Any]:
    """Queue the receipt's freee requests; send them when freee is configured."""
    conn = ctx.connection
    receipt = locked_receipt(conn, job.receipt_id)
    summary = store.summary(conn, job.receipt_id)
    if summary is None:
        raise PermanentError(f"receipt {job.receipt_id} not found")
    summary = dict(summary, blob_key=receipt["blob_key"])
    owner = receipt["owner_id"]
    rows = [store.upsert_outbox(conn, owner, job.receipt_id, "upload_receipt",
                                upload_request(summary))]
    # the expense is booked only from fields nobody doubts: a receipt in review keeps its
    # evidence upload, and its deal waits until review_receipt confirms it (which re-runs this)
    if summary["status"] in ("extracted", "confirmed"):
        rows.append(store.upsert_outbox(conn, owner, job.receipt_id, "create_deal",
                                        deal_request(summary)))

    settings = get_settings()
    if job.company_id is not None:  # a payload may name another company than the default
        settings = settings.model_copy(update={"freee_company_id": job.company_id})
    client = services.build_freee(settings)
    if client is None:
        return {"receipt_id": job.receipt_id, "sent": False,
                "outbox": {r["kind"]: r["state"] for r in rows}}

    upload_id = next((r["freee_id"] for r in rows
                      if r["kind"] == "upload_receipt" and r["state"] == "sent"), None)
    states: dict[str, str] = {}
    try:
        for row in rows:
            if row["state"] in ("sent", "failed"):
                states[row["kind"]] = row["state"]
                continue
            if row["kind"] == "create_deal" and upload_id is None:
                states[row["kind"]] = "pending"  # the deal needs the uploaded receipt's id
                continue
            try:
                created = _send(client, settings, row, upload_id, summary,
                                reconcile=ctx.attempt > 1 or row["attempts"] > 0)
            except PermanentServiceError as exc:
                if exc.code in ACCOUNT_CODES:
                    # the account, not the request: the rows stay pending for a drain after
                    # a human re-authorizes; the job dies so an operator sees it
                    services.raise_for_service(services.FREEE_SERVICE, exc, report=False)
                # freee refused the request itself: the outbox row records why (in this
                # transaction, which completes), and the other kind is not attempted
                store.mark_outbox_failed(conn, row["id"], str(exc), permanent=True)
                states[row["kind"]] = "failed"
                break
            except ServiceError as exc:
                services.raise_for_service(services.FREEE_SERVICE, exc)
                raise
            store.mark_outbox_sent(conn, row["id"], created.id, created.request_id, created.body)
            states[row["kind"]] = "sent"
            if row["kind"] == "upload_receipt":
                upload_id = created.id
        store.report_service(conn, services.FREEE_SERVICE, True)
    finally:
        client.close()
    return {"receipt_id": job.receipt_id, "sent": True, "outbox": states,
            "freee_receipt_id": upload_id}
