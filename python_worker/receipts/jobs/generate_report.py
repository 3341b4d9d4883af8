"""generate_report: a month's receipts → CSV (UTF-8 with BOM), HTML and PDF through the storage
adapter, plus a ``receipts.reports`` row. The bytes are deterministic, so a re-run rewrites the
same files and the same row.

Without a period it reports the previous month (Asia/Tokyo), so a recurring job needs no
payload: ``select queue.schedule_job('receipts-monthly-report', '0 0 1 * *', 'generate_report')``
runs at 09:00 JST on the 1st.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, field_validator

from python_worker import JobContext, handler

from .. import services, store
from ..adapters.errors import ServiceError
from ..domain import report
from ..domain.parse import TaxBand
from ..settings import get_settings

JST = timezone(timedelta(hours=9), "JST")
CONTENT_TYPES = {"csv": "text/csv", "html": "text/html", "pdf": "application/pdf"}


class ReportJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str | None = None  # YYYY-MM; default: the previous month in Japan (for schedules)
    formats: list[Literal["csv", "html", "pdf"]] = ["csv", "html", "pdf"]
    owner_id: UUID | None = None

    @field_validator("period")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
            raise ValueError(f"period must be YYYY-MM, got {value!r}")
        return value


def previous_month(now: datetime | None = None) -> str:
    """The month before ``now`` on the Japanese calendar, as YYYY-MM."""
    today = (now or datetime.now(UTC)).astimezone(JST).date()
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def report_path(period: str, fmt: str) -> str:
    return f"reports/{period}/receipts-{period}.{fmt}"


def report_rows(rows: list[dict[str, Any]]) -> list[report.ReportRow]:
    out = []
    for r in rows:
        bands = {
            int(rate): TaxBand(int(rate), b.get("net"), b.get("tax"), b.get("gross"))
            for rate, b in (r["tax"] or {}).items()
        }
        out.append(report.ReportRow(
            receipt_id=r["receipt_id"], vendor=r["vendor"], issue_date=r["issue_date"],
            total=r["total_yen"], tax=bands,
            match_status=r["match_status"] or "unmatched", filed_path=r["storage_path"],
        ))
    return out


@handler("generate_report", queue="receipts", priority=80, max_attempts=3, timeout=300)
def generate_report(job: ReportJob, ctx: JobContext) -> dict[str, Any]:
    """Render and store the month's report files; record them in receipts.reports."""
    owner = job.owner_id or get_settings().owner_id
    return write_month_report(ctx.connection, owner, job.period or previous_month(),
                              job.formats, progress=ctx.report_progress)


def write_month_report(conn: Any, owner: UUID, period: str, formats: Iterable[str],
                       progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """The work of generate_report on a connection (the handler's transaction, or the CLI's):
    render each format, store it, upsert the receipts.reports row."""
    month = date.fromisoformat(f"{period}-01")
    rows = report_rows(store.month_rows(conn, owner, month))
    renderers = {"csv": report.render_csv, "html": report.render_html, "pdf": report.render_pdf}
    storage = services.build_storage()
    remote = services.is_remote(storage)
    paths: dict[str, str] = {}
    digests: dict[str, str] = {}
    for fmt in sorted(set(formats)):
        data = renderers[fmt](rows, period)
        try:
            stored = storage.put(report_path(period, fmt), data, CONTENT_TYPES[fmt],
                                 key=f"report:{owner}:{period}:{fmt}")
        except ServiceError as exc:
            services.raise_for_service(services.STORAGE_SERVICE, exc, report=remote)
            raise
        paths[fmt] = stored.path
        digests[fmt] = hashlib.sha256(data).hexdigest()
        if progress is not None:
            progress({"rendered": sorted(paths)})
    if remote:
        store.report_service(conn, services.STORAGE_SERVICE, True)
    summary = report.summarize(rows)
    totals = {
        "count": summary.count,
        "grand_total": summary.grand_total,
        "missing_total": summary.missing_total,
        "by_vendor": [list(v) for v in summary.by_vendor],
        "by_rate": [asdict(r) for r in summary.by_rate],
        "by_status": [list(v) for v in summary.by_status],
    }
    report_id = store.upsert_report(conn, owner, month, paths, digests, totals, summary.count)
    return {"report_id": report_id, "period": period, "paths": paths, "sha256": digests,
            "receipts": summary.count, "grand_total": summary.grand_total}
