"""Monthly receipt report: CSV, HTML and PDF with totals by vendor, tax rate and match status.

Public API (pure; the handler builds the rows in SQL by issue_date in Asia/Tokyo):

- `ReportRow(receipt_id, vendor, issue_date, total, tax: Mapping[int, TaxBand], match_status,
  filed_path)`; `TaxBand` is `parse.TaxBand(rate, net, tax, gross)`.
- `summarize(rows) -> ReportSummary` (by_vendor, by_rate, by_status, grand_total, count).
- `render_csv(rows, period) -> bytes`: UTF-8 with BOM (Japanese Excel), CRLF, one row per
  receipt, columns `CSV_COLUMNS`.
- `render_html(rows, period, title=...) -> bytes`, `render_pdf(rows, period, title=...) -> bytes`.

Every output is deterministic: rows sorted by (issue_date, vendor, receipt_id), no wall-clock
time, and the PDF gets a creation date derived from the period and an identifier derived from
the content, so the same rows always give the same SHA-256.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .parse import TaxBand

TEMPLATES = Path(__file__).with_name("templates")
RATES = (10, 8)
CSV_COLUMNS = [
    "receipt_id", "issue_date", "vendor", "total", "net_10", "tax_10", "net_8", "tax_8",
    "match_status", "filed_path",
]


@dataclass(frozen=True)
class ReportRow:
    receipt_id: int | str
    vendor: str | None
    issue_date: date | None
    total: int | None
    tax: Mapping[int, TaxBand] = field(default_factory=dict)
    match_status: str = "unmatched"
    filed_path: str | None = None


@dataclass(frozen=True)
class RateTotal:
    rate: int
    net: int
    tax: int
    gross: int
    receipts: int


@dataclass(frozen=True)
class ReportSummary:
    count: int
    grand_total: int
    by_vendor: list[tuple[str, int, int]]  # (vendor, receipts, total yen)
    by_rate: list[RateTotal]
    by_status: list[tuple[str, int, int]]  # (status, receipts, total yen)
    missing_total: int  # receipts without a total (not in the sums)


def _sort_key(row: ReportRow) -> tuple[str, str, str]:
    return (row.issue_date.isoformat() if row.issue_date else "9999",
            row.vendor or "", f"{row.receipt_id!s:>20}")


def sorted_rows(rows: Iterable[ReportRow]) -> list[ReportRow]:
    return sorted(rows, key=_sort_key)


def summarize(rows: Iterable[ReportRow]) -> ReportSummary:
    items = list(rows)
    vendors: dict[str, list[int]] = {}
    statuses: dict[str, list[int]] = {}
    rates: dict[int, list[int]] = {}
    for row in items:
        amount = row.total or 0
        v = vendors.setdefault(row.vendor or "(unknown)", [0, 0])
        v[0] += 1
        v[1] += amount
        s = statuses.setdefault(row.match_status, [0, 0])
        s[0] += 1
        s[1] += amount
        for rate, band in row.tax.items():
            r = rates.setdefault(rate, [0, 0, 0, 0])
            r[0] += band.net or 0
            r[1] += band.tax or 0
            r[2] += band.gross or 0
            r[3] += 1
    return ReportSummary(
        count=len(items),
        grand_total=sum(row.total or 0 for row in items),
        by_vendor=sorted(((k, v[0], v[1]) for k, v in vendors.items()),
                         key=lambda x: (-x[2], x[0])),
        by_rate=[RateTotal(rate, *rates[rate]) for rate in sorted(rates, reverse=True)],
        by_status=sorted(((k, v[0], v[1]) for k, v in statuses.items()), key=lambda x: x[0]),
        missing_total=sum(1 for row in items if row.total is None),
    )


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def render_csv(rows: Iterable[ReportRow], period: str) -> bytes:
    """One line per receipt (the totals live in the HTML/PDF). Raises ValueError on a bad
    period, like the other renderers."""
    _created_at(period)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in sorted_rows(rows):
        b10, b8 = row.tax.get(10), row.tax.get(8)
        writer.writerow([
            _cell(row.receipt_id), row.issue_date.isoformat() if row.issue_date else "",
            _cell(row.vendor), _cell(row.total),
            _cell(b10.net if b10 else None), _cell(b10.tax if b10 else None),
            _cell(b8.net if b8 else None), _cell(b8.tax if b8 else None),
            row.match_status, _cell(row.filed_path),
        ])
    return buffer.getvalue().encode("utf-8-sig")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["yen"] = lambda v: "" if v is None else f"¥{int(v):,}"
    return env


def _created_at(period: str) -> str:
    """First day of the month after `period` ('YYYY-MM'), JST: stable across re-runs."""
    year, month = (int(x) for x in period.split("-"))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-01T00:00:00+09:00"


def render_html(rows: Iterable[ReportRow], period: str,
                title: str = "経費レシート月次レポート") -> bytes:
    """HTML report (UTF-8). Raises ValueError on a malformed period."""
    _created_at(period)  # validates 'YYYY-MM'
    items = sorted_rows(rows)
    html = _environment().get_template("monthly_report.html.j2").render(
        title=title, period=period, rows=items, summary=summarize(items), rates=RATES,
        created=_created_at(period),
    )
    return html.encode("utf-8")


def render_pdf(rows: Iterable[ReportRow], period: str,
               title: str = "経費レシート月次レポート") -> bytes:
    """A4 PDF of the HTML report with IPAGothic embedded; identical bytes for identical rows."""
    from weasyprint import HTML

    html = render_html(rows, period, title)
    identifier = hashlib.sha256(html).hexdigest()[:32].encode("ascii")
    document = HTML(string=html.decode("utf-8"), base_url=str(TEMPLATES))
    return document.write_pdf(pdf_identifier=identifier)  # type: ignore[no-any-return]
