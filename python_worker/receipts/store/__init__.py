"""The receipt handlers' SQL, in one place: reads and idempotent writes on schema ``receipts``
and ``queue.enqueue_job`` for the next step, always on the connection handed in (the job's
completing transaction, so every write lands exactly when the job completes). The only
modules that run SQL on the receipts tables."""

from .base import Row, enqueue, report_service
from .delivery import (
    mark_outbox_failed,
    mark_outbox_sent,
    month_rows,
    set_filed,
    summary,
    upsert_outbox,
    upsert_report,
)
from .intake import (
    add_vendor_aliases,
    insert_email_message,
    insert_receipt,
    load_receipt,
    receipts_of_message,
    save_extraction,
    set_receipt_count,
    upsert_file,
    vendor_aliases,
)
from .matching import (
    candidate_transactions,
    import_transactions,
    matches_of_receipt,
    replace_machine_matches,
    settled_elsewhere,
)
from .review import (
    correct_receipt,
    decide_match,
    receipts_to_review,
    suggested_matches,
    unsettled_receipts,
)

__all__ = [
    "Row", "add_vendor_aliases", "candidate_transactions", "enqueue", "import_transactions",
    "insert_email_message", "insert_receipt", "load_receipt", "mark_outbox_failed",
    "mark_outbox_sent", "matches_of_receipt", "month_rows", "receipts_of_message",
    "replace_machine_matches", "report_service", "save_extraction", "set_filed",
    "set_receipt_count", "settled_elsewhere", "summary", "upsert_file", "upsert_outbox",
    "upsert_report", "vendor_aliases", "correct_receipt", "decide_match", "receipts_to_review",
    "suggested_matches", "unsettled_receipts",
]
