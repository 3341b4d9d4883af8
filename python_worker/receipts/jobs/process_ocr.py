"""process_ocr: a stored receipt file → text (PDF text layer, else tesseract) → fields.

Nothing is guessed: missing or doubtful fields put the receipt in ``needs_review`` with the
reasons. A receipt with a total and a date goes on to match_transaction. Re-running overwrites
the same row (skipped once read, unless ``force``); a human-confirmed receipt is never touched.
"""

from __future__ import annotations

from typing import Any

from python_worker import JobContext, PermanentError, handler

from .. import blobs, store
from ..domain import ocr
from ..domain.parse import ParsedReceipt, parse_receipt
from ..domain.reading import read_receipt
from ..settings import get_settings
from .common import ReceiptJob, locked_receipt


class OcrJob(ReceiptJob):
    force: bool = False


def tax_json(parsed: ParsedReceipt) -> dict[str, dict[str, int | None]]:
    """{"10": {"net", "tax", "gross"}, ...}: the receipts.tax column."""
    return {
        str(rate): {"net": band.net, "tax": band.tax, "gross": band.gross}
        for rate, band in sorted(parsed.tax.items(), reverse=True)
    }


@handler("process_ocr", queue="ocr", max_attempts=3, timeout=300)
def process_ocr(job: OcrJob, ctx: JobContext) -> dict[str, Any]:
    """Read a receipt's fields; enqueue matching when it has a total and a date."""
    conn = ctx.connection
    receipt = locked_receipt(conn, job.receipt_id)
    if receipt["status"] == "confirmed" or (receipt["status"] != "new" and not job.force):
        return {"receipt_id": job.receipt_id, "skipped": receipt["status"]}
    try:
        data = blobs.get(receipt["blob_key"])
    except FileNotFoundError:
        raise PermanentError(
            f"blob {receipt['blob_key']} of receipt {job.receipt_id} is gone") from None

    s = get_settings()
    aliases = store.vendor_aliases(conn, receipt["owner_id"])

    def parse(text: ocr.OcrResult) -> ParsedReceipt:
        return parse_receipt(text.text, ocr_confidence=text.confidence, aliases=aliases,
                             sender=receipt["from_name"])

    try:
        reading = read_receipt(data, receipt["content_type"], parse=parse, lang=s.ocr_lang,
                               dpi=s.ocr_dpi, timeout=s.ocr_timeout)
    except ocr.OcrConfigError as exc:
        raise PermanentError(f"OCR is not set up: {exc}") from exc
    except ocr.UnreadableDocument as exc:
        # an unreadable file is a review case, not a failed job
        store.save_extraction(
            conn, job.receipt_id, status="needs_review", text_source=None, ocr_text=None,
            confidence=None, engine_version=None, vendor=None, issue_date=None, total_yen=None,
            tax={}, registration_number=None, registration_valid=None,
            review_reasons=[f"unreadable: {exc}"[:200]],
        )
        return {"receipt_id": job.receipt_id, "status": "needs_review", "reasons": ["unreadable"]}

    result, parsed = reading.result, reading.parsed
    reasons = list(parsed.review_reasons)
    status = "needs_review" if reasons else "extracted"
    store.save_extraction(
        conn, job.receipt_id,
        status=status,
        text_source=result.source,
        ocr_text=result.text,
        confidence=round(max(0.0, min(1.0, result.confidence)), 3),
        engine_version=result.engine,
        vendor=parsed.vendor,
        issue_date=parsed.issue_date,
        due_date=parsed.due_date,
        total_yen=parsed.total,
        tax=tax_json(parsed),
        registration_number=parsed.registration_number,
        registration_valid=parsed.registration_checked,
        review_reasons=reasons,
    )
    next_job = None
    if parsed.total is not None and parsed.issue_date is not None:
        next_job = store.enqueue(conn, "match_transaction", {"receipt_id": job.receipt_id},
                                 unique_key=f"match:{job.receipt_id}",
                                 owner_id=receipt["owner_id"])
    return {
        "receipt_id": job.receipt_id,
        "status": status,
        "text_source": result.source,
        "vendor": parsed.vendor,
        "issue_date": parsed.issue_date.isoformat() if parsed.issue_date else None,
        "total": parsed.total,
        "reasons": reasons,
        "ocr_passes": reading.passes,
        "next_job": next_job,
    }
