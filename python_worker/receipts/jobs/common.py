"""What the jobs that work on one receipt share: their payload's base model and the locked
read of the receipt (a receipt that is gone cannot come back, so retrying cannot help)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from python_worker import PermanentError

from .. import store


class ReceiptJob(BaseModel):
    """A payload naming one receipt; unknown keys are refused (a typo is not a default)."""

    model_config = ConfigDict(extra="forbid")

    receipt_id: int


def locked_receipt(conn: Any, receipt_id: int) -> store.Row:
    """The receipt with its file, locked for this job's transaction."""
    receipt = store.load_receipt(conn, receipt_id, lock=True)
    if receipt is None:
        raise PermanentError(f"receipt {receipt_id} not found")
    return receipt
