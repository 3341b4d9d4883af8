"""The receipt pipeline's six job handlers. Importing this package registers them
(``--handlers python_worker.receipts.jobs``):

    process_email_receipt → process_ocr → match_transaction → organize_file → sync_freee
    generate_report (per month, on demand or by schedule)

Each is thin: a pydantic payload, domain code from ``..domain`` (no database), writes through
``..store`` on the job's completing transaction, and the next step enqueued with a
``unique_key`` in that same transaction. Their queue, priority and attempts are registered in
SQL (``sql/receipts/80_job_types.sql``); tests/receipts/jobs/test_job_types.py checks that the
decorators say the same.
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
