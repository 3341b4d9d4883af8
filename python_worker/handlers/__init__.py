"""The receipt pipeline's six handlers. Importing this package registers them:

    process_email_receipt → process_ocr → match_transaction → organize_file → sync_freee
    generate_report (per month, on demand or by schedule)

Each is thin: a pydantic payload, domain code from ``python_worker.receipts`` (no database),
writes through ``store`` on the job's completing transaction, and the next step enqueued with a
``unique_key`` in that same transaction.
"""

from . import (
    generate_report,
    match_transaction,
    organize_file,
    process_email_receipt,
    process_ocr,
    sync_freee,
)

__all__ = [
    "generate_report",
    "match_transaction",
    "organize_file",
    "process_email_receipt",
    "process_ocr",
    "sync_freee",
]
