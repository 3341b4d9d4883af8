"""organize_file: file a receipt as ``YYYY/MM/<vendor>/<date>_<vendor>_<total>_<id>.<ext>``
through the storage adapter (a local directory by default, Drive or Supabase Storage).

The adapter is idempotent per key (``receipt:<id>``): a re-run finds the object instead of
copying it, and a corrected vendor moves it. Then sync_freee.
"""

from __future__ import annotations

from typing import Any

from python_worker import JobContext, PermanentError, handler

from .. import blobs, services, store
from ..adapters.errors import ServiceError
from ..domain.filing import extension_for, filing_path
from .common import ReceiptJob, locked_receipt


class OrganizeJob(ReceiptJob):
    """{"receipt_id": N}"""


@handler("organize_file", queue="receipts", priority=60, max_attempts=8, timeout=120)
def organize_file(job: OrganizeJob, ctx: JobContext) -> dict[str, Any]:
    """File the receipt's bytes under its canonical path; enqueue sync_freee."""
    conn = ctx.connection
    receipt = locked_receipt(conn, job.receipt_id)
    path = filing_path(
        receipt_id=job.receipt_id,
        issue_date=receipt["issue_date"],
        vendor=receipt["vendor"],
        total=receipt["total_yen"],
        ext=extension_for(receipt["content_type"], receipt["filename"]),
    )
    try:
        data = blobs.get(receipt["blob_key"])
    except FileNotFoundError:
        raise PermanentError(
            f"blob {receipt['blob_key']} of receipt {job.receipt_id} is gone") from None
    storage = services.build_storage()
    remote = services.is_remote(storage)
    try:
        stored = storage.put(path, data, receipt["content_type"], key=f"receipt:{job.receipt_id}")
    except ServiceError as exc:
        services.raise_for_service(services.STORAGE_SERVICE, exc, report=remote)
        raise  # unreachable: raise_for_service always raises
    if remote:
        store.report_service(conn, services.STORAGE_SERVICE, True)
    store.set_filed(conn, receipt["file_id"], stored.path, stored.backend,
                    stored.location if remote else None)
    next_job = store.enqueue(conn, "sync_freee", {"receipt_id": job.receipt_id},
                             unique_key=f"freee:{job.receipt_id}", owner_id=receipt["owner_id"],
                             parent=ctx)
    return {"receipt_id": job.receipt_id, "path": stored.path, "backend": stored.backend,
            "created": stored.created, "next_job": next_job}
